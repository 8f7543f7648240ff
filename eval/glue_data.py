"""GLUE tasks from the Hub (`nyu-mll/glue`) or from the original GLUE TSV folders, as one schema:
`sentence1`, `sentence2` (None for single-sentence tasks) and an integer (or float, STS-B) `label`.

The TSVs are read as GLUE ships them: CoLA has no header, MRPC's dev file starts with a byte-order
mark, RTE/QNLI/MNLI labels are words, and no field is quoted (quotes are text).
"""

import csv
import os
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from small_encoders.core.errors import UserError

NLI2 = ["entailment", "not_entailment"]
NLI3 = ["entailment", "neutral", "contradiction"]
# The class names of nyu-mll/glue on the Hub, for a fine-tuned model's config (id2label); STS-B is a regression.
LABEL_NAMES = {
    "cola": ["unacceptable", "acceptable"], "sst2": ["negative", "positive"], "mrpc": ["not_equivalent", "equivalent"],
    "stsb": ["similarity"], "qqp": ["not_duplicate", "duplicate"], "mnli": NLI3, "qnli": NLI2, "rte": NLI2,
    "wnli": ["not_entailment", "entailment"],
}

# folder, (header columns or CoLA's positions), label column, label names (None: numbers), metrics
TASKS = {
    "cola": dict(folder="CoLA", text=(3, None), label=1, header=False, labels=None, num_labels=2, metrics=("matthews_correlation",)),
    "sst2": dict(folder="SST-2", text=("sentence", None), label="label", header=True, labels=None, num_labels=2, metrics=("accuracy",)),
    "mrpc": dict(folder="MRPC", text=("#1 String", "#2 String"), label="Quality", header=True, labels=None, num_labels=2, metrics=("f1", "accuracy")),
    "stsb": dict(folder="STS-B", text=("sentence1", "sentence2"), label="score", header=True, labels=None, num_labels=1, metrics=("pearson", "spearmanr")),
    "qqp": dict(folder="QQP", text=("question1", "question2"), label="is_duplicate", header=True, labels=None, num_labels=2, metrics=("f1", "accuracy")),
    "mnli": dict(folder="MNLI", text=("sentence1", "sentence2"), label="gold_label", header=True, labels=NLI3, num_labels=3, metrics=("accuracy",)),
    "qnli": dict(folder="QNLI", text=("question", "sentence"), label="label", header=True, labels=NLI2, num_labels=2, metrics=("accuracy",)),
    "rte": dict(folder="RTE", text=("sentence1", "sentence2"), label="label", header=True, labels=NLI2, num_labels=2, metrics=("accuracy",)),
    "wnli": dict(folder="WNLI", text=("sentence1", "sentence2"), label="label", header=True, labels=None, num_labels=2, metrics=("accuracy",)),
}
HUB_COLUMNS = {
    "cola": ("sentence", None), "sst2": ("sentence", None), "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"), "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"), "wnli": ("sentence1", "sentence2"),
}
# Local file name of each split; MNLI has two validation sets.
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv"}
MNLI_SPLIT_FILES = {"train": "train.tsv", "validation_matched": "dev_matched.tsv", "validation_mismatched": "dev_mismatched.tsv"}


def eval_splits(task):
    return ["validation_matched", "validation_mismatched"] if task == "mnli" else ["validation"]


def check_task(task):
    if task not in TASKS:
        raise UserError(f"unknown GLUE task {task!r}; choose one of {', '.join(TASKS)} or all")
    return TASKS[task]


def parse_label(task, raw, where):
    spec = TASKS[task]
    raw = raw.strip()
    if task == "stsb":
        try:
            return float(raw)
        except ValueError:
            raise UserError(f"{where}: STS-B score {raw!r} is not a number") from None
    if spec["labels"] is not None:
        if raw not in spec["labels"]:
            raise UserError(f"{where}: unknown label {raw!r} for {task} (expected one of {spec['labels']}); is this the right task?")
        return spec["labels"].index(raw)
    if raw not in [str(i) for i in range(spec["num_labels"])]:
        raise UserError(f"{where}: unknown label {raw!r} for {task} (expected 0..{spec['num_labels'] - 1}); is this the right task?")
    return int(raw)


def read_tsv(task, path):
    """Rows of one GLUE TSV as {sentence1, sentence2, label}."""
    spec = TASKS[task]
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}): is it a GLUE TSV? Convert "
                        f"it to UTF-8 (iconv -f latin1 -t utf-8) or give the right file") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a GLUE TSV file") from None
    if not rows:
        raise UserError(f"{path} is empty")
    first, second = spec["text"]
    out = {"sentence1": [], "sentence2": [], "label": []}
    if spec["header"]:
        header, body = rows[0], rows[1:]
        needed = [c for c in (first, second, spec["label"]) if c is not None]
        missing = [c for c in needed if c not in header]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing} for {task} (header: {header}); is this the right task's file?")
        index = {name: header.index(name) for name in needed}
        positions = (index[first], index[second] if second else None, index[spec["label"]])
        start_line = 2
    else:
        body, positions, start_line = rows, (first, second, spec["label"]), 1
    width = max(p for p in positions if p is not None) + 1
    for line_number, row in enumerate(body, start=start_line):
        if not row or row == [""]:
            continue
        if len(row) < width:
            raise UserError(f"{path}:{line_number}: {len(row)} fields, {task} needs at least {width}; is this the right task's file?")
        out["sentence1"].append(row[positions[0]])
        out["sentence2"].append(row[positions[1]] if positions[1] is not None else None)
        out["label"].append(parse_label(task, row[positions[2]], f"{path}:{line_number}"))
    return Dataset.from_dict(out)


def load_glue(task, data_dir=None, splits=None):
    """DatasetDict of the task's splits (train and validation*), from `data_dir` or the Hub."""
    check_task(task)
    wanted = splits or (["train"] + eval_splits(task))
    if data_dir:
        folder = Path(data_dir)
        if (folder / TASKS[task]["folder"]).is_dir():
            folder = folder / TASKS[task]["folder"]
        names = MNLI_SPLIT_FILES if task == "mnli" else SPLIT_FILES
        result = {}
        for split in wanted:
            path = folder / names[split]
            if not path.is_file():
                raise UserError(f"{task}: {path} not found; --data_dir should hold {TASKS[task]['folder']}/{names[split]}")
            result[split] = read_tsv(task, path)
        return DatasetDict(result)
    try:
        loaded = load_dataset("nyu-mll/glue", task)
    except Exception as error:
        raise UserError(
            f"could not load nyu-mll/glue/{task} from the Hub ({type(error).__name__}); without network pass "
            f"--data_dir with the GLUE TSV folders (e.g. ../shared/data/glue)"
        ) from None
    first, second = HUB_COLUMNS[task]
    result = {}
    for split in wanted:
        part = loaded[split]
        result[split] = Dataset.from_dict({
            "sentence1": part[first], "sentence2": part[second] if second else [None] * len(part), "label": part["label"],
        })
    return DatasetDict(result)


def available_tasks(data_dir):
    """Tasks whose train and validation files are present under data_dir."""
    present = []
    for task, spec in TASKS.items():
        folder = Path(data_dir) / spec["folder"]
        names = MNLI_SPLIT_FILES if task == "mnli" else SPLIT_FILES
        if all(os.path.isfile(folder / name) for name in names.values()):
            present.append(task)
    return present
