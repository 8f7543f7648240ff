"""recipes/: YAML recipes, overrides, and the pretraining script end to end (smoke-sized, CPU)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT, SHARED_DATA, accelerate_launch

from small_encoders.core.errors import UserError
from small_encoders.recipes.pretrain_mlm import native_bf16
from small_encoders.recipes.recipe import available_recipes, load_recipe, parse_overrides

SCRIPT = str(REPO_ROOT / "recipes" / "pretrain_mlm.py")
LOCAL_TOKENIZERS = {
    "miniroberta": SHARED_DATA / "tokenizers" / "roberta-base",
    "bertmini": SHARED_DATA / "tokenizers" / "bert-base-uncased",
    "neobert": SHARED_DATA / "tokenizers" / "bert-base-uncased",
    "neobert-mini": SHARED_DATA / "tokenizers" / "bert-base-uncased",
}


def test_every_reference_recipe_is_there_with_its_settings():
    assert {"coberta", "miniroberta", "bertmini", "neobert", "neobert-mini", "quickstart"} <= set(available_recipes())
    coberta = load_recipe("coberta")
    assert (coberta["tokenizer_name"], coberta["vocab_size"], coberta["block_size"]) == ("train-bpe", 35000, 512)
    assert coberta["model_config"]["hidden_size"] == 192 and coberta["model_config"]["num_hidden_layers"] == 12
    assert coberta["cosmopedia_filter"]["max_samples"] == 50000 and coberta["mlm_probability"] == 0.15
    assert coberta["learning_rate"] == 9e-4 and coberta["per_device_train_batch_size"] == 32
    mini = load_recipe("miniroberta")
    assert (mini["adam_beta1"], mini["adam_beta2"], mini["adam_epsilon"]) == (0.98, 0.999, 1e-6)
    assert (mini["lr_scheduler_type"], mini["warmup_ratio"], mini["num_train_epochs"]) == ("cosine", 0.1, 10)
    assert mini["model_config"] == {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 8, "intermediate_size": 1024}
    assert load_recipe("bertmini")["mlm_probability"] == 0.3 and load_recipe("bertmini")["model_preset"] == "bertmini"
    assert load_recipe("neobert")["mlm_probability"] == 0.2 and load_recipe("neobert")["model_preset"] == "neobert"
    assert all(load_recipe(name)["sparse_prediction"] for name in available_recipes())


def test_overrides_are_typed_and_smoke_applies_its_block():
    overrides = parse_overrides(["--mlm_probability", "0.2", "--max_steps=7", "--document_isolation",
                                 "--model_config", "{hidden_size: 64}", "--train_files", "a.txt,b.txt"])
    assert overrides == {"mlm_probability": 0.2, "max_steps": 7, "document_isolation": True,
                         "model_config": {"hidden_size": 64}, "train_files": "a.txt,b.txt"}
    recipe = load_recipe("bertmini", {"max_steps": 3}, smoke=True)
    assert recipe["max_steps"] == 3 and recipe["dataset_name"] == "embedded" and recipe["output_dir"] == "runs/bertmini-smoke"


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("nosuch", {}, "unknown recipe 'nosuch'; choose one of"),
        ("bertmini", {"learning_rat": 1e-3}, "unknown setting --learning_rat in the command line; did you mean --learning_rate"),
        ("bertmini", {"mlm_probability": 1.5}, "mlm_probability"),
        ("miniroberta", {"document_isolation": True}, "document_isolation needs model_family small_encoder"),
        ("bertmini", {"save_steps": 150, "logging_steps": 100}, "multiple of logging_steps"),
        ("bertmini", {"report_to": "tensorbored"}, r"--report_to: unknown tracker\(s\) \['tensorbored'\]; choose from"),
        ("bertmini", {"report_to": 3}, "report_to must be a tracker name"),
    ],
)
def test_bad_recipe_settings_fail_clearly(name, overrides, message):
    with pytest.raises(UserError, match=message):
        load_recipe(name, overrides)


def run_script(args, tmp_path, launcher=None, timeout=600):
    env = dict(os.environ, SMALL_ENCODERS_CACHE=str(tmp_path / "cache"), HF_DATASETS_CACHE=str(tmp_path / "hf"),
               HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    command = (launcher or [sys.executable]) + [SCRIPT] + args
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "coberta", "miniroberta", "bertmini", "neobert", "neobert-mini"])
def test_smoke_run_of_each_recipe_saves_a_loadable_model(name, tmp_path):
    args = ["--recipe", name, "--smoke", "--output_dir", str(tmp_path / "out")]
    if name in LOCAL_TOKENIZERS:
        if not LOCAL_TOKENIZERS[name].exists():
            pytest.skip(f"{LOCAL_TOKENIZERS[name]} is absent (shared data folder)")
        args += ["--tokenizer_name", str(LOCAL_TOKENIZERS[name])]
    result = run_script(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    header = result.stdout
    for field in ("recipe", "parameters", "data", "tokenizer", "block length", "masking rate", "effective batch", "planned"):
        assert field in header
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert results["train_steps"] == 6 and results["eval_perplexity"] > 1
    assert len(results["fill_mask_example"]["top5"]) == 5 and len(results["fill_mask_example"]["untrained_top5"]) == 5
    assert "untrained" in result.stdout and "trained" in result.stdout.split("fill-mask:")[1]
    assert results["hardware"].startswith("CPU") and f"--recipe {name}" in results["command"]
    assert results["bf16"] is False  # `auto` on a CPU: fp32, whatever the CPU (bf16 there only by hand)
    assert results["validation_data"] == "the embedded corpus's validation file"  # the smoke runs' corpus
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["recipe"] == name and saved["smoke_run"] is True
    log = json.loads((out / "training_log.json").read_text())
    assert any("eval_perplexity" in entry for entry in log) and any("loss" in entry for entry in log)
    # The Trainer's evaluation at the last step is the reported one; the run does not evaluate that step twice.
    final = [entry for entry in log if "eval_loss" in entry and entry["step"] == 6]
    assert len(final) == 1 and final[0]["eval_perplexity"] == pytest.approx(results["eval_perplexity"])
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    if name == "quickstart":  # report_to auto: TensorBoard event files in the run folder, what the README says to open
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator,
        )

        assert "logging           tensorboard" in header
        scalars = {}
        for folder in {p.parent for p in out.glob("runs/*/events.out.tfevents.*")}:
            events = EventAccumulator(str(folder))
            events.Reload()
            for tag in events.Tags()["scalars"]:
                scalars.setdefault(tag, []).extend(e.value for e in events.Scalars(tag))
        assert {"train/loss", "train/learning_rate", "eval/loss", "eval/perplexity"} <= set(scalars)
        final_perplexity = results["eval_perplexity"]
        assert scalars["eval/perplexity"][-1] == pytest.approx(final_perplexity, rel=1e-5)

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    trust = name not in ("coberta", "miniroberta")
    model = AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=trust)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == ("SmallEncoderForMaskedLM" if trust else "RobertaForMaskedLM")
    assert model.get_input_embeddings().num_embeddings >= len(tokenizer)


@pytest.mark.slow
def test_no_hub_and_no_files_ends_in_one_line_naming_the_flag(tmp_path):
    # A Hub tokenizer with no network (and no cached copy) is refused first, before the corpus is asked for.
    result = run_script(["--recipe", "bertmini", "--tokenizer_name", "x", "--output_dir", str(tmp_path / "o")], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --tokenizer_name x: not a local folder")
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()
    if not LOCAL_TOKENIZERS["bertmini"].exists():
        pytest.skip(f"{LOCAL_TOKENIZERS['bertmini']} is absent (shared data folder)")
    # With a local tokenizer, the Hub corpus is what cannot be had: the message names --train_files.
    result = run_script(["--recipe", "bertmini", "--tokenizer_name", str(LOCAL_TOKENIZERS["bertmini"]),
                         "--output_dir", str(tmp_path / "o")], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: could not load the Hub dataset")
    assert "--train_files" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.slow
def test_unknown_recipe_and_key_exit_cleanly(tmp_path):
    result = run_script(["--recipe", "nosuch"], tmp_path)
    assert result.returncode == 1 and "unknown recipe" in result.stderr and "Traceback" not in result.stderr
    result = run_script(["--recipe", "quickstart", "--learning_rat", "1"], tmp_path)
    assert result.returncode == 1 and "learning_rat" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_local_corpus_files_replace_the_hub(tmp_path):
    books = SHARED_DATA / "gutenberg" / "austen-emma.txt"
    if not books.exists():
        pytest.skip(f"{books} is absent (shared data folder)")
    out = tmp_path / "out"
    result = run_script(["--recipe", "coberta", "--smoke", "--train_files", str(books), "--output_dir", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "austen-emma.txt" in result.stdout
    assert json.loads((out / "results.json").read_text())["data"].endswith("austen-emma.txt")


@pytest.mark.slow
def test_output_folder_of_another_run_is_refused_and_a_finished_one_kept(tmp_path):
    out = str(tmp_path / "out")
    assert run_script(["--recipe", "quickstart", "--smoke", "--output_dir", out, "--report_to", "none"], tmp_path).returncode == 0
    assert not (tmp_path / "out" / "runs").exists()  # report_to none: no tracker files
    again = run_script(["--recipe", "quickstart", "--smoke", "--output_dir", out], tmp_path)
    assert again.returncode == 1 and "already holds a finished run" in again.stderr
    other = run_script(["--recipe", "quickstart", "--smoke", "--output_dir", out, "--mlm_probability", "0.2"], tmp_path)
    assert other.returncode == 1 and "holds a different run" in other.stderr and "mlm_probability" in other.stderr


@pytest.mark.slow
def test_overwrite_removes_the_old_run_only_once_the_new_one_is_checked(tmp_path):
    out = str(tmp_path / "out")
    assert run_script(["--recipe", "quickstart", "--smoke", "--output_dir", out, "--report_to", "none"], tmp_path).returncode == 0
    for mistake in (["--train_files", str(tmp_path / "typo-*.txt")], ["--tokenizer_name", str(tmp_path / "nothing")],
                    ["--block_size", "100000000"]):
        again = run_script(["--recipe", "quickstart", "--smoke", "--output_dir", out, "--overwrite_output_dir", "true",
                            *mistake], tmp_path)
        assert again.returncode == 1 and again.stderr.strip().splitlines()[-1].startswith("error:"), again.stderr[-1500:]
        assert (tmp_path / "out" / "results.json").is_file() and (tmp_path / "out" / "model.safetensors").is_file()
    replaced = run_script(["--recipe", "quickstart", "--smoke", "--output_dir", out, "--overwrite_output_dir", "true",
                           "--mlm_probability", "0.2"], tmp_path)
    assert replaced.returncode == 0 and "mlm_probability: 0.2" in (tmp_path / "out" / "recipe.yaml").read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_accelerate_launch_two_cpu_processes(tmp_path):
    out = tmp_path / "out"
    result = run_script(["--recipe", "quickstart", "--smoke", "--output_dir", str(out)], tmp_path,
                        launcher=accelerate_launch())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2 process(es))" in result.stdout
    assert result.stdout.count("recipe            quickstart") == 1  # one header, from the main process
    results = json.loads((out / "results.json").read_text())
    assert results["train_steps"] == 6 and results["train_tokens"] == 6 * 16 * 64


def test_a_recipe_can_start_from_another_with_base(tmp_path):
    rtd, plain = load_recipe("tuned-20m-rtd"), load_recipe("tuned-20m")
    assert rtd["objective"] == "rtd" and plain["objective"] == "mlm"
    differing = {k for k in plain if rtd.get(k) != plain[k]}
    assert differing == {"description", "base", "objective", "recipe", "output_dir"}  # everything else inherited
    assert load_recipe("tuned-20m-rtd", smoke=True)["max_steps"] == 6  # the base's smoke block too
    assert load_recipe("electra-small")["model_config"]["embedding_size"] == 128
    (tmp_path / "a.yaml").write_text("base: " + str(tmp_path / "b.yaml") + "\n")
    (tmp_path / "b.yaml").write_text("base: " + str(tmp_path / "a.yaml") + "\n")
    with pytest.raises(UserError, match="leads back to itself"):
        load_recipe(str(tmp_path / "a.yaml"))


def test_native_bf16_is_told_apart_on_cpu_and_gpu(monkeypatch):
    """Native bf16: a CUDA device that supports it, or a CPU with AVX512-BF16 or AMX; an AVX2-only CPU (bf16
    emulated, slower than fp32) has none, and `--bf16 true` there warns."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for avx512_bf16, amx, expected in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert native_bf16() is expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert native_bf16() is False  # a GPU without bf16 stays in fp32 even on a bf16-capable CPU


