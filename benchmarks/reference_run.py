"""From a recipe to a measured model in one command, inside a fixed wall time: pretrain, then the suite.

    python benchmarks/reference_run.py --recipe tuned-20m --data_dir DATA --output_dir runs/ref
    python benchmarks/reference_run.py --recipe tuned-20m --data_dir DATA --output_dir runs/ref --wall_minutes 9.5 \\
        --train_files 'corpus/*.txt.gz' --tokenizer_name runs/tokenizer
    python benchmarks/reference_run.py --recipes miniroberta,bertmini --concurrent --time_budget 4 --tasks sst2 \\
        --skip mmlu,stsb_zero_shot --data_dir DATA --output_dir runs/seeds
    python benchmarks/reference_run.py --recipe tuned-20m --smoke --data_dir DATA --output_dir runs/ref-smoke

1. Pretraining: `recipes/pretrain_mlm.py --recipe NAME --time_budget MINUTES` (any other `--key value` is passed to
   it as a recipe override: `--validation_files`, `--tokenizer_name`, ...; `--NAME.key value` to recipe NAME
   only), output in OUT/NAME/model.
2. The suite (eval/suite.py) on the saved model against its random-init floor: protocol `gpu` on a GPU (every GLUE
   fine-tuning a parallel job), `cpu` on a CPU, `smoke` with --smoke; output in OUT/NAME/suite.
3. OUT/results.json (pretraining figures, the suite's table, hardware, software versions, the commands) and
   OUT/summary.md; model_cards/generate.py --run_dir OUT writes the model card from them.

`--wall_minutes` (default 9.5) bounds the whole: without --time_budget, the budget is what is left after the
suite's expected time (`--suite_minutes`, default 4 on a GPU) and about a minute of loading, calibration,
evaluation and saving; the suite is stopped at the wall limit and reports what finished. `--recipes a,b,c
--concurrent` pretrains several recipes side by side on one GPU (for ablations: each result says the GPU was
shared), then measures them one after another. `--smoke` runs every phase on a CPU in about a minute.
DATA holds glue/ (GLUE TSV folders), and optionally mmlu/ and wikitext-2/ (see eval/suite.py).
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]

# Expected suite minutes per protocol, for sizing the budget (gpu: the 2026-12-04 H200 run's fourteen GLUE
# fine-tunings of a 20M model and its floor took about 3 minutes side by side; smoke: seconds).
SUITE_MINUTES = {"gpu": 4.0, "cpu": 60.0, "smoke": 1.0}
OVERHEAD_MINUTES = 1.0  # loading and packing, the budget's calibration, the final evaluation and saving
MARGIN_SECONDS = 15  # writing the results after the suite stops


def software_versions():
    import importlib.metadata as metadata

    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "cuda": torch.version.cuda if torch.cuda.is_available() else None}
    for package in ("transformers", "datasets", "accelerate", "tokenizers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def launch(command, log_path, prefix=""):
    """Start `command` in this directory (the user's relative paths mean what they meant here; the scripts are named by
    their full path); its output goes to log_path and, line by line, to this terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def copy():
        with open(log_path, "wb") as log:
            for line in process.stdout:  # bytes, split at \n only: a progress bar's \r updates stay one line
                log.write(line)
                log.flush()
                if b"\r" not in line:  # progress bars stay in the log
                    sys.stdout.write(prefix + line.decode("utf-8", errors="replace"))
                    sys.stdout.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    process.copier = thread
    return process


