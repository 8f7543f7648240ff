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
    from small_encoders.eval.glue_data import TASKS

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


def run_job(model_path, data_dir, settings, job, scratch, random_init=None):
    """One fine-tuning in a worker: eval/run_glue.py's run_task at one rate and one seed; returns (job, result).
    `random_init` None: the floor side's weights are random (with a baseline model they are that model's own)."""
    from small_encoders.data_prep.tokenizer import load_tokenizer
    from small_encoders.eval.run_glue import HYPERPARAMETERS, parse_args, run_task

    if model_path not in _TOKENIZERS:
        _TOKENIZERS[model_path] = load_tokenizer(model_path, "--model_name_or_path")
    args = parse_args(["--model_name_or_path", str(model_path), "--task_name", job.task, "--output_dir",
                       str(job.folder(scratch)), "--data_dir", str(data_dir), "--resume"])
    for key in HYPERPARAMETERS:
        if key in settings:
            setattr(args, key, settings[key])
    args.learning_rate, args.seeds = job.rate, str(job.seed)
    args.num_train_epochs = task_epochs(settings, job.task)
    args.random_init = job.side == "floor" if random_init is None else random_init
    args.quiet = True
    return job, run_task(args, job.task, _TOKENIZERS[model_path])


def first_seed_score(result):
    from small_encoders.eval.run_glue import glue_score

    return glue_score(next(iter(result["per_seed"].values())))


def assemble(results, rates, seeds):
    """One task's result in run_task's form from its jobs' results ({(rate, seed): result}); None if none finished."""
    from small_encoders.eval.run_glue import summarize_seeds

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


GPU_GIB_PER_JOB = 2.0  # a fine-tuning process on a GPU: its CUDA context (about 0.5 GiB), a small model, batch 32, AdamW


def default_workers(gpu_free_bytes=None, cores=None):
    """Parallel fine-tunings: on a GPU machine one per CPU core (each is light on the GPU and needs a core to feed it),
    but no more than the GPU's free memory holds at GPU_GIB_PER_JOB each (a 192-core node would otherwise start 192
    CUDA processes on one GPU and run out of its memory); two on a CPU (one thread each, as the cpu protocol's
    --parallel). `--jobs N` sets the number by hand."""
    import torch

    cores = max(1, cores or os.cpu_count() or 1)
    if gpu_free_bytes is None and torch.cuda.is_available():
        gpu_free_bytes = torch.cuda.mem_get_info(0)[0]
    if gpu_free_bytes is None:
        return min(2, cores)
    return max(1, min(cores, int(gpu_free_bytes / (GPU_GIB_PER_JOB * 2**30))))


def exit_reason(code):
    """Why a worker process ended, in words."""
    import signal

    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        hint = " (the system's out-of-memory killer sends it when memory runs out)" if -code == signal.SIGKILL else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process ended with exit code {code}"


def worker_loop(connection, threads, runner):
    """A worker: receives (arguments) for `runner`, sends back ("done", outcome) or ("failed", message), until None."""
    worker_setup(threads)
    while True:
        task = connection.recv()
        if task is None:
            return
        try:
            connection.send(("done", runner(*task)))
        except BaseException as error:  # the job fails, the worker goes on with the next one
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            connection.send(("failed", message))


class WorkerPool:
    """`size` worker processes, each given one job at a time. Unlike `multiprocessing.Pool`, it watches every worker:
    one that dies (killed by the system when memory runs out, or crashed) fails the job it held with the reason, and a
    new worker takes its place; a Pool lost that job and waited for it forever."""

    def __init__(self, size, threads, runner, context):
        self.size, self.threads, self.runner, self.context = size, threads, runner, context
        self.queue, self.idle, self.busy = [], [], {}  # busy: {worker: (process, connection, job)}
        self.workers = {}
        for _ in range(size):
            self.start_worker()

    def start_worker(self):
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker_loop, args=(child, self.threads, self.runner), daemon=True)
        process.start()
        child.close()
        self.workers[process.sentinel] = (process, parent)
        self.idle.append(process.sentinel)

    def submit(self, job, arguments):
        self.queue.append((job, arguments))

    def dispatch(self):
        while self.queue and self.idle:
            key = self.idle.pop()
            job, arguments = self.queue.pop(0)
            self.workers[key][1].send(arguments)
            self.busy[key] = job

    def pending(self):
        return len(self.queue) + len(self.busy)

    def wait(self, timeout):
        """Jobs that ended within `timeout` seconds: [(job, "done", outcome) or (job, "failed", message)]."""
        from multiprocessing.connection import wait

        self.dispatch()
        if not self.busy:
            return []
        ready = wait([self.workers[key][1] for key in self.busy] + list(self.busy), timeout)
        ended = []
        for key in list(self.busy):
            process, connection = self.workers[key]
            if connection in ready or (key in ready and connection.poll()):
                try:
                    kind, payload = connection.recv()
                except (EOFError, OSError):
                    kind, payload = None, None
                if kind is not None:
                    ended.append((self.busy.pop(key), kind, payload))
                    self.idle.append(key)
                    continue
            if key in ready or not process.is_alive():
                process.join(1)
                ended.append((self.busy.pop(key), "failed", exit_reason(process.exitcode)))
                connection.close()
                del self.workers[key]
                self.start_worker()
        self.dispatch()
        return ended

    def stop(self):
        for process, connection in self.workers.values():
            if process.is_alive():
                process.terminate()
        for process, connection in self.workers.values():
            process.join(5)
            connection.close()