def test_help_lists_every_field_with_its_type_help_and_the_recipes_values(capsys):
    from small_encoders.recipes.pretrain_mlm import main
    from small_encoders.recipes.recipe import Recipe

    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    for name, field in Recipe.fields().items():
        assert f"  --{name} (" in shown and field.metadata["help"] in shown, name
    assert "  --mlm_probability (float; default: 0.15)" in shown
    assert "  --time_budget (float or null, 1e-09 to 525,600; default: null)" in shown
    assert "  --init_from (text or null; default: null)" in shown and "continued pretraining:" in shown
    assert main(["--recipe", "tuned-20m", "--help"]) == 0  # that recipe's values in place of the defaults
    shown = capsys.readouterr().out
    assert "  --mlm_probability (float; tuned-20m: 0.3)" in shown and "  --time_budget (float or null, 1e-09 to 525,600; tuned-20m: 10.0)" in shown


def test_an_unknown_setting_names_the_nearest_field():
    with pytest.raises(UserError, match="unknown setting --mlm_probabilty in the command line; did you mean --mlm_probability"):
        load_recipe("quickstart", {"mlm_probabilty": 0.2})
    with pytest.raises(UserError, match="unknown setting --zzz in the command line; see every setting with --help"):
        load_recipe("quickstart", {"zzz": 1})


