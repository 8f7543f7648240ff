"""demo/app.py: what the page computes (fill-mask, similarity, classification, messages), run_glue's saved
classifier, the Space files of the publish dry run, and the page itself in a real headless browser."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from conftest import REPO_ROOT, shared_data, tiny_config

from small_encoders.demo.app import (
    Demo,
    DemoError,
    classify_page,
    fill_mask_page,
    get_demo,
    similarity_page,
)
from small_encoders.demo.screenshot import CHROMIUM_FLAGS
from small_encoders.modeling import SmallEncoderForMaskedLM

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def save_tiny(folder, model, tokenizer):
    model.save_pretrained(folder)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def small_encoder_dir(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    return save_tiny(tmp_path / "small-encoder", SmallEncoderForMaskedLM(tiny_config()), tiny_tokenizer)


@pytest.fixture
def stock_dirs(tmp_path, tiny_tokenizer):
    """Tiny stock BERT and RoBERTa MLM and ELECTRA discriminator folders, no custom code."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        ElectraConfig,
        ElectraForPreTraining,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    torch.manual_seed(0)
    shape = dict(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, pad_token_id=tiny_tokenizer.pad_token_id)
    roberta = RobertaForMaskedLM(RobertaConfig(max_position_embeddings=80, **shape))
    electra = ElectraForPreTraining(ElectraConfig(embedding_size=32, max_position_embeddings=64, **shape))
    bert = BertForMaskedLM(BertConfig(max_position_embeddings=64, **shape))
    return {"bert": save_tiny(tmp_path / "bert", bert, tiny_tokenizer),
            "roberta": save_tiny(tmp_path / "roberta", roberta, tiny_tokenizer),
            "electra": save_tiny(tmp_path / "electra", electra, tiny_tokenizer)}


def test_fill_mask_gives_the_models_top_k(small_encoder_dir):
    demo = Demo(small_encoder_dir)
    predictions = demo.fill_mask("the ship [MASK] the sea", top_k=4)
    assert len(predictions) == 4
    probabilities = [p for _, p in predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    # The same numbers as the model's own softmax at the mask position.
    batch = demo.tokenizer("the ship [MASK] the sea", return_tensors="pt")
    batch.pop("token_type_ids", None)
    position = (batch["input_ids"][0] == demo.tokenizer.mask_token_id).nonzero()[0, 0]
    with torch.no_grad():
        expected = demo.masked_lm(**batch).logits[0, position].softmax(-1).topk(4)
    assert [t for t, _ in predictions] == [demo.tokenizer.decode([i]).strip() for i in expected.indices.tolist()]
    assert probabilities == pytest.approx(expected.values.tolist(), abs=1e-6)
    assert "| 1 |" in fill_mask_page(str(small_encoder_dir), "the ship [MASK] the sea", 3)


def test_messages_instead_of_tracebacks(tmp_path, small_encoder_dir):
    with pytest.raises(DemoError, match=r"put the mask token \[MASK\]"):
        Demo(small_encoder_dir).fill_mask("the ship on the sea")
    assert fill_mask_page(str(small_encoder_dir), "no mask here", 5).startswith("**Error:** put the mask token")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("hello")
    for path in (tmp_path / "not-a-model", tmp_path / "missing"):
        with pytest.raises(DemoError, match="is not a model folder or Hub id"):
            Demo(path)
        assert similarity_page(str(path), "a\nb").startswith("**Error:**")
    assert similarity_page(str(small_encoder_dir), "only one sentence").startswith("**Error:** give at least two")
    assert "fine-tune one with" in classify_page(str(small_encoder_dir), "the sea", "")


def test_similarity_is_the_cosine_of_mean_pooled_embeddings(small_encoder_dir):
    from small_encoders.eval.embeddings import mean_pooled

    demo = Demo(small_encoder_dir)
    sentences = ["the ship on the sea", "a whale in the sea", "the old man said"]
    kept, matrix = demo.similarity(sentences + ["  "])
    assert kept == sentences
    matrix = torch.tensor(matrix)
    assert torch.allclose(matrix, matrix.T, atol=1e-6) and torch.allclose(matrix.diagonal(), torch.ones(3), atol=1e-5)
    pooled = mean_pooled(demo.encoder, demo.tokenizer, sentences)
    expected = torch.nn.functional.cosine_similarity(pooled[:, None], pooled[None], dim=-1)
    assert torch.allclose(matrix, expected, atol=1e-5)


def test_stock_bert_roberta_and_electra_folders(stock_dirs):
    for name in ("bert", "roberta"):
        demo = Demo(stock_dirs[name])
        assert demo.has_mlm_head and len(demo.fill_mask("the ship [MASK] the sea", 3)) == 3
        assert len(demo.similarity(["the ship", "the sea", "the whale"])[1]) == 3
    electra = Demo(stock_dirs["electra"])
    with pytest.raises(DemoError, match="no masked-LM head"):
        electra.fill_mask("the ship [MASK] the sea")
    assert len(electra.similarity(["the ship", "the sea"])[1]) == 2


def test_run_glue_saves_the_median_seed_with_label_names(tmp_path, small_encoder_dir):
    from transformers import AutoModelForSequenceClassification

    from small_encoders.eval.glue_data import load_glue
    from small_encoders.eval.run_glue import main

    glue = shared_data("glue")
    saved = tmp_path / "sst2-model"
    assert main(["--model_name_or_path", str(small_encoder_dir), "--data_dir", str(glue), "--task_name", "sst2",
                 "--max_train_samples", "64", "--max_eval_samples", "48", "--num_train_epochs", "1",
                 "--per_device_train_batch_size", "16", "--max_seq_length", "32", "--seeds", "1,2,3",
                 "--output_dir", str(tmp_path / "glue"), "--save_model", str(saved)]) == 0
    result = json.loads((tmp_path / "glue" / "sst2.json").read_text())
    chosen = str(result["saved_model"]["seed"])
    assert result["per_seed"][chosen]["accuracy"] == result["summary"]["accuracy"]["median"]
    assert not list(tmp_path.glob(".sst2-model-seed*"))  # the other seeds' staged folders are gone
    model = AutoModelForSequenceClassification.from_pretrained(saved, trust_remote_code=True).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    # The saved weights are the chosen seed's: they reproduce its dev accuracy.
    demo = Demo(saved)
    dev = load_glue("sst2", glue, splits=["validation"])["validation"].select(range(48))
    batch = demo.tokenizer(list(dev["sentence1"]), truncation=True, max_length=32, padding=True, return_tensors="pt")
    batch.pop("token_type_ids", None)
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)
    accuracy = (predicted == torch.tensor(dev["label"])).float().mean().item()
    assert accuracy == pytest.approx(result["per_seed"][chosen]["accuracy"])
    scores = demo.classify(dev[0]["sentence1"])
    assert {name for name, _ in scores} == {"negative", "positive"} and sum(p for _, p in scores) == pytest.approx(1)
    assert "| positive |" in classify_page(str(saved), dev[0]["sentence1"], "")
    assert "no masked-LM head" in fill_mask_page(str(saved), "the [MASK]", 3)


