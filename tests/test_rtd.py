"""Replaced-token detection (ELECTRA): the discriminator's labels, both losses learning, what is saved and how it
loads, resume, and bad settings."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import HUB_USER, tiny_config
from safetensors.torch import load_file
from test_reliability import (
    run,  # the real script in a subprocess, optionally killed right after a checkpoint
)

from small_encoders.modeling.rtd import build_rtd_model, generator_shape
from small_encoders.recipes.training import ResumableMLMCollator, chance_loss

# quickstart's smoke has dropout 0.1, so an exact resume must restore the RNG states as well as the sample seeds.
SMOKE = ["--recipe", "quickstart", "--smoke", "--objective", "rtd", "--generator_size", "0.5", "--max_steps", "8",
         "--save_steps", "4", "--eval_steps", "4", "--logging_steps", "2", "--report_to", "none"]


def tiny_rtd(tokenizer, **fields):
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), hidden_size=64, num_attention_heads=4, intermediate_size=128, **fields)
    return build_rtd_model(config, fraction=0.5, special_token_ids=tokenizer.all_special_ids)


def test_chance_loss_is_the_loss_of_always_predicting_the_replaced_fraction():
    targets = torch.tensor([1.0] * 3 + [0.0] * 7)
    constant = torch.full_like(targets, 0.3).logit()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(constant, targets).item()
    assert chance_loss(0.3) == pytest.approx(expected, rel=1e-6)
    assert chance_loss(0.0) == pytest.approx(0.0, abs=1e-9) and chance_loss(0.5) == pytest.approx(0.6931472, rel=1e-6)


def test_generator_shape_keeps_whole_heads_of_the_discriminators_width():
    assert generator_shape(256, 4, 1024, 0.25) == (64, 1, 256)  # ELECTRA-Small's generator
    assert generator_shape(384, 6, 1024, 0.5) == (192, 3, 512)
    assert generator_shape(64, 2, 172, 0.25) == (32, 1, 86)  # never fewer than one head


def test_discriminator_targets_are_exactly_the_replaced_positions(tiny_tokenizer):
    model = tiny_rtd(tiny_tokenizer)
    cls, sep, pad, mask = (tiny_tokenizer.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]"))
    words = tiny_tokenizer.convert_tokens_to_ids(["the", "ship", "sea", "whale", "captain", "said"])
    original = torch.tensor([[cls, *words, sep, pad, pad], [cls, *reversed(words), sep, sep, pad]])
    attention = (original != pad).long()
    labels = torch.full_like(original, -100)
    chosen = [(0, 1), (0, 3), (0, 5), (1, 2), (1, 6)]
    for row, column in chosen:
        labels[row, column] = original[row, column]
    masked = original.clone()
    masked[labels != -100] = mask
    # Logits that sample one token for sure: the original at (0, 3) and (1, 6), another word elsewhere.
    other = tiny_tokenizer.convert_tokens_to_ids("house")
    picks = [other, original[0, 3], other, other, original[1, 6]]
    logits = torch.full((len(chosen), len(tiny_tokenizer)), -1e4)
    logits[torch.arange(len(chosen)), torch.tensor(picks)] = 0.0
    corrupted, targets = model.replace_tokens(masked, labels, logits, attention, sampling_seed=torch.tensor([7]))

    expected = torch.zeros_like(original)
    expected[0, 1] = expected[0, 5] = expected[1, 2] = 1  # replaced by "house"; (0, 3) and (1, 6) sampled the original
    special = torch.isin(original, torch.tensor(tiny_tokenizer.all_special_ids))
    expected[special] = -100  # [CLS], [SEP] and [PAD] are never labelled; padding is masked out by attention too
    assert torch.equal(targets, expected)
    # Everywhere the discriminator is scored, the label says exactly whether its input differs from the original.
    scored = targets != -100
    assert torch.equal(targets[scored].bool(), (corrupted != original)[scored])
    assert torch.equal(corrupted[labels == -100], original[labels == -100])  # only the chosen positions change
    assert not (targets[attention == 0] != -100).any()


def test_samples_are_a_function_of_the_seed(tiny_tokenizer):
    model = tiny_rtd(tiny_tokenizer)
    ids = torch.randint(5, len(tiny_tokenizer), (4, 16), generator=torch.Generator().manual_seed(0))
    labels = torch.where(torch.rand(4, 16, generator=torch.Generator().manual_seed(1)) < 0.5, ids, -100)
    logits = torch.zeros(int((labels != -100).sum()), len(tiny_tokenizer))
    first = model.replace_tokens(ids, labels, logits, sampling_seed=torch.tensor([3]))[0]
    again = model.replace_tokens(ids, labels, logits, sampling_seed=torch.tensor([3]))[0]
    other = model.replace_tokens(ids, labels, logits, sampling_seed=torch.tensor([4]))[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_generator_shares_the_discriminators_embeddings(tiny_tokenizer):
    model = tiny_rtd(tiny_tokenizer)
    shared = model.discriminator.get_input_embeddings().weight
    assert model.generator.get_input_embeddings().weight is shared
    assert model.generator.get_output_embeddings().weight is shared  # the tied decoder too
    assert model.generator.config.hidden_size == 32 and model.generator.config.embedding_size == 64
    unique = {id(p) for p in model.parameters()}
    assert len(unique) == len(list(model.parameters()))  # parameters() lists the shared matrix once


def test_both_losses_fall_on_a_tiny_corpus(tiny_tokenizer):
    model = tiny_rtd(tiny_tokenizer)
    text = " ".join(["the captain said the ship was on the sea and the whale was in the sea"] * 40)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    blocks = [[tiny_tokenizer.cls_token_id, *ids[i:i + 30], tiny_tokenizer.sep_token_id] for i in range(0, 30 * 16, 30)]
    collator = ResumableMLMCollator(tiny_tokenizer, 0.3, seed=0, sampling_seed=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for step in range(60):
        batch = collator([{"input_ids": blocks[(step * 4 + k) % len(blocks)]} for k in range(4)])
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append((float(out.generator_loss), float(out.discriminator_loss)))
    first = [sum(h[i] for h in history[:10]) / 10 for i in (0, 1)]
    last = [sum(h[i] for h in history[-10:]) / 10 for i in (0, 1)]
    assert last[0] < 0.7 * first[0], (first, last)  # the generator learns the corpus
    assert last[1] < 0.9 * first[1], (first, last)  # the discriminator learns to tell its samples apart


CHILD = HUB_USER + textwrap.dedent(
    """
    import importlib.util, json, sys, torch
    assert importlib.util.find_spec("modeling") is None, "the repository must not be importable here"
    from transformers import AutoConfig, AutoModelForSequenceClassification
    folder, ids_path, out_path, trust = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, trust_remote_code=trust).eval()
    with torch.no_grad():
        logits = model(torch.load(ids_path)).logits
    json.dump({"class": type(model).__name__, "model_type": AutoConfig.from_pretrained(folder, trust_remote_code=trust).model_type,
               "logits": logits.tolist()}, open(out_path, "w"))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["small_encoder", "roberta"])