def test_resolving_and_checking_are_separate_steps():
    """Resolving makes the values the run uses (numbers YAML left as text, report_to, a continued model's tokenizer);
    checking changes nothing."""
    from small_encoders.recipes.recipe import Recipe, resolve, validate

    recipe = load_recipe("quickstart", {"learning_rate": "1e-3", "init_from": "some/model", "report_to": "none"})
    assert recipe.learning_rate == 1e-3 and recipe.tokenizer_name == "some/model" and recipe.report_to == ["none"]
    before = recipe.to_dict()
    validate(recipe)
    assert recipe.to_dict() == before
    assert resolve(dict(before, learning_rate="2e-3"))["learning_rate"] == 2e-3
    with pytest.raises(UserError, match="--learning_rate must be a positive number"):
        resolve(dict(before, learning_rate="fast"))
    assert isinstance(recipe, Recipe) and dict(recipe, seed=7)["seed"] == 7 and recipe["seed"] == recipe.seed


def test_the_recipe_makes_its_training_arguments():
    from small_encoders.recipes.recipe import Recipe

    recipe = load_recipe("tuned-5m", {"max_steps": 12, "report_to": "none"})
    args = recipe.training_arguments(use_cpu=True, bf16=False)
    for name, field in Recipe.fields().items():
        if field.metadata["trainer"] and name != "report_to":  # (TrainingArguments reads ["none"] as [])
            assert getattr(args, name) == recipe[name], name
    assert args.report_to == []
    assert args.max_steps == 12 and args.data_seed == recipe.seed and args.output_dir == recipe.output_dir
    assert args.eval_strategy == "steps" and args.save_strategy == "steps" and args.use_cpu