def fine_tune_all(model_path, data_dir, settings, tasks, sides, scratch, workers=None, deadline=None, record=None,
                  runner=None, baseline=None):
    """Every task for every side, `workers` at a time; with `baseline` (a model folder or Hub id) the floor side is
    that model fine-tuned from its own weights instead of `model_path`'s architecture from random ones. Returns ({side: {task: result}}, status) where status lists
    the jobs that did not finish ("unfinished": stopped at the deadline; "failed": with their error, a worker that died
    included). `runner` stands in for run_job (tests)."""
    workers = workers or default_workers()
    rates = settings["learning_rate"] if isinstance(settings["learning_rate"], list) else [settings["learning_rate"]]
    from small_encoders.core.checks import seed_list

    seeds = seed_list(settings["seeds"])
    order = sorted(tasks, key=lambda task: -expected_cost(settings, data_dir, task))
    first_jobs = [Job(side, task, rate, seeds[0]) for task in order for side in sides for rate in rates]
    done, failed, submitted = {}, {}, []
    import torch

    # the threads this process would compute with, shared among the workers (an OMP_NUM_THREADS or a test runner's
    # limit holds for the pool too, and one job alone computes what the sequential way computes, to the last bit)
    threads = max(1, torch.get_num_threads() // workers)
    pool = WorkerPool(workers, threads, runner or run_job, multiprocessing.get_context("spawn"))
    started = time.time()

    def submit(job):
        submitted.append(job)
        if baseline is not None and job.side == "floor":
            pool.submit(job, (str(baseline), str(data_dir), settings, job, str(scratch), False))
        else:
            pool.submit(job, (str(model_path), str(data_dir), settings, job, str(scratch)))

    def start_other_seeds(job):
        """Once a task's first-seed sweep has ended (each rate finished or failed), its best rate trains the other
        seeds; a sweep whose rates all failed has nothing to choose from."""
        sweep = [Job(job.side, job.task, rate, seeds[0]) for rate in rates]
        if job.seed != seeds[0] or len(seeds) < 2 or not all(j in done or j in failed for j in sweep):
            return
        found = {j.rate: done[j] for j in sweep if j in done}
        if found:
            chosen = assemble({(rate, seeds[0]): r for rate, r in found.items()}, rates, seeds)["hyperparameters"]["learning_rate"]
            for seed in seeds[1:]:
                submit(Job(job.side, job.task, chosen, seed))

    try:
        for job in first_jobs:
            submit(job)
        stopped = False
        while pool.pending():
            timeout = None if deadline is None else deadline - time.time()
            if timeout is not None and timeout <= 0:
                stopped = True
                break
            for job, kind, payload in pool.wait(timeout if timeout is None else min(timeout, 60.0)):
                if kind == "done":
                    _, result = payload
                    done[job] = result
                    if record:
                        record({**asdict(job), "metrics": next(iter(result["per_seed"].values())),
                                "seconds": result["seconds"], "elapsed": round(time.time() - started, 1)})
                else:
                    failed[job] = payload
                    print(f"warning: fine-tuning {job.side} {job.task} at {job.rate:g}, seed {job.seed} failed: {payload}",
                          flush=True)
                start_other_seeds(job)
        if stopped:
            print(f"deadline: stopping the fine-tunings still running ({len(submitted) - len(done) - len(failed)} of "
                  f"{len(submitted)} jobs unfinished); the results keep what finished", flush=True)
    finally:
        pool.stop()
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
