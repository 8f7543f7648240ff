"""How fast a fine-tuned classifier (or a sentence embedder) serves on this machine's CPU: PyTorch eager (float32, and
bf16 autocast where the CPU has bf16) against every artefact of its export (deploy/export.py): ONNX Runtime float32,
int8 dynamic and static, OpenVINO at its default precision and in strict float32, OpenVINO int8.

    python deploy/export.py --model_dir runs/sst2-model --output_dir runs/sst2-onnx --int8
    python deploy/bench.py --model_dir runs/sst2-model --onnx runs/sst2-onnx --task_name sst2 --data_dir ../shared/data/glue

For each backend: sentences per second and p50/p95 latency at batch 1 (the first --batch1_sentences dev sentences,
one at a time) and at batch 32 (every dev sentence, in order, each batch padded to its longest), the dev accuracy
(every dev sentence), and the peak memory of a process that loads only that backend and serves the dev set once.
The backends take turns round by round (--rounds, default 3) so a slow spell of a shared machine falls on all of
them; a throughput is the median of the rounds, latencies pool every round's calls. Every round of every backend is
served in a fresh process of its own (loaded and warmed up there, off the clock), as a server runs one runtime, so no
runtime's thread pool, allocator or caches sit beside another's; `--same_process` serves them all in this one (faster
to run; on the project's EPYC it moved a backend's figures by up to 40%). Tokenization is done once,
before the clock, and is the same for every backend; the figures are the model's time alone. Every backend gets
the same number of threads (--threads, default all of torch's).

A sentence embedder's folder (recipes/train_embeddings.py) is served as sentence vectors (the encoder, its pooling and
normalisation) over STS-B dev's 3,000 sentences, and its quality column is STS-B dev Spearman instead of accuracy.

`--onnx DIR` is an export folder of deploy/export.py: every artefact in it whose runtime is installed is a row
(model.onnx; model_int8.onnx with --int8; model_int8_static.onnx with --int8_static; openvino/ with --openvino), and
the summary line gives the export's default (what deploy/serving.py loads) against PyTorch float32 and bf16.
`--int8 PATH` names another int8 file or folder; `--length_sorted` batches the sentences by length for every backend.
Results: a table on stdout, --output_json with the machine (its bf16, AMX and VNNI instructions), the versions and
the commit (docs/performance.md#cpu-inference).
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
from small_encoders.deploy.export import EXPORT_FILE, INT8_FILE, ONNX_FILE, is_sentence_embedder
from small_encoders.deploy.serving import BACKENDS, INSTALL, Runner, cpu_features, installed

# PyTorch's two rows, then every artefact of the export folder (deploy/serving.py's names), OpenVINO's float32 row
# (the same IR with strict float32: what its default precision buys on this CPU) after OpenVINO's default.
TORCH_BACKENDS = ("pytorch", "pytorch-bf16")


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
    """One way of running the model: a callable from a dict of int64 arrays to its output (a numpy array): PyTorch
    eager in float32 or under bf16 autocast, else deploy/serving.py's Runner over an export artefact. `settings`:
    the runtime's own options (ONNX Runtime's profiler, for operator_shares)."""

    def __init__(self, name, spec, threads, **settings):
        self.name = name
        self.runner = None
        if name in TORCH_BACKENDS:
            import torch
            from transformers import AutoModel, AutoModelForSequenceClassification

            import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family
            from small_encoders.deploy.export import sentence_modules, wrap_sentence_embedder
            from small_encoders.eval.loading import quiet_load_reports

            torch.set_num_threads(threads)
            self.torch = torch
            embedder = is_sentence_embedder(spec)
            with quiet_load_reports():
                auto = AutoModel if embedder else AutoModelForSequenceClassification
                self.model = auto.from_pretrained(spec, trust_remote_code=True, dtype=torch.float32).eval()
            if embedder:  # the encoder, its pooling and normalisation: what SentenceTransformer.encode computes
                pooling, normalised, _ = sentence_modules(spec)
                self.model = wrap_sentence_embedder(self.model, pooling, normalised)
            self.embedder = embedder
            self.autocast = name == "pytorch-bf16"
        elif name == "openvino-f32":
            self.runner = Runner(spec, "openvino", threads, INFERENCE_PRECISION_HINT="f32")
        else:
            self.runner = Runner(spec, name, threads, **settings)
        self.session = getattr(self.runner, "session", None)

    def __call__(self, batch):
        if self.runner is not None:
            return self.runner(batch)
        torch = self.torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            out = self.model(**{name: torch.from_numpy(value) for name, value in batch.items()})
            return (out if self.embedder else out.logits).float().numpy()


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


def batches_of(encoded, size, limit=None, order=None):
    """Consecutive batches of `size` rows (in `order` when given: length-sorted), each cut to its longest row
    (dynamic padding, as a server would pad)."""
    import numpy as np

    count = len(encoded["input_ids"]) if limit is None else min(limit, len(encoded["input_ids"]))
    order = np.arange(count) if order is None else order[:count]
    out = []
    for start in range(0, count, size):
        rows = order[start:start + size]
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


def in_own_process(target, *args):
    """target(*args, queue) run in a freshly spawned process; what it puts on the queue. A child that dies without
    an answer (killed, out of memory) is an error here, not a wait."""
    import queue as queues

    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    child = context.Process(target=target, args=(*args, answers))
    child.start()
    try:
        while True:
            try:
                return answers.get(timeout=2)
            except queues.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"{target.__name__} of {args[0]}: its process ended with exit code "
                                       f"{child.exitcode} and no answer") from None
    finally:
        child.join()


def peak_memory(name, spec, threads, batch1, batch_n):
    """The peak resident memory of a fresh process that loads one backend and serves one round (--same_process, where
    the rounds themselves share this process)."""
    return in_own_process(serve_round_alone, name, spec, threads, batch1, batch_n, False)[-1]


def serve_pass(backend, batch1, batch_n):
    """One round of one backend: (seconds per call at batch 1, seconds per call at batch N, the batch-N outputs)."""
    one, _ = timed(backend, batch1)
    many, outputs = timed(backend, batch_n)
    return one, many, outputs


def warm_up(backend, batch1, batch_n):
    """First-call allocations and graph preparation, kept off the clock."""
    timed(backend, batch_n[:2] + batch1[:4])


def serve_round_alone(name, spec, threads, batch1, batch_n, with_outputs, queue):
    """In a fresh process: load one backend, warm it up, serve one round; the seconds, the outputs (when asked) and
    the process's peak resident memory."""
    backend = Backend(name, spec, threads)
    warm_up(backend, batch1, batch_n)
    one, many, outputs = serve_pass(backend, batch1, batch_n)
    queue.put((one, many, outputs if with_outputs else None, peak_resident_bytes()))


