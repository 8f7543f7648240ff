"""Checks of numeric command-line arguments: a bad value is a UserError that names the flag."""

import math

from small_encoders.core.errors import UserError


def _number(value, flag, what):
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise UserError(f"{flag} must be {what}, got {value!r}")
    return number


def positive_number(value, flag, unit=None):
    """A finite number > 0 (learning rate, epochs, minutes); strings that YAML left unparsed ('1e-3') are taken."""
    what = "a positive number" + (f" of {unit}" if unit else "")
    number = _number(value, flag, what)
    if number <= 0:
        raise UserError(f"{flag} must be {what}, got {value!r}")
    return number


def non_negative_number(value, flag):
    """A finite number >= 0 (weight decay, gradient clipping)."""
    number = _number(value, flag, "a number >= 0")
    if number < 0:
        raise UserError(f"{flag} must be a number >= 0, got {value!r}")
    return number


def fraction(value, flag, low_open=True):
    """A number in (0, 1) (masking rate), or in [0, 1) with low_open=False (warmup ratio)."""
    number = _number(value, flag, "a number between 0 and 1")
    if not ((0 < number if low_open else 0 <= number) and number < 1):
        raise UserError(f"{flag} must be between 0 and 1, got {value!r}")
    return number


def positive_int(value, flag, allow_none=False):
    """An integer > 0 (batch size, sequence length, steps), or None when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{flag} must be a positive integer, got {value!r}")
    return value


def non_negative_int(value, flag):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{flag} must be an integer >= 0, got {value!r}")
    return value


def in_range(value, flag, low, high, integer=False):
    """A number between `low` and `high` (both included; an integer with integer=True); strings YAML left unparsed
    ('1e-3') are taken for floats. Every numeric setting has one: a negative count and an absurd size are refused
    before any work, not after it started."""
    what = f"{'an integer' if integer else 'a number'} between {shown(low)} and {shown(high)}"
    if integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{flag} must be {what}, got {value!r}")
        number = value
    else:
        number = _number(value, flag, what)
    if not low <= number <= high:
        raise UserError(f"{flag} must be {what}, got {value!r}")
    return number


def shown(number):
    return f"{number:,}" if float(number).is_integer() and abs(number) >= 1000 else f"{number:g}"


def bounded(kind, low, high):
    """An argparse `type` for numbers of `kind` (int or float) between `low` and `high`."""
    import argparse

    def convert(text):
        try:
            number = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} between "
                                             f"{shown(low)} and {shown(high)}, got {text!r}") from None
        if not (math.isfinite(number) and low <= number <= high):
            raise argparse.ArgumentTypeError(f"must be between {shown(low)} and {shown(high)}, got {text!r}")
        return number

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


MAX_SEED = 2**32 - 1  # numpy's and torch's seeding take 32 bits


def seed_list(value, flag="--seeds"):
    """'1,2,3' -> [1, 2, 3]: one or more integers between 0 and 2**32 - 1, no repeats."""
    parts = [p.strip() for p in str(value).split(",")]
    if not parts or not all(p.isdigit() and len(p) <= 10 and int(p) <= MAX_SEED for p in parts):
        raise UserError(f"{flag} must be comma-separated integers from 0 to {MAX_SEED}, e.g. 1,2,3; got {value!r}")
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{flag} repeats a seed: {value!r}")
    return seeds


def output_folder(path, flag="--output_dir"):
    """`path` as a Path, refused in one line when it, or a folder above it, is a file (it could never be made)."""
    from pathlib import Path

    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{flag} {path}: {folder} is a file, not a folder; give another {flag}")
    return path
