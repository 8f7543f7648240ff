"""How fast a fine-tuned classifier (or a sentence embedder) serves on this machine's CPU: PyTorch eager against ONNX
Runtime fp32 and int8.

    python deploy/export.py --model_dir runs/sst2-model --output_dir runs/sst2-onnx --int8
    python deploy/bench.py --model_dir runs/sst2-model --onnx runs/sst2-onnx --task_name sst2 --data_dir ../shared/data/glue

For each backend: sentences per second and p50/p95 latency at batch 1 (the first --batch1_sentences dev sentences,
one at a time) and at batch 32 (every dev sentence, in order, each batch padded to its longest), the dev accuracy
(every dev sentence), and the peak memory of a process that loads only that backend and serves the dev set once.
The backends take turns round by round (--rounds, default 3) so a slow spell of a shared machine falls on all of
them; a throughput is the median of the rounds, latencies pool every round's calls. Tokenization is done once,
before the clock, and is the same for every backend; the figures are the model's time alone. Every backend gets
the same number of threads (--threads, default all of torch's).

A sentence embedder's folder (recipes/train_embeddings.py) is served as sentence vectors (the encoder, its pooling and
normalisation) over STS-B dev's 3,000 sentences, and its quality column is STS-B dev Spearman instead of accuracy.

`--onnx DIR` is an export folder of deploy/export.py (model.onnx, and model_int8.onnx when it was made with --int8);
`--int8 PATH` names another int8 file or folder. Results: a table on stdout, --output_json with the machine, the
versions and the commit (docs/performance.md#cpu-inference).
"""

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.deploy.export import EXPORT_FILE, INT8_FILE, ONNX_FILE, session_for

BACKENDS = ("pytorch", "onnxruntime-fp32", "onnxruntime-int8")


def is_embedder(model_dir):
    """Whether a folder is a sentence embedder (recipes/train_embeddings.py's): served as sentence vectors, measured
    on STS-B dev."""
    from small_encoders.core.run_folder import RunFolder

    return RunFolder(model_dir).embedding_results() is not None


def quality(outputs, labels, embedder):
    """A classifier's dev accuracy, or an embedder's STS-B dev Spearman (x100 / 100: a fraction like accuracy) of the
    cosine between each pair's two vectors (the first half of the sentences against the second)."""
    import numpy as np
    from scipy.stats import spearmanr

    if not embedder:
        return float((outputs.argmax(-1) == labels).mean())
    half = len(outputs) // 2
    a, b = outputs[:half], outputs[half:]
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return float(spearmanr(cosine, labels)[0])


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class Backend:
    """One way of running the classifier: a callable from a dict of int64 arrays to logits (a numpy array).
    `settings`: ONNX Runtime SessionOptions attributes (its profiler, for operator_shares)."""

    def __init__(self, name, spec, threads, **settings):
        self.name = name
        if name == "pytorch":
            import torch
            from transformers import AutoModel, AutoModelForSequenceClassification

            import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family
            from small_encoders.deploy.export import sentence_modules, wrap_sentence_embedder
            from small_encoders.eval.loading import quiet_load_reports

            torch.set_num_threads(threads)
            self.torch = torch
            embedder = is_embedder(spec)
            with quiet_load_reports():
                auto = AutoModel if embedder else AutoModelForSequenceClassification
                self.model = auto.from_pretrained(spec, trust_remote_code=True, dtype=torch.float32).eval()
            if embedder:  # the encoder, its pooling and normalisation: what SentenceTransformer.encode computes
                pooling, normalised, _ = sentence_modules(spec)
                self.model = wrap_sentence_embedder(self.model, pooling, normalised)
            self.embedder = embedder
            self.inputs = None
        else:
            self.session = session_for(spec, threads, **settings)
            self.inputs = {item.name for item in self.session.get_inputs()}

    def __call__(self, batch):
        if self.inputs is None:
            with self.torch.inference_mode():
                tensors = {name: self.torch.from_numpy(value) for name, value in batch.items()}
                out = self.model(**tensors)
                return (out if self.embedder else out.logits).numpy()
        return self.session.run(None, {name: value for name, value in batch.items() if name in self.inputs})[0]


