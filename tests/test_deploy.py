"""deploy/: ONNX export checked against PyTorch (a SmallEncoder with RoPE, SwiGLU and RMSNorm, stock RoBERTa and
ELECTRA), the int8 copy, an export that runs with onnxruntime and tokenizers alone, the refusals, and the benchmark."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_config

from small_encoders.deploy import bench as bench_module
from small_encoders.deploy.export import TOLERANCE
from small_encoders.deploy.export import main as export_main

EXPORT = str(REPO_ROOT / "deploy" / "export.py")
BENCH = str(REPO_ROOT / "deploy" / "bench.py")
SENTENCES = ["the old captain saw the sea", "a ship", "she said the house was very small and the night was long"]


def save(folder, model, tokenizer):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def small_encoder(tmp_path, tiny_tokenizer):
    from small_encoders.modeling import SmallEncoderForMaskedLM

    torch.manual_seed(0)
    config = tiny_config(position_embedding_type="rope", mlp_type="swiglu", norm_type="rmsnorm", use_bias=False)
    return save(tmp_path / "small-encoder", SmallEncoderForMaskedLM(config), tiny_tokenizer)


@pytest.fixture
def classifier(tmp_path, tiny_tokenizer):
    from small_encoders.modeling import SmallEncoderForSequenceClassification

    torch.manual_seed(0)
    config = tiny_config(position_embedding_type="rope", mlp_type="swiglu", norm_type="rmsnorm", num_labels=2)
    return save(tmp_path / "classifier", SmallEncoderForSequenceClassification(config), tiny_tokenizer)


def onnx_outputs(path, tokenizer, sentences):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {item.name for item in session.get_inputs()}
    batch = tokenizer(sentences, padding=True, return_tensors="np")
    return session.run(None, {k: v.astype(np.int64) for k, v in batch.items() if k in wanted})[0], batch


@pytest.mark.slow
def test_a_small_encoder_exports_within_the_tolerance_at_new_shapes_and_its_int8_copy_loads(tmp_path, small_encoder):
    """The export is checked by the script and again here at a batch size and length it was not traced at (dynamic
    axes), padding included; the int8 copy is smaller and predicts mostly what PyTorch predicts."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(small_encoder), "--output_dir", str(out), "--int8"]) in (0, None)
    record = json.loads((out / "export.json").read_text())
    assert record["task"] == "fill-mask" and record["check"]["max_abs_difference"] <= TOLERANCE
    assert (out / "model_int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    assert not (tmp_path / "onnx.partial").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)  # the tokenizer travels with the export
    got, batch = onnx_outputs(out / "model.onnx", tokenizer, SENTENCES)
    assert got.shape[:2] == batch["input_ids"].shape and got.shape[0] == 3
    model = AutoModelForMaskedLM.from_pretrained(small_encoder).eval()
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    real = batch["attention_mask"].astype(bool)
    assert np.abs(got - expected)[real].max() < TOLERANCE
    int8, _ = onnx_outputs(out / "model_int8.onnx", tokenizer, SENTENCES)
    assert int8.shape == got.shape and 0 < np.abs(int8 - got).max() < 1.0  # quantised: near, not equal


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_stock_classifiers_export_within_the_tolerance(tmp_path, tiny_tokenizer, family):
    from transformers import (
        ElectraConfig,
        ElectraForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    torch.manual_seed(0)
    shape = dict(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, pad_token_id=tiny_tokenizer.pad_token_id, num_labels=3)
    model = (RobertaForSequenceClassification(RobertaConfig(max_position_embeddings=80, **shape)) if family == "roberta"
             else ElectraForSequenceClassification(ElectraConfig(embedding_size=16, max_position_embeddings=64, **shape)))
    folder = save(tmp_path / family, model, tiny_tokenizer)
    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(folder), "--output_dir", str(out)]) in (0, None)
    record = json.loads((out / "export.json").read_text())
    assert record["task"] == "sequence-classification" and record["model_type"] == family
    got, batch = onnx_outputs(out / "model.onnx", tiny_tokenizer, SENTENCES)
    with torch.no_grad():
        expected = model.eval()(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    assert got.shape == (3, 3) and np.abs(got - expected).max() < TOLERANCE


def test_the_export_runs_with_onnxruntime_and_tokenizers_alone(tmp_path, classifier):
    """A Hub user's machine without torch or transformers (both made unimportable in the child) runs the export."""
    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(out)]) in (0, None)
    script = (
        "import sys\nsys.modules['torch'] = None\nsys.modules['transformers'] = None\n"
        "import numpy as np, onnxruntime as ort\nfrom tokenizers import Tokenizer\n"
        f"tokenizer = Tokenizer.from_file({str(out / 'tokenizer.json')!r})\n"
        "tokenizer.enable_padding(pad_id=0)\n"
        f"rows = tokenizer.encode_batch({SENTENCES!r})\n"
        f"session = ort.InferenceSession({str(out / 'model.onnx')!r})\n"
        "feeds = {'input_ids': np.array([r.ids for r in rows], dtype=np.int64),\n"
        "         'attention_mask': np.array([r.attention_mask for r in rows], dtype=np.int64)}\n"
        "names = {i.name for i in session.get_inputs()}\n"
        "if 'token_type_ids' in names: feeds['token_type_ids'] = np.array([r.type_ids for r in rows], dtype=np.int64)\n"
        "print(session.run(None, feeds)[0].argmax(-1).tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(classifier)
    model = AutoModelForSequenceClassification.from_pretrained(classifier).eval()
    with torch.no_grad():
        expected = model(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def one_error_line(arguments):
    done = subprocess.run([sys.executable] + arguments, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode in (1, 2) and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return errors[0]


def error_line(main, arguments, capsys):
    """In this process (the bad-input class tests run every script's refusals as subprocesses): one `error:` line."""
    capsys.readouterr()
    assert main(arguments) in (1, 2)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    return errors[0]


@pytest.mark.slow
def test_what_cannot_be_exported_is_one_error_line(tmp_path, small_encoder, classifier, capsys):
    """Another model's export is not written over (a missing folder, an unknown task, a file: tests/test_bad_input.py);
    files that are not an export are kept; the same model's earlier export is replaced; the benchmark refuses an
    export that is not a classifier's."""
    from small_encoders.deploy.bench import main as bench_main

    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(out)]) in (0, None)
    before = sorted(p.name for p in out.iterdir())
    line = error_line(export_main, ["--model_dir", str(small_encoder), "--output_dir", str(out)], capsys)
    assert "already holds another export" in line and "--overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written over
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert "not an export" in error_line(export_main, ["--model_dir", str(small_encoder), "--output_dir",
                                                       str(tmp_path / "mine")], capsys)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and not (tmp_path / "mine.partial").exists()
    # The same model and task again replaces its own earlier export without --overwrite.
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(out)]) in (0, None)
    masked = tmp_path / "masked-onnx"
    assert export_main(["--model_dir", str(small_encoder), "--output_dir", str(masked)]) in (0, None)
    assert "not sequence-classification" in error_line(bench_main, ["--model_dir", str(classifier), "--onnx", str(masked),
                                                                     "--data_dir", str(tmp_path)], capsys)


