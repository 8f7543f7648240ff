"""How many tokens a suite protocol's GLUE fine-tuning pushes through the model, padding included.

    python benchmarks/glue_padding.py --data_dir ../shared/data/glue
    python benchmarks/glue_padding.py --data_dir ../shared/data/glue --tokenizer runs/tuned-5m-cpu60 --protocols cpu,full

On a CPU the cost of fine-tuning grows with the padded tokens of its batches (each batch pads to its longest
example), so this is the arithmetic behind the size of the `cpu` protocol (eval/suite.py). For each task present
and each protocol it builds the batches the Trainer builds (the training set capped as the protocol caps it, the
protocol's batch size and epochs, random batches or transformers' LengthGroupedSampler) and counts, per seed:
the real tokens, the padded tokens, and the padded tokens as a share of the first protocol's. Nothing is trained.
"""

import argparse
import sys
from pathlib import Path

from small_encoders.core.errors import ArgumentParser, UserError, entry_point

REPO_ROOT = Path(__file__).resolve().parents[1]


def padded_tokens(lengths, batch_size, epochs, grouped, seed=1):
    """Sum over the batches of (examples x longest example), as DataCollatorWithPadding pads them."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    total = 0
    for _ in range(epochs):
        if grouped:
            order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))
        else:
            order = torch.randperm(len(lengths), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            total += len(batch) * max(lengths[i] for i in batch)
    return total


def task_lengths(task, data_dir, tokenizer, cap, max_seq_length):
    from small_encoders.eval.glue_data import load_glue
    from small_encoders.eval.run_glue import tokenize_pairs

    train = load_glue(task, data_dir)["train"]
    train = train.select(range(min(cap or len(train), len(train))))
    return [len(ids) for ids in tokenize_pairs(tokenizer, train[:], max_seq_length)["input_ids"]]


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="folder of GLUE TSV folders (../shared/data/glue here)")
    parser.add_argument("--tokenizer", default=str(REPO_ROOT.parent / "shared" / "data" / "tokenizers" / "bert-base-uncased"),
                        help="a tokenizer folder or vocab.txt (default: BERT's uncased WordPiece in ../shared/data)")
    parser.add_argument("--protocols", default="cpu-v1,cpu", help="comma-separated eval/suite.py protocols; shares are of the first")
    args = parser.parse_args(argv)

    from small_encoders.data_prep.tokenizer import load_tokenizer
    from small_encoders.eval.glue_data import available_tasks
    from small_encoders.eval.suite import PROTOCOLS

    protocols = [p for p in args.protocols.split(",") if p]
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise UserError(f"--protocols: choose from {', '.join(PROTOCOLS)}, got {args.protocols!r}")
    if not Path(args.data_dir).is_dir():
        raise UserError(f"--data_dir {args.data_dir} is not a folder of GLUE tasks")
    tasks = available_tasks(Path(args.data_dir))
    if not tasks:
        raise UserError(f"--data_dir {args.data_dir}: no GLUE task has both train and dev files there")
    tokenizer = load_tokenizer(args.tokenizer)
    totals = {p: 0 for p in protocols}
    print(f"padded training tokens per seed ({args.tokenizer}); share = of {protocols[0]}")
    print(f"{'task':6} " + " ".join(f"{p + ' real':>14} {p + ' padded':>16} {'share':>6}" for p in protocols))
    for task in tasks:
        cells = []
        for protocol in protocols:
            settings = PROTOCOLS[protocol]
            lengths = task_lengths(task, args.data_dir, tokenizer, settings["max_train_samples"], settings["max_seq_length"])
            epochs = int(settings["num_train_epochs"])
            padded = padded_tokens(lengths, settings["per_device_train_batch_size"], epochs, settings["group_by_length"])
            totals[protocol] += padded
            cells.append((sum(lengths) * epochs, padded))
        base = cells[0][1]
        print(f"{task:6} " + " ".join(f"{real:>14,} {padded:>16,} {padded / base:>6.2f}" for real, padded in cells))
    base = totals[protocols[0]]
    print(f"{'all':6} " + " ".join(f"{'':>14} {totals[p]:>16,} {totals[p] / base:>6.2f}" for p in protocols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