def bf16_cpu():
    """Whether this CPU computes in bf16 natively (AMX or AVX-512 BF16): where PyTorch's bf16 autocast is a row."""
    features = cpu_features()
    return features["amx_bf16"] or features["avx512_bf16"]


def resolve_sources(args):
    """{backend: what it loads}: the model folder for PyTorch (and its bf16 autocast where the CPU has bf16), every
    artefact of the export folder whose runtime is installed (a note for those skipped), in deploy/serving.py's
    order; --backends keeps a subset."""
    from small_encoders.core.hub import check_model_folder

    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        raise UserError(f"--model_dir {model_dir}: no such folder (give a fine-tuned model folder, e.g. run_glue.py --save_model)")
    check_model_folder(model_dir, "--model_dir")
    sources = {"pytorch": model_dir}
    if bf16_cpu():
        sources["pytorch-bf16"] = model_dir
    if args.onnx:
        folder = Path(args.onnx)
        if not (folder / ONNX_FILE).is_file():
            raise UserError(f"--onnx {folder}: no {ONNX_FILE} there (make it with deploy/export.py --output_dir {folder})")
        record = folder / EXPORT_FILE
        if record.is_file():
            task = json.loads(record.read_text()).get("task")
            wanted = "sentence-embedding" if is_sentence_embedder(model_dir) else "sequence-classification"
            if task != wanted:
                raise UserError(f"--onnx {folder}: an export for {task}, not {wanted}; export the model of --model_dir "
                                f"(deploy/export.py --model_dir {model_dir})")
        for name, (module, file, _) in reversed(BACKENDS.items()):  # ONNX Runtime float32 first, then the faster ones
            if not (folder / file).is_file():
                continue
            if not installed(module):
                print(f"note: {file} is not measured: {module} is not installed ({INSTALL[module]})", flush=True)
                continue
            if name == "openvino":
                sources["openvino-f32"] = folder / file
            sources[name] = folder / file
    if args.int8:
        path = Path(args.int8)
        path = path / INT8_FILE if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"--int8 {args.int8}: no such file (deploy/export.py --int8 writes {INT8_FILE})")
        sources["onnxruntime-int8"] = path
    if args.backends:
        unknown = [name for name in args.backends if name not in sources]
        if unknown:
            raise UserError(f"--backends {','.join(unknown)}: not available here; available: {', '.join(sources)}")
        sources = {name: sources[name] for name in sources if name in args.backends or name == "pytorch"}
    return sources


