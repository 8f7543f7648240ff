"""Embedding quality in one command, offline, against the start model mean-pooled (an embedder's floor):

- STS-B dev: Spearman (x100) of cosine similarity against the gold scores;
- pair classification on MRPC: average precision (x100) of cosine similarity for paraphrase/not, on the labelled test
  split where the source has one (the Hub's), else dev (GLUE's local test.tsv has no labels); never a split the
  default recipe trains on;
- retrieval built from QNLI dev: each question against the corpus of all dev sentences, its entailed answer sentences
  relevant; nDCG@10, MRR@10, Recall@1 and Recall@10 (x100).

    python eval/embeddings.py --model_name_or_path runs/embed --baseline_model START --data_dir ../shared/data/glue \\
        --output_dir runs/embed-eval

`--baseline_model` (default: the start an embedding run of recipes/train_embeddings.py records) is measured
mean-pooled; a folder with sentence-transformers files is measured as those files say (its pooling and normalisation).
A sentence-transformers embedder with no start to compare with (a soup mixed by hand, an embedder from the Hub) is
measured alone; a pretrained model alone gets the suite's STS-B zero-shot row. Results go to OUTPUT_DIR/results.json
and summary.md, with the commit and the command. Also here: `sts_zero_shot`, the suite's mean-pooled STS-B row.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

from small_encoders.core.checks import bounded
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import add_sentence_transformers_files  # noqa: F401  (where a saved folder gets these files)

TASKS = ("stsb", "mrpc", "qnli")
TASK_NAMES = {"stsb": "STS-B", "mrpc": "MRPC", "qnli": "QNLI retrieval"}
# What each task reports (results.json keys), the first being the one a table leads with.
METRICS = {"stsb": ("spearman",), "mrpc": ("ap",), "qnli": ("ndcg@10", "mrr@10", "recall@1", "recall@10")}


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


# ------------------------------------------------------------------------------------------------- the three tasks
def mrpc_pairs(data_dir):
    """(MRPC pairs with labels, the split's name): test where it is labelled (the Hub's), else dev."""
    from small_encoders.eval.glue_data import load_glue

    if not data_dir:
        try:
            test = load_glue_split("mrpc", None, "test")
            if set(test["label"]) <= {0, 1}:
                return test, "test"
        except UserError:
            pass
    return load_glue("mrpc", data_dir, splits=["validation"])["validation"], "dev"


def load_glue_split(task, data_dir, split):
    from datasets import load_dataset

    from small_encoders.eval.glue_data import HUB_COLUMNS

    try:
        part = load_dataset("nyu-mll/glue", task, split=split)
    except Exception as error:
        raise UserError(f"could not load nyu-mll/glue/{task} {split} ({type(error).__name__})") from None
    first, second = HUB_COLUMNS[task]
    return part.rename_columns({first: "sentence1", second: "sentence2"})


def qnli_retrieval(dev, max_questions=None):
    """(queries, corpus, relevant) for InformationRetrievalEvaluator from QNLI dev: every distinct question with at
    least one entailed answer sentence is a query; the corpus is every distinct dev sentence."""
    corpus_ids, query_ids, relevant = {}, {}, {}
    for question, sentence, label in zip(dev["sentence1"], dev["sentence2"], dev["label"]):
        doc = corpus_ids.setdefault(sentence, f"d{len(corpus_ids)}")
        if label == 0:  # entailment: the sentence answers the question
            relevant.setdefault(query_ids.setdefault(question, f"q{len(query_ids)}"), set()).add(doc)
    queries = {qid: question for question, qid in query_ids.items()}
    if max_questions:
        kept = list(queries)[:max_questions]
        queries = {q: queries[q] for q in kept}
        relevant = {q: relevant[q] for q in kept}
    corpus = {doc: text for text, doc in corpus_ids.items()}
    return queries, corpus, relevant


def task_data(data_dir=None, max_pairs=None):
    """The three tasks' data, read once: {"stsb": dev, "mrpc": (pairs, split), "qnli": (queries, corpus, relevant)}."""
    from small_encoders.eval.glue_data import load_glue

    stsb = load_glue("stsb", data_dir, splits=["validation"])["validation"]
    mrpc, split = mrpc_pairs(data_dir)
    qnli = load_glue("qnli", data_dir, splits=["validation"])["validation"]
    if max_pairs:
        stsb = stsb.select(range(min(max_pairs, len(stsb))))
        mrpc = mrpc.select(range(min(max_pairs, len(mrpc))))
        qnli = qnli.select(range(min(4 * max_pairs, len(qnli))))
    return {"stsb": stsb, "mrpc": (mrpc, split), "qnli": qnli_retrieval(qnli, max_pairs)}


