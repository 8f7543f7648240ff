"""Fine-tune and evaluate a pretrained encoder on GLUE with `Trainer`.

    python eval/run_glue.py --model_name_or_path runs/miniroberta --task_name sst2 --output_dir out/glue
    python eval/run_glue.py --model_name_or_path DIR --task_name all --data_dir ../shared/data/glue --seeds 1,2,3
    python eval/run_glue.py --model_name_or_path DIR --task_name rte --lora_r 8

Each seed fine-tunes from the same checkpoint; the JSON result (OUT/TASK.json) holds the metrics of
every seed, their median and spread (max - min), the hyperparameters, the model, the data and the
commit. `--task_name all` runs every task whose data is present and writes OUT/summary.md.
`--random_init` trains the same architecture from random weights: the no-pretraining baseline.
`--save_model DIR` keeps the fine-tuned model of the median seed (with the task's label names in its
config and the tokenizer), loadable with `AutoModelForSequenceClassification` and by `demo/app.py`.
`--learning_rate 1e-4,3e-4,1e-3` sweeps: the first seed is fine-tuned at each rate, and the rate with its best
dev score (the task's GLUE score: the mean of its metrics) trains the other seeds; the JSON records every rate's
score and the one chosen (`learning_rate_sweep`), and `hyperparameters.learning_rate` is the chosen rate.
"""

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import source_commit
from small_encoders.eval.glue_data import LABEL_NAMES, TASKS, available_tasks, eval_splits, load_glue
from small_encoders.eval.loading import float32_weights, load_under_new_head

LORA_TARGETS = {"small_encoder": ["qkv", "out"], "roberta": ["query", "key", "value"], "bert": ["query", "key", "value"]}


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--task_name", required=True, help=f"one of {', '.join(TASKS)}, or all")
    parser.add_argument("--output_dir", default="runs/glue")
    parser.add_argument("--data_dir", default=None, help="folder of GLUE TSV folders (CoLA/, SST-2/, ...); default: the Hub")
    parser.add_argument("--learning_rate", default="5e-5",
                        help="a rate, or comma-separated rates to sweep (e.g. 1e-4,3e-4,1e-3): the first seed is "
                             "fine-tuned at each, and the rate with its best dev score trains the other seeds")
    parser.add_argument("--num_train_epochs", type=checks.bounded(float, 1e-3, 1000), default=3.0)
    parser.add_argument("--per_device_train_batch_size", type=checks.bounded(int, 1, 65536), default=32)
    parser.add_argument("--per_device_eval_batch_size", type=checks.bounded(int, 1, 65536), default=128)
    parser.add_argument("--max_seq_length", type=checks.bounded(int, 2, 1_048_576), default=128)
    parser.add_argument("--weight_decay", type=checks.bounded(float, 0, 100), default=0.01)
    parser.add_argument("--warmup_ratio", type=checks.bounded(float, 0, 0.999), default=0.06)
    parser.add_argument("--max_train_samples", type=checks.bounded(int, 1, 10**10), default=None)
    parser.add_argument("--max_eval_samples", type=checks.bounded(int, 1, 10**10), default=None)
    parser.add_argument("--group_by_length", action="store_true",
                        help="batch training examples of similar length together (less padding, so less compute; the "
                             "suite's cpu protocol uses it)")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds, e.g. 1,2,3")
    parser.add_argument("--lora_r", type=checks.bounded(int, 0, 65536), default=0, help="fine-tune a LoRA adapter of this rank (peft) instead of all weights")
    parser.add_argument("--lora_alpha", type=checks.bounded(int, 1, 65536), default=16)
    parser.add_argument("--random_init", action="store_true", help="same architecture, random weights (no pretraining)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the seeds an interrupted run finished in this --output_dir with the same model and settings")
    parser.add_argument("--bf16", default="auto")
    parser.add_argument("--save_model", default=None, metavar="DIR",
                        help="save the fine-tuned model of the median seed (label names in its config) to DIR "
                             "(DIR/TASK with --task_name all)")
    args = parser.parse_args(argv)
    validate_args(args)
    return args


