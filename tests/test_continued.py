"""Continued pretraining (`--init_from`, recipes/continued.py) and the suite's `--baseline_model` comparison."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT, accelerate_launch, save_tiny_model, tiny_config, tiny_vocab

from small_encoders.core.errors import UserError
from small_encoders.recipes.recipe import CONTINUED_DEFAULTS, load_recipe

SCRIPT = str(REPO_ROOT / "recipes" / "pretrain_mlm.py")
SUITE = str(REPO_ROOT / "eval" / "suite.py")
SMOKE = ["--recipe", "domain", "--smoke", "--report_to", "none", "--logging_steps", "1", "--save_steps", "4",
         "--eval_steps", "4"]


def environment(tmp_path):
    return dict(os.environ, SMALL_ENCODERS_CACHE=str(tmp_path / "cache"), HF_DATASETS_CACHE=str(tmp_path / "hf"),
                HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


def pretrain(tmp_path, args, launcher=None):
    done = subprocess.run((launcher or [sys.executable]) + [SCRIPT, *args], env=environment(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    return done


def losses(folder):
    return [row["loss"] for row in json.loads((folder / "training_log.json").read_text()) if "loss" in row]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A quickstart smoke model trained for 60 steps at a high rate (its loss well below a random start's)."""
    root = tmp_path_factory.mktemp("trained")
    done = pretrain(root, ["--recipe", "quickstart", "--smoke", "--max_steps", "60", "--logging_steps", "1",
                           "--save_steps", "60", "--eval_steps", "60", "--learning_rate", "3e-3", "--report_to", "none",
                           "--output_dir", str(root / "start")])
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "start"


def test_continuing_changes_the_learning_rate_and_warmup_unless_told_otherwise(tmp_path):
    recipe = load_recipe("quickstart", {"init_from": "some/model"})
    assert (recipe["learning_rate"], recipe["warmup_ratio"]) == (CONTINUED_DEFAULTS["learning_rate"], CONTINUED_DEFAULTS["warmup_ratio"])
    assert recipe["tokenizer_name"] == "some/model"  # the model's own tokenizer
    assert load_recipe("quickstart", {"init_from": "some/model", "learning_rate": 5e-4})["learning_rate"] == 5e-4
    assert load_recipe("quickstart")["learning_rate"] == 3e-3  # a run from random weights keeps the recipe's rate
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: quickstart\ncontinued: {learning_rate: 2.0e-5}\n")
    assert load_recipe(str(mine), {"init_from": "some/model"})["learning_rate"] == 2e-5
    assert load_recipe(str(mine))["learning_rate"] == 3e-3
    with pytest.raises(UserError, match="--objective rtd starts its generator"):
        load_recipe("quickstart", {"init_from": "some/model", "objective": "rtd"})
    with pytest.raises(UserError, match="unknown setting --learning_rat in .*did you mean --learning_rate"):
        mine.write_text("base: quickstart\ncontinued: {learning_rat: 2.0e-5}\n")
        load_recipe(str(mine), {"init_from": "some/model"})


def test_keep_best_spreads_its_evaluations_on_logging_steps_and_the_pass_cap_cuts_a_budgets_plan():
    from small_encoders.recipes.budget import BudgetPlan
    from small_encoders.recipes.keep_best import evaluation_interval

    assert evaluation_interval(400, 8, 50) == (50, 50) and evaluation_interval(1000, 8, 50) == (100, 50)
    assert evaluation_interval(77, 8, 50) == (9, 9)  # a plan too short for the logging interval: logged at each
    assert evaluation_interval(5, 8, 50) == (1, 1)
    plan = BudgetPlan(minutes=15, step_seconds=1.0, planned_steps=458, planned_tokens=458 * 4096)
    assert plan.cap == 1832  # a re-plan may quadruple an uncapped plan
    assert plan.cap_passes(3, blocks=800, blocks_per_step=32)  # 458 steps = 18.3 passes over 800 blocks
    assert (plan.planned_steps, plan.budget_steps, plan.cap, plan.planned_tokens) == (75, 458, 75, 75 * 4096)
    assert not plan.cap_passes(3, blocks=800, blocks_per_step=32)  # once
    assert not BudgetPlan(minutes=15, step_seconds=1.0, planned_steps=50).cap_passes(3, 800, 32)  # within the cap
    assert load_recipe("domain")["keep_best"] and load_recipe("domain")["max_passes"] == 3
    assert not load_recipe("quickstart")["keep_best"] and load_recipe("quickstart")["max_passes"] is None


