"""Pretraining throughput: our recipe path against the stock Hugging Face path, same model shape.

    python benchmarks/pretrain_throughput.py --shape miniroberta --batch_size 32 --block_size 128
    python benchmarks/pretrain_throughput.py --shape bertmini --device cuda --bf16 --compile

Paths, alternated round by round so a noisy machine slows each alike:
  stock      documents one per row, truncated and padded to the block (run_mlm --line_by_line
             --pad_to_max_length), MLM logits at every position (RobertaForMaskedLM / BertForMaskedLM style)
  packed     packed blocks with no padding (and so no attention mask, as the recipe's collator sends them), logits
             still at every position
  ours       packed blocks and sparse prediction (logits only at masked positions): the recipe path
  rtd        the recipe path with `objective: rtd` (ELECTRA): a generator `--generator_size` as wide predicts the
             masked positions, its samples replace them, and the discriminator (this shape) scores every token
             (ask for it with --paths ours,rtd: what one step of RTD costs against one of MLM)
Batches are collated before the timings; the collators' own cost is printed on its own line.
Tokens per second count real (non-padding) tokens: the text a path actually learns from.
On a GPU, `--bf16`, `--fused_adamw` and `--compile` apply to every path (`--speedups_for ours`: the last two to ours
only, against the stock path as Hugging Face runs it); MFU is printed with its formula.
It also measures data_prep throughput: MB of raw text tokenized and packed per second.

`--ladder` measures instead what each speed lever of the GPU path gives, cumulatively, batches collated inside the
timed steps as a training loop does (the recipe's own tokens/s as trained, around the step, come from a short
`--time_budget` run: benchmarks/gpu_session.sh speed runs both):
  stock      as above, with the stock collator in the step: Hugging Face's run_mlm settings, bf16, no compile
  before     the recipe as it ran before the levers: packed blocks, sparse prediction, its collator in the step, RMSNorm
             unfused under bf16 (float32 weight, bf16 input), AdamW fused (Trainer's default), no compile
  rmsnorm    + RMSNorm's weight cast to the input's dtype (the fused kernel)
  compile    + torch.compile of the model and its sparse loss (static shapes: every batch one size)
  workers    + collation in DataLoader worker processes into pinned memory, copied to the GPU without waiting
"""

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.data_prep.packing import pack_dataset
from small_encoders.modeling import enable_sparse_prediction
from small_encoders.modeling.build import build_mlm_config, build_mlm_model
from small_encoders.modeling.rtd import build_rtd_model
from small_encoders.modeling.sparse_mlm import trace_sparse_selection_when_compiled
from small_encoders.recipes.recipe import load_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]