def wait(process, deadline, what):
    """The exit code, or None when the deadline came first (the process is then stopped)."""
    try:
        code = process.wait(timeout=None if deadline is None else max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        print(f"wall limit: stopping {what}", flush=True)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        code = None
    process.copier.join(timeout=5)
    return code


def last_error(log_path):
    lines = [line.strip() for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line.split(":")[0]]
    return (errors or lines or ["no output"])[-1]


def plan_minutes(args, protocol, started):
    """(training budget per recipe or None for --smoke, suite minutes): the budget fills the wall minus the suite."""
    suite = args.suite_minutes if args.suite_minutes is not None else SUITE_MINUTES[protocol]
    left = args.wall_minutes - (time.time() - started) / 60
    if args.smoke:
        return None, suite
    sequential = 1 if args.concurrent else len(args.recipes)
    suites = len(args.recipes)
    if args.time_budget is not None:
        needed = args.time_budget * sequential + OVERHEAD_MINUTES * sequential + suite * suites
        if needed > left:
            print(f"note: --time_budget {args.time_budget:g} x {sequential} + about {OVERHEAD_MINUTES:g} min of overhead"
                  f"{' each' if sequential > 1 else ''} + the suite's {suite:g} min x {suites} is {needed:.1f} min, over "
                  f"--wall_minutes {args.wall_minutes:g}: the suite will be stopped at the wall limit with what finished",
                  flush=True)
        return args.time_budget, suite
    budget = (left - suite * suites) / sequential - OVERHEAD_MINUTES
    if budget < 0.5:
        raise UserError(f"--wall_minutes {args.wall_minutes:g} leaves {budget:.1f} min to pretrain after the suite "
                        f"({suite:g} min for protocol {protocol}{f' x {suites} recipes' if suites > 1 else ''}): raise "
                        f"--wall_minutes, or lower --suite_minutes, or give --time_budget")
    return round(budget, 2), suite


def split_overrides(tokens, recipes):
    """--key value pairs -> {recipe: [--key, value, ...]}: `--NAME.key value` goes to recipe NAME only, the rest to all."""
    if len(tokens) % 2 or any(not token.startswith("--") for token in tokens[::2]):
        raise UserError(f"recipe overrides come as --key value pairs (--NAME.key value for one recipe); got {' '.join(tokens)}")
    per_recipe = {name: [] for name in recipes}
    for flag, value in zip(tokens[::2], tokens[1::2]):
        name, dot, key = flag[2:].rpartition(".")
        if dot and name not in per_recipe:
            raise UserError(f"{flag}: {name!r} is not one of the recipes run here ({', '.join(recipes)})")
        for target in ([name] if dot else recipes):
            per_recipe[target] += [f"--{key}", value]
    return per_recipe


def pretrain_command(name, args, budget, overrides, output_dir):
    command = [sys.executable, str(REPO_ROOT / "recipes" / "pretrain_mlm.py"), "--recipe", name, "--output_dir", str(output_dir),
               "--overwrite_output_dir", "true"]
    if args.smoke:
        command.append("--smoke")
    if budget is not None:
        command += ["--time_budget", f"{budget:g}"]
    if args.train_files:
        command += ["--train_files", args.train_files]
    if "--report_to" not in overrides:
        command += ["--report_to", "none"]
    return command + overrides


def suite_command(model_dir, args, protocol, output_dir, minutes, jobs):
    command = [sys.executable, str(REPO_ROOT / "eval" / "suite.py"), "--model_name_or_path", str(model_dir), "--data_dir", args.data_dir,
               "--output_dir", str(output_dir), "--protocol", protocol, "--minutes", f"{max(minutes, 0.05):.2f}"]
    for flag in ("tasks", "skip", "seeds", "floor_cache"):
        if getattr(args, flag):
            command += [f"--{flag}", getattr(args, flag)]
    if jobs:
        command += ["--jobs", str(jobs)]
    return command


def display(command):
    """The command as a user types it in the directory the reference run was started in (the scripts named relative
    to it: python recipes/pretrain_mlm.py ... from the repository root)."""
    parts = [os.path.relpath(part) if part.startswith(str(REPO_ROOT) + os.sep) else part for part in command[1:]]
    return " ".join(["python"] + [shlex.quote(part) for part in parts])


def held_out_line(run):
    """The held-out figure of a pretraining record: MLM perplexity, or for replaced-token detection (whose summed loss
    has no perplexity) the loss."""
    where = f"({run['mlm_probability']:.0%} masking, {run['eval_blocks']:,} blocks)."
    if run.get("eval_perplexity") is None:
        return f"held-out loss {run['eval_loss']:.4f}, generator and discriminator summed {where}"
    return f"held-out perplexity {run['eval_perplexity']:.2f} {where}"


def recipe_record(name, model_dir, suite_dir, commands, shared, pretrain_code, suite_code):
    """What OUT/results.json says of one recipe: its pretraining figures and its suite table."""
    record = {"recipe": name, "model_dir": str(model_dir), "gpu_shared_with": shared, "commands": commands,
              "pretraining": None, "suite": None}
    from small_encoders.core.run_folder import RunFolder

    run = RunFolder(model_dir).result()
    if run is not None:
        keep = ("parameters", "data", "hardware", "bf16", "block_size", "mlm_probability", "train_steps", "train_tokens",
                "train_seconds", "tokens_per_second", "eval_loss", "eval_perplexity", "eval_blocks", "time_budget",
                "objective")
        record["pretraining"] = {key: getattr(run, key) for key in keep}
    else:
        record["pretraining_error"] = ("stopped at the wall limit" if pretrain_code is None else
                                       last_error(model_dir.parent / "pretrain.log"))
    suite_results = suite_dir / "results.json"
    if suite_results.is_file():
        suite = json.loads(suite_results.read_text())
        record["suite"] = {key: suite.get(key) for key in (
            "protocol", "protocol_settings", "table", "glue_tasks", "not_measured", "skipped", "fine_tuning_jobs",
            "floor_cached", "floor_key", "hardware", "provenance")}
        record["suite"]["glue_average"] = {"floor": suite["floor"].get("glue_average"),
                                           "pretrained": suite["pretrained"].get("glue_average")}
        record["suite"]["tasks"] = {task: {"floor": row["floor"], "pretrained": row["pretrained"]}
                                    for task in suite["pretrained"]["glue"]
                                    for row in suite["table"] if row["what"].startswith(f"GLUE {task} (")}
    elif record["pretraining"] is not None:
        record["suite_error"] = "stopped at the wall limit" if suite_code is None else last_error(suite_dir.parent / "suite.log")
    return record


def summary_markdown(results):
    wall = (f"imported from the raw outputs in {results['imported_from']}" if results.get("imported_from") else
            f"{results['wall_seconds'] / 60:.1f} of {results['wall_minutes']:g} wall minutes")
    software = ", ".join(f"{name} {version}" for name, version in results["software"].items() if version)
    lines = [f"# Reference run: {', '.join(results['recipes'])}", "",
             f"{results['hardware']}; {wall}; {results['date']}; commit {results['commit'] or 'unknown'}; {software}"
             + (" (smoke: the figures check the pipeline and mean nothing)" if results["smoke"] else ""), ""]
    for name, record in results["recipes"].items():
        lines += [f"## {name}", ""]
        run = record["pretraining"]
        if run is None:
            lines += [f"Pretraining did not finish: {record.get('pretraining_error')}.", ""]
            continue
        shared = f" (the machine shared with {', '.join(record['gpu_shared_with'])})" if record["gpu_shared_with"] else ""
        budget = run.get("time_budget") or {}
        lines += [f"Pretraining: {run['parameters']:,} parameters; {run['train_steps']:,} steps, {run['train_tokens']:,} "
                  f"tokens in {run['train_seconds'] / 60:.1f} min ({run['tokens_per_second']:,} tokens/s"
                  + (f"; budget {budget['minutes']:g} min" if budget else "") + f"){shared}; " + held_out_line(run), ""]
        suite = record["suite"]
        if suite is None:
            lines += [f"Suite: not measured: {record.get('suite_error')}.", ""]
            continue
        source = (f"GLUE {suite['provenance']}" if suite.get("provenance") else f"Suite protocol `{suite['protocol']}`")
        lines += [f"{source}:", "", "| measurement | random-init floor | pretrained | difference |",
                  "|---|---|---|---|"]
        for row in suite["table"]:
            if row["pretrained"] is not None:
                lines.append(f"| {row['what']} | {row['floor']:.2f} | {row['pretrained']:.2f} | {row['difference']:+.2f} |")
        if suite.get("not_measured"):
            lines.append(f"\nNot measured (wall limit): {', '.join(suite['not_measured'])}.")
        lines += ["", "Commands:", ""] + [f"    {command}" for command in record["commands"]] + [""]
    return "\n".join(lines)


@entry_point
def main(argv=None):
    # No abbreviations: an unknown flag is a recipe override (--seed is the recipe's, not --seeds).
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--recipe", default=None, help="the recipe to run (recipes/NAME.yaml)")
    parser.add_argument("--recipes", default=None, help="several recipes, comma-separated (with --concurrent: side by side)")
    parser.add_argument("--concurrent", action="store_true", help="pretrain the recipes at once on one GPU")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", required=True, help="folder with glue/ (and mmlu/, wikitext-2/) for the suite")
    parser.add_argument("--time_budget", type=checks.bounded(float, 1e-3, 525_600), default=None, help="minutes of pretraining per recipe (default: what the wall leaves)")
    parser.add_argument("--wall_minutes", type=checks.bounded(float, 1e-3, 525_600), default=9.5, help="hard limit for the whole command (default 9.5)")
    parser.add_argument("--suite_minutes", type=checks.bounded(float, 1e-3, 525_600), default=None,
                        help="the suite's expected minutes, kept free when sizing the budget (default: 4 on a GPU)")
    parser.add_argument("--train_files", default=None, help="local training text instead of the recipe's corpus (globs, comma-separated)")
    parser.add_argument("--tasks", default=None, help="GLUE tasks for the suite (default: every task under DATA/glue)")
    parser.add_argument("--skip", default=None, help="suite parts to leave out: perplexity, stsb_zero_shot, mmlu")
    parser.add_argument("--seeds", default=None, help="GLUE seeds for the suite (default: the protocol's)")
    parser.add_argument("--floor_cache", default=None, help="folder of cached floors (default: the suite's)")
    parser.add_argument("--protocol", default=None, help="the suite's protocol (default: gpu on a GPU, cpu on a CPU, smoke with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="every phase at smoke size on a CPU, about a minute")
    args, overrides = parser.parse_known_args(argv)
    started = time.time()
    if bool(args.recipe) == bool(args.recipes):
        raise UserError("name the recipe with --recipe NAME, or several with --recipes a,b,c")
    args.recipes = [args.recipe] if args.recipe else [r.strip() for r in args.recipes.split(",") if r.strip()]
    from small_encoders.recipes.recipe import available_recipes

    unknown = [r for r in args.recipes if r not in available_recipes()]
    if unknown:
        raise UserError(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(available_recipes())}")
    if len(set(args.recipes)) != len(args.recipes):
        raise UserError(f"--recipes names a recipe twice: {','.join(args.recipes)}")
    overrides = split_overrides(overrides, args.recipes)
    if not (Path(args.data_dir) / "glue").is_dir():
        raise UserError(f"--data_dir {args.data_dir} has no glue/ folder (GLUE TSV folders: SST-2/train.tsv, ...)")
    out = checks.output_folder(args.output_dir)

    import torch

    gpu = torch.cuda.is_available()
    protocol = args.protocol or ("smoke" if args.smoke else "gpu" if gpu else "cpu")
    from small_encoders.eval.suite import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    budget, suite_minutes = plan_minutes(args, protocol, started)
    deadline = started + 60 * args.wall_minutes
    shared = args.concurrent and len(args.recipes) > 1
    print(f"reference run: {', '.join(args.recipes)} on {'a GPU' if gpu else 'the CPU'}; "
          + (f"{budget:g} min of pretraining{' each, side by side' if shared else ''}, " if budget else "smoke-sized pretraining, ")
          + f"then suite protocol {protocol} (about {suite_minutes:g} min); wall limit {args.wall_minutes:g} min", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    commands = {name: [] for name in args.recipes}
    codes = {}
    prefix = (lambda name: f"[{name}] ") if len(args.recipes) > 1 else (lambda name: "")
    # The suite needs some time at the end: pretraining is stopped if it runs into the last minute of the wall.
    pretrain_deadline = deadline - 60 * min(suite_minutes, 1.0)

    def start_pretraining(name):
        command = pretrain_command(name, args, budget, overrides[name], out / name / "model")
        commands[name].append(display(command))
        return launch(command, out / name / "pretrain.log", prefix(name))

    if args.concurrent:
        running = {name: start_pretraining(name) for name in args.recipes}
        for name, process in running.items():
            codes[name] = wait(process, pretrain_deadline, f"pretraining {name}")
    else:
        for name in args.recipes:
            codes[name] = wait(start_pretraining(name), pretrain_deadline, f"pretraining {name}")

    suite_codes = {}
    trained = [name for name in args.recipes if (out / name / "model" / "results.json").is_file()]
    for position, name in enumerate(trained):
        # Each suite gets an equal share of the time left (the last one whatever remains).
        left = (deadline - time.time() - MARGIN_SECONDS) / 60
        minutes = left / (len(trained) - position)
        if minutes <= 0.05:
            suite_codes[name] = None
            continue
        command = suite_command(out / name / "model", args, protocol, out / name / "suite", minutes, None)
        commands[name].append(display(command))
        process = launch(command, out / name / "suite.log", prefix(name))
        # The suite stops its fine-tunings at --minutes and writes what finished; the wait allows it that.
        suite_codes[name] = wait(process, deadline + 60, f"the suite of {name}")

    from small_encoders.core.run_folder import describe_hardware, source_commit

    results = {
        "reference_run": 1, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "recipes": {name: recipe_record(name, out / name / "model", out / name / "suite", commands[name],
                                        [other for other in args.recipes if other != name] if shared else [],
                                        codes.get(name), suite_codes.get(name)) for name in args.recipes},
        "hardware": describe_hardware(1), "software": software_versions(), "commit": source_commit(),
        "command": " ".join(["python"] + [shlex.quote(a) for a in sys.argv]) if argv is None else
        display([sys.executable, "benchmarks/reference_run.py", *argv]),
        "wall_minutes": args.wall_minutes, "wall_seconds": round(time.time() - started, 1), "smoke": args.smoke,
        "protocol": protocol, "time_budget": budget,
    }
    write_atomic(out / "results.json", json.dumps(results, indent=1))
    write_atomic(out / "summary.md", summary_markdown(results))
    print(summary_markdown(results))
    print(f"wrote {out / 'results.json'} and {out / 'summary.md'} in {results['wall_seconds'] / 60:.1f} min")
    failed = [name for name, record in results["recipes"].items() if record["pretraining"] is None]
    if failed:
        print(f"error: pretraining did not finish for {', '.join(failed)} (see {out}/NAME/pretrain.log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