@pytest.mark.slow
def test_a_continued_run_that_only_gets_worse_saves_the_start_and_says_so(tmp_path, trained):
    """At a learning rate that ruins the model at every step: the start is measured before the first step, early
    stopping ends the run after two evaluations without a new best, the saved weights are the start's, one line says
    so, results.json records it all, and --fail_if_worse makes the exit code 1."""
    from safetensors.torch import load_file

    out = tmp_path / "worse"
    done = pretrain(tmp_path, SMOKE + ["--init_from", str(trained), "--max_steps", "12", "--learning_rate", "0.5",
                                       "--fail_if_worse", "true", "--output_dir", str(out)])
    assert done.returncode == 1, done.stderr[-3000:]
    assert "no step beat the start model on the validation set" in done.stdout
    assert "the saved model is the start's weights; stopped early at step 2" in done.stdout
    start, saved = load_file(trained / "model.safetensors"), load_file(out / "model.safetensors")
    assert all((start[name] == saved[name]).all() for name in start)
    result = json.loads((out / "results.json").read_text())
    kept = result["kept"]
    assert kept["kept_step"] == 0 and kept["stopped_early_at"] == 2 and kept["evaluations"] == 2
    assert kept["start_loss"] == kept["kept_loss"] == result["eval_loss"]  # the saved model's figure is the start's
    log = json.loads((out / "training_log.json").read_text())
    assert [row["step"] for row in log if "eval_loss" in row] == [0, 1, 2]  # the start, then every step
    assert all(row["eval_loss"] >= kept["start_loss"] for row in log if "eval_loss" in row and row["step"] > 0)
    from small_encoders.model_cards.generate import build_card

    card, _ = build_card(out)
    assert "weights kept: the start's, unchanged: no step beat the start model" in card


