"""model_cards/: generated cards, the dry-run upload folder, and what a Hub user gets from it."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from conftest import HUB_USER, tiny_config

from small_encoders.core.errors import UserError
from small_encoders.model_cards.generate import build_card
from small_encoders.model_cards.publish import main as publish_main
from small_encoders.model_cards.publish import stage
from small_encoders.modeling import SmallEncoderForMaskedLM

TOKEN = "hf_PLANTEDcardTokenDoNotLeak0987654321"


@pytest.fixture
def trained_folder(tmp_path, tiny_tokenizer):
    """A model folder shaped like pretrain_mlm.py's output, with eval results beside it."""
    folder = tmp_path / "run"
    SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tiny_tokenizer), max_position_embeddings=128)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({
        "recipe": "bertmini", "smoke_run": True, "description": "BERTmini, smoke-sized.", "dataset_name": "bookcorpus/bookcorpus",
        "tokenizer_name": "google-bert/bert-base-uncased", "block_size": 64, "mlm_probability": 0.3, "learning_rate": 6e-4,
        "per_device_train_batch_size": 8, "seed": 42,
    }))
    (folder / "results.json").write_text(json.dumps({
        "recipe": "bertmini", "smoke": True, "parameters": 123456, "data": "embedded corpus", "block_size": 64,
        "mlm_probability": 0.3, "train_steps": 6, "train_tokens": 3072, "train_seconds": 1.0, "eval_loss": 6.7,
        "eval_perplexity": 812.4, "eval_blocks": 40,
    }))
    (folder / "training_log.json").write_text(json.dumps(
        [{"step": 2, "loss": 6.9}, {"step": 4, "loss": 6.8}, {"step": 4, "eval_loss": 6.75}, {"step": 6, "loss": 6.7}]))
    glue = tmp_path / "sst2.json"
    glue.write_text(json.dumps({
        "task": "sst2", "summary": {"accuracy": {"median": 0.61, "spread": 0.02}}, "train_examples": 64,
        "hyperparameters": {"seeds": "1,2,3", "learning_rate": 1e-4, "num_train_epochs": 1.0, "max_train_samples": 64},
    }))
    mmlu = tmp_path / "mmlu.json"
    mmlu.write_text(json.dumps({"split": "val", "k_shot": 0, "accuracy": 0.251, "ci95": [0.23, 0.27], "total": 1529}))
    return folder, [glue, mmlu]


def test_card_front_matter_passes_hub_parsing(trained_folder, tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    folder, results = trained_folder
    text, front = build_card(folder, results, model_name="someone/bertmini-smoke", notes=["Trained for six steps only."])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "fill-mask"
    assert front["datasets"] == ["bookcorpus/bookcorpus"] and "custom_code" in front["tags"]
    (tmp_path / "README.md").write_text(text)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    name, evals = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "bertmini-smoke"
    values = {(e.dataset_name, e.metric_type): e.metric_value for e in evals}
    assert values[("GLUE SST-2", "accuracy")] == 0.61 and values[("MMLU", "accuracy")] == 0.251
    assert any(metric == "perplexity" for _, metric in values)
    assert "Smoke-sized run" in text and "trust_remote_code=True" in text and "[MASK]" in text
    assert "123,456" in text and "- Trained for six steps only." in text.split("## Limitations")[1]
    assert "`eval/run_glue.py --task_name sst2 --seeds 1,2,3 --learning_rate 0.0001 --num_train_epochs 1 --max_train_samples 64`" in text


def test_card_for_stock_roberta_needs_no_remote_code(tmp_path):
    from datasets import Dataset
    from transformers import RobertaConfig, RobertaForMaskedLM

    from small_encoders.data_prep.tokenizer import train_bpe

    folder = tmp_path / "roberta"
    tokenizer = train_bpe(Dataset.from_dict({"text": ["the whale and the sea and the ship"] * 50}), vocab_size=300)
    RobertaForMaskedLM(RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=66)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    text, front = build_card(folder)
    assert "trust_remote_code" not in text and "custom_code" not in front["tags"] and "<mask>" in text


@pytest.mark.slow
def test_dry_run_folder_loads_in_a_clean_process(trained_folder, tmp_path, capsys, monkeypatch):
    folder, results = trained_folder
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    target = tmp_path / "upload"
    assert publish_main(["--model_dir", str(folder), "--repo_id", "someone/bertmini", "--dry_run", str(target),
                         "--results", *map(str, results), "--private"]) == 0
    listing = capsys.readouterr().out
    files = sorted(p.name for p in target.rglob("*") if p.is_file())
    assert {"README.md", "loss_curve.png", "config.json", "model.safetensors", "tokenizer.json",
            "configuration_small_encoder.py", "modeling_small_encoder.py"} <= set(files)
    assert all(name in listing for name in files) and TOKEN not in listing
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert (target / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for path in target.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    child = HUB_USER + textwrap.dedent(
        """
        import importlib.util, sys
        assert importlib.util.find_spec("modeling") is None
        from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
        folder = sys.argv[1]
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)  # the config names custom code
        model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
        fill = pipeline("fill-mask", model=folder, trust_remote_code=True, device="cpu")
        print(type(model).__name__, len(fill(f"the captain saw the {tokenizer.mask_token} .")))
        """
    )
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "child.py").write_text(child)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    out = subprocess.run([sys.executable, "child.py", str(target)], cwd=tmp_path / "work", env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "SmallEncoderForMaskedLM 5"


def test_dry_run_refuses_a_non_empty_target_and_a_non_model_folder(trained_folder, tmp_path):
    folder, _ = trained_folder
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        stage(folder, tmp_path / "busy")
    with pytest.raises(UserError, match="not a saved model folder"):
        stage(tmp_path, tmp_path / "new")
