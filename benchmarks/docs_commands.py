"""Run every command in the README and docs/ as written, at smoke size, and say which ran, which failed, and why any
did not run.

    git clone . /tmp/docs-check/fresh && ln -s "$PWD/../shared" /tmp/docs-check/shared && cd /tmp/docs-check/fresh
    pip install torch==2.13.0 && pip install -r requirements.txt     # the README's install command, in the clone
    python benchmarks/docs_commands.py                                # every distinct command: about 25 minutes on 2 cores
    python benchmarks/docs_commands.py --list                         # what would run, with what appended or filled in
    python benchmarks/docs_commands.py --only accelerate              # the commands whose text holds a string
    python benchmarks/docs_commands.py --only docs/results.md         # or that one file's

Each command runs from the repository root as the docs spell it, with what makes it a run of seconds appended
(pretraining: `--smoke` and 4 steps; the suite: its smoke protocol; fine-tuning: 32 examples; the reference run:
`--smoke`) and the docs' placeholders filled in (DATA, DIR, FILE, a user's own files: the shared data; a Hub model or
tokenizer: its copy in ../shared). `accelerate launch` runs with two CPU processes. Commands that differ only in their
values (docs/results.md's many runs of one form) run once. Not run, each with its reason: the install and test commands
(CI runs them), uploads to the Hub (their `--dry_run` forms run), Hub datasets, the GPU session's scripts, fragments
written with `...`. A model folder that an earlier command would have made but that is not there (a run of the same
form, deduplicated) is replaced by runs/quickstart, and the report says so.

Writes one log per command and report.json under --output_dir (default runs/docs-commands). tests/test_docs_commands.py
checks, with nothing run, that every command's script exists and takes every flag it is given.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/*.md")
SHARED = "../shared/data"
START_MODEL = "../shared/gpu-runs/2026-12-04-h200-tuned-20m/model"
# The docs' placeholders and a user's own files or Hub names, and what stands in for them here.
STAND_INS = {
    "DATA": SHARED, "DATA/glue": f"{SHARED}/glue", "DIR": "runs/quickstart", "DIR_OR_HUB_ID": "runs/quickstart",
    "FILE": f"{SHARED}/wikitext-2/valid.txt", "valid.txt": f"{SHARED}/wikitext-2/valid.txt",
    "data/valid.txt": f"{SHARED}/wikitext-2/valid.txt",
    "data/*.txt.gz": f"{SHARED}/pretrain-corpus/imdb-unsup/train_unsup_000.txt.gz",
    "reviews/*.txt.gz": f"{SHARED}/pretrain-corpus/imdb-unsup/train_unsup_000.txt.gz",
    "my-reviews/*.txt.gz": f"{SHARED}/pretrain-corpus/imdb-unsup/train_unsup_000.txt.gz",
    "bert-base-uncased": f"{SHARED}/tokenizers/bert-base-uncased",
    "google/bert_uncased_L-4_H-256_A-4": START_MODEL,
    "my-docs/*.txt": f"{SHARED}/pretrain-corpus/wikipedia/enwiki2015_0000.txt.gz",
}
SHELL_STEPS = ("git", "ln", "cd", "mkdir", "cp")
# Flags whose value is a model or tokenizer folder that an earlier command makes.
MODEL_INPUTS = ("--model_name_or_path", "--model_dir", "--tokenizer_name", "--init_from", "--onnx", "--baseline_model")
# What makes each script's run one of seconds (appended: a later flag wins), or the flags to replace.
SMOKE_FLAGS = {
    "recipes/pretrain_mlm.py": ["--smoke", "--time_budget", "null", "--max_steps", "4", "--max_train_samples", "300",
                                "--max_validation_samples", "60", "--logging_steps", "2", "--eval_steps", "4",
                                "--save_steps", "4", "--report_to", "none"],
    "eval/run_glue.py": ["--max_train_samples", "32", "--max_eval_samples", "32", "--num_train_epochs", "1"],
    "eval/perplexity.py": ["--max_blocks", "8"],
    "eval/mmlu_probe.py": ["--max_questions_per_subject", "1"],
    "deploy/bench.py": ["--rounds", "1", "--max_sentences", "64", "--batch1_sentences", "8"],
    "recipes/train_embeddings.py": ["--smoke", "--time_budget", "null", "--max_steps", "4", "--max_raw_pairs", "64",
                                    "--report_to", "none", "--overwrite_output_dir", "true"],
    "eval/embeddings.py": ["--max_pairs", "40"],
    "benchmarks/reference_run.py": ["--smoke"],
    "benchmarks/time_to_first_step.py": ["--timeout_minutes", "3", "--variants", "streaming"],
}
REPLACED_FLAGS = {
    "eval/suite.py": {"--protocol": "smoke"},
    "benchmarks/time_to_first_step.py": {"--train_files": f"{SHARED}/pretrain-corpus/imdb-unsup/train_unsup_000.txt.gz"},
}


@dataclass
class DocCommand:
    source: str  # where it is written: "docs/recipes.md:41"
    text: str  # as written, continuation lines joined, the trailing comment left out
    argv: list
    env: dict = field(default_factory=dict)

    @property
    def script(self):
        """The repository file it runs (a .py or .sh path), or None."""
        for token in self.argv[:4]:
            if token.endswith((".py", ".sh")) and not token.startswith("-"):
                return token
        return None

    @property
    def flags(self):
        return sorted({token.split("=")[0] for token in self.argv if token.startswith("--")})


@dataclass
class Planned:
    command: DocCommand
    argv: list | None = None  # None: not run
    changes: list = field(default_factory=list)  # what was appended or filled in, in words
    reason: str = ""  # why it is not run
    server: bool = False  # a page served until it answers, then stopped


def shell_lines(block):
    """The block's command lines: continuation lines joined, blank and comment lines left out."""
    joined, pending = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [line for line in joined if line.strip() and not line.lstrip().startswith("#")]