def default_backend(args, sources, prefer="throughput"):
    """What deploy/serving.py's "auto" would load from the export folder (None without one)."""
    if not args.onnx:
        return None
    from small_encoders.deploy.serving import ServingError, choose

    try:
        name = choose(args.onnx, prefer=prefer)
    except ServingError:
        return None
    return name if name in sources else None


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
            "vector_instructions": torch.backends.cpu.get_cpu_capability(), "features": cpu_features(),
            "system": platform.platform()}


def measure_rounds(args, sources, threads, batch1, batch_n, labels, embedder, sentence_order):
    """The backends taking turns for --rounds rounds (the order reversed every round): ({backend: {size: seconds per
    call}}, {backend: {size: sentences/s per round}}, {backend: dev accuracy or Spearman}, {backend: peak resident
    bytes, unless --same_process}). By default every backend serves every round in a process of its own, loaded and
    warmed up there: no runtime's threads, allocations or caches share a process with another's."""
    import numpy as np

    size = args.batch_size
    backends = {}
    if not args.isolate:
        backends = {name: Backend(name, spec, threads) for name, spec in sources.items()}
        for backend in backends.values():
            warm_up(backend, batch1, batch_n)
    latency = {name: {1: [], size: []} for name in sources}
    throughput = {name: {1: [], size: []} for name in sources}
    accuracy, memory = {}, {}
    for round_number in range(args.rounds):
        order = list(sources) if round_number % 2 == 0 else list(reversed(sources))
        for name in order:
            if args.isolate:
                one, many, outputs, peak = in_own_process(serve_round_alone, name, str(sources[name]), threads,
                                                          batch1, batch_n, name not in accuracy)
                memory[name] = max(memory.get(name, 0), peak)
            else:
                one, many, outputs = serve_pass(backends[name], batch1, batch_n)
            for key, batches, calls in ((1, batch1, one), (size, batch_n, many)):
                latency[name][key] += calls
                throughput[name][key].append(sum(len(b["input_ids"]) for b in batches) / sum(calls))
            if name not in accuracy:
                if sentence_order is not None:  # back to the dev set's order
                    outputs = outputs[np.argsort(sentence_order, kind="stable")]
                accuracy[name] = quality(outputs, labels, embedder)
        print(f"round {round_number + 1}/{args.rounds}: " + ", ".join(
            f"{name} {statistics.median(throughput[name][size]):,.0f}/s" for name in sources), flush=True)
    return latency, throughput, accuracy, memory


def default_summary(args, sources, rows, embedder):
    """The export's default backend (what deploy/serving.py loads) against PyTorch float32 and bf16, printed; None
    without an export."""
    chosen = default_backend(args, sources)
    if not chosen:
        return None
    size, base = args.batch_size, rows[0]
    by_name = {row["backend"]: row for row in rows}
    row = by_name[chosen]
    summary = {"backend": chosen, "vs_pytorch_batch1": row["batch1"]["sentences_per_second"] / base["batch1"]["sentences_per_second"],
               f"vs_pytorch_batch{size}": row["speedup_batch32"], "accuracy_change_points": row["accuracy_change_points"]}
    if "pytorch-bf16" in by_name:
        summary["vs_pytorch_bf16"] = row[f"batch{size}"]["sentences_per_second"] / by_name["pytorch-bf16"][f"batch{size}"]["sentences_per_second"]
    print(f"\nthe export's default ({chosen}, what deploy/serving.py loads): {summary[f'vs_pytorch_batch{size}']:.2f}x PyTorch "
          f"float32 at batch {size}, {summary['vs_pytorch_batch1']:.2f}x at batch 1"
          + (f", {summary['vs_pytorch_bf16']:.2f}x PyTorch bf16 autocast" if "vs_pytorch_bf16" in summary else "")
          + f"; {'Spearman' if embedder else 'accuracy'} {summary['accuracy_change_points']:+.2f} points")
    latency = default_backend(args, sources, prefer="latency")
    if latency:  # what a server of single requests loads (prefer="latency"), at batch 1
        summary["latency_backend"] = latency
        summary["latency_vs_pytorch_batch1"] = by_name[latency]["batch1"]["sentences_per_second"] / base["batch1"]["sentences_per_second"]
        print(f"one sentence at a time (prefer='latency'): {latency}, {summary['latency_vs_pytorch_batch1']:.2f}x PyTorch float32 at batch 1")
    return summary


