"""MMLU-style multiple choice with a masked LM: each option scored by its pseudo-log-likelihood.

    python eval/mmlu_probe.py --model_name_or_path DIR --data_dir ../shared/data/mmlu --split val
    python eval/mmlu_probe.py --model_name_or_path DIR --data_dir ../shared/data/mmlu --k_shot 2

For a question, the context is k solved dev exemplars of the same subject, then "Question: ...
Answer:", followed by an option's text. Each option token is masked in turn (one copy of the input
per token, batched) and the log-probability of the true token is read; an option's score is the mean
over its tokens (length-normalised). The highest-scoring option is the answer. The context is cut
from the left when the input would exceed the model's positions. Reported: accuracy per subject and
overall, with a 95% Wilson interval, next to chance (25%).

Data: local folders of headerless CSVs (question, A, B, C, D, answer letter), one file per subject
named SUBJECT_val.csv / SUBJECT_dev.csv as in the MMLU release, or the Hub's `cais/mmlu`.
"""

import argparse
import csv
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.data_prep.packing import block_edges

LETTERS = "ABCD"


def read_mmlu_folder(folder):
    """{subject: [(question, [4 options], answer index)]} from a folder of MMLU CSVs."""
    folder = Path(folder)
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise UserError(f"{folder} holds no MMLU .csv files")
    subjects = {}
    for path in files:
        subject = path.stem.rsplit("_", 1)[0] if path.stem.endswith(("_val", "_dev", "_test")) else path.stem
        rows = []
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for line_number, row in enumerate(csv.reader(handle), start=1):
                if not row:
                    continue
                if len(row) != 6:
                    raise UserError(f"{path}:{line_number}: {len(row)} columns; MMLU rows are question,A,B,C,D,answer")
                answer = row[5].strip().upper()
                if answer not in LETTERS:
                    raise UserError(f"{path}:{line_number}: answer {row[5]!r} is not one of A, B, C, D")
                rows.append((row[0], row[1:5], LETTERS.index(answer)))
        subjects[subject] = rows
    return subjects


def read_mmlu_hub(split):
    from datasets import load_dataset

    try:
        data = load_dataset("cais/mmlu", "all", split={"val": "validation"}.get(split, split))
    except Exception as error:
        raise UserError(f"could not load cais/mmlu ({type(error).__name__}); pass --data_dir with the MMLU CSV folders") from None
    subjects = defaultdict(list)
    for row in data:
        subjects[row["subject"]].append((row["question"], list(row["choices"]), int(row["answer"])))
    return dict(subjects)


def wilson_interval(correct, total, z=1.96):
    if total == 0:
        return 0.0, 0.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def format_question(question, options=None, answer=None):
    text = f"Question: {question.strip()}\n"
    if options is not None:
        text += "".join(f"{letter}. {option}\n" for letter, option in zip(LETTERS, options))
    text += "Answer:"
    if answer is not None:
        text += f" {answer}\n\n"
    return text