def operator_shares(name, spec, threads, batches, top=8):
    """{ONNX operator type: share of the kernel time} for one pass over `batches`, from ONNX Runtime's own profiler:
    where an export's time goes (what a faster graph would have to remove)."""
    import collections
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        backend = Backend(name, spec, threads, enable_profiling=True, profile_file_prefix=str(Path(folder) / "profile"))
        for batch in batches:
            backend(batch)
        events = json.loads(Path(backend.session.end_profiling()).read_text())
    spent = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"]
    total = sum(spent.values()) or 1
    return {op: round(value / total, 4) for op, value in spent.most_common(top)}


def batches_of(encoded, size, limit=None):
    """Consecutive batches of `size` rows, each cut to its longest row (dynamic padding, as a server would pad)."""
    import numpy as np

    count = len(encoded["input_ids"]) if limit is None else min(limit, len(encoded["input_ids"]))
    out = []
    for start in range(0, count, size):
        rows = slice(start, min(start + size, count))
        width = int(encoded["attention_mask"][rows].sum(1).max())
        out.append({name: np.ascontiguousarray(value[rows, :width]) for name, value in encoded.items()})
    return out


def timed(backend, batches):
    """(seconds per call, logits of every row)."""
    import numpy as np

    seconds, logits = [], []
    for batch in batches:
        started = time.perf_counter()
        out = backend(batch)
        seconds.append(time.perf_counter() - started)
        logits.append(out)
    return seconds, np.concatenate(logits)


def peak_resident_bytes():
    """This process's peak resident memory: VmHWM on Linux (its own address space's high-water mark). Not ru_maxrss:
    Linux carries that across exec, so a spawned child would report the parent's size at the fork (every backend
    read the same 1,156 MiB before this)."""
    import resource

    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def serve_once(name, spec, threads, batches, queue):
    """In a fresh process: load one backend, serve the batches once, report the peak resident memory."""
    backend = Backend(name, spec, threads)
    for batch in batches:
        backend(batch)
    queue.put(peak_resident_bytes())


def peak_memory(name, spec, threads, batches):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=serve_once, args=(name, spec, threads, batches, queue))
    child.start()
    try:
        value = queue.get(timeout=1800)
    finally:
        child.join()
    return value


def resolve_sources(args):
    """{backend: what it loads}: the model folder for PyTorch, the .onnx files for ONNX Runtime."""
    from small_encoders.core.hub import check_model_folder

    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        raise UserError(f"--model_dir {model_dir}: no such folder (give a fine-tuned model folder, e.g. run_glue.py --save_model)")
    check_model_folder(model_dir, "--model_dir")
    sources = {"pytorch": model_dir}
    if args.onnx:
        folder = Path(args.onnx)
        if not (folder / ONNX_FILE).is_file():
            raise UserError(f"--onnx {folder}: no {ONNX_FILE} there (make it with deploy/export.py --output_dir {folder})")
        record = folder / EXPORT_FILE
        if record.is_file():
            task = json.loads(record.read_text()).get("task")
            wanted = "sentence-embedding" if is_embedder(model_dir) else "sequence-classification"
            if task != wanted:
                raise UserError(f"--onnx {folder}: an export for {task}, not {wanted}; export the model of --model_dir "
                                f"(deploy/export.py --model_dir {model_dir})")
        sources["onnxruntime-fp32"] = folder / ONNX_FILE
        if args.int8 is None and (folder / INT8_FILE).is_file():
            sources["onnxruntime-int8"] = folder / INT8_FILE
    if args.int8:
        path = Path(args.int8)
        path = path / INT8_FILE if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"--int8 {args.int8}: no such file (deploy/export.py --int8 writes {INT8_FILE})")
        sources["onnxruntime-int8"] = path
    return sources