@pytest.mark.slow
def test_the_benchmark_measures_every_backend_on_the_dev_set(tmp_path, classifier):
    """Three rows (PyTorch, ONNX Runtime fp32 and int8); fp32 predicts exactly what PyTorch predicts; the accuracy is
    the dev set's; every figure is positive."""
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    rows = [f"{s}\t{i % 2}" for i, s in enumerate(SENTENCES * 12)]
    (glue / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(out), "--int8"]) in (0, None)
    report = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, BENCH, "--model_dir", str(classifier), "--onnx", str(out), "--task_name", "sst2",
                           "--data_dir", str(tmp_path / "glue"), "--rounds", "2", "--batch1_sentences", "5",
                           "--batch_size", "8", "--profile", "--same_process", "--output_json", str(report)],
                          capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    names = [row["backend"] for row in result["rows"]]  # PyTorch's bf16 autocast row where the CPU has bf16
    assert [name for name in names if name != "pytorch-bf16"] == ["pytorch", "onnxruntime", "onnxruntime-int8"]
    assert ("pytorch-bf16" in names) == bench_module.bf16_cpu()
    result["rows"] = [row for row in result["rows"] if row["backend"] != "pytorch-bf16"]
    assert result["sentences"] == 36 and result["batch1_sentences"] == 5 and result["commit"]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(classifier)
    model = AutoModelForSequenceClassification.from_pretrained(classifier).eval()
    with torch.no_grad():
        predicted = model(**tokenizer(SENTENCES * 12, padding=True, return_tensors="pt")).logits.argmax(-1)
    expected = float((predicted == torch.tensor([i % 2 for i in range(36)])).float().mean())
    pytorch, fp32, int8 = result["rows"]
    assert pytorch["accuracy"] == pytest.approx(expected) and fp32["accuracy"] == pytorch["accuracy"]
    assert 0 <= int8["accuracy"] <= 1 and pytorch["speedup_batch32"] == 1.0
    for row in result["rows"]:
        for size in ("batch1", "batch8"):
            figures = row[size]
            assert figures["sentences_per_second"] > 0 and 0 < figures["p50_ms"] <= figures["p95_ms"]
        assert row["peak_memory_bytes"] > 20 * 2**20  # a process that loaded a runtime
    # each backend's own process: PyTorch's holds torch and transformers, ONNX Runtime's neither (a figure carried
    # over from the parent process, as ru_maxrss is across exec, would be the same for all three)
    assert pytorch["peak_memory_bytes"] > 1.5 * int8["peak_memory_bytes"]
    assert "| onnxruntime-int8 |" in done.stdout
    shares = int8["operator_shares"]  # the profile: the quantised matrix products are among its operators
    assert "operator_shares" not in pytorch and 0.5 < sum(shares.values()) <= 1.0001
    assert any("MatMul" in name for name in shares) and "kernel time by operator" in done.stdout
    # length-sorted batches: every row is put back in the dev set's order, so the accuracy is the same; by default
    # every round of every backend in a process of its own, whose peak memory is the row's (with --skip_memory too)
    sorted_report = tmp_path / "bench-sorted.json"
    done = subprocess.run([sys.executable, BENCH, "--model_dir", str(classifier), "--onnx", str(out), "--task_name", "sst2",
                           "--data_dir", str(tmp_path / "glue"), "--rounds", "2", "--batch1_sentences", "2",
                           "--batch_size", "8", "--length_sorted", "--skip_memory", "--backends", "onnxruntime",
                           "--output_json", str(sorted_report)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(sorted_report.read_text())
    assert again["length_sorted"] and again["isolated"] and [row["backend"] for row in again["rows"]] == ["pytorch", "onnxruntime"]
    assert [row["accuracy"] for row in again["rows"]] == [pytorch["accuracy"], fp32["accuracy"]]
    alone_pytorch, alone_fp32 = again["rows"]
    assert alone_pytorch["peak_memory_bytes"] > 1.5 * alone_fp32["peak_memory_bytes"] > 30 * 2**20
    assert done.stdout.count("round ") == 2 and alone_fp32["batch8"]["sentences_per_second"] > 0


@pytest.mark.slow
def test_publish_uploads_the_export_and_the_cards_snippet_runs_without_torch(tmp_path, classifier, small_encoder):
    """`publish.py --onnx`: the files go under onnx/, the card's snippet (with the Hub download pointed at the dry-run
    folder) runs where torch cannot be imported and gives PyTorch's prediction; an export of other weights is refused."""
    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(out), "--int8"]) in (0, None)
    from small_encoders.model_cards.publish import main as publish_main

    upload = tmp_path / "upload"
    assert publish_main(["--model_dir", str(classifier), "--repo_id", "me/tiny-sst2", "--onnx", str(out),
                         "--dry_run", str(upload)]) in (0, None)
    assert {p.name for p in (upload / "onnx").iterdir()} == {"model.onnx", "model_int8.onnx", "serving.py", "export.json"}
    card = (upload / "README.md").read_text()
    snippet = card.split("## ONNX Runtime / OpenVINO (CPU, no PyTorch)")[1].split("```python\n")[1].split("```")[0]
    assert 'snapshot_download("me/tiny-sst2", allow_patterns=["onnx/*", "*.json"])' in snippet
    local = (f"import sys\nsys.modules['torch'] = None\nsys.modules['transformers'] = None\n"
             f"def snapshot_download(repo_id, allow_patterns):\n    return {str(upload)!r}\n")
    script = (local + snippet.replace("from huggingface_hub import snapshot_download\n", "")
              + "\nprint(logits.tolist())\nprint(model.backend)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    logits, backend = np.array(json.loads(done.stdout.strip().splitlines()[-2])), done.stdout.strip().splitlines()[-1]
    assert backend == "onnxruntime-int8"  # no pick recorded: the int8 copy before float32
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(classifier)
    model = AutoModelForSequenceClassification.from_pretrained(classifier).eval()
    with torch.no_grad():
        expected = model(**tokenizer(["A small encoder, served on a CPU."], return_tensors="pt")).logits.numpy()
    assert logits.shape == (1, 2) and logits.argmax(-1).tolist() == expected.argmax(-1).tolist()
    line = one_error_line([str(REPO_ROOT / "model_cards" / "publish.py"), "--model_dir", str(small_encoder), "--repo_id",
                           "me/x", "--onnx", str(out), "--dry_run", str(tmp_path / "other")])
    assert "exported from other weights" in line and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_the_demo_and_its_onnx_space_serve_an_export_without_torch(tmp_path, classifier, small_encoder):
    """demo/app.py --onnx: a fill-mask export gives PyTorch's top tokens and probabilities, a classifier's int8 export
    (staged as a Space by publish.py --space_id --onnx, read from the model repository's layout: onnx/ beside the
    tokenizer) gives PyTorch's probabilities within int8's error, in a process where torch cannot be imported; a
    page the export does not serve says which export would."""
    from small_encoders.demo.app import Demo
    from small_encoders.model_cards.publish import main as publish_main

    mlm_out, cls_out, upload = tmp_path / "mlm-onnx", tmp_path / "cls-onnx", tmp_path / "upload"
    assert export_main(["--model_dir", str(small_encoder), "--output_dir", str(mlm_out)]) in (0, None)
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(cls_out), "--int8"]) in (0, None)
    assert publish_main(["--model_dir", str(classifier), "--repo_id", "me/tiny-sst2", "--onnx", str(cls_out),
                         "--space_id", "me/tiny-sst2-demo", "--dry_run", str(upload)]) in (0, None)
    space = tmp_path / "upload-space"
    assert json.loads((space / "space_config.json").read_text()) == {"model_name_or_path": "me/tiny-sst2", "onnx": "onnx"}
    requirements = (space / "requirements.txt").read_text().split()
    assert "onnxruntime" in requirements and not {"torch", "transformers"} & set(requirements)
    script = f"""
import importlib.util, json, sys
sys.modules['torch'] = None
sys.modules['transformers'] = None
spec = importlib.util.spec_from_file_location('app', {str(space / 'app.py')!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
space = (app.default_model(), app.space_setting('onnx'))  # the Space's own settings; its cwd holds the model repo
print(json.dumps(dict(
    fill=app.get_demo('mlm', {str(mlm_out)!r}).fill_mask('the ship [MASK] the sea', 5),
    classify=app.demo_of(space).classify('the old captain saw the sea'),
    describe=app.status_page(space),
    refused=app.fill_mask_page(space, 'the [MASK]', 3),
    similarity=app.similarity_page(space, 'a\\nb'))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=upload)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    expected = Demo(small_encoder).fill_mask("the ship [MASK] the sea", 5)
    assert [token for token, _ in got["fill"]] == [token for token, _ in expected]
    assert np.allclose([p for _, p in got["fill"]], [p for _, p in expected], atol=1e-4)
    expected = dict(Demo(classifier).classify("the old captain saw the sea"))
    assert dict(got["classify"]).keys() == expected.keys()
    assert all(abs(p - expected[name]) < 0.05 for name, p in got["classify"])
    assert "onnxruntime-int8" in got["describe"] and "model_int8.onnx" in got["describe"]
    assert got["refused"].startswith("**Error:** this ONNX export serves sequence-classification only")
    assert "--task feature-extraction" in got["similarity"]
