"""The one exception type for mistakes a user can fix, and the decorator that turns it into one `error:` line."""

import argparse
import functools
import sys


class UserError(Exception):
    """A problem with the user's input or setup, with the fix in its message."""


def entry_point(main):
    """Decorate an entry point's `main(argv=None)`: a UserError it raises ends in one `error:` line on stderr and
    exit code 1 (no traceback); otherwise it returns main's own code, 0 when main returns None."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            code = main(*args, **kwargs)
        except UserError as error:
            # After a progress bar the cursor may sit mid-line; errors raised during training start a fresh one.
            print(f"{chr(10) if getattr(error, 'after_progress_bar', False) else ''}error: {error}", file=sys.stderr)
            return 1
        return 0 if code is None else code

    return wrapper


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes (a missing flag, `--batch_size abc`) end in one `error:` line naming the flag.

    Every number it takes has a range: a bare `type=int` or `type=float` is refused when the parser is built (use
    `core.checks.bounded`), so no flag lets through a negative count or an absurd size that only fails, or runs for
    days, once the work has started."""

    def add_argument(self, *args, **kwargs):
        if kwargs.get("type") in (int, float):
            raise TypeError(f"{args[0]}: give a numeric argument its range, type=core.checks.bounded({kwargs['type'].__name__}, "
                            f"low, high)")
        return super().add_argument(*args, **kwargs)

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