def extract_commands(root=REPO_ROOT):
    """Every command of every bash block (and each python block, as one `python -c` command) in the README and docs/."""
    paths = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    commands = []
    for path in paths:
        text, variables = path.read_text(), {}
        for match in re.finditer(r"^```(bash|python)\n(.*?)^```", text, re.S | re.M):
            line_number = text[: match.start()].count("\n") + 2
            source = f"{path.relative_to(root)}:{line_number}"
            if match.group(1) == "python":
                commands.append(DocCommand(source, "python -c <the python block>", ["python", "-c", match.group(2)]))
                continue
            for line in shell_lines(match.group(2)):
                for tokens in split_chain(shlex.split(line, comments=True)):
                    env = {}
                    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
                        name, value = tokens.pop(0).split("=", 1)
                        env[name] = value
                    if not tokens:  # START=...: a variable the later lines of the file use
                        variables.update(env)
                        continue
                    tokens = [re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), t) for t in tokens]
                    written = " ".join([*(f"{k}={v}" for k, v in env.items()), *map(quoted, tokens)])
                    commands.append(DocCommand(source, written, tokens, env))
    return commands


def split_chain(tokens):
    """`a && b`: [a, b]."""
    chain = [[]]
    for token in tokens:
        if token == "&&":
            chain.append([])
        else:
            chain[-1].append(token)
    return [part for part in chain if part]


def quoted(token):
    return shlex.quote(token) if "\n" not in token else "<the python block>"


def in_dependency_order(commands):
    """The commands in document order, except that a command that makes a run folder another one reads (--output_dir,
    --save_model) comes before its reader (the README's deploy lines read a classifier that docs/deploy.md makes)."""
    ordered, placed = [], set()

    def place(index, seen=()):
        if index in placed or index in seen:
            return
        for needed in inputs_of(commands[index].argv):
            for later in range(index + 1, len(commands)):
                if needed in outputs_of(commands[later].argv):
                    place(later, (*seen, index))
                    break
        placed.add(index)
        ordered.append(commands[index])

    for index in range(len(commands)):
        place(index)
    return ordered


def inputs_of(argv):
    return {argv[i + 1] for i, token in enumerate(argv[:-1]) if token in MODEL_INPUTS}