def validate_args(args):
    """Numbers argparse lets through but training cannot use, each named by its flag."""
    args.learning_rate = learning_rates(args.learning_rate)
    if isinstance(args.learning_rate, list) and args.save_model:
        raise UserError("--save_model keeps one fine-tuned model: give --learning_rate one rate (a sweep's chosen "
                        "rate is in its JSON, under learning_rate_sweep)")
    checks.seed_list(args.seeds)  # the numeric flags were range-checked by their argparse types


def learning_rates(value, flag="--learning_rate"):
    """A rate, or comma-separated rates to sweep, as one float or a list of floats (each > 0, no repeats)."""
    parts = value if isinstance(value, (list, tuple)) else [part.strip() for part in str(value).split(",")]
    rates = [checks.in_range(checks.positive_number(part, flag), flag, 1e-9, 10) for part in parts]
    if len(set(rates)) != len(rates):
        raise UserError(f"{flag} repeats a rate: {value!r}")
    return rates[0] if len(rates) == 1 else rates


def load_config(model_name_or_path, **fields):
    """The model's config (custom code allowed), with `fields` set; a bad path is a UserError naming the flag."""
    from transformers import AutoConfig

    import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family for local folders
    from small_encoders.core.hub import check_source

    check_source(model_name_or_path, "--model_name_or_path")
    try:
        return AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=True, **fields)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a model from --model_name_or_path {model_name_or_path!r}: "
                        f"{str(error).strip().splitlines()[0]}") from None


def readable_length(config, tokenizer):
    """The longest input (in tokens, specials included) that both the model's positions and the tokenizer take."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "position_embedding_type", "absolute") == "absolute":
        # RoBERTa-style models number positions from padding_idx + 1.
        offset = config.pad_token_id + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(positions - offset)
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)
    return min(limits) if limits else None


def cap_max_seq_length(args, tokenizer, entry="--max_seq_length"):
    """Lower args.max_seq_length to what the model and tokenizer can read, with one line saying so."""
    limit = readable_length(load_config(args.model_name_or_path), tokenizer)
    if limit is not None and args.max_seq_length > limit:
        print(f"{entry} {args.max_seq_length} is longer than {args.model_name_or_path} reads; using {limit} "
              f"(its position embeddings and tokenizer stop there)")
        args.max_seq_length = limit
    return args.max_seq_length


def load_model(args, task, seed):
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(seed)
    names = LABEL_NAMES[task]
    labels = dict(num_labels=TASKS[task]["num_labels"], id2label=dict(enumerate(names)),
                  label2id={name: i for i, name in enumerate(names)})
    config = load_config(args.model_name_or_path, **labels)
    if args.random_init:
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=True, **float32_weights())
    else:
        model = load_under_new_head(AutoModelForSequenceClassification, args.model_name_or_path, config=config)
    if args.lora_r:
        from peft import LoraConfig, TaskType, get_peft_model

        targets = LORA_TARGETS.get(config.model_type, ["query", "value"])
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=args.lora_alpha, target_modules=targets))
    return model


SEED_RESULT = "seed_result.json"
HYPERPARAMETERS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "max_seq_length", "weight_decay",
                   "warmup_ratio", "seeds", "max_train_samples", "max_eval_samples", "lora_alpha", "group_by_length")


def tokenize_pairs(tokenizer, batch, max_seq_length):
    """Token ids of a batch of GLUE rows: one sentence, or a pair where the task has a second."""
    pairs = (batch["sentence1"],) if batch["sentence2"][0] is None else (batch["sentence1"], batch["sentence2"])
    return tokenizer(*pairs, truncation=True, max_length=max_seq_length)


def sampling_strategy(group_by_length):
    """TrainingArguments' field for length-grouped batches: `train_sampling_strategy` in newer transformers 5.x,
    `group_by_length` before it."""
    from dataclasses import fields

    from transformers import TrainingArguments

    if not group_by_length:
        return {}
    names = {field.name for field in fields(TrainingArguments)}
    return {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names else {"group_by_length": True}


def seed_fingerprint(args, task, seed, learning_rate):
    """What one seed's figures depend on: task, seed, settings (the rate it trained at), and the starting weights (a
    local folder's files by name, size and modification time; a Hub id as given)."""
    folder = Path(args.model_name_or_path)
    files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()) \
        if folder.is_dir() else None
    fingerprint = {"task": task, "seed": seed, "model": str(args.model_name_or_path), "model_files": files,
                   "random_init": args.random_init, "lora_r": args.lora_r, "data": str(args.data_dir),
                   **{k: getattr(args, k) for k in HYPERPARAMETERS if k != "seeds"}, "learning_rate": learning_rate}
    return json.loads(json.dumps(fingerprint))  # as read back from the file


