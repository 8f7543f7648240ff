"""`torch_compile`: the recipe compiled by inductor trains the eager run's losses, and a resumed compiled run continues
them (CPU, smoke-sized; on a GPU `auto` compiles)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from small_encoders.recipes.pretrain_mlm import planned_steps, speed_settings
from small_encoders.recipes.recipe import load_recipe

SCRIPT = str(REPO_ROOT / "recipes" / "pretrain_mlm.py")
# tuned-5m has no dropout (inductor draws dropout masks from its own generator, so runs with dropout differ by design),
# and it has sparse prediction, SwiGLU and RMSNorm: the GPU tier's shape of model, smoke-sized.
RUN = ["--recipe", "tuned-5m", "--smoke", "--max_steps", "20", "--logging_steps", "1", "--save_steps", "10",
       "--eval_steps", "10", "--report_to", "none"]
# Losses agree to this (absolute, nats) at every step: float32 on the CPU, inductor fusing what eager runs op by op.
TOLERANCE = 1e-4


def run(args, tmp_path):
    env = dict(os.environ, SMALL_ENCODERS_CACHE=str(tmp_path / "cache"), HF_DATASETS_CACHE=str(tmp_path / "hf"),
               HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    done = subprocess.run([sys.executable, SCRIPT, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(folder, key="loss"):
    log = json.loads((folder / "training_log.json").read_text())
    return {row["step"]: row[key] for row in log if key in row}


@pytest.mark.slow
def test_compiled_training_gives_the_eager_losses_and_a_resumed_compiled_run_continues_them(tmp_path):
    run(RUN + ["--torch_compile", "false", "--output_dir", str(tmp_path / "eager")], tmp_path)
    compiled = run(RUN + ["--torch_compile", "true", "--output_dir", str(tmp_path / "compiled")], tmp_path)
    assert "torch.compile on" in compiled.stdout
    eager_losses, compiled_losses = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert sorted(eager_losses) == sorted(compiled_losses) == list(range(1, 21))
    assert eager_losses[20] < eager_losses[1] - 0.05  # it learned: the comparison is of a trajectory, not of a constant
    for step, loss in eager_losses.items():
        assert compiled_losses[step] == pytest.approx(loss, abs=TOLERANCE), step
    for step, loss in losses(tmp_path / "eager", "eval_loss").items():
        assert losses(tmp_path / "compiled", "eval_loss")[step] == pytest.approx(loss, abs=TOLERANCE), step

    # Resumed from the compiled run's step-10 checkpoint, compiled again: steps 11 to 20 give the uninterrupted losses.
    run(RUN + ["--torch_compile", "true", "--output_dir", str(tmp_path / "resumed"),
               "--resume_from_checkpoint", str(tmp_path / "compiled" / "checkpoint-10")], tmp_path)
    resumed = losses(tmp_path / "resumed")
    for step in range(11, 21):
        assert resumed[step] == pytest.approx(compiled_losses[step], abs=TOLERANCE), step


def test_auto_compiles_and_collates_in_workers_on_a_gpu_only(monkeypatch):
    recipe = load_recipe("tuned-20m")
    assert (recipe["torch_compile"], recipe["dataloader_num_workers"]) == ("auto", "auto")
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert speed_settings(recipe, cuda=False) == (False, 0)
    assert speed_settings(recipe, cuda=True) == (True, 8)
    assert speed_settings(recipe, cuda=True, local_processes=8) == (True, 1)  # 16 cores for 8 GPU processes
    assert speed_settings(dict(recipe, torch_compile=True, dataloader_num_workers=2), cuda=False) == (True, 2)
    assert speed_settings(dict(recipe, torch_compile=False), cuda=True) == (False, 8)  # tuned-20m streams: 8 workers
    assert speed_settings(dict(recipe, streaming=False), cuda=True) == (True, 4)


def test_an_epoch_is_whole_batches():
    # The training loader drops the partial last batch (one shape for a compiled model): 1,000 blocks at 256 per step
    # are 3 steps an epoch, not 4.
    recipe = load_recipe("tuned-20m", {"time_budget": None, "num_train_epochs": 2, "streaming": False})
    assert planned_steps(recipe, 1000, world_size=1) == (6, 256)
