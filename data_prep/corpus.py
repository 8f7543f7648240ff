"""One loader for every text source: a Hub dataset, a folder saved by `datasets`, or local files.

Local files may be .txt (one document per line), .jsonl/.json, .csv, .tsv or .parquet, each optionally
compressed (.gz, .bz2, .xz, .zst). Text must be UTF-8: a file with other bytes is refused with the
file named, unless `encoding_errors="replace"` is asked for, which turns each bad byte into U+FFFD.
"""

import glob
import os
from pathlib import Path

import datasets
from datasets import DatasetDict, load_dataset, load_from_disk

from small_encoders.core.errors import UserError

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
BUILDERS = {".txt": "text", ".text": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def expand_files(patterns, flag):
    """Expand comma-separated globs into a sorted file list; fail with the flag named if nothing matches."""
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    files = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern.strip())
        if os.path.isdir(pattern) and not is_saved_dataset(pattern):
            matches = sorted(str(p) for p in Path(pattern).rglob("*") if p.is_file() and builder_for(p.name, strict=False))
        else:
            matches = sorted(glob.glob(pattern, recursive=True)) or ([pattern] if os.path.exists(pattern) else [])
        if not matches:
            raise UserError(f"{flag} {pattern!r} matches no file; check the path (globs like 'data/*.txt.gz' work)")
        files.extend(matches)
    for file in files:
        if os.path.isfile(file) and os.path.getsize(file) == 0:
            raise UserError(f"{flag}: {file} is empty; remove it from the list or give a file with text")
    return files


def builder_for(name, strict=True):
    """The `datasets` builder that reads a file, from its extension (compression suffix ignored)."""
    stem = name
    for suffix in COMPRESSIONS:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    extension = os.path.splitext(stem)[1].lower()
    if extension not in BUILDERS and strict:
        raise UserError(f"cannot read {name}: use .txt, .jsonl, .csv, .tsv or .parquet (optionally .gz)")
    return BUILDERS.get(extension)


def is_saved_dataset(path):
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, marker)) for marker in ("dataset_dict.json", "dataset_info.json", "state.json")
    )


def builder_options(files, encoding_errors="strict", sample_by="line"):
    """(the `datasets` builder, its keyword arguments) that read `files`: one format per split."""
    builders = {builder_for(f) for f in files}
    if len(builders) > 1:
        raise UserError(f"one split mixes file formats ({sorted(builders)}); give files of one format per split")
    builder = builders.pop()
    options = {}
    if builder == "text":
        options.update(encoding_errors=encoding_errors, sample_by=sample_by)
    if builder == "csv" and all(".tsv" in Path(f).name for f in files):
        options["delimiter"] = "\t"
    return builder, options


def load_local(files, encoding_errors, sample_by="line"):
    """Load one split from local files or a saved dataset folder; `.txt` rows are lines, paragraphs or files."""
    if len(files) == 1 and is_saved_dataset(files[0]):
        loaded = load_from_disk(files[0])
        return loaded["train"] if isinstance(loaded, DatasetDict) else loaded
    builder, options = builder_options(files, encoding_errors, sample_by)
    try:
        return load_dataset(builder, data_files=files, split="train", **options)
    except UnicodeDecodeError as error:
        raise UserError(
            f"a file in {files[:3]} is not UTF-8 ({error.reason} at byte {error.start}); convert it to UTF-8 or "
            f"pass --encoding_errors replace to turn bad bytes into U+FFFD"
        ) from None
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__
        if isinstance(cause, UnicodeDecodeError):
            raise UserError(
                f"a file in {files[:3]} is not UTF-8 ({cause.reason}); convert it to UTF-8 or pass "
                f"--encoding_errors replace to turn bad bytes into U+FFFD"
            ) from None
        raise UserError(f"could not read {files[:3]}: {cause or error}") from None


def load_hub(name, config, split):
    try:
        return load_dataset(name, config, split=split)
    except Exception as error:  # the Hub client raises many types; all mean the same to the user
        raise UserError(
            f"could not load the Hub dataset {name!r} ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
            f"without network, pass local text with --train_files (and --validation_files)"
        ) from None