def glue_score(metrics):
    """A task's one GLUE score from one seed's metrics: the mean of them (MRPC's F1 and accuracy, STS-B's Pearson and
    Spearman, MNLI's matched and mismatched accuracy; the one metric of the other tasks)."""
    return statistics.mean(metrics.values())


def summarize_seeds(seed_metrics):
    """{metric: {"median", "spread"}} over the seeds' metric dicts (spread: max - min)."""
    seed_metrics = list(seed_metrics)
    return {name: {"median": statistics.median(m[name] for m in seed_metrics),
                   "spread": max(m[name] for m in seed_metrics) - min(m[name] for m in seed_metrics)}
            for name in seed_metrics[0]}


def finished_seed(seed_dir, fingerprint):
    """The metrics an earlier run recorded for this seed with the same fingerprint, or None."""
    path = seed_dir / SEED_RESULT
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return recorded["metrics"] if recorded.get("fingerprint") == fingerprint else None


def run_task(args, task, tokenizer):
    """Fine-tune and evaluate one GLUE task for every seed (the first seed at every learning rate when several are
    given, the best rate for the others); the task's record with each seed's metrics and their summary."""
    encoded = encode_task(args, task, tokenizer)
    compute_metrics, metric_source = metrics_function(task)
    started = time.time()
    seeds = checks.seed_list(args.seeds)
    rates = args.learning_rate if isinstance(args.learning_rate, list) else [args.learning_rate]

    def tune(seed, rate, seed_dir):
        return fine_tune_seed(args, task, tokenizer, encoded, compute_metrics, seed, rate, seed_dir, len(rates) > 1)

    per_seed, learning_rate, sweep = {}, rates[0], None
    if len(rates) > 1:
        # The first seed at every rate; the rate with the best dev score trains the other seeds.
        first = seeds.pop(0)
        tried = {rate: tune(first, rate, Path(args.output_dir) / f"{task}-seed{first}-lr{rate:g}") for rate in rates}
        scores = {rate: glue_score(metrics) for rate, metrics in tried.items()}
        learning_rate = max(rates, key=lambda rate: scores[rate] if math.isfinite(scores[rate]) else -math.inf)
        per_seed[first] = tried[learning_rate]
        sweep = {"rates": rates, "seed": first, "scores": {f"{rate:g}": scores[rate] for rate in rates},
                 "chosen": learning_rate}
        print(f"{task}: learning rate {learning_rate:g} chosen on seed {first} ("
              + ", ".join(f"{rate:g}: {score:.4f}" for rate, score in scores.items()) + ")", flush=True)
    for seed in seeds:
        per_seed[seed] = tune(seed, learning_rate, Path(args.output_dir) / f"{task}-seed{seed}")
    summary = summarize_seeds(per_seed.values())
    saved = keep_median_seed(saved_model_dir(args, task), per_seed, TASKS[task]["metrics"][0]) if args.save_model else None
    return {
        "task": task, "model": args.model_name_or_path, "saved_model": saved, "random_init": args.random_init, "lora_r": args.lora_r,
        "data": args.data_dir or "nyu-mll/glue", "train_examples": len(encoded["train"]),
        "eval_examples": {s: len(encoded[s]) for s in eval_splits(task)}, "metric_source": metric_source,
        "per_seed": per_seed, "summary": summary, "seconds": round(time.time() - started, 1), "commit": source_commit(),
        "hyperparameters": {**{k: getattr(args, k) for k in HYPERPARAMETERS}, "learning_rate": learning_rate},
        **({"learning_rate_sweep": sweep} if sweep else {}),
    }