def run(args):
    from importlib.metadata import version

    import numpy as np
    import onnxruntime
    import torch
    import transformers

    from small_encoders.core.run_folder import source_commit
    from small_encoders.data_prep.tokenizer import load_tokenizer

    sources = resolve_sources(args)
    tokenizer = load_tokenizer(sources["pytorch"], "--model_dir")
    embedder = is_sentence_embedder(sources["pytorch"])
    if embedder:
        args.task_name = "stsb"
    encoded, labels, split = load_dev(args, tokenizer, embedder)
    threads = args.threads or torch.get_num_threads()
    batch1 = batches_of(encoded, 1, args.batch1_sentences)
    sentence_order = None
    if args.length_sorted:  # longest first, as sentence-transformers' encode sorts: less padding in every batch
        sentence_order = np.argsort(-encoded["attention_mask"].sum(1), kind="stable")
    batch32 = batches_of(encoded, args.batch_size, order=sentence_order)
    print(f"{args.task_name} {split}: {len(encoded['input_ids'])} sentences{' (a sentence embedder: STS-B Spearman)' if embedder else ''}; batch 1 over the first {len(batch1)}, batch "
          f"{args.batch_size} over all ({len(batch32)} batches); {threads} threads; backends: {', '.join(sources)}",
          flush=True)
    latency, throughput, accuracy, isolated_memory = measure_rounds(args, sources, threads, batch1, batch32, labels,
                                                                    embedder, sentence_order)
    rows = []
    for name, spec in sources.items():
        memory = isolated_memory.get(name)
        if memory is None and not args.skip_memory:
            memory = peak_memory(name, str(spec), threads, batch1, batch32)
        row = {"backend": name, "source": str(spec), "accuracy": accuracy[name], "peak_memory_bytes": memory}
        for size in (1, args.batch_size):
            row[f"batch{size}"] = {"sentences_per_second": statistics.median(throughput[name][size]),
                                   "p50_ms": 1000 * percentile(latency[name][size], 50),
                                   "p95_ms": 1000 * percentile(latency[name][size], 95)}
        if args.profile and name not in TORCH_BACKENDS and name.startswith("onnxruntime"):
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
    summary = default_summary(args, sources, rows, embedder)
    for row in rows:
        if row.get("operator_shares"):
            print(f"{row['backend']}, kernel time by operator (batch {size}): " + ", ".join(
                f"{name} {100 * share:.0f}%" for name, share in row["operator_shares"].items()))
    result = {"task": args.task_name, "split": split, "sentences": len(encoded["input_ids"]),
              "quality": "stsb_spearman" if embedder else "accuracy", "batch1_sentences": len(batch1),
              "batch_size": size, "rounds": args.rounds, "threads": threads, "length_sorted": args.length_sorted,
              "isolated": args.isolate,
              "rows": rows, "default": summary, "machine": machine(),
              "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                           **({"openvino": version("openvino")} if installed("openvino") else {}),
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
                        help="with --same_process: do not measure each backend's peak memory (a process of its own "
                             "per backend; by default the rounds' own processes give it at no cost)")
    parser.add_argument("--same_process", dest="isolate", action="store_false",
                        help="serve every backend in this one process instead of each round of each in a fresh one "
                             "(faster to run; the runtimes' thread pools and allocators then sit side by side)")
    parser.add_argument("--isolate", dest="isolate", action="store_true", help=argparse.SUPPRESS)  # the default
    parser.set_defaults(isolate=True)
    parser.add_argument("--profile", action="store_true",
                        help="also print where each ONNX backend's time goes, by operator type (ONNX Runtime's profiler)")
    parser.add_argument("--backends", type=lambda text: [x.strip() for x in text.split(",") if x.strip()], default=None,
                        help="measure only these (comma-separated; PyTorch float32 always, as the base)")
    parser.add_argument("--length_sorted", action="store_true",
                        help="batch the dev sentences sorted by length, longest first (as sentence-transformers' "
                             "encode does), for every backend alike")
    parser.add_argument("--output_json", default=None)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
