"""Many GLUE fine-tunings at once: each (side, task, learning rate, seed) is one job for a pool of worker processes.

A 20M-parameter model fine-tuned at batch 32 uses a few percent of a GPU, so one GPU runs a dozen or more
fine-tunings side by side in about the time of the longest one (on 2026-12-04 an H200 ran fourteen at once and
finished SST-2's 2,100 steps in about 150 s). The suite's `gpu` protocol measures the model and its random-init
floor this way; `--jobs N` does it for any protocol.

The learning-rate sweep is kept as eval/run_glue.py does it: the first seed is fine-tuned at every rate (all of
those run at once), and as soon as a task's rates are all in, the rate with the best dev score trains the other
seeds. Every finished fine-tuning is appended to a JSON-lines record at once (and its seed_result.json kept in the
scratch folder, where a second run with the same settings finds it), so an interrupted or timed-out suite keeps
what finished. At a deadline the pool is stopped; a task whose sweep did not finish reports the best of the rates
that did, and says so.
"""

import json
import math
import multiprocessing
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SIDES = ("pretrained", "floor")


@dataclass(frozen=True)
class Job:
    side: str  # "pretrained" or "floor" (random init)
    task: str
    rate: float
    seed: int

    def folder(self, scratch):
        return Path(scratch) / self.side / f"{self.task}-lr{self.rate:g}"


def task_epochs(settings, task):
    """The protocol's epochs for a task (`task_epochs` overrides `num_train_epochs`: the gpu protocol's SST-2 runs 1)."""
    return float((settings.get("task_epochs") or {}).get(task, settings["num_train_epochs"]))


def expected_cost(settings, data_dir, task):
    """Training examples x epochs, to start the longest fine-tunings first (the rows of the train file, counted)."""
    from eval.glue_data import TASKS

    path = Path(data_dir) / TASKS[task]["folder"] / "train.tsv"
    try:
        with open(path, "rb") as handle:
            rows = sum(1 for _ in handle)
    except OSError:
        rows = 0
    if settings.get("max_train_samples"):
        rows = min(rows, settings["max_train_samples"])
    return rows * task_epochs(settings, task)


def die_with_parent():
    """Ask Linux to end this worker when the process that started it dies: a suite stopped with kill (SIGTERM) left its
    spawned fine-tuning processes running on, orphaned, for hours (seen 2026-12-04). Elsewhere a no-op."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_setup(threads):
    """A worker: `threads` torch threads, no progress bars (a dozen processes share one terminal); it ends with the
    suite."""
    die_with_parent()
    os.environ["TQDM_DISABLE"] = "1"  # before tqdm is imported: it reads its TQDM_ settings then
    import torch

    torch.set_num_threads(threads)
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    disable_progress_bar()
    hf_logging.disable_progress_bar()


_TOKENIZERS = {}


def run_job(model_path, data_dir, settings, job, scratch):
    """One fine-tuning in a worker: eval/run_glue.py's run_task at one rate and one seed; returns (job, result)."""
    from data_prep.tokenizer import load_tokenizer
    from eval.run_glue import HYPERPARAMETERS, parse_args, run_task

    if model_path not in _TOKENIZERS:
        _TOKENIZERS[model_path] = load_tokenizer(model_path, "--model_name_or_path")
    args = parse_args(["--model_name_or_path", str(model_path), "--task_name", job.task, "--output_dir",
                       str(job.folder(scratch)), "--data_dir", str(data_dir), "--resume"])
    for key in HYPERPARAMETERS:
        if key in settings:
            setattr(args, key, settings[key])
    args.learning_rate, args.seeds = job.rate, str(job.seed)
    args.num_train_epochs = task_epochs(settings, job.task)
    args.random_init = job.side == "floor"
    args.quiet = True
    return job, run_task(args, job.task, _TOKENIZERS[model_path])


def first_seed_score(result):
    from eval.run_glue import glue_score

    return glue_score(next(iter(result["per_seed"].values())))