def load_dev(args, tokenizer, embedder=False):
    import numpy as np

    from small_encoders.eval.glue_data import TASKS, eval_splits, load_glue

    if embedder:  # STS-B dev's sentences, every first sentence then every second one; the labels are the gold scores
        dev = load_glue("stsb", args.data_dir, splits=["validation"])["validation"]
        if args.max_sentences:
            dev = dev.select(range(min(max(2, args.max_sentences // 2), len(dev))))
        encoded = tokenizer(list(dev["sentence1"]) + list(dev["sentence2"]), padding="longest", truncation=True,
                            max_length=args.max_length, return_tensors="np")
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in encoded else [])
        return {name: encoded[name].astype(np.int64) for name in names}, np.array(dev["label"]), "validation"
    if args.task_name not in TASKS or TASKS[args.task_name]["num_labels"] < 2:
        raise UserError(f"--task_name {args.task_name}: choose a GLUE classification task")
    split = eval_splits(args.task_name)[0]
    dev = load_glue(args.task_name, args.data_dir, splits=[split])[split]
    if args.max_sentences:
        dev = dev.select(range(min(args.max_sentences, len(dev))))
    pairs = [list(dev["sentence1"])] + ([list(dev["sentence2"])] if dev[0]["sentence2"] is not None else [])
    encoded = tokenizer(*pairs, padding="longest", truncation=True, max_length=args.max_length, return_tensors="np")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in encoded else [])
    return {name: encoded[name].astype(np.int64) for name in names}, np.array(dev["label"]), split


def machine():
    import torch

    from small_encoders.core.run_folder import cpu_model_name

    return {"cpu": cpu_model_name() or "unknown CPU", "cores": os.cpu_count(),
            "vector_instructions": torch.backends.cpu.get_cpu_capability(), "system": platform.platform()}


def run(args):
    import numpy as np
    import onnxruntime
    import torch
    import transformers

    from small_encoders.core.run_folder import source_commit
    from small_encoders.data_prep.tokenizer import load_tokenizer

    sources = resolve_sources(args)
    tokenizer = load_tokenizer(sources["pytorch"], "--model_dir")
    embedder = is_embedder(sources["pytorch"])
    if embedder:
        args.task_name = "stsb"
    encoded, labels, split = load_dev(args, tokenizer, embedder)
    threads = args.threads or torch.get_num_threads()
    batch1 = batches_of(encoded, 1, args.batch1_sentences)
    batch32 = batches_of(encoded, args.batch_size)
    print(f"{args.task_name} {split}: {len(encoded['input_ids'])} sentences{' (a sentence embedder: STS-B Spearman)' if embedder else ''}; batch 1 over the first {len(batch1)}, batch "
          f"{args.batch_size} over all ({len(batch32)} batches); {threads} threads; backends: {', '.join(sources)}",
          flush=True)
    backends = {name: Backend(name, spec, threads) for name, spec in sources.items()}
    for backend in backends.values():  # warm-up: first-call allocations and graph preparation stay off the clock
        timed(backend, batch32[:2] + batch1[:4])
    latency = {name: {1: [], args.batch_size: []} for name in backends}
    throughput = {name: {1: [], args.batch_size: []} for name in backends}
    accuracy = {}
    for round_number in range(args.rounds):
        order = list(backends) if round_number % 2 == 0 else list(reversed(backends))
        for name in order:
            for size, batches in ((1, batch1), (args.batch_size, batch32)):
                seconds, logits = timed(backends[name], batches)
                latency[name][size] += seconds
                throughput[name][size].append(sum(len(b["input_ids"]) for b in batches) / sum(seconds))
                if size == args.batch_size and name not in accuracy:
                    accuracy[name] = quality(logits, labels, embedder)
        print(f"round {round_number + 1}/{args.rounds}: " + ", ".join(
            f"{name} {statistics.median(throughput[name][args.batch_size]):,.0f}/s" for name in backends), flush=True)
    rows = []
    for name, spec in sources.items():
        memory = peak_memory(name, str(spec), threads, batch32) if not args.skip_memory else None
        row = {"backend": name, "source": str(spec), "accuracy": accuracy[name], "peak_memory_bytes": memory}
        for size in (1, args.batch_size):
            row[f"batch{size}"] = {"sentences_per_second": statistics.median(throughput[name][size]),
                                   "p50_ms": 1000 * percentile(latency[name][size], 50),
                                   "p95_ms": 1000 * percentile(latency[name][size], 95)}
        if args.profile and name != "pytorch":
            row["operator_shares"] = operator_shares(name, spec, threads, batch32)
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["speedup_batch32"] = row[f"batch{args.batch_size}"]["sentences_per_second"] / base[f"batch{args.batch_size}"]["sentences_per_second"]
        row["accuracy_change_points"] = 100 * (row["accuracy"] - base["accuracy"])
    size = args.batch_size
    print(f"\n| backend | batch 1 sentences/s | batch 1 p50 / p95 ms | batch {size} sentences/s | batch {size} p50 / p95 ms "
          f"| vs PyTorch (batch {size}) | {'STS-B dev Spearman' if embedder else 'dev accuracy'} | peak memory |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        one, many = row["batch1"], row[f"batch{size}"]
        memory = f"{row['peak_memory_bytes'] / 2**20:,.0f} MiB" if row["peak_memory_bytes"] else "not measured"
        print(f"| {row['backend']} | {one['sentences_per_second']:,.1f} | {one['p50_ms']:.1f} / {one['p95_ms']:.1f} | "
              f"{many['sentences_per_second']:,.1f} | {many['p50_ms']:.1f} / {many['p95_ms']:.1f} | "
              f"{row['speedup_batch32']:.2f}x | {100 * row['accuracy']:.2f} ({row['accuracy_change_points']:+.2f}) | {memory} |")
    for row in rows:
        if row.get("operator_shares"):
            print(f"{row['backend']}, kernel time by operator (batch {size}): " + ", ".join(
                f"{name} {100 * share:.0f}%" for name, share in row["operator_shares"].items()))
    result = {"task": args.task_name, "split": split, "sentences": len(encoded["input_ids"]),
              "quality": "stsb_spearman" if embedder else "accuracy", "batch1_sentences": len(batch1),
              "batch_size": size, "rounds": args.rounds, "threads": threads, "rows": rows, "machine": machine(),
              "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                           "transformers": transformers.__version__, "numpy": np.__version__},
              "commit": source_commit(), "command": " ".join(["python"] + sys.argv)}
    if args.output_json:
        Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_json).write_text(json.dumps(result, indent=1))
        print(f"\nwritten to {args.output_json}")
    return result


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="the fine-tuned classifier folder (PyTorch)")
    parser.add_argument("--onnx", default=None, help="its export folder (deploy/export.py)")
    parser.add_argument("--int8", default=None, help="an int8 .onnx file or folder (default: the export folder's)")
    parser.add_argument("--task_name", default="sst2")
    parser.add_argument("--data_dir", default=None, help="GLUE TSV folders (default: the Hub's nyu-mll/glue)")
    parser.add_argument("--rounds", type=checks.bounded(int, 1, 100), default=3)
    parser.add_argument("--batch_size", type=checks.bounded(int, 2, 4096), default=32)
    parser.add_argument("--batch1_sentences", type=checks.bounded(int, 1, 10**6), default=200,
                        help="dev sentences served one at a time per round")
    parser.add_argument("--max_sentences", type=checks.bounded(int, 1, 10**7), default=None,
                        help="use only the first N dev sentences (default: all)")
    parser.add_argument("--max_length", type=checks.bounded(int, 2, 8192), default=128)
    parser.add_argument("--threads", type=checks.bounded(int, 1, 1024), default=None)
    parser.add_argument("--skip_memory", action="store_true",
                        help="do not measure each backend's peak memory (a process of its own per backend)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where each ONNX backend's time goes, by operator type (ONNX Runtime's profiler)")
    parser.add_argument("--output_json", default=None)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
