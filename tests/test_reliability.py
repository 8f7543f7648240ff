"""Reliability: a killed run resumes to the same weights, bad input ends in one clear message, nothing leaks."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT
from safetensors.torch import load_file

SCRIPT = str(REPO_ROOT / "recipes" / "pretrain_mlm.py")
# Dropout is on (the recipe's 0.1), so an exact resume must restore the RNG states too.
SMOKE = ["--recipe", "quickstart", "--smoke", "--max_steps", "8", "--save_steps", "4", "--eval_steps", "4", "--logging_steps", "2"]

# Runs the real script in this process after patching one Trainer method: a self-inflicted fault.
WRAPPER = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import torch
    from transformers import Trainer
    mode, step, script = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "kill":  # after the checkpoint of step N, or the first checkpoint, or the last (the plan's last step)
        save = Trainer._save_checkpoint
        def save_then_die(self, *args, **kwargs):
            save(self, *args, **kwargs)
            if step in ("first", str(self.state.global_step)) or (step == "last" and self.state.global_step >= self.state.max_steps):
                os.kill(os.getpid(), signal.SIGKILL)
        Trainer._save_checkpoint = save_then_die
    else:
        compute_loss = Trainer.compute_loss
        def poisoned(self, *args, **kwargs):
            loss = compute_loss(self, *args, **kwargs)
            return loss * float("nan") if self.state.global_step >= int(step) else loss
        Trainer.compute_loss = poisoned
    sys.argv = [script] + sys.argv[4:]
    runpy.run_path(script, run_name="__main__")
    """
)


def environment(tmp_path, **extra):
    return dict(os.environ, SMALL_ENCODERS_CACHE=str(tmp_path / "cache"), HF_DATASETS_CACHE=str(tmp_path / "hf"),
                HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", **extra)


def run(args, tmp_path, wrapper=None, **extra):
    if wrapper:
        (tmp_path / "wrapper.py").write_text(WRAPPER)
        command = [sys.executable, str(tmp_path / "wrapper.py"), *wrapper, SCRIPT, *args]
    else:
        command = [sys.executable, SCRIPT, *args]
    return subprocess.run(command, env=environment(tmp_path, **extra), cwd=tmp_path, capture_output=True, text=True, timeout=600)


def error_line(stderr):
    """The one `error: ...` line a failed run prints (progress bars may still flush after it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    whole = run(SMOKE + ["--output_dir", str(tmp_path / "whole")], tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    killed = run(SMOKE + ["--output_dir", str(killed_dir)], tmp_path, wrapper=["kill", "4"])
    assert killed.returncode == -9  # SIGKILL right after checkpoint-4 was written
    assert (killed_dir / "checkpoint-4").is_dir() and not (killed_dir / "results.json").exists()

    again = run(SMOKE + ["--output_dir", str(killed_dir)], tmp_path)
    assert again.returncode == 1 and "--resume_from_checkpoint latest" in again.stderr

    resumed = run(SMOKE + ["--output_dir", str(killed_dir), "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The tied decoder is the embedding matrix, not a key a checkpoint lacks: no "missing keys" warning on resume.
    assert "missing keys" not in resumed.stdout + resumed.stderr
    # Time and rate cover the whole run: the segment before the kill (to its checkpoint) and the resumed one.
    results = json.loads((killed_dir / "results.json").read_text())
    segments = results["segments"]
    assert [(s["from_step"], s["to_step"]) for s in segments] == [(0, 4), (4, results["train_steps"])]
    assert all(s["seconds"] > 0 for s in segments)
    assert results["train_seconds"] == pytest.approx(sum(s["seconds"] for s in segments), abs=0.11)
    assert results["tokens_per_second"] == round(results["train_tokens"] / results["train_seconds"])
    assert "in 2 segments (resumed at step 4)" in resumed.stdout
    expected = load_file(tmp_path / "whole" / "model.safetensors")
    actual = load_file(killed_dir / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] - actual[name]).abs().max().item() < 1e-5, name


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "out"
    result = run(SMOKE + ["--output_dir", str(out)], tmp_path, wrapper=["nan", "5"])
    assert result.returncode == 1
    assert error_line(result.stderr).startswith("error: training loss became nan at step 6")
    assert "Traceback" not in result.stderr
    assert not (out / "results.json").exists() and not (out / "checkpoint-8").exists()
    weights = load_file(out / "checkpoint-4" / "model.safetensors")
    assert all(bool(t.isfinite().all()) for t in weights.values())


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda d: None, ["--train_files", "{d}/missing.txt"], "matches no file"),
        (lambda d: (d / "empty.txt").write_text(""), ["--train_files", "{d}/empty.txt"], "is empty"),
        (lambda d: (d / "blank.txt").write_text("\n   \n\t\n" * 50), ["--train_files", "{d}/blank.txt"], "no non-empty text"),
        (lambda d: (d / "latin.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50),
         ["--train_files", "{d}/latin.txt"], "not UTF-8"),
        (lambda d: None, ["--model_vocab_size", "100"], "outside the embedding table"),
        (lambda d: None, ["--learning_rat", "1"], "unknown setting"),
    ],
)
def test_bad_input_ends_in_one_clear_line_and_no_finished_output(tmp_path, make, args, message):
    make(tmp_path)
    out = tmp_path / "out"
    result = run(["--recipe", "quickstart", "--smoke", "--output_dir", str(out)] + [a.format(d=tmp_path) for a in args], tmp_path)
    assert result.returncode == 1
    assert message in error_line(result.stderr) and "Traceback" not in result.stderr
    assert not (out / "results.json").exists() and not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_a_document_far_longer_than_a_block_continues_across_blocks(tmp_path):
    long_document = " ".join(f"word{i % 50}" for i in range(20000))
    (tmp_path / "long.txt").write_text(long_document + "\n" + "a short second document.\n")
    out = tmp_path / "out"
    result = run(["--recipe", "quickstart", "--smoke", "--output_dir", str(out), "--train_files", str(tmp_path / "long.txt"),
                  "--validation_files", str(tmp_path / "long.txt")], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["eval_blocks"] > 100


@pytest.mark.slow
def test_planted_hub_token_appears_in_no_output(tmp_path):
    token = "hf_PLANTEDtokenDoNotLeak1234567890"
    out = tmp_path / "out"
    result = run(["--recipe", "quickstart", "--smoke", "--output_dir", str(out)], tmp_path, HF_TOKEN=token)
    assert result.returncode == 0, result.stderr[-2000:]
    assert token not in result.stdout and token not in result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert not list(out.rglob("*.bin")) or all(p.parent.name.startswith("checkpoint-") for p in out.rglob("*.bin"))
    exported = {p.name for p in out.glob("*.py")}
    assert exported == {"configuration_small_encoder.py", "modeling_small_encoder.py"}