def assemble(results, rates, seeds):
    """One task's result in run_task's form from its jobs' results ({(rate, seed): result}); None if none finished."""
    from eval.run_glue import summarize_seeds

    first = seeds[0]
    tried = {rate: results[rate, first] for rate in rates if (rate, first) in results}
    if not tried:
        return None
    scores = {rate: first_seed_score(result) for rate, result in tried.items()}
    chosen = max(tried, key=lambda rate: scores[rate] if math.isfinite(scores[rate]) else -math.inf)
    per_seed = {first: next(iter(tried[chosen]["per_seed"].values()))}
    for seed in seeds[1:]:
        if (chosen, seed) in results:
            per_seed[seed] = next(iter(results[chosen, seed]["per_seed"].values()))
    base = tried[chosen]
    assembled = dict(base, per_seed=per_seed, summary=summarize_seeds(per_seed.values()),
                     seconds=round(sum(result["seconds"] for result in results.values()), 1),
                     hyperparameters=dict(base["hyperparameters"], seeds=",".join(map(str, per_seed)), learning_rate=chosen))
    if len(rates) > 1:
        assembled["learning_rate_sweep"] = {"rates": list(tried), "seed": first,
                                            "scores": {f"{rate:g}": scores[rate] for rate in tried}, "chosen": chosen}
        if len(tried) < len(rates):
            assembled["learning_rate_sweep"]["unfinished_rates"] = [rate for rate in rates if rate not in tried]
    if len(per_seed) < len(seeds):
        assembled["unfinished_seeds"] = [seed for seed in seeds if seed not in per_seed]
    return assembled


def default_workers():
    """Parallel fine-tunings: one per CPU core on a GPU machine (each is light on the GPU and needs a core to feed
    it); two on a CPU (one thread each, as the cpu protocol's --parallel)."""
    import torch

    return max(1, os.cpu_count() or 1) if torch.cuda.is_available() else min(2, os.cpu_count() or 1)


def fine_tune_all(model_path, data_dir, settings, tasks, sides, scratch, workers=None, deadline=None, record=None):
    """Every task for every side, `workers` at a time. Returns ({side: {task: result}}, status) where status lists
    the jobs that did not finish ("unfinished": stopped at the deadline; "failed": with their error)."""
    workers = workers or default_workers()
    rates = settings["learning_rate"] if isinstance(settings["learning_rate"], list) else [settings["learning_rate"]]
    from cli.checks import seed_list

    seeds = seed_list(settings["seeds"])
    order = sorted(tasks, key=lambda task: -expected_cost(settings, data_dir, task))
    first_jobs = [Job(side, task, rate, seeds[0]) for task in order for side in sides for rate in rates]
    done, failed, lock, finished = {}, {}, threading.Lock(), threading.Event()
    submitted = set()
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=worker_setup, initargs=(threads,))
    started = time.time()

    def submit(job):
        submitted.add(job)
        pool.apply_async(run_job, (str(model_path), str(data_dir), settings, job, str(scratch)),
                         callback=on_done, error_callback=lambda error, job=job: on_failed(job, error))

    def check_finished():
        if len(done) + len(failed) == len(submitted):
            finished.set()

    def on_done(outcome):
        job, result = outcome
        with lock:
            done[job] = result
            if record:
                record({**asdict(job), "metrics": next(iter(result["per_seed"].values())), "seconds": result["seconds"],
                        "elapsed": round(time.time() - started, 1)})
            sweep = [Job(job.side, job.task, rate, seeds[0]) for rate in rates]
            if job.seed == seeds[0] and all(j in done or j in failed for j in sweep) and len(seeds) > 1:
                found = {j.rate: done[j] for j in sweep if j in done}
                if found:
                    chosen = assemble({(rate, seeds[0]): r for rate, r in found.items()}, rates, seeds)["hyperparameters"]["learning_rate"]
                    for seed in seeds[1:]:
                        submit(Job(job.side, job.task, chosen, seed))
            check_finished()

    def on_failed(job, error):
        with lock:
            failed[job] = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            print(f"warning: fine-tuning {job.side} {job.task} at {job.rate:g}, seed {job.seed} failed: {failed[job]}", flush=True)
            check_finished()

    with lock:
        for job in first_jobs:
            submit(job)
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    completed = finished.wait(timeout)
    if completed:
        pool.close()
    else:
        print(f"deadline: stopping the fine-tunings still running ({len(submitted) - len(done) - len(failed)} of "
              f"{len(submitted)} jobs unfinished); the results keep what finished", flush=True)
    pool.terminate()
    pool.join()
    with lock:
        results = {side: {} for side in sides}
        for side in sides:
            for task in tasks:
                by_rate_seed = {(job.rate, job.seed): result for job, result in done.items() if job.side == side and job.task == task}
                assembled = assemble(by_rate_seed, rates, seeds)
                if assembled is not None:
                    results[side][task] = assembled
        status = {"jobs": len(submitted), "finished": len(done), "seconds": round(time.time() - started, 1),
                  "workers": workers,
                  "unfinished": [asdict(job) for job in submitted if job not in done and job not in failed],
                  "failed": [dict(asdict(job), error=message) for job, message in failed.items()]}
    return results, status


def jsonl_recorder(path):
    """A record(line) that appends one JSON line per finished fine-tuning to `path` (written at once, flushed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def record(line):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    return record