def test_publish_dry_run_writes_the_space(tmp_path, small_encoder_dir):
    from small_encoders.model_cards.publish import main

    out = tmp_path / "upload"
    assert main(["--model_dir", str(small_encoder_dir), "--repo_id", "you/tiny", "--dry_run", str(out),
                 "--space_id", "you/tiny-demo"]) == 0
    space = out.parent / "upload-space"
    assert (space / "app.py").read_text() == (REPO_ROOT / "demo" / "app.py").read_text()
    assert json.loads((space / "space_config.json").read_text()) == {"model_name_or_path": "you/tiny"}
    readme = (space / "README.md").read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    assert "gradio" in (space / "requirements.txt").read_text()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_demo(small_encoder_dir, tmp_path):
    """demo/app.py serving the tiny model on a free localhost port, in its own process."""
    port = free_port()
    log = open(tmp_path / "app.log", "w")
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "demo" / "app.py"), "--model_name_or_path",
                                str(small_encoder_dir), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise AssertionError("the demo did not start:\n" + (tmp_path / "app.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_the_page_in_a_real_browser(served_demo, small_encoder_dir, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium for this test)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements.txt")
    expected = get_demo(str(small_encoder_dir)).fill_mask("the ship [MASK] the sea", 5)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(served_demo)
            assert "SmallEncoderForMaskedLM" in page.locator("#model-status").inner_text(timeout=60_000)
            box = page.locator("#fill-mask-input textarea")
            box.fill("the ship [MASK] the sea")
            page.locator("#fill-mask-button").click()
            output = page.locator("#fill-mask-output")
            output.locator("table").wait_for(timeout=60_000)
            rows = [row.locator("td").all_inner_texts() for row in output.locator("tbody tr").all()]
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            assert [(rank, token) for rank, token, _ in rows] == [(str(i + 1), t) for i, (t, _) in enumerate(expected)]
            assert [p for _, _, p in rows] == [f"{p:.2%}" for _, p in expected]
            box.fill("the ship on the sea")
            page.locator("#fill-mask-button").click()
            page.get_by_text("put the mask token [MASK] in the sentence").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "demo-error.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "demo.png").stat().st_size > 10_000