def measure(model, data, batch_size=64):
    """{task: {metric: value x100, "size": ...}} for a SentenceTransformer, with sentence-transformers' evaluators."""
    from small_encoders.recipes.train_embeddings import st_module

    evaluation = st_module("evaluation")
    stsb = data["stsb"]
    found = evaluation.EmbeddingSimilarityEvaluator(list(stsb["sentence1"]), list(stsb["sentence2"]),
                                                    [s / 5 for s in stsb["label"]], name="stsb", batch_size=batch_size)(model)
    results = {"stsb": {"spearman": 100 * found["stsb_spearman_cosine"], "pairs": len(stsb), "split": "dev"}}
    mrpc, split = data["mrpc"]
    found = evaluation.BinaryClassificationEvaluator(list(mrpc["sentence1"]), list(mrpc["sentence2"]), list(mrpc["label"]),
                                                     name="mrpc", batch_size=batch_size)(model)
    results["mrpc"] = {"ap": 100 * found["mrpc_cosine_ap"], "pairs": len(mrpc), "split": split}
    queries, corpus, relevant = data["qnli"]
    found = evaluation.InformationRetrievalEvaluator(
        queries, corpus, relevant, name="qnli", mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 10],
        precision_recall_at_k=[1, 10], map_at_k=[10], batch_size=batch_size, show_progress_bar=False,
        score_functions=None)(model)
    results["qnli"] = {"ndcg@10": 100 * found["qnli_cosine_ndcg@10"], "mrr@10": 100 * found["qnli_cosine_mrr@10"],
                       "recall@1": 100 * found["qnli_cosine_recall@1"], "recall@10": 100 * found["qnli_cosine_recall@10"],
                       "queries": len(queries), "corpus": len(corpus), "split": "dev"}
    return results


def load_embedder(path, max_seq_length=128):
    """A folder with sentence-transformers files as they say; any other encoder mean-pooled (the floor)."""
    from small_encoders.core.hub import looks_local
    from small_encoders.recipes.train_embeddings import build_embedder

    if looks_local(str(path)) and (Path(path) / "modules.json").is_file():
        return embedder_from_folder(path)
    return build_embedder(path, max_seq_length, pooling="mean", normalize=False)


def embedder_from_folder(path):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    import small_encoders.modeling  # noqa: F401

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        import torch

        return SentenceTransformer(str(path), trust_remote_code=True, device=None if torch.cuda.is_available() else "cpu",
                                   model_kwargs={"dtype": torch.float32})
    finally:
        hf_logging.set_verbosity(verbosity)


def compare_with_start(model, start, data_dir=None, max_pairs=None, max_seq_length=128):
    """{"model": measures, "start": measures of `start` mean-pooled, "start_model": start} for a trained embedder.
    The start's measures are kept in the cache folder (keyed by its weights, the data and the settings): every
    embedder trained from one start is compared with the same floor, measured once."""
    data = task_data(data_dir, max_pairs)
    return {"model": measure(model, data), "start": start_measures(start, data, data_dir, max_pairs, max_seq_length),
            "start_model": str(start), "data_dir": data_dir}


def start_measures(start, data, data_dir, max_pairs, max_seq_length):
    import hashlib

    from small_encoders.core.run_folder import cache_root
    from small_encoders.deploy.export import weights_digest

    local = Path(start).is_dir()
    key = json.dumps([weights_digest(start) if local else str(start), str(Path(data_dir).resolve()) if data_dir else None,
                      max_pairs, max_seq_length, sorted(METRICS)])
    path = cache_root() / "embedding-floor" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")
    if local and path.is_file():
        return json.loads(path.read_text())
    measured = measure(load_embedder(start, max_seq_length), data)
    if local:
        write_atomic(path, json.dumps(measured))
    return measured


def summary_lines(evaluation):
    """The comparison as aligned lines: task, metric, start -> model (change); the model's figure alone without a
    start."""
    lines = []
    for task in TASKS:
        for metric in METRICS[task]:
            now, split = evaluation["model"][task][metric], evaluation["model"][task]["split"]
            if evaluation["start"] is None:
                lines.append(f"{task + ' ' + split:<10} {metric:<10} {now:6.2f}")
                continue
            start = evaluation["start"][task][metric]
            lines.append(f"{task + ' ' + split:<10} {metric:<10} {start:6.2f} -> {now:6.2f} ({now - start:+.2f})")
    return lines


