"""Embeddings in the spirit of MTEB: STS-B zero-shot (mean-pooled embeddings, cosine similarity,
Spearman against the gold scores), and the sentence-transformers files that let
`SentenceTransformer(folder)` load a saved model folder.

    python eval/embeddings.py --model_name_or_path DIR --data_dir ../shared/data/glue
"""

import argparse
import json
import sys

from small_encoders.core.errors import ArgumentParser, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import add_sentence_transformers_files  # noqa: F401  (where a saved folder gets these files)


def mean_pooled(model, tokenizer, sentences, batch_size=64, max_length=128):
    """Attention-masked mean of the last hidden states."""
    import torch

    chunks = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            batch = tokenizer(sentences[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            batch.pop("token_type_ids", None)
            batch = batch.to(model.device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            chunks.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())
    return torch.cat(chunks)


def sts_zero_shot(model, tokenizer, data_dir=None, max_length=128):
    """Spearman correlation (x100) between cosine similarities and STS-B dev gold scores, and the pair count."""
    import torch
    from scipy.stats import spearmanr

    from small_encoders.eval.glue_data import load_glue

    dev = load_glue("stsb", data_dir, splits=["validation"])["validation"]
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", 512) - 2)
    first = mean_pooled(model, tokenizer, list(dev["sentence1"]), max_length=max_length)
    second = mean_pooled(model, tokenizer, list(dev["sentence2"]), max_length=max_length)
    cosine = torch.nn.functional.cosine_similarity(first, second).tolist()
    return 100 * float(spearmanr(cosine, list(dev["label"]))[0]), len(dev)


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--data_dir", default=None, help="GLUE TSV folders (STS-B/dev.tsv); default: nyu-mll/glue")
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    from small_encoders.core.hub import check_source

    check_source(args.model_name_or_path, "--model_name_or_path")
    from transformers import AutoModel

    import small_encoders.modeling  # noqa: F401
    from small_encoders.data_prep.tokenizer import load_tokenizer
    from small_encoders.eval.loading import load_under_new_head

    model = load_under_new_head(AutoModel, args.model_name_or_path).eval()
    tokenizer = load_tokenizer(args.model_name_or_path, "--model_name_or_path")
    spearman, pairs = sts_zero_shot(model, tokenizer, args.data_dir)
    print(f"STS-B dev zero-shot: Spearman x100 = {spearman:.2f} over {pairs:,} pairs (mean pooling, cosine)")
    if args.output_json:
        write_atomic(args.output_json, json.dumps({"task": "stsb-zero-shot", "spearman": spearman, "pairs": pairs, "model": args.model_name_or_path}))


if __name__ == "__main__":
    sys.exit(main())
