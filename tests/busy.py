"""Run the test suite while other work keeps every core busy, to check that no test depends on how fast or how idle
the machine is (CI runs on whichever machine submits, however loaded it is).

    python tests/busy.py                        # the README's test command, every core kept busy
    python tests/busy.py tests/test_budget.py   # some tests only (any pytest arguments)
    python tests/busy.py --load 1 -- -x tests   # one busy process instead of one per core

The load is one process per core (or `--load N`) spinning in pure Python. Each one stops by itself when the tests end,
when this script dies (it watches its parent), or after `--max_minutes` at the latest, so nothing is left running.
Exits with pytest's exit status.
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def spin(parent, deadline):
    """Burn one core until the deadline or until the parent process is gone."""
    while time.monotonic() < deadline and os.getppid() == parent:
        for _ in range(200_000):
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2,
                        help="busy processes to run beside the tests (default: one per core)")
    parser.add_argument("--max_minutes", type=float, default=90.0,
                        help="the busy processes stop after this long even if the tests have not ended (default 90)")
    args, pytest_args = parser.parse_known_args(argv)  # everything else goes to pytest
    pytest_args = [a for a in pytest_args if a != "--"] or ["-q", "-n", "2", "--dist", "worksteal", "tests"]
    if not 0 <= args.load <= 256 or not 0 < args.max_minutes <= 24 * 60:
        parser.error("--load must be within 0-256 and --max_minutes within 0-1440")
    deadline = time.monotonic() + args.max_minutes * 60
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    load = [context.Process(target=spin, args=(os.getpid(), deadline), daemon=True) for _ in range(args.load)]
    for process in load:
        process.start()
    print(f"busy: {len(load)} spinning process(es) beside the tests on {os.cpu_count()} core(s), "
          f"stopping after {args.max_minutes:g} minutes at the latest", flush=True)
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", *pytest_args],
                              cwd=REPO_ROOT, env=environment)
    finally:
        for process in load:
            process.terminate()
        for process in load:
            process.join(timeout=10)
    print(f"busy: tests ended with exit status {done.returncode} after {(time.monotonic() - started) / 60:.1f} "
          f"minutes under load", flush=True)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