def not_run_reason(command):
    """Why a documented command is not run here, or ''."""
    argv, script = command.argv, command.script or ""
    if argv[0] == "pip":
        return "the install command: run before this script"
    if "pytest" in argv or script == "tests/busy.py":
        return "the test suite: CI runs it"
    if argv[0] == "tensorboard":
        return "a log viewer: no code of this repository"
    if argv[0] in SHELL_STEPS:
        return "a shell step (a clone, a link, a folder change or copy): the setup around the commands"
    if script == "benchmarks/docs_commands.py":
        return "this script"
    if script.endswith(".sh"):
        return "the GPU session's scripts: tests/test_benchmarks.py runs SMOKE=1 gpu_session.sh on a CPU"
    if "..." in argv or any(t.startswith("[") for t in argv):
        return "a fragment (`...`) of a command above: its flags are checked by tests/test_docs_commands.py"
    if script == "model_cards/publish.py" and "--dry_run" not in argv:
        return "uploads to the Hub: its --dry_run form runs"
    if "--dataset_name" in argv and "/" in argv[argv.index("--dataset_name") + 1]:
        return "streams a Hub dataset (no Hub here)"
    if "pairs.csv" in argv:
        return "a user's own pair file (tests/test_embeddings.py trains on pair, triplet and scored files)"
    return ""


def plan(command, made=()):
    """How the command runs at smoke size: its argv with stand-ins and smoke flags, and the changes in words. `made`:
    the run folders earlier commands made here (others stand in as runs/quickstart)."""
    reason = not_run_reason(command)
    if reason:
        return Planned(command, reason=reason)
    argv, changes = list(command.argv), []
    for index, token in enumerate(argv):
        if token in STAND_INS and (index == 0 or argv[index - 1].startswith("--")):
            argv[index] = STAND_INS[token]
            changes.append(f"{token} -> {STAND_INS[token]}")
        elif token.startswith("~/.cache/small-encoders/tokenizers/") and not Path(token).expanduser().exists():
            argv[index] = STAND_INS["bert-base-uncased"]
            changes.append(f"a tokenizer an earlier run cached -> {argv[index]}")
        elif (index and argv[index - 1] in MODEL_INPUTS and token.startswith("runs/") and token not in made
              and not token.startswith("runs/quickstart") and not (REPO_ROOT / token).exists()):
            argv[index] = "runs/quickstart"
            changes.append(f"{token} (made by a command of the same form, not run again) -> runs/quickstart")
    if argv[0] == "python":
        argv[0] = sys.executable
    if argv[:2] == ["accelerate", "launch"]:
        argv[2:2] = ["--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no"]
        changes.append("accelerate launch with two CPU processes")
    script = command.script
    for flag, value in REPLACED_FLAGS.get(script, {}).items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
        changes.append(f"{flag} {value}")
    if script == "eval/run_glue.py" and "--data_dir" not in argv:
        argv += ["--data_dir", f"{SHARED}/glue"]
        changes.append(f"GLUE from the Hub -> --data_dir {SHARED}/glue")
    if script in SMOKE_FLAGS:
        argv += SMOKE_FLAGS[script]
        changes.append(" ".join(SMOKE_FLAGS[script]))
    if "--output_json" in argv and argv[argv.index("--output_json") + 1].startswith("benchmarks/results/"):
        argv[argv.index("--output_json") + 1] = "runs/docs-commands/bench.json"
        changes.append("--output_json runs/docs-commands/bench.json (not the committed results file)")
    if script == "benchmarks/passes_curve.py":  # run folders named in a comment's "and ..." are not made here
        missing = [t for t in argv[2:] if t.startswith("runs/") and not (REPO_ROOT / t).exists()]
        if len(missing) < len(argv) - 2:
            argv = [t for t in argv if t not in missing]
            changes += [f"{t} left out (made by a command not run here)" for t in missing]
    if script == "recipes/pretrain_mlm.py":
        argv += pretraining_stand_ins(argv, changes)
    return Planned(command, argv, changes, server=script == "demo/app.py")


def pretraining_stand_ins(argv, changes):
    """A recipe's Hub tokenizer: its copy in ../shared (when the command names none); a finished run's folder is
    replaced, as a user's second try would be, unless the command resumes it."""
    from small_encoders.recipes.recipe import load_recipe

    added = [] if "--resume_from_checkpoint" in argv else ["--overwrite_output_dir", "true"]
    if "--tokenizer_name" not in argv and "--init_from" not in argv:
        tokenizer = load_recipe(argv[argv.index("--recipe") + 1])["tokenizer_name"]
        copy = f"{SHARED}/tokenizers/{str(tokenizer).split('/')[-1]}"
        if tokenizer and not Path(tokenizer).exists() and (REPO_ROOT / copy).is_dir():
            added += ["--tokenizer_name", copy]
            changes.append(f"the recipe's Hub tokenizer {tokenizer} -> {copy}")
    return added


def outputs_of(argv):
    """The run folders a command writes (--output_dir, --save_model), as written."""
    return {argv[i + 1] for i, token in enumerate(argv[:-1]) if token in ("--output_dir", "--save_model")}