SHARED = REPO_ROOT.parent / "shared" / "data"
SHAPES = {
    # name: (family, preset, config fields, tokenizer, masking rate)
    "miniroberta": ("roberta", None, dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=1024),
                    SHARED / "tokenizers" / "roberta-base", 0.15),
    "bertmini": ("small_encoder", "bertmini", {}, SHARED / "tokenizers" / "bert-base-uncased", 0.30),
    # The GPU tier's recipe as it is shipped (its model_config), with the 16,384-entry WordPiece of its first H200 run.
    "tuned-20m": ("small_encoder", "bertmini", load_recipe("tuned-20m")["model_config"],
                  SHARED.parent / "gpu-runs" / "2026-12-04-h200-tuned-20m" / "model", 0.30),
}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def corpus_texts(path):
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as error:
        raise UserError(f"--corpus {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    texts = [line for line in lines if line and not line.startswith("=")]
    if not texts:
        raise UserError(f"--corpus {path} holds no text")
    return texts


def padded_rows(texts, tokenizer, block_size):
    encoded = tokenizer(texts, truncation=True, max_length=block_size, padding="max_length", return_special_tokens_mask=True)
    return Dataset.from_dict({k: encoded[k] for k in ("input_ids", "attention_mask", "special_tokens_mask")})


def batches(dataset, collator, batch_size, count, seed):
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    out = []
    for step in range(count):
        rows = [dataset[order[(step * batch_size + i) % len(order)]] for i in range(batch_size)]
        out.append(collator(rows))
    return out


def model_flops_per_step(config, batch, block_size, masked_positions, vocab):
    """6 x non-embedding params x tokens + 12 x layers x hidden x block x tokens (attention) + 6 x hidden x vocab x masked."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    tokens = batch["input_ids"].numel()
    layer_params = 4 * hidden * hidden + 2 * hidden * config.intermediate_size * (1.5 if getattr(config, "mlp_type", "gelu") == "swiglu" else 1)
    return 6 * layers * layer_params * tokens + 12 * layers * hidden * block_size * tokens + 6 * hidden * vocab * masked_positions


class Path_:
    def __init__(self, name, model, batches_, device, fused):
        self.name, self.model, self.batches = name, model.to(device), batches_
        self.device = device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
        self.times, self.real_tokens, self.flops = [], [], []
        self.peak_memory = 0

    def step(self, batch, bf16):
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = self.model(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return batch


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def busy_cpu_seconds():
    """CPU seconds of this process (all its threads) and of its finished worker processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def measure_data_prep(files, tokenizer, block_size, num_proc):
    """Tokenize and pack `files` (any corpus the recipes read) into a fresh cache; returns (MB, seconds, blocks, cores busy)."""
    import datasets

    from small_encoders.data_prep.corpus import expand_files, keep_text, load_local

    default_cache = datasets.config.HF_DATASETS_CACHE
    with tempfile.TemporaryDirectory() as cache:
        # A fresh cache, and the corpus loaded again into it, for each measurement: datasets would reuse one
        # num_proc's packed shards for another, and a figure read back from disk means nothing.
        datasets.config.HF_DATASETS_CACHE = Path(cache)
        try:
            dataset = keep_text(load_local(expand_files(files, "--data_prep_files"), "strict"), "text")
            megabytes = sum(len(t.encode()) + 1 for t in dataset["text"]) / 1e6
            started, cpu_started = time.perf_counter(), busy_cpu_seconds()
            packed, _, from_cache = pack_dataset(dataset, tokenizer, block_size, num_proc=num_proc, split_name="benchmark")
            seconds = time.perf_counter() - started
            cores = (busy_cpu_seconds() - cpu_started) / seconds
        finally:
            datasets.config.HF_DATASETS_CACHE = default_cache
    if from_cache:
        raise RuntimeError("data_prep came from a cache; the figure would not measure tokenizing and packing")
    return megabytes, seconds, len(packed), cores


def measure_collation(packed, tokenizer, rate, batch_size, repeats=20):
    """Milliseconds per batch: the stock collator against the recipe's, on packed rows as Trainer passes them."""
    from small_encoders.recipes.training import ResumableMLMCollator

    rows = [{"input_ids": packed[i % len(packed)]["input_ids"]} for i in range(batch_size)]  # Trainer drops other columns
    result = {}
    for name, collator in (("stock", DataCollatorForLanguageModeling(tokenizer, mlm_probability=rate)),
                           ("ours", ResumableMLMCollator(tokenizer, rate, seed=0))):
        collator([dict(row) for row in rows])
        started = time.perf_counter()
        for _ in range(repeats):
            collator([dict(row) for row in rows])
        result[name] = (time.perf_counter() - started) / repeats
    return result


def measure_training(args, tokenizer):
    """Train the stock, packed and ours paths in alternating rounds and print their throughput."""
    family, preset, fields, _, rate = SHAPES[args.shape]
    texts = corpus_texts(args.corpus)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"shape {args.shape}, batch {args.batch_size}, block {args.block_size}, masking {rate:.0%}, device {device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if device.type == 'cuda' else f' ({torch.get_num_threads()} threads)'}, "
          f"bf16 {args.bf16}, fused AdamW {args.fused_adamw}, compile {args.compile} (for {args.speedups_for} paths"
          f"{', graph breaks allowed' if args.compile and args.allow_graph_breaks else ''}), "
          f"corpus {args.corpus}")

    from small_encoders.recipes.training import ResumableMLMCollator

    packed, _, _ = pack_dataset(Dataset.from_dict({"text": texts}), tokenizer, args.block_size, split_name="benchmark")
    padded = padded_rows(texts, tokenizer, args.block_size)
    total = args.warmup + args.steps * args.rounds
    data = {
        "stock": batches(padded, DataCollatorForLanguageModeling(tokenizer, mlm_probability=rate), args.batch_size, total, seed=1),
        # The recipe's collator: packed blocks go to the model without an (all-ones) attention mask.
        "packed": batches(packed, ResumableMLMCollator(tokenizer, rate, seed=1), args.batch_size, total, seed=1),
    }
    data["ours"] = data["packed"]
    if "rtd" in args.paths.split(","):  # the same masks, and the seed of each batch's generator samples
        data["rtd"] = batches(packed, ResumableMLMCollator(tokenizer, rate, seed=1, sampling_seed=True), args.batch_size,
                              total, seed=1)
    if args.compile and not args.allow_graph_breaks:
        trace_sparse_selection_when_compiled()
    config = build_mlm_config(family, tokenizer, args.block_size, preset=preset, fields=dict(fields, hidden_dropout_prob=0.1))
    paths = []
    for name in args.paths.split(","):
        torch.manual_seed(0)
        # Each path gets its own config: the SmallEncoder's sparse_prediction flag lives there, and a shared
        # config would switch sparse prediction on for every path at once.
        if name == "rtd":
            model = build_rtd_model(copy.deepcopy(config), args.generator_size, special_token_ids=tokenizer.all_special_ids).train()
            enable_sparse_prediction(model.generator)
        else:
            model = build_mlm_model(copy.deepcopy(config)).train()
        if name == "ours":
            enable_sparse_prediction(model)
        elif family == "small_encoder":
            model.config.sparse_prediction = False
        speedups = args.speedups_for == "all" or name == "ours"
        if args.compile and speedups:
            model = torch.compile(model)
        paths.append(Path_(name, model, data[name], device, args.fused_adamw and speedups and device.type == "cuda"))

    for path in paths:  # warm-up (and compilation) outside the timings
        for i in range(args.warmup):
            path.step(path.batches[i], args.bf16)
    synchronize(device)
    cursor = args.warmup
    for _ in range(args.rounds):
        for path in paths:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for i in range(cursor, cursor + args.steps):
                batch = path.batches[i]
                synchronize(device)
                started = time.perf_counter()
                path.step(batch, args.bf16)
                synchronize(device)
                path.times.append(time.perf_counter() - started)
                path.real_tokens.append(int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel())
                masked = int((batch["labels"] != -100).sum())
                path.flops.append(model_flops_per_step(config, batch, args.block_size, masked, config.vocab_size))
            if device.type == "cuda":
                path.peak_memory = max(path.peak_memory, torch.cuda.max_memory_allocated())
        cursor += args.steps

    collation = measure_collation(packed, tokenizer, rate, args.batch_size)
    print(f"\ncollator, {args.batch_size} x {args.block_size} blocks on the CPU: stock {collation['stock'] * 1000:.1f} ms, "
          f"ours {collation['ours'] * 1000:.1f} ms per batch ({collation['stock'] / collation['ours']:.1f}x; "
          f"not in the step times below, which use batches collated beforehand)")
    print(f"\n{'path':<8} {'step ms':>9} {'tokens/s':>12} {'padding':>8} {'peak mem':>10} {'MFU':>7}")
    results = {}
    for path in paths:
        step = statistics.median(path.times)
        tokens_per_second = sum(path.real_tokens) / sum(path.times)
        shape_tokens = path.batches[0]["input_ids"].numel()
        padding = 1 - statistics.mean(path.real_tokens) / shape_tokens
        memory = f"{path.peak_memory / 2**30:.2f} GiB" if device.type == "cuda" else "-"
        mfu = "-"
        if device.type == "cuda":
            peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in torch.cuda.get_device_name()), None)
            if peak and path.name != "rtd":  # the formula counts one masked LM; RTD runs two networks
                mfu = f"{sum(path.flops) / sum(path.times) / peak:.1%}"
        results[path.name] = tokens_per_second
        print(f"{path.name:<8} {step * 1000:>9.1f} {tokens_per_second:>12,.0f} {padding:>8.1%} {memory:>10} {mfu:>7}")
    if device.type == "cpu":
        import resource

        print(f"peak resident memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if "stock" in results:
        for name, value in results.items():
            if name != "stock":
                print(f"ratio {name} / stock: {value / results['stock']:.2f}x")
    if "rtd" in results and "ours" in results:
        print(f"ratio rtd / ours (one RTD step against one MLM step of the same shape): {results['rtd'] / results['ours']:.2f}x")
    if device.type == "cuda":
        print("MFU = (6 x non-embedding parameters x tokens + 12 x layers x hidden x block x tokens "
              "+ 6 x hidden x vocab x masked tokens) / step time / peak bf16 dense FLOP/s (H100 SXM: 989e12)")


LADDER = ("stock", "before", "rmsnorm", "compile", "workers")


def unfused_rmsnorm(model):
    """`model` with its RMSNorms as before the weight cast: nn.RMSNorm's own forward (float32 weight, bf16 input under
    autocast: torch's unfused path)."""
    import types

    from small_encoders.modeling.modeling_small_encoder import SmallEncoderRMSNorm

    for module in model.modules():
        if isinstance(module, SmallEncoderRMSNorm):
            module.forward = types.MethodType(torch.nn.RMSNorm.forward, module)
    return model


def in_step_batches(dataset, collator, batch_size, seed):
    """Batches collated when they are asked for (inside the timed step, on the training process)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    step = 0
    while True:
        rows = [dataset[order[(step * batch_size + i) % len(order)]] for i in range(batch_size)]
        yield collator(rows)
        step += 1


def worker_batches(dataset, collator, batch_size, workers):
    """Batches collated in `workers` DataLoader processes into pinned memory, as the recipe's Trainer does on a GPU."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collator,
                                         num_workers=workers, pin_memory=torch.cuda.is_available(),
                                         persistent_workers=workers > 0, generator=torch.Generator().manual_seed(1))
    while True:
        yield from loader