def load_corpus(
    dataset_name=None,
    dataset_config=None,
    train_files=None,
    validation_files=None,
    text_column="text",
    validation_split_percentage=5,
    max_train_samples=None,
    max_validation_samples=None,
    seed=42,
    encoding_errors="strict",
    train_filter=None,
    sample_by="line",
):
    """Train and validation splits with one `text` column, from local files if given, else the Hub.

    `sample_by` says what one document of a `.txt` file is: a line, a blank-line paragraph (hard-wrapped
    books), or the whole file. `train_filter` (a function Dataset -> Dataset) runs on the raw training rows, before the
    validation split is cut from them, with all the source's columns still there.
    """
    if train_files:
        train = load_local(expand_files(train_files, "--train_files"), encoding_errors, sample_by)
        validation = load_local(expand_files(validation_files, "--validation_files"), encoding_errors, sample_by) if validation_files else None
    elif dataset_name:
        train = load_hub(dataset_name, dataset_config, "train")
        validation = None
        if validation_files:
            validation = load_local(expand_files(validation_files, "--validation_files"), encoding_errors, sample_by)
        else:
            try:
                validation = load_dataset(dataset_name, dataset_config, split="validation")
            except Exception:
                validation = None
    else:
        raise UserError("no data source: set dataset_name in the recipe or pass --train_files")

    if train_filter is not None:
        train = train_filter(train)
    for split_name, split in (("train", train), ("validation", validation)):
        if split is not None and text_column not in split.column_names:
            raise UserError(
                f"the {split_name} data has no column {text_column!r} (columns: {split.column_names}); "
                f"pass --text_column NAME"
            )
    if validation is None:
        if len(train) < 2:
            raise UserError("the training data has fewer than 2 documents; give more text")
        test_size = max(1, int(len(train) * validation_split_percentage / 100))
        parts = train.train_test_split(test_size=test_size, seed=seed, shuffle=True)
        train, validation = parts["train"], parts["test"]
    train = keep_text(train, text_column)
    validation = keep_text(validation, text_column)
    if max_train_samples:
        train = train.select(range(min(max_train_samples, len(train))))
    if max_validation_samples:
        validation = validation.select(range(min(max_validation_samples, len(validation))))
    if len(train) == 0:
        raise UserError("the training data holds no non-empty text; check --train_files and --text_column")
    if len(validation) == 0:
        raise UserError("the validation data holds no non-empty text; check --validation_files")
    return DatasetDict(train=train, validation=validation)


def keep_text(split, text_column):
    """Only the text column, renamed to `text`, without empty or whitespace-only rows."""
    if text_column != "text":
        if "text" in split.column_names:
            split = split.remove_columns("text")
        split = split.rename_column(text_column, "text")
    split = split.remove_columns([c for c in split.column_names if c != "text"])
    return split.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True, desc="dropping empty lines")


def mix_in_replay(train, replay_files, fraction, seed=42, encoding_errors="strict", validation_split_percentage=5):
    """(the training documents with general text mixed in, a one-line description): documents of `replay_files` (one per
    line), drawn at random until they hold `fraction` of the mixed corpus's characters. The replay corpus's own held-out
    share (`validation_split_percentage`, the same seeded split the run would make of it) is never drawn from, so a
    general-text figure measured on it stays held out. Continued pretraining mixes these in against forgetting."""
    from datasets import concatenate_datasets

    general = load_corpus(train_files=replay_files, validation_split_percentage=validation_split_percentage, seed=seed,
                          encoding_errors=encoding_errors)["train"].shuffle(seed=seed)
    domain_chars = sum(len(text) for text in train["text"])
    wanted = fraction / (1 - fraction) * domain_chars
    taken, chars = 0, 0
    for text in general["text"]:
        if chars >= wanted:
            break
        taken, chars = taken + 1, chars + len(text)
    if chars < wanted:
        raise UserError(f"--replay_files {replay_files}: {chars:,} characters of general text (after its held-out "
                        f"{validation_split_percentage:g}%), fewer than the {int(wanted):,} that --replay_fraction "
                        f"{fraction:g} asks for; give more files or a smaller fraction")
    mixed = concatenate_datasets([train, general.select(range(taken))]).shuffle(seed=seed)
    return mixed, (f"replay: {taken:,} documents of {replay_files} mixed in ({chars / (chars + domain_chars):.0%} of the "
                   f"training characters; its held-out {validation_split_percentage:g}% never drawn from)")
