"""Time from the command to the first optimizer step, and the peak memory until then, of `recipes/pretrain_mlm.py`.

    python benchmarks/time_to_first_step.py --recipe tuned-20m --train_files 'corpus/*.txt.gz' \
        --validation_files valid.txt --variants streaming,in-memory,in-memory-all-text [--copies 10]

Each variant runs the training script cold (fresh datasets, tokenizer and cache folders) with one optimizer step and
stops it at its first logged loss: `streaming` is `--streaming true`, `in-memory` is `--streaming false` (the corpus
loaded, tokenized and packed into the `datasets` cache first), `in-memory-all-text` also trains the tokenizer on every
document (`--tokenizer_train_samples null`: the path before streaming and sampling existed). `--copies N` makes a
corpus N times the size from the same files (symbolic links under new names). Memory is the peak resident set of the
process tree (sampled every 0.2 s), as `ps` reports it.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point

REPO_ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "streaming": ["--streaming", "true"],
    "in-memory": ["--streaming", "false"],
    "in-memory-all-text": ["--streaming", "false", "--tokenizer_train_samples", "null"],
}


def tree_rss_bytes(pid):
    """Resident memory of a process and its descendants (Linux /proc)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack.extend(children.get(current, []))
    return total


def copied_corpus(files, copies, folder):
    """`copies` links to each file under new names: a corpus `copies` times the size, read as that many files."""
    from small_encoders.data_prep.corpus import expand_files

    sources = expand_files(files, "--train_files")
    for copy in range(copies):
        for index, source in enumerate(sources):
            name = Path(source).name
            os.symlink(os.path.abspath(source), Path(folder) / f"c{copy:02d}-{index:04d}-{name}")
    return str(Path(folder) / "*")


def first_step(command, env, timeout):
    """(seconds to the first logged loss or None, peak bytes, the output's last lines)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               start_new_session=True)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_bytes(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds, tail = None, []
    timer = threading.Timer(timeout, lambda: os.killpg(process.pid, 9))
    timer.start()
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-15:]
        if "'loss'" in line:
            seconds = time.perf_counter() - started
            break
    timer.cancel()
    done.set()
    sampler.join()
    try:
        os.killpg(process.pid, 9)
    except ProcessLookupError:
        pass
    process.wait()
    return seconds, peak[0], tail


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="tuned-20m")
    parser.add_argument("--train_files", required=True)
    parser.add_argument("--validation_files", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--copies", type=checks.bounded(int, 1, 1000), default=1, help="the corpus this many times over (the same files)")
    parser.add_argument("--timeout_minutes", type=checks.bounded(float, 0.1, 10_000), default=20.0, help="a variant still short of its first step "
                                                                            "then is stopped and reported as such")
    parser.add_argument("--extra", default="", help="more overrides for the training script, e.g. '--block_size 128'")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        raise UserError(f"--variants: choose from {', '.join(VARIANTS)}; got {args.variants!r}")
    print(f"recipe {args.recipe}, corpus {args.train_files} x {args.copies}, {os.cpu_count()} cores")
    print(f"{'variant':<20} {'first step':>12} {'peak memory':>12}")
    with tempfile.TemporaryDirectory() as scratch:
        train_files = args.train_files
        if args.copies > 1:
            (Path(scratch) / "corpus").mkdir()
            train_files = copied_corpus(args.train_files, args.copies, Path(scratch) / "corpus")
        for variant in variants:
            cold = Path(scratch) / variant
            env = dict(os.environ, SMALL_ENCODERS_CACHE=str(cold / "cache"), HF_DATASETS_CACHE=str(cold / "datasets"),
                       HF_MODULES_CACHE=str(cold / "modules"), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
            command = [sys.executable, str(REPO_ROOT / "recipes" / "pretrain_mlm.py"), "--recipe", args.recipe,
                       "--train_files", train_files, "--validation_files", args.validation_files, "--time_budget", "null",
                       "--max_steps", "1", "--logging_steps", "1", "--eval_steps", "1000", "--save_steps", "1000",
                       "--report_to", "none", "--output_dir", str(cold / "run"), *VARIANTS[variant], *args.extra.split()]
            seconds, peak, tail = first_step(command, env, args.timeout_minutes * 60)
            shown = f"{seconds:.1f} s" if seconds is not None else f"> {args.timeout_minutes:g} min"
            print(f"{variant:<20} {shown:>12} {peak / 2**30:>10.2f} GiB", flush=True)
            if seconds is None and not any("error" in line for line in tail):
                continue
            if seconds is None:
                print("\n".join(tail))


if __name__ == "__main__":
    sys.exit(main())