def distinct(commands):
    """The first command of each form (script and flag names), and any other that makes a run folder a kept command
    reads (docs/performance.md's export, of the README's form, makes the folder its benchmark reads)."""
    seen, kept = set(), []
    for command in commands:
        key = (command.argv[0], command.script, tuple(command.flags), command.argv[2] if command.argv[:2] == ["python", "-c"]
               else "")
        if key not in seen:
            seen.add(key)
            kept.append(command)
    read = set().union(*(inputs_of(command.argv) for command in kept))
    return [command for command in commands if command in kept or outputs_of(command.argv) & read]


def run_one(planned, log_path, timeout):
    """(exit code, seconds); a served page counts as passing once it answers over HTTP."""
    env = dict(os.environ, **planned.command.env, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    started = time.time()
    with open(log_path, "w") as log:
        log.write(f"# {planned.command.source}: {planned.command.text}\n# ran: {shlex.join(planned.argv)}\n")
        log.flush()
        if planned.server:
            return serve_until_it_answers(planned.argv, env, log, timeout), time.time() - started
        try:
            code = subprocess.run(planned.argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            log.write(f"\n# stopped after {timeout} s\n")
            code = 124
    return code, time.time() - started


def serve_until_it_answers(argv, env, log, timeout):
    import urllib.request

    port = "7871"
    process = subprocess.Popen([*argv, "--port", port], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    return 0 if response.status == 200 else 1
            except OSError:
                time.sleep(2)
        return process.returncode if process.returncode is not None else 124
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_all(planned, out, timeout):
    out.mkdir(parents=True, exist_ok=True)
    rows, made = [], set()
    for number, item in enumerate(planned, 1):
        item = plan(item.command, made)  # again: which run folders exist is known only now
        row = {"source": item.command.source, "command": item.command.text, "changes": item.changes}
        if item.argv is None:
            rows.append(dict(row, result="not run", reason=item.reason))
            print(f"[{number}/{len(planned)}] not run  {item.command.source}: {item.reason}", flush=True)
            continue
        log_path = out / f"{number:02d}.log"
        code, seconds = run_one(item, log_path, timeout)
        made |= outputs_of(item.command.argv)
        rows.append(dict(row, result="passed" if code == 0 else "failed", exit_code=code, seconds=round(seconds, 1),
                         log=str(log_path)))
        print(f"[{number}/{len(planned)}] {'passed' if code == 0 else f'FAILED ({code})':<11} {seconds:6.1f} s  "
              f"{item.command.source}: {item.command.text[:90]}", flush=True)
    return rows


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print what would run, and how, and run nothing")
    parser.add_argument("--only", default=None, help="only the commands whose text holds this string, or written in "
                        "this file (docs/results.md)")
    parser.add_argument("--output_dir", default="runs/docs-commands")
    parser.add_argument("--timeout", type=checks.bounded(int, 10, 7200), default=600, help="seconds per command")
    args = parser.parse_args(argv)
    commands = extract_commands()
    kept = in_dependency_order(distinct(commands))
    if args.only:
        kept = [c for c in kept if args.only in c.text or c.source.startswith(args.only)]
        if not kept:
            raise UserError(f"--only {args.only!r}: no documented command holds it")
    planned = [plan(command) for command in kept]
    print(f"{len(commands)} commands in the README and docs/, {len(kept)} distinct forms")
    if args.list:
        for item in planned:
            how = shlex.join(item.argv) if item.argv else f"not run: {item.reason}"
            print(f"{item.command.source}: {item.command.text}\n    {how}")
        return 0
    if not Path(SHARED).resolve().is_dir() and not (REPO_ROOT / SHARED).is_dir():
        raise UserError(f"{REPO_ROOT / SHARED} is missing: the docs' commands read ../shared beside the clone")
    started = time.time()
    rows = run_all(planned, REPO_ROOT / args.output_dir, args.timeout)
    counts = {result: sum(r["result"] == result for r in rows) for result in ("passed", "failed", "not run")}
    report = {"commands": len(commands), "distinct": len(kept), **counts, "minutes": round((time.time() - started) / 60, 1),
              "rows": rows}
    (REPO_ROOT / args.output_dir / "report.json").write_text(json.dumps(report, indent=1))
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['not run']} not run in {report['minutes']} min; "
          f"{args.output_dir}/report.json")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