def summary_markdown(results):
    start, model = results["evaluation"]["start"], results["evaluation"]["model"]
    rows = (["| task | metric (x100) | this model |", "|---|---|---|"] if start is None else
            ["| task | metric (x100) | start, mean-pooled | this model | change |", "|---|---|---|---|---|"])
    for task in TASKS:
        size = (f"{model[task]['pairs']:,} pairs" if "pairs" in model[task]
                else f"{model[task]['queries']:,} questions, {model[task]['corpus']:,} sentences")
        for metric in METRICS[task]:
            name, now = f"| {TASK_NAMES[task]} {model[task]['split']} ({size}) | {metric} |", model[task][metric]
            rows.append(f"{name} {now:.2f} |" if start is None else
                        f"{name} {start[task][metric]:.2f} | {now:.2f} | {now - start[task][metric]:+.2f} |")
    saw = results.get("saw_stsb_train")
    note = ("" if saw is None else f"\n\nThe model {'saw' if saw else 'did not see'} STS-B train in its training data.")
    start_line = ("No start to compare with (`--baseline_model` names one)." if start is None else
                  f"Start: `{results['evaluation']['start_model']}` (mean-pooled).")
    return (f"# Embeddings: {results['model']}\n\n{start_line} Commit {results.get('commit')}.\n\n"
            f"```bash\n{results.get('command')}\n```\n\n" + "\n".join(rows) + note + "\n")


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="an embedder folder (or any encoder, mean-pooled)")
    parser.add_argument("--baseline_model", default=None, help="the start model, measured mean-pooled beside it")
    parser.add_argument("--data_dir", default=None, help="GLUE TSV folders (STS-B, MRPC, QNLI); default: nyu-mll/glue")
    parser.add_argument("--output_dir", default=None, help="write results.json and summary.md here")
    parser.add_argument("--output_json", default=None, help="the STS-B zero-shot figure alone, as JSON (the suite's)")
    parser.add_argument("--max_pairs", type=bounded(int, 1, 10**9), default=None,
                        help="at most this many pairs (and questions) per task")
    parser.add_argument("--max_seq_length", type=bounded(int, 4, 1_048_576), default=128)
    args = parser.parse_args(argv)
    from small_encoders.core.hub import check_source
    from small_encoders.core.run_folder import RunFolder, source_commit

    check_source(args.model_name_or_path, "--model_name_or_path")
    recorded = RunFolder(args.model_name_or_path).embedding_results() if Path(args.model_name_or_path).is_dir() else None
    start = args.baseline_model or (recorded or {}).get("model_name_or_path")
    from small_encoders.deploy.export import is_sentence_embedder

    if not start and not is_sentence_embedder(args.model_name_or_path):  # a pretrained model alone: the suite's row
        return sts_only(args)
    if start:
        check_source(start, "--baseline_model")
    model = load_embedder(args.model_name_or_path, args.max_seq_length)
    evaluation = (compare_with_start(model, start, args.data_dir, args.max_pairs, args.max_seq_length) if start else
                  {"model": measure(model, task_data(args.data_dir, args.max_pairs)), "start": None, "start_model": None,
                   "data_dir": args.data_dir})
    results = {"model": args.model_name_or_path, "commit": source_commit(),
               "command": "python eval/embeddings.py " + shlex.join(sys.argv[1:] if argv is None else argv),
               "saw_stsb_train": (recorded or {}).get("saw_stsb_train"), "evaluation": evaluation}
    for line in summary_lines(results["evaluation"]):
        print(line)
    if args.output_dir:
        out = Path(args.output_dir)
        write_atomic(out / "results.json", json.dumps(results, indent=1))
        write_atomic(out / "summary.md", summary_markdown(results))
        print(f"wrote {out / 'results.json'} and {out / 'summary.md'}")
    return 0


def sts_only(args):
    """The suite's row: STS-B dev zero-shot of a mean-pooled MLM (a model's own hidden states, no sentence files)."""
    from transformers import AutoModel

    import small_encoders.modeling  # noqa: F401
    from small_encoders.data_prep.tokenizer import load_tokenizer
    from small_encoders.eval.loading import load_under_new_head

    model = load_under_new_head(AutoModel, args.model_name_or_path).eval()
    tokenizer = load_tokenizer(args.model_name_or_path, "--model_name_or_path")
    spearman, pairs = sts_zero_shot(model, tokenizer, args.data_dir)
    print(f"STS-B dev zero-shot: Spearman x100 = {spearman:.2f} over {pairs:,} pairs (mean pooling, cosine)")
    if args.output_json:
        write_atomic(args.output_json, json.dumps({"task": "stsb-zero-shot", "spearman": spearman, "pairs": pairs,
                                                   "model": args.model_name_or_path}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