def encode_task(args, task, tokenizer):
    """The task's splits (at most --max_train_samples / --max_eval_samples), tokenized; evaluation splits longest
    first, so each batch pads to its own length (the metrics do not depend on the order)."""
    data = load_glue(task, args.data_dir)
    if args.max_train_samples:
        data["train"] = data["train"].select(range(min(args.max_train_samples, len(data["train"]))))
    for split in eval_splits(task):
        if args.max_eval_samples:
            data[split] = data[split].select(range(min(args.max_eval_samples, len(data[split]))))
    encoded = data.map(lambda batch: tokenize_pairs(tokenizer, batch, args.max_seq_length), batched=True,
                       remove_columns=["sentence1", "sentence2"], desc=f"tokenizing {task}")
    for split in eval_splits(task):
        lengths = [len(ids) for ids in encoded[split]["input_ids"]]
        encoded[split] = encoded[split].select(sorted(range(len(lengths)), key=lambda i: -lengths[i]))
    return encoded


def metrics_function(task):
    """The Trainer's compute_metrics for the task (regression for STS-B, else the class with the largest logit), and
    where its metric comes from."""
    import numpy as np

    from small_encoders.eval.metrics import glue_metric

    compute, metric_source = glue_metric(task)

    def compute_metrics(prediction):
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = logits.squeeze(-1) if task == "stsb" else np.argmax(logits, axis=-1)
        return compute(predicted, prediction.label_ids)

    return compute_metrics, metric_source


