"""How long a killed streaming run takes to train again after `--resume_from_checkpoint`, at several steps.

    python benchmarks/stream_resume.py --train_files '../shared/data/pretrain-corpus/wikipedia/*.txt.gz' \
        --steps 50,500 [--modes state,replay] [--key value ...]

For each step N it trains `recipes/pretrain_mlm.py` (tuned-20m's smoke shape, streamed, unless other flags follow) to
a checkpoint at step N and kills it there, then resumes it and stops it at its first optimizer step after the resume.
It prints the resume's time from the command to that step and, of it, the time inside `Trainer.train` before the step
(where a replayed stream re-reads and re-tokenizes the N steps' data). `state` resumes from the stream's saved state
(`stream_state_<process>.pt`, the default); `replay` deletes that file first, which makes the run read the stream again
from its start to step N (how every streamed resume worked before the state was saved).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point

REPO_ROOT = Path(__file__).resolve().parents[1]

SCRIPT = REPO_ROOT / "recipes" / "pretrain_mlm.py"
# Runs the training script after one patch: "kill N" ends the process right after checkpoint N is written; "first"
# prints the seconds from the start to train() and to the first step after it, then ends the process.
WRAPPER = textwrap.dedent(
    """
    import os, runpy, signal, sys, time
    started = time.perf_counter()
    from small_encoders.recipes.training import MLMTrainer
    mode, step, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "kill":
        save = MLMTrainer._save_checkpoint
        def save_then_die(self, *args, **kwargs):
            save(self, *args, **kwargs)
            if self.state.global_step == step:
                os.kill(os.getpid(), signal.SIGKILL)
        MLMTrainer._save_checkpoint = save_then_die
    else:
        from transformers import TrainerCallback
        class FirstStep(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                self.begun = time.perf_counter()
            def on_step_end(self, args, state, control, **kwargs):
                now = time.perf_counter()
                print(f"RESUMED {state.global_step} {now - started:.2f} {now - self.begun:.2f}", flush=True)
                os._exit(0)
        train = MLMTrainer.train
        def timed(self, *args, **kwargs):
            self.add_callback(FirstStep())
            return train(self, *args, **kwargs)
        MLMTrainer.train = timed
    sys.argv = [script] + sys.argv[4:]
    runpy.run_path(script, run_name="__main__")
    """
)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_files", required=True, help="the corpus to stream (globs, comma-separated)")
    parser.add_argument("--steps", default="50,500", help="comma-separated steps to kill and resume at")
    parser.add_argument("--modes", default="state,replay", help="state (the saved stream state), replay (read again)")
    parser.add_argument("--recipe", default="tuned-20m")
    parser.add_argument("--output_dir", default=None, help="where the runs go (default: a temporary folder)")
    args, extra = parser.parse_known_args(argv)
    try:
        args.steps = [int(step) for step in args.steps.split(",")]
    except ValueError:
        raise UserError(f"--steps {args.steps!r}: give whole numbers, comma-separated (e.g. 50,500)") from None
    if not args.steps or min(args.steps) < 1 or max(args.steps) > 1_000_000:
        raise UserError("--steps: each step must be between 1 and 1,000,000")
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not args.modes or set(args.modes) - {"state", "replay"}:
        raise UserError(f"--modes {','.join(args.modes)!r}: use state, replay or both")
    if args.output_dir:
        checks.output_folder(args.output_dir, "--output_dir")
    return args, extra


def run(wrapper, mode, step, flags, env):
    done = subprocess.run([sys.executable, str(wrapper), mode, str(step), str(SCRIPT), *flags],
                          capture_output=True, text=True, env=env)
    return done


@entry_point
def main(argv=None):
    args, extra = parse_args(argv)
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="stream-resume-"))
    root.mkdir(parents=True, exist_ok=True)
    wrapper = root / "wrapper.py"
    wrapper.write_text(WRAPPER)
    env = dict(os.environ, PYTHONUNBUFFERED="1", SMALL_ENCODERS_CACHE=str(root / "cache"))
    rows = []
    for step in args.steps:
        out = root / f"run-{step}"
        shutil.rmtree(out, ignore_errors=True)
        flags = ["--recipe", args.recipe, "--smoke", "--streaming", "true", "--train_files", args.train_files,
                 "--max_steps", str(step + 10), "--save_steps", str(step), "--logging_steps", str(step),
                 "--eval_steps", str(10 * step), "--report_to", "none", "--output_dir", str(out), *extra]
        killed = run(wrapper, "kill", step, flags, env)
        checkpoint = out / f"checkpoint-{step}"
        if killed.returncode != -9 or not checkpoint.is_dir():
            raise UserError(f"the run to step {step} did not reach its checkpoint: {killed.stderr.strip()[-800:]}")
        # The resumed run ends at its first step, before any checkpoint: the folder stays as killed, so the saved-state
        # resume comes first and the replay (the state file deleted) second.
        for mode in sorted(args.modes, key=["state", "replay"].index):
            if mode == "replay":
                for state in checkpoint.glob("stream_state_*.pt"):
                    state.unlink()
            resumed = run(wrapper, "first", step, [*flags, "--resume_from_checkpoint", "latest"], env)
            line = next((line for line in resumed.stdout.splitlines() if line.startswith("RESUMED ")), None)
            if line is None:
                raise UserError(f"the resume at step {step} ({mode}) did not train a step: {resumed.stderr.strip()[-800:]}")
            _, at, total, inside = line.split()
            rows.append((step, mode, int(at), float(total), float(inside)))
            print(f"step {step:>6,}  {mode:<6}  first step after the resume (step {int(at):,}) {float(total):6.1f} s "
                  f"after the command, {float(inside):6.1f} s of it inside train()", flush=True)
    print("\n| resumed at step | stream | command to the next step | of it in train() before the step |")
    print("|---:|---|---:|---:|")
    for step, mode, _, total, inside in rows:
        print(f"| {step:,} | {'saved state' if mode == 'state' else 'replayed'} | {total:.1f} s | {inside:.1f} s |")


if __name__ == "__main__":
    sys.exit(main())