def test_saved_discriminator_loads_as_a_sequence_classifier_in_a_clean_process(family, tiny_tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification, RobertaConfig

    if family == "small_encoder":
        model = tiny_rtd(tiny_tokenizer)
    else:
        torch.manual_seed(0)
        config = RobertaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=128, max_position_embeddings=34, type_vocab_size=1,
                               pad_token_id=tiny_tokenizer.pad_token_id)
        model = build_rtd_model(config, fraction=0.5, special_token_ids=tiny_tokenizer.all_special_ids)
    folder = tmp_path / "rtd"
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    stock = family == "roberta"
    # Stock RoBERTa/BERT shapes save a plain ELECTRA discriminator: no custom code beside the weights.
    assert config["model_type"] == ("electra" if stock else "small_encoder")
    assert config["architectures"] == ["ElectraForPreTraining" if stock else "SmallEncoderForPreTraining"]
    assert bool(list(folder.glob("*.py"))) is not stock
    assert (folder / "generator" / "model.safetensors").is_file()

    ids = torch.randint(5, len(tiny_tokenizer), (2, 12), generator=torch.Generator().manual_seed(1))
    torch.save(ids, tmp_path / "ids.pt")
    torch.manual_seed(0)
    import small_encoders.modeling  # noqa: F401  registers the family in this process

    here = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, trust_remote_code=True).eval()
    with torch.no_grad():
        expected = here(ids).logits
    encoder = here.electra if stock else here.model
    assert torch.equal(encoder.get_input_embeddings().weight, model.discriminator.get_input_embeddings().weight)

    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="")
    result = subprocess.run([sys.executable, str(tmp_path / "child.py"), str(folder), str(tmp_path / "ids.pt"),
                             str(tmp_path / "out.json"), "0" if stock else "1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    child = json.loads((tmp_path / "out.json").read_text())
    assert child["class"] == ("ElectraForSequenceClassification" if stock else "SmallEncoderForSequenceClassification")
    assert torch.allclose(torch.tensor(child["logits"]), expected, atol=1e-6)


@pytest.mark.slow
def test_rtd_run_saves_the_discriminator_and_resumes_to_the_same_weights(tmp_path):
    whole = run(SMOKE + ["--output_dir", str(tmp_path / "whole")], tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert "replaced-token detection" in whole.stdout and "saved in generator/" in whole.stdout
    results = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert results["objective"] == "rtd" and results["eval_perplexity"] is None
    assert 0 <= results["discriminator_accuracy"] <= 1 and results["generator_perplexity"] > 1
    assert results["discriminator_chance_loss"] == pytest.approx(chance_loss(results["replaced_fraction"]))
    log = json.loads((tmp_path / "whole" / "training_log.json").read_text())
    assert any("discriminator_loss" in entry and "generator_loss" in entry for entry in log)
    assert any("eval_discriminator_accuracy" in entry and "eval_perplexity" not in entry for entry in log)

    killed_dir = tmp_path / "killed"
    killed = run(SMOKE + ["--output_dir", str(killed_dir)], tmp_path, wrapper=["kill", "4"])
    assert killed.returncode == -9 and (killed_dir / "checkpoint-4" / "generator" / "model.safetensors").is_file()
    resumed = run(SMOKE + ["--output_dir", str(killed_dir), "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for part in ("model.safetensors", "generator/model.safetensors"):
        expected, actual = load_file(tmp_path / "whole" / part), load_file(killed_dir / part)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{part}: {key}"


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--objective", "xlnet", "--objective must be mlm"),
        ("--generator_size", "1.5", "wider than the discriminator"),
        ("--discriminator_weight", "0", "--discriminator_weight must be a positive number"),
        ("--discriminator_weight", "-50", "--discriminator_weight must be a positive number"),
        ("--generator_temperature", "abc", "--generator_temperature must be a positive number"),
    ],
)
def test_bad_rtd_settings_end_in_one_error_line(flag, value, message, tmp_path):
    result = run(["--recipe", "quickstart", "--smoke", flag, value, "--output_dir", str(tmp_path / "out")], tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