def fine_tune_seed(args, task, tokenizer, encoded, compute_metrics, seed, learning_rate, seed_dir, show_rate):
    """One seed's fine-tuning and evaluation (its result kept in seed_dir, so a run cut short resumes from it)."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    fingerprint = seed_fingerprint(args, task, seed, learning_rate)
    earlier = finished_seed(seed_dir, fingerprint) if args.resume and not args.save_model else None  # a saved model needs every seed trained now
    if earlier is not None:
        print(f"{task} seed {seed}: {earlier} (finished by an earlier run: {seed_dir / SEED_RESULT})", flush=True)
        return earlier
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported() if args.bf16 == "auto" else args.bf16 in ("1", "true", "True")
    training_args = TrainingArguments(
        output_dir=str(seed_dir), learning_rate=learning_rate,
        num_train_epochs=args.num_train_epochs, per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size, weight_decay=args.weight_decay,
        warmup_steps=int(args.warmup_ratio * len(encoded["train"]) * args.num_train_epochs / args.per_device_train_batch_size),
        seed=seed, data_seed=seed, save_strategy="no", eval_strategy="no", logging_steps=50, report_to="none",
        bf16=bf16, use_cpu=not torch.cuda.is_available(), **sampling_strategy(args.group_by_length),
        disable_tqdm=getattr(args, "quiet", False),  # eval/glue_jobs.py: a dozen fine-tunings share one terminal
    )
    trainer = Trainer(model=load_model(args, task, seed), args=training_args, train_dataset=encoded["train"],
                      processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_metrics)
    if getattr(args, "quiet", False):  # without progress bars the Trainer prints every log dict instead
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    trainer.train()
    metrics = {}
    for split in eval_splits(task):
        result = trainer.evaluate(encoded[split], metric_key_prefix=split)
        suffix = split.replace("validation", "").lstrip("_")
        for name in TASKS[task]["metrics"]:
            metrics[f"{name}{'_' + suffix if suffix else ''}"] = result[f"{split}_{name}"]
    print(f"{task} seed {seed}{f' (learning rate {learning_rate:g})' if show_rate else ''}: {metrics}", flush=True)
    seed_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(seed_dir / SEED_RESULT, json.dumps({"fingerprint": fingerprint, "metrics": metrics}, indent=1))
    if args.save_model:
        save_seed_model(trainer, tokenizer, saved_model_dir(args, task), seed)
    return metrics


def saved_model_dir(args, task):
    return Path(args.save_model) / task if args.task_name == "all" else Path(args.save_model)


def save_seed_model(trainer, tokenizer, folder, seed):
    """Save one seed's fine-tuned model (merged, for LoRA) and the tokenizer next to the final folder."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # peft: a plain model, loadable without peft
        model = model.merge_and_unload()
    target = folder.parent / f".{folder.name}-seed{seed}"
    shutil.rmtree(target, ignore_errors=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def keep_median_seed(folder, per_seed, metric):
    """Keep the saved model of the seed whose `metric` is the median (the lower one for an even count)."""
    ranked = sorted(per_seed, key=lambda s: per_seed[s][metric])
    chosen = ranked[(len(ranked) - 1) // 2]
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for seed in per_seed:
        staged = folder.parent / f".{folder.name}-seed{seed}"
        if seed == chosen:
            staged.rename(folder)
        else:
            shutil.rmtree(staged, ignore_errors=True)
    print(f"saved the fine-tuned model of seed {chosen} ({metric} {per_seed[chosen][metric]:.4f}, the median) to {folder}")
    return {"path": str(folder), "seed": chosen}


def summary_table(results):
    lines = ["| task | metric | median | spread | seeds | train examples |", "|---|---|---|---|---|---|"]
    for result in results:
        for name, values in result["summary"].items():
            lines.append(f"| {result['task']} | {name} | {values['median']:.4f} | {values['spread']:.4f} | "
                         f"{result['hyperparameters']['seeds']} | {result['train_examples']:,} |")
    return "\n".join(lines) + "\n"


@entry_point
def main(argv=None):
    args = parse_args(argv)
    from small_encoders.core.hub import check_source

    check_source(args.model_name_or_path, "--model_name_or_path")  # before the heavy imports: a typo fails at once
    from small_encoders.data_prep.tokenizer import load_tokenizer

    if args.task_name == "all":
        if not args.data_dir:
            raise UserError("--task_name all reads local data: pass --data_dir (folder of GLUE TSV folders)")
        tasks = available_tasks(args.data_dir)
        if not tasks:
            raise UserError(f"no GLUE task has both train and dev files under {args.data_dir}")
    else:
        if args.task_name not in TASKS:
            raise UserError(f"unknown GLUE task {args.task_name!r}; choose one of {', '.join(TASKS)} or all")
        tasks = [args.task_name]
    load_config(args.model_name_or_path)  # a missing model fails here, in one line, before anything is written
    tokenizer = load_tokenizer(args.model_name_or_path, "--model_name_or_path")
    cap_max_seq_length(args, tokenizer)
    out = checks.output_folder(args.output_dir)
    results = []
    for task in tasks:
        result = run_task(args, task, tokenizer)  # the folder is made once a task has data that reads (no empty folder)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / f"{task}.json", json.dumps(result, indent=1))
        results.append(result)
        print(f"{task}: " + ", ".join(f"{k} {v['median']:.4f} (spread {v['spread']:.4f})" for k, v in result["summary"].items()))
    if args.task_name == "all":
        write_atomic(out / "summary.md", summary_table(results))
        print(summary_table(results))


if __name__ == "__main__":
    sys.exit(main())