@pytest.mark.slow
def test_a_continued_run_that_improves_keeps_its_best_step_and_a_budget_is_capped_at_the_passes(tmp_path, trained):
    """A gentle rate improves on the start: the kept step is a trained one, its loss below the start's. A time budget
    that would pass over the smoke corpus many times plans --max_passes passes instead, with a note."""
    out = tmp_path / "better"
    done = pretrain(tmp_path, SMOKE + ["--init_from", str(trained), "--max_steps", "8", "--learning_rate", "1e-5",
                                       "--output_dir", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    kept = result["kept"]
    assert kept["kept_step"] > 0 and kept["kept_loss"] < kept["start_loss"] and result["eval_loss"] == kept["kept_loss"]
    assert "kept " in done.stdout and f"start {kept['start_perplexity']:.2f} ->" in done.stdout
    # A cap of a few steps (0.02 passes), so that even a machine many times slower affords more in the budget.
    out = tmp_path / "capped"
    done = pretrain(tmp_path, SMOKE + ["--init_from", str(trained), "--max_steps", "null", "--time_budget", "0.5",
                                       "--max_passes", "0.02", "--output_dir", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "passes over the" in done.stdout and "at most 0.02 passes (--max_passes" in done.stdout
    result = json.loads((out / "results.json").read_text())
    plan = result["time_budget"]
    # The budget afforded more; a re-plan on a busy machine may train fewer, never more.
    assert plan["budget_steps"] > plan["planned_steps"] >= result["train_steps"]
    assert result["passes"] <= 0.02 + 1e-9


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_a_continued_run_starts_where_its_model_ended_in_one_and_two_processes(tmp_path, trained):
    """The first step's loss of a run continued from a trained model is far below a random start's (6.9 = ln 1000 for
    the smoke tokenizer's 1,000 entries), in one process and under `accelerate launch` with two (gloo, two collation
    workers each); the folder records what it started from and keeps the model's tokenizer, and the card says so."""
    random_first = losses(trained)[0]
    for name, launcher, workers in (("one", None, "0"), ("two", accelerate_launch(), "2")):  # two processes, two collation workers each
        out = tmp_path / name
        done = pretrain(tmp_path, SMOKE + ["--init_from", str(trained), "--max_steps", "4", "--dataloader_num_workers",
                                           workers, "--output_dir", str(out)], launcher)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"continued from    {trained}" in done.stdout
        assert ("collation in 2 worker processes" if workers == "2" else "collation in the training process") in done.stdout
        assert losses(out)[0] < random_first - 1.0, (name, losses(out)[0], random_first)
        result = json.loads((out / "results.json").read_text())
        assert result["init_from"] == str(trained)
        assert (out / "tokenizer.json").read_text() == (trained / "tokenizer.json").read_text()
        assert json.loads((out / "config.json").read_text())["hidden_size"] == 64  # its shape, not the recipe's
    from small_encoders.model_cards.generate import build_card

    card, _ = build_card(tmp_path / "one")
    assert f"started from `{trained}`" in card and "for 4 steps" in card


@pytest.mark.slow
@pytest.mark.parametrize("family", ["roberta", "bert", "electra", "modernbert"])
def test_a_stock_model_is_continued_and_saved_as_what_it_was(tmp_path, family):
    """RoBERTa, BERT, an ELECTRA generator and ModernBERT: continued with sparse prediction, saved as the same kind."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        ElectraConfig,
        ElectraForMaskedLM,
        ModernBertConfig,
        ModernBertForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    from small_encoders.data_prep.tokenizer import wordpiece_from_vocab

    (tmp_path / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = wordpiece_from_vocab(tmp_path / "vocab.txt")
    shape = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, pad_token_id=0)
    torch.manual_seed(0)
    if family == "roberta":
        model = RobertaForMaskedLM(RobertaConfig(max_position_embeddings=66, **shape))
    elif family == "bert":
        model = BertForMaskedLM(BertConfig(max_position_embeddings=64, **shape))
    elif family == "electra":
        model = ElectraForMaskedLM(ElectraConfig(embedding_size=16, max_position_embeddings=64, **shape))
    else:
        ids = {f"{name}_token_id": tokenizer.convert_tokens_to_ids(token) for name, token in
               (("bos", "[CLS]"), ("cls", "[CLS]"), ("eos", "[SEP]"), ("sep", "[SEP]"))}
        model = ModernBertForMaskedLM(ModernBertConfig(max_position_embeddings=64, local_attention=16, **shape, **ids))
    model.save_pretrained(tmp_path / "start")
    tokenizer.save_pretrained(tmp_path / "start")
    out = tmp_path / "out"
    done = pretrain(tmp_path, SMOKE + ["--init_from", str(tmp_path / "start"), "--max_steps", "4", "--output_dir", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sparse prediction on" in done.stdout and "note:" not in done.stdout
    assert json.loads((out / "config.json").read_text())["model_type"] == family
    from safetensors.torch import load_file

    before, after = load_file(tmp_path / "start" / "model.safetensors"), load_file(out / "model.safetensors")
    name = next(k for k in before if ("layer.0.attention" in k or "layers.0.attn" in k) and k.endswith("weight"))
    assert before[name].shape == after[name].shape and not torch.equal(before[name], after[name])  # trained further


@pytest.mark.slow
def test_what_cannot_be_continued_is_one_error_line_before_any_data_is_read(tmp_path):
    from small_encoders.data_prep.tokenizer import wordpiece_from_vocab
    from small_encoders.modeling import SmallEncoderForPreTraining

    short = save_tiny_model(tmp_path)  # 128 positions; tmp_path/vocab.txt beside it
    SmallEncoderForPreTraining(tiny_config()).save_pretrained(tmp_path / "discriminator")
    wordpiece_from_vocab(tmp_path / "vocab.txt").save_pretrained(tmp_path / "discriminator")
    cases = [
        (["--init_from", str(short), "--block_size", "256"], "--block_size 256 is longer than"),
        (["--init_from", str(tmp_path / "discriminator")], "is a replaced-token-detection discriminator"),
        (["--init_from", str(tmp_path / "nothing")], "--init_from"),
        (["--init_from", str(short), "--objective", "rtd"], "--objective rtd starts its generator"),
    ]
    for args, message in cases:
        done = pretrain(tmp_path, SMOKE + args + ["--output_dir", str(tmp_path / "out")])
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and lines[-1].startswith("error:") and message in lines[-1], (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def run_suite(tmp_path, model, out, *extra):
    done = subprocess.run([sys.executable, SUITE, "--model_name_or_path", str(model), "--data_dir", str(tmp_path / "data"),
                           "--output_dir", str(out), "--protocol", "smoke", "--skip", "mmlu", "--floor_cache",
                           str(tmp_path / "floors"), *extra], env=environment(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_the_suite_measures_a_continued_model_against_its_start(tmp_path, trained):
    """--baseline_model takes the floor's place: the start model fine-tuned and measured from its own weights with the
    same protocol and seeds (its side reads as the start model itself measured as the model), nothing cached; the
    summary reads start -> continued."""
    data = tmp_path / "data" / "glue" / "SST-2"
    data.mkdir(parents=True)
    rows = ["sentence\tlabel"] + [f"{'a good film' if i % 2 else 'a bad film'} number {i}\t{i % 2}" for i in range(64)]
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "data" / "wikitext-2").mkdir()
    (tmp_path / "data" / "wikitext-2" / "valid.txt").write_text(textwrap.dedent("""\
        The archive holds a list of file names and the size of each file in bytes .
        Return the value of the named attribute of the object , or the default when it has none .
        """) * 40)
    continued = tmp_path / "continued"
    # --keep_best false: the continued weights are saved even where they are worse (the suite must tell them apart)
    done = pretrain(tmp_path, SMOKE + ["--init_from", str(trained), "--max_steps", "8", "--learning_rate", "1e-3",
                                       "--keep_best", "false", "--output_dir", str(continued)])
    assert done.returncode == 0, done.stderr[-3000:]
    # No --baseline_model: the run folder names its start, and the suite measures against it by default.
    results = run_suite(tmp_path, continued, tmp_path / "against-start")
    alone = run_suite(tmp_path, trained, tmp_path / "start-alone")
    assert results["reference"] == {"kind": "baseline", "model": str(trained)}
    assert not (tmp_path / "floors").exists() or len(list((tmp_path / "floors").iterdir())) == 1  # only `alone`'s floor
    start, measured_alone = results["floor"], alone["pretrained"]
    assert start["perplexity"]["perplexity"] == pytest.approx(measured_alone["perplexity"]["perplexity"])
    assert start["glue"]["sst2"]["per_seed"] == measured_alone["glue"]["sst2"]["per_seed"]
    assert results["pretrained"]["perplexity"]["perplexity"] != start["perplexity"]["perplexity"]
    summary = (tmp_path / "against-start" / "summary.md").read_text()
    assert f"| measurement | start (`{trained}`) | continued | difference |" in summary
    assert "start -> continued" in summary and "random-init floor |" not in summary
    from small_encoders.model_cards.generate import build_card

    card, _ = build_card(continued, [tmp_path / "against-start" / "results.json"])  # the card names the start too
    assert f"(start model `{trained}` " in card and "random-init floor" not in card
    # --baseline floor: the random-init floor after all (the same architecture and tokenizer: the floor `alone` cached)
    floor = run_suite(tmp_path, continued, tmp_path / "against-floor", "--baseline", "floor")
    assert floor["reference"] == {"kind": "random-init floor"}
    assert floor["floor"]["glue"]["sst2"]["per_seed"] == alone["floor"]["glue"]["sst2"]["per_seed"]
    done = subprocess.run([sys.executable, SUITE, "--model_name_or_path", str(continued), "--data_dir",
                           str(tmp_path / "data"), "--output_dir", str(tmp_path / "x"), "--baseline_model",
                           str(tmp_path / "missing")], env=environment(tmp_path), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "--baseline_model" in done.stderr.strip().splitlines()[-1]


def test_replay_mixes_in_general_text_at_its_share_and_never_its_held_out_documents(tmp_path):
    from datasets import Dataset

    from small_encoders.data_prep.corpus import load_corpus, mix_in_replay

    general = tmp_path / "general.txt"
    general.write_text("".join(f"general document number {i} about the wider world.\n" for i in range(400)))
    domain = Dataset.from_dict({"text": [f"domain paragraph {i} of the novel, long enough to count." for i in range(100)]})
    held_out = set(load_corpus(train_files=str(general), seed=7)["validation"]["text"])  # the split a run would make
    assert len(held_out) == 20
    mixed, line = mix_in_replay(domain, str(general), 0.5, seed=7)
    replayed = [text for text in mixed["text"] if text.startswith("general")]
    assert replayed and not held_out & set(replayed)
    share = sum(map(len, replayed)) / sum(map(len, mixed["text"]))
    assert 0.5 <= share < 0.55 and "held-out 5% never drawn from" in line  # the share asked for, by characters
    assert sorted(t for t in mixed["text"] if t.startswith("domain")) == sorted(domain["text"])  # every domain document
    with pytest.raises(UserError, match="fewer than the .* that --replay_fraction 0.95 asks for"):
        mix_in_replay(Dataset.from_dict({"text": ["x" * 10**6]}), str(general), 0.95)
    with pytest.raises(UserError, match="--replay_files and --replay_fraction go together"):
        load_recipe("domain", {"replay_files": str(general)})


@pytest.mark.slow
def test_a_continued_run_with_replay_and_two_workers_trains_on_the_mix(tmp_path, trained):
    out = tmp_path / "replay"
    general = tmp_path / "general.txt"
    general.write_text("".join(f"general document number {i} about the wider world and its many places.\n"
                               for i in range(8000)))
    done = pretrain(tmp_path, SMOKE + ["--init_from", str(trained), "--max_steps", "4", "--replay_files", str(general),
                                       "--replay_fraction", "0.3", "--dataloader_num_workers", "2",
                                       "--output_dir", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "collation in 2 worker processes" in done.stdout
    result = json.loads((out / "results.json").read_text())
    assert "replay: " in result["data"] and "(30% of the training characters" in result["data"]


def test_the_passes_curve_reads_a_runs_evaluations_against_its_passes(tmp_path):
    from small_encoders.benchmarks.passes_curve import curve, table
    from small_encoders.core.run_folder import PretrainingResult, RunFolder

    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.write_training_log([{"step": 0, "eval_loss": 3.0}, {"step": 10, "loss": 2.0}, {"step": 10, "eval_loss": 3.1},
                               {"step": 20, "eval_loss": 2.9}])
    folder.write_result(PretrainingResult(recipe="domain", parameters=1, data="x", block_size=128, mlm_probability=0.3,
                                          train_steps=20, train_tokens=1, train_seconds=1.0, eval_loss=2.9,
                                          eval_blocks=1, passes=4.0))
    assert [round(p, 2) for p, _ in curve(folder.path)] == [0.0, 2.0, 4.0]
    assert "lowest 18.17 at 4.00 passes" in table([folder.path])  # exp(2.9)
    with pytest.raises(UserError, match="holds no finished run"):
        curve(tmp_path)
