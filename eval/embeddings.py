"""Embeddings in the spirit of MTEB: STS-B zero-shot (mean-pooled embeddings, cosine similarity,
Spearman against the gold scores), and the sentence-transformers files that let
`SentenceTransformer(folder)` load a saved model folder.

    python eval/embeddings.py --model_name_or_path DIR --data_dir ../shared/data/glue
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from cli.errors import ArgumentParser, UserError, entry_point  # noqa: E402
from cli.files import write_atomic  # noqa: E402


def add_sentence_transformers_files(folder, max_seq_length):
    """Write modules.json, sentence_bert_config.json and 1_Pooling/ (mean pooling) into a model folder."""
    import inspect

    from sentence_transformers import SentenceTransformer

    from eval.loading import quiet_load_reports

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    remote = {"trust_remote_code": True}
    renamed = "model_kwargs" in inspect.signature(Transformer.__init__).parameters
    kwargs = {"model_kwargs": remote, "config_kwargs": remote} if renamed else {"model_args": remote, "config_args": remote}
    # Loading the MLM folder as a bare encoder reports the MLM head as unused and a missing pooler:
    # expected here, so the load report is kept out of the run's output.
    with quiet_load_reports():
        transformer = Transformer(str(folder), max_seq_length=max_seq_length, **kwargs)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = Pooling(dimension(), pooling_mode="mean")
    with tempfile.TemporaryDirectory() as scratch:
        SentenceTransformer(modules=[transformer, pooling], device="cpu").save(scratch)
        for name in ("modules.json", "sentence_bert_config.json"):
            shutil.copy(Path(scratch) / name, Path(folder) / name)
        for pooling_dir in Path(scratch).glob("1_*"):
            shutil.copytree(pooling_dir, Path(folder) / pooling_dir.name, dirs_exist_ok=True)


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

    from eval.glue_data import load_glue

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
    from cli.hub import check_source

    check_source(args.model_name_or_path, "--model_name_or_path")
    from transformers import AutoModel

    import modeling  # noqa: F401
    from data_prep.tokenizer import load_tokenizer
    from eval.loading import load_under_new_head

    model = load_under_new_head(AutoModel, args.model_name_or_path).eval()
    tokenizer = load_tokenizer(args.model_name_or_path, "--model_name_or_path")
    spearman, pairs = sts_zero_shot(model, tokenizer, args.data_dir)
    print(f"STS-B dev zero-shot: Spearman x100 = {spearman:.2f} over {pairs:,} pairs (mean pooling, cosine)")
    if args.output_json:
        write_atomic(args.output_json, json.dumps({"task": "stsb-zero-shot", "spearman": spearman, "pairs": pairs, "model": args.model_name_or_path}))


if __name__ == "__main__":
    sys.exit(main())
