"""Masked-LM perplexity of a model on held-out text, repeatable to the digit.

    python eval/perplexity.py --model_name_or_path runs/miniroberta-wikitext2 \
        --files ../shared/data/wikitext-2/valid.txt --mlm_probability 0.15 --block_size 128
    python eval/perplexity.py --model_name_or_path DIR --files FILE --pseudo --max_blocks 50

Default: text packed into blocks exactly as in pretraining, masked at the given rate (80/10/10) with
masks drawn from `--seed` (the same command gives the same digits twice); perplexity = exp(mean
cross-entropy over masked tokens). `--pseudo`: pseudo-perplexity, masking one token at a time, so
every non-special token is scored with all others visible (slow: one forward pass per token).
"""

import argparse
import json
import math
import sys

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic


def load_model_and_tokenizer(path):
    from transformers import AutoModelForMaskedLM

    import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family for local folders
    from small_encoders.core.hub import check_source
    from small_encoders.data_prep.tokenizer import load_tokenizer
    from small_encoders.eval.loading import float32_weights

    check_source(path, "--model_name_or_path")
    try:
        model = AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True, **float32_weights()).eval()
    except OSError as error:
        raise UserError(f"cannot load a masked LM from {path!r}: {str(error).splitlines()[0]}") from None
    return model, load_tokenizer(path)


def eval_blocks(tokenizer, files=None, dataset_name=None, dataset_config=None, split="validation", text_column="text",
                block_size=128, max_blocks=None, encoding_errors="strict"):
    from datasets import load_dataset

    from small_encoders.data_prep.corpus import expand_files, keep_text, load_local
    from small_encoders.data_prep.packing import pack_dataset

    if files:
        texts = load_local(expand_files(files, "--files"), encoding_errors)
    elif dataset_name:
        try:
            texts = load_dataset(dataset_name, dataset_config, split=split)
        except Exception as error:
            raise UserError(f"could not load {dataset_name!r} ({type(error).__name__}); pass local text with --files") from None
    else:
        raise UserError("give --files or --dataset_name")
    if text_column not in texts.column_names:
        raise UserError(f"no column {text_column!r} (columns: {texts.column_names}); pass --text_column")
    blocks, _, _ = pack_dataset(keep_text(texts, text_column), tokenizer, block_size, split_name="evaluation")
    if max_blocks:
        blocks = blocks.select(range(min(max_blocks, len(blocks))))
    return blocks


def masked_perplexity(model, tokenizer, blocks, mlm_probability=0.15, seed=0, batch_size=32):
    """(perplexity, mean loss, tokens scored) with masks fixed by `seed`."""
    import torch
    from transformers import DataCollatorForLanguageModeling

    from small_encoders.modeling import enable_sparse_prediction

    handles = enable_sparse_prediction(model)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            batch = collator([blocks[i] for i in range(start, min(start + batch_size, len(blocks)))])
            batch.pop("document_ids", None)
            batch = {key: value.to(model.device) for key, value in batch.items()}
            scored = int((batch["labels"] != -100).sum())
            if scored:
                loss = model(**batch).loss
                total += float(loss) * scored
                count += scored
    for handle in handles:
        handle.remove()
    if count == 0:
        raise UserError("no token was masked; give more text or a higher --mlm_probability")
    return math.exp(total / count), total / count, count


def pseudo_perplexity(model, tokenizer, blocks, batch_size=64):
    """(pseudo-perplexity, mean negative log-likelihood, tokens scored): each token masked alone."""
    import torch

    total, count = 0.0, 0
    special = set(tokenizer.all_special_ids)
    with torch.no_grad():
        for row in blocks:
            ids = torch.tensor(row["input_ids"])
            positions = [i for i, t in enumerate(ids.tolist()) if t not in special]
            for start in range(0, len(positions), batch_size):
                chunk = positions[start : start + batch_size]
                copies = ids.repeat(len(chunk), 1)
                copies[torch.arange(len(chunk)), chunk] = tokenizer.mask_token_id
                logits = model(input_ids=copies).logits[torch.arange(len(chunk)), chunk]
                log_probs = torch.log_softmax(logits.float(), dim=-1)
                total -= float(log_probs[torch.arange(len(chunk)), ids[chunk]].sum())
                count += len(chunk)
    return math.exp(total / count), total / count, count


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--files", default=None, help="comma-separated globs of local text (.txt, .jsonl, ... , .gz)")
    parser.add_argument("--dataset_name", default=None)
    parser.add_argument("--dataset_config", default=None)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--block_size", type=checks.bounded(int, 2, 1_048_576), default=128)
    parser.add_argument("--mlm_probability", type=checks.bounded(float, 1e-3, 0.999), default=0.15)
    parser.add_argument("--seed", type=checks.bounded(int, 0, checks.MAX_SEED), default=0)
    parser.add_argument("--batch_size", type=checks.bounded(int, 1, 65536), default=32)
    parser.add_argument("--max_blocks", type=checks.bounded(int, 1, 10**10), default=None)
    parser.add_argument("--encoding_errors", default="strict", choices=["strict", "replace"],
                        help="replace: bytes that are not UTF-8 become U+FFFD instead of stopping with an error")
    parser.add_argument("--pseudo", action="store_true", help="pseudo-perplexity (one masked token at a time)")
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model_name_or_path)
    blocks = eval_blocks(tokenizer, args.files, args.dataset_name, args.dataset_config, args.split, args.text_column,
                         args.block_size, args.max_blocks, args.encoding_errors)
    if args.pseudo:
        value, loss, count = pseudo_perplexity(model, tokenizer, blocks, args.batch_size)
        kind = "pseudo-perplexity"
    else:
        value, loss, count = masked_perplexity(model, tokenizer, blocks, args.mlm_probability, args.seed, args.batch_size)
        kind = f"MLM perplexity at {args.mlm_probability:.0%} masking (seed {args.seed})"
    print(f"{kind}: {value:.4f} (mean loss {loss:.6f}) over {count:,} scored tokens in {len(blocks):,} blocks of {args.block_size}")
    if args.output_json:
        result = {"kind": kind, "perplexity": value, "loss": loss, "tokens_scored": count, "blocks": len(blocks),
                  "block_size": args.block_size, "model": args.model_name_or_path, "data": args.files or args.dataset_name}
        write_atomic(args.output_json, json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