class OptionScorer:
    """Mean log-probability of an option's tokens, each masked in turn, after a context."""

    def __init__(self, model, tokenizer, batch_size=64):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        limit = getattr(model.config, "max_position_embeddings", 512)
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta"):
            limit -= 2  # RoBERTa's position table reserves padding_idx + 1 rows
        self.max_length = min(limit, tokenizer.model_max_length or limit, 512)
        self.cls, self.sep = block_edges(tokenizer)
        # Run the encoder on the whole input but the MLM head only at the one masked position per row.
        self.body = model.base_model
        self.head = next(getattr(model, name) for name in ("lm_head", "cls") if hasattr(model, name))

    def build(self, context, option):
        tokenizer = self.tokenizer
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        option_ids = tokenizer(" " + option.strip(), add_special_tokens=False)["input_ids"][: self.max_length // 2]
        room = self.max_length - 2 - len(option_ids)
        context_ids = context_ids[-room:] if room > 0 else []
        ids = [self.cls] + context_ids + option_ids + [self.sep]
        first = 1 + len(context_ids)  # [CLS] / <s>, then the context
        return ids, list(range(first, first + len(option_ids)))

    def score(self, items):
        """items: [(context, option)] -> mean log-probability per item."""
        import torch

        copies, owners, targets, positions = [], [], [], []
        for index, (context, option) in enumerate(items):
            ids, option_positions = self.build(context, option)
            for position in option_positions:
                masked = list(ids)
                targets.append(masked[position])
                masked[position] = self.tokenizer.mask_token_id
                copies.append(masked)
                owners.append(index)
                positions.append(position)
        sums, counts = [0.0] * len(items), [0] * len(items)
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(copies), self.batch_size):
                chunk = copies[start : start + self.batch_size]
                width = max(map(len, chunk))
                device = self.body.device  # the model's: a GPU where the suite put it there
                input_ids = torch.tensor([c + [pad] * (width - len(c)) for c in chunk], device=device)
                attention = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunk], device=device)
                rows = torch.arange(len(chunk), device=device)
                where = torch.tensor(positions[start : start + len(chunk)], device=device)
                hidden = self.body(input_ids=input_ids, attention_mask=attention).last_hidden_state
                logits = self.head(hidden[rows, where])
                chosen = torch.tensor(targets[start : start + len(chunk)], device=device)
                log_probs = torch.log_softmax(logits.float(), dim=-1)[rows, chosen]
                for owner, value in zip(owners[start : start + len(chunk)], log_probs.tolist()):
                    sums[owner] += value
                    counts[owner] += 1
        return [s / c if c else float("-inf") for s, c in zip(sums, counts)]


def run_probe(scorer, questions, exemplars=None, k_shot=0, max_questions=None):
    """{subject: (correct, total)} and the list of predictions."""
    per_subject = {}
    for subject, rows in sorted(questions.items()):
        shots = "".join(format_question(q, o, LETTERS[a]) for q, o, a in (exemplars or {}).get(subject, [])[:k_shot])
        rows = rows[:max_questions] if max_questions else rows
        correct = 0
        for question, options, answer in rows:
            context = shots + format_question(question, options)
            scores = scorer.score([(context, option) for option in options])
            correct += int(max(range(4), key=lambda i: scores[i]) == answer)
        per_subject[subject] = (correct, len(rows))
    return per_subject


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--data_dir", default=None, help="folder with val/ and dev/ subfolders of CSVs; default: cais/mmlu on the Hub")
    parser.add_argument("--split", default="val", choices=["val", "dev", "test"])
    parser.add_argument("--k_shot", type=checks.bounded(int, 0, 64), default=0)
    parser.add_argument("--batch_size", type=checks.bounded(int, 1, 65536), default=64)
    parser.add_argument("--max_questions_per_subject", type=checks.bounded(int, 1, 10**9), default=None)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    from small_encoders.eval.perplexity import load_model_and_tokenizer

    if args.data_dir:
        questions = read_mmlu_folder(Path(args.data_dir) / args.split)
        exemplars = read_mmlu_folder(Path(args.data_dir) / "dev") if args.k_shot else None
    else:
        questions = read_mmlu_hub(args.split)
        exemplars = read_mmlu_hub("dev") if args.k_shot else None
    model, tokenizer = load_model_and_tokenizer(args.model_name_or_path)
    started = time.time()
    per_subject = run_probe(OptionScorer(model, tokenizer, args.batch_size), questions, exemplars, args.k_shot,
                            args.max_questions_per_subject)
    seconds = time.time() - started
    correct = sum(c for c, _ in per_subject.values())
    total = sum(t for _, t in per_subject.values())
    low, high = wilson_interval(correct, total)
    for subject, (c, t) in per_subject.items():
        print(f"{subject:<40} {c:>4}/{t:<4} {c / t:.3f}")
    print(f"overall: {correct}/{total} = {correct / total:.4f} (95% CI {low:.4f}-{high:.4f}; chance 0.25), "
          f"{args.k_shot}-shot, {seconds:.0f} s")
    if args.output_json:
        result = {"model": args.model_name_or_path, "split": args.split, "k_shot": args.k_shot, "accuracy": correct / total,
                  "ci95": [low, high], "chance": 0.25, "correct": correct, "total": total, "seconds": round(seconds, 1),
                  "per_subject": {s: {"correct": c, "total": t} for s, (c, t) in per_subject.items()}}
        write_atomic(args.output_json, json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