def measure_ladder(args, tokenizer):
    """Each lever of the GPU path in turn (cumulative), timed in alternating rounds of `--steps` steps; one sync per
    round, so the host runs ahead as in training."""
    from small_encoders.recipes.training import ResumableMLMCollator

    family, preset, fields, _, rate = SHAPES[args.shape]
    texts = corpus_texts(args.corpus)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    print(f"ladder: shape {args.shape}, batch {args.batch_size}, block {args.block_size}, masking {rate:.0%}, device "
          f"{torch.cuda.get_device_name() if cuda else f'cpu ({torch.get_num_threads()} threads)'}, bf16 {args.bf16}, "
          f"{args.workers} collation workers, corpus {args.corpus}")
    packed, _, _ = pack_dataset(Dataset.from_dict({"text": texts}), tokenizer, args.block_size, split_name="benchmark")
    packed = packed.select_columns(["input_ids"])  # as Trainer passes rows: the model's inputs only
    padded = padded_rows(texts, tokenizer, args.block_size).select_columns(["input_ids", "attention_mask"])
    config = build_mlm_config(family, tokenizer, args.block_size, preset=preset, fields=fields)
    stock_collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=rate)
    ours_collator = ResumableMLMCollator(tokenizer, rate, seed=1)

    def model(sparse, compiled=False):
        torch.manual_seed(0)
        built = build_mlm_model(copy.deepcopy(config)).train()
        if sparse:
            enable_sparse_prediction(built)
        elif family == "small_encoder":
            built.config.sparse_prediction = False
        return torch.compile(built) if compiled else built

    if "compile" in args.ladder_paths or "workers" in args.ladder_paths:
        trace_sparse_selection_when_compiled()
    compiled = model(True, compiled=True) if {"compile", "workers"} & set(args.ladder_paths) else None
    builders = {  # name: (model, batches); "compile" and "workers" share one compiled model (compiled once)
        "stock": lambda: (model(False), in_step_batches(padded, stock_collator, args.batch_size, 1)),
        "before": lambda: (unfused_rmsnorm(model(True)), in_step_batches(packed, ours_collator, args.batch_size, 1)),
        "rmsnorm": lambda: (model(True), in_step_batches(packed, ours_collator, args.batch_size, 1)),
        "compile": lambda: (compiled, in_step_batches(packed, ours_collator, args.batch_size, 1)),
        "workers": lambda: (compiled, worker_batches(packed, ours_collator, args.batch_size, args.workers)),
    }
    paths = []
    for name in args.ladder_paths:
        net, source = builders[name]()
        net = net.to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, **({"fused": True} if cuda else {}))
        paths.append({"name": name, "model": net, "source": source, "optimizer": optimizer, "seconds": 0.0,
                      "steps": 0, "tokens": 0, "flops": 0.0, "peak": 0, "rounds": []})

    def step(path):
        batch = next(path["source"])
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        masked = int((batch["labels"] != -100).sum())
        batch = {k: v.to(device, non_blocking=path["name"] == "workers") for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = path["model"](**batch).loss
        loss.backward()
        path["optimizer"].step()
        path["optimizer"].zero_grad(set_to_none=True)
        return real, model_flops_per_step(config, batch, args.block_size, masked, config.vocab_size)

    started = time.perf_counter()
    for path in paths:  # warm-up and compilation outside the timings
        for _ in range(args.warmup):
            step(path)
        synchronize(device)
    print(f"warm-up and compilation: {time.perf_counter() - started:.1f} s")
    for _ in range(args.rounds):
        for path in paths:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            synchronize(device)
            began = time.perf_counter()
            for _ in range(args.steps):
                real, flops = step(path)
                path["tokens"] += real
                path["flops"] += flops
            synchronize(device)
            seconds = time.perf_counter() - began
            path["seconds"] += seconds
            path["steps"] += args.steps
            path["rounds"].append(seconds / args.steps)
            if cuda:
                path["peak"] = max(path["peak"], torch.cuda.max_memory_allocated())
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if cuda and k in torch.cuda.get_device_name()), None)
    print(f"\n{'path':<8} {'step ms':>9} {'tokens/s':>12} {'x stock':>8} {'x before':>9} {'peak mem':>10} {'MFU':>7}")
    rates = {path["name"]: path["tokens"] / path["seconds"] for path in paths}
    rows = []
    for path in paths:
        rate_ = rates[path["name"]]
        memory = f"{path['peak'] / 2**30:.2f} GiB" if cuda else "-"
        mfu = f"{path['flops'] / path['seconds'] / peak:.1%}" if peak else "-"
        versus = [f"{rate_ / rates[base]:.2f}x" if base in rates else "-" for base in ("stock", "before")]
        print(f"{path['name']:<8} {statistics.median(path['rounds']) * 1000:>9.1f} {rate_:>12,.0f} {versus[0]:>8} "
              f"{versus[1]:>9} {memory:>10} {mfu:>7}")
        rows.append({"path": path["name"], "step_ms": round(statistics.median(path["rounds"]) * 1000, 2),
                     "tokens_per_second": round(rate_), "peak_memory_gib": round(path["peak"] / 2**30, 2) if cuda else None,
                     "mfu": round(path["flops"] / path["seconds"] / peak, 4) if peak else None})
    print(f"({args.rounds} alternating rounds of {args.steps} steps per path; step ms is the median round's mean; "
          f"tokens/s counts real tokens, padding left out)")
    if peak:
        print(f"MFU = (6 x non-embedding parameters x tokens + 12 x layers x hidden x block x tokens + 6 x hidden x vocab "
              f"x masked tokens) / step time / {peak:.3g} (peak dense bf16 FLOP/s of the {torch.cuda.get_device_name()})")
    if args.json_out:
        import json

        Path(args.json_out).write_text(json.dumps({
            "shape": args.shape, "batch_size": args.batch_size, "block_size": args.block_size, "bf16": args.bf16,
            "device": torch.cuda.get_device_name() if cuda else "cpu", "workers": args.workers, "steps": args.steps,
            "rounds": args.rounds, "torch": torch.__version__, "paths": rows}, indent=1))
    return rates


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="miniroberta")
    parser.add_argument("--batch_size", type=checks.bounded(int, 1, 65536), default=32)
    parser.add_argument("--block_size", type=checks.bounded(int, 8, 1_048_576), default=128)
    parser.add_argument("--steps", type=checks.bounded(int, 1, 10**6), default=8, help="timed steps per path per round")
    parser.add_argument("--rounds", type=checks.bounded(int, 1, 1000), default=3)
    parser.add_argument("--warmup", type=checks.bounded(int, 0, 10**5), default=2)
    parser.add_argument("--corpus", default=None, help="a .txt corpus, one document per line (default: WikiText-2 train "
                                                         "from ../shared/data, else the embedded corpus)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or vocab.txt (default: the shape's, from ../shared/data)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--fused_adamw", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--allow_graph_breaks", action="store_true",
                        help="with --compile: leave dynamo's default, which breaks the graph at the sparse selection "
                             "(the behaviour before trace_sparse_selection_when_compiled), for comparison")
    parser.add_argument("--paths", default="stock,packed,ours", help="any of stock, packed, ours, rtd")
    parser.add_argument("--generator_size", type=checks.bounded(float, 0.01, 1), default=0.25, help="rtd path: the generator's width as a fraction")
    parser.add_argument("--speedups_for", choices=("all", "ours"), default="all",
                        help="which paths get --fused_adamw and --compile: every path (the default: isolates what packing "
                             "and sparse prediction give) or ours only (the stock path as Hugging Face runs it)")
    parser.add_argument("--num_proc", default="1",
                        help="data_prep worker processes (1: this process, the tokenizer on every core, the recipes' "
                             "default); a comma list (1,2,4) measures each in turn")
    parser.add_argument("--data_prep_files", default=None,
                        help="corpus for the data_prep figure: files, globs or a folder, as --train_files takes them "
                             "(default: --corpus), e.g. '../shared/data/pretrain-corpus/*/*.txt.gz' (162 MB)")
    parser.add_argument("--skip_data_prep", action="store_true")
    parser.add_argument("--skip_training", action="store_true", help="only the data_prep figure")
    parser.add_argument("--ladder", action="store_true", help="each lever of the GPU path in turn (see above)")
    parser.add_argument("--ladder_paths", default=",".join(LADDER), help=f"with --ladder: any of {', '.join(LADDER)}")
    parser.add_argument("--workers", type=checks.bounded(int, 0, 1024), default=4, help="with --ladder: collation processes of the workers path")
    parser.add_argument("--json_out", default=None, help="with --ladder: also write its table to this JSON file")
    args = parser.parse_args(argv)
    args.ladder_paths = [p for p in args.ladder_paths.split(",") if p]
    if args.ladder and (not args.ladder_paths or set(args.ladder_paths) - set(LADDER)):
        raise UserError(f"--ladder_paths: choose from {', '.join(LADDER)}; got {','.join(args.ladder_paths)!r}")
    unknown = [p for p in args.paths.split(",") if p not in ("stock", "packed", "ours", "rtd")]
    if unknown or not args.paths:
        raise UserError(f"--paths: choose from stock, packed, ours, rtd; got {args.paths!r}")
    try:
        num_procs = [int(n) for n in args.num_proc.split(",")]
    except ValueError:
        raise UserError(f"--num_proc must be a number or a comma list of numbers (1,2,4), got {args.num_proc!r}") from None
    for num_proc in num_procs:
        checks.in_range(num_proc, "--num_proc", 1, 1024, integer=True)

    from small_encoders.data_prep.tokenizer import load_tokenizer

    tokenizer_path = SHAPES[args.shape][3]
    if args.corpus is None:
        args.corpus = str(SHARED / "wikitext-2" / "train.txt")
        if not Path(args.corpus).exists():
            from small_encoders.data_prep.embedded_corpus import build_embedded_corpus

            args.corpus = str(build_embedded_corpus()[0])
    elif not Path(args.corpus).is_file():
        raise UserError(f"--corpus {args.corpus}: no such file (a .txt corpus, one document per line)")
    tokenizer = load_tokenizer(args.tokenizer or tokenizer_path, "--tokenizer")
    if args.ladder:
        measure_ladder(args, tokenizer)
    elif not args.skip_training:
        measure_training(args, tokenizer)
    if not args.skip_data_prep:
        for num_proc in num_procs:
            megabytes, seconds, blocks, cores = measure_data_prep(args.data_prep_files or args.corpus, tokenizer, args.block_size, num_proc)
            print(f"data_prep: {megabytes:.2f} MB of text tokenized and packed into {blocks:,} blocks in {seconds:.1f} s "
                  f"= {megabytes / seconds:.2f} MB/s with num_proc={num_proc}{' (in this process)' if num_proc <= 1 else ''}, "
                  f"{cores:.1f} of {os.cpu_count()} cores busy")


if __name__ == "__main__":
    sys.exit(main())
