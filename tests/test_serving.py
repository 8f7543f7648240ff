"""deploy/serving.py and the faster artefacts of deploy/export.py: every backend's parity with PyTorch (OpenVINO's
float32 IR, its default precision and NNCF int8, ONNX Runtime's static and dynamic int8), the pick that export.json
records and the wrapper follows, a forced backend, and a runtime that is not installed (one line naming the extra)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from small_encoders.deploy import serving
from small_encoders.deploy.export import TOLERANCE
from small_encoders.deploy.export import main as export_main

EXPORT = str(Path(__file__).resolve().parents[1] / "deploy" / "export.py")

SENTENCES = ["the old captain saw the sea", "a ship", "she said the house was very small and the night was long",
             "the whale came at night", "a small house by the sea"]


def record_folder(tmp_path, files, serving_entry=None):
    folder = tmp_path / "export"
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    (folder / "export.json").write_text(json.dumps({"task": "sequence-classification",
                                                    **({"serving": serving_entry} if serving_entry else {})}))
    return folder


def test_auto_follows_the_exports_measured_order_and_never_serves_what_failed_its_check(tmp_path, monkeypatch):
    files = ["model.onnx", "model_int8.onnx", "model_int8_static.onnx", "openvino/model.xml", "openvino/model_int8.xml"]
    measured = {name: {"passes": name != "openvino-int8"} for name in serving.BACKENDS}
    folder = record_folder(tmp_path, files, {"ranking": ["onnxruntime-int8-static", "openvino", "onnxruntime"],
                                             "measured": measured})
    monkeypatch.setattr(serving, "installed", lambda module: True)
    assert serving.choose(folder) == "onnxruntime-int8-static"
    (folder / "model_int8_static.onnx").unlink()  # the first of the order gone: the next one
    assert serving.choose(folder) == "openvino"
    monkeypatch.setattr(serving, "installed", lambda module: module != "openvino")  # OpenVINO not installed
    assert serving.choose(folder) == "onnxruntime"  # not the int8 copy the export measured and left out
    # one sentence at a time the export measured another order: prefer="latency" follows it
    (folder / "model_int8_static.onnx").write_bytes(b"")
    record = json.loads((folder / "export.json").read_text())
    record["serving"]["latency_ranking"] = ["onnxruntime", "onnxruntime-int8-static"]
    (folder / "export.json").write_text(json.dumps(record))
    assert serving.choose(folder, prefer="latency") == "onnxruntime"
    assert serving.choose(folder) == "onnxruntime-int8-static"
    with pytest.raises(serving.ServingError, match="prefer='fastest': choose throughput or latency"):
        serving.choose(folder, prefer="fastest")
    # no pick recorded (an export without calibration text): the fixed order, int8 before float32
    plain = record_folder(tmp_path / "plain", ["model.onnx", "model_int8.onnx"])
    assert serving.choose(plain) == "onnxruntime-int8"
    assert serving.choose(plain, "onnxruntime") == "onnxruntime"


def test_a_forced_backend_that_cannot_run_is_one_line_saying_what_to_do(tmp_path, monkeypatch):
    folder = record_folder(tmp_path, ["model.onnx", "openvino/model.xml"])
    monkeypatch.setattr(serving, "installed", lambda module: module != "openvino")
    with pytest.raises(serving.ServingError, match=r'openvino package, which is not installed: pip install -e "\.\[deploy\]"'):
        serving.choose(folder, "openvino")
    with pytest.raises(serving.ServingError, match="no model_int8.onnx for the onnxruntime-int8 backend .*--int8"):
        serving.choose(folder, "onnxruntime-int8")
    with pytest.raises(serving.ServingError, match="choose auto or one of"):
        serving.choose(folder, "tensorrt")
    with pytest.raises(serving.ServingError, match="not an export folder"):
        serving.choose(tmp_path)


@pytest.fixture
def classifier(tmp_path, tiny_tokenizer):
    from small_encoders.modeling import SmallEncoderForSequenceClassification

    torch.manual_seed(0)
    # RMSNorm's epsilon as the recipes set it (1e-6): at the tiny config's 1e-12 the exported graph has no Add of it,
    # which the RMSNorm fusion's pattern needs
    config = tiny_config(position_embedding_type="rope", mlp_type="swiglu", norm_type="rmsnorm", norm_eps=1e-6, num_labels=2)
    model = SmallEncoderForSequenceClassification(config)
    folder = tmp_path / "classifier"
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    words = "the old captain saw sea a ship she said house was very small and night long whale came at by".split()
    rng = np.random.default_rng(0)
    rows = [" ".join(rng.choice(words, size=int(rng.integers(3, 14)))) + f"\t{i % 2}" for i in range(200)]
    (glue / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return folder


def pytorch_logits(folder, sentences):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**tokenizer(sentences, padding=True, return_tensors="pt")).logits.numpy()


# Each backend's outputs from text, forced, through the serving.py copied into the export (and OpenVINO's strict
# float32 IR on ONNX Runtime's own feeds), saved for the test to compare with PyTorch.
BACKEND_OUTPUTS = """
import importlib.util, json, sys
import numpy as np
out, sentences = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("serving", out + "/serving.py")
serving = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving)
models = {name: serving.ExportedModel(out, backend=name) for name in serving.BACKENDS}
got = {name: model(sentences) for name, model in models.items()}
model = serving.ExportedModel(out, backend="onnxruntime")
strict = serving.Runner(out + "/openvino/model.xml", "openvino", INFERENCE_PRECISION_HINT="f32")
got["openvino-strict-f32"] = strict(model.feeds(model.encode_batch(sentences)))
np.savez(out + "/outputs.npz", **got)
print(json.dumps({"auto": serving.ExportedModel(out).backend, "forced": {n: m.backend for n, m in models.items()}}))
"""


def isolated(args, cwd):
    """OpenVINO and NNCF run in a child process: loaded into pytest's own process (its thread pools, NNCF's hooks),
    a later test's forked DataLoader workers left that process to crash with a segmentation fault (CI, 2026-12-06)."""
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_every_artefact_agrees_with_pytorch_and_the_pick_is_the_fastest_that_passes(tmp_path, classifier):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    out = tmp_path / "onnx"
    isolated([EXPORT, "--model_dir", str(classifier), "--output_dir", str(out), "--int8", "--int8_static", "--openvino",
              "--ort_fusions", "--calibration_task", "sst2", "--data_dir", str(tmp_path / "glue"),
              "--calibration_sentences", "64", "--pick_sentences", "96"], cwd=tmp_path)
    record = json.loads((out / "export.json").read_text())
    for name, (_, file, _) in serving.BACKENDS.items():
        assert (out / file).is_file() and file in record["files"], name
    assert record["openvino"]["float32_max_abs_difference"] <= TOLERANCE
    # the SmallEncoder's graph has the shape OpenVINO fuses: the rotary embedding of q and k in every layer
    assert record["openvino"]["fused"].get("RoPE") == 2 * 2
    assert record["ort_fusions"]["max_abs_difference"] <= TOLERANCE
    fusions = record["ort_fusions"]["fusions"]
    assert fusions.get("sdpa_via_mha", 0) >= 2  # each layer's attention, fused
    # RMSNorm (two a layer and the last) into SimplifiedLayerNormalization, each layer's two with the residual add
    # before them into SkipSimplifiedLayerNormalization: torch's axes [2] respelled [-1] for the pattern
    assert fusions.get("rms_normalization") == 2 * 2 + 1 and fusions.get("skip_rms_normalization") == 2 * 2
    assert record["ort_fusions"]["respelled"]["reduce_mean_last_axis"] == 2 * 2 + 1
    assert record["calibration"] == {"task": "sst2", "split": "train", "sentences": 64, "held_out_sentences": 96}
    picked = record["serving"]
    assert set(picked["measured"]) == set(serving.BACKENDS)
    speeds = [picked["measured"][name]["sentences_per_second"] for name in picked["ranking"]]
    assert speeds == sorted(speeds, reverse=True) and picked["default"] == picked["ranking"][0]
    assert all(picked["measured"][name]["passes"] for name in picked["ranking"])
    assert {"onnxruntime", "onnxruntime-fused"} <= set(picked["ranking"])  # float32 always agrees with PyTorch
    # one sentence at a time: the same artefacts that pass, fastest first by their own measurement
    assert sorted(picked["latency_ranking"]) == sorted(picked["ranking"]) and picked["latency_sentences"] == 64
    singles = [picked["measured"][name]["sentences_per_second_batch1"] for name in picked["latency_ranking"]]
    assert singles == sorted(singles, reverse=True) and picked["latency_default"] == picked["latency_ranking"][0]
    assert (out / "serving.py").read_bytes() == open(serving.__file__, "rb").read()  # the loader travels with the files
    served = json.loads(isolated(["-c", BACKEND_OUTPUTS, str(out), json.dumps(SENTENCES)], cwd=tmp_path).strip().splitlines()[-1])
    assert served["auto"] == picked["default"]
    assert served["forced"] == {name: name for name in serving.BACKENDS}  # a forced backend is the one served
    expected = pytorch_logits(classifier, SENTENCES)
    got = np.load(out / "outputs.npz")
    for name in serving.BACKENDS:  # each artefact, forced, from text: float32 within the tolerance, the rest close
        assert got[name].shape == expected.shape, name
        bound = TOLERANCE if name in ("onnxruntime", "onnxruntime-fused") else 0.05 * (1 + np.abs(expected).max())
        assert np.abs(got[name] - expected).max() <= bound, name
    assert np.abs(got["openvino-strict-f32"] - expected).max() <= TOLERANCE


@pytest.mark.slow
def test_a_runtime_that_is_not_installed_is_one_error_line_and_auto_falls_back(tmp_path, classifier):
    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(classifier), "--output_dir", str(out), "--int8"]) in (0, None)
    (out / "openvino").mkdir()
    (out / "openvino" / "model.xml").write_text("<net/>")  # as if exported with --openvino
    script = f"""
import sys
sys.modules['openvino'] = None  # not installed
sys.modules['torch'] = None
import importlib.util
spec = importlib.util.spec_from_file_location('serving', {str(out / 'serving.py')!r})
serving = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving)
ExportedModel, ServingError = serving.ExportedModel, serving.ServingError
print(ExportedModel({str(out)!r}).backend)
try:
    ExportedModel({str(out)!r}, backend='openvino')
except ServingError as error:
    print(error)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    auto, refusal = done.stdout.strip().splitlines()[-2:]
    assert auto == "onnxruntime-int8"
    assert refusal == 'the openvino backend needs the openvino package, which is not installed: pip install -e ".[deploy]" (or pip install openvino)'
    script = ("import sys\nsys.modules['openvino'] = None\nfrom small_encoders.deploy.export import main\n"
              f"sys.exit(main(['--model_dir', {str(classifier)!r}, '--output_dir', {str(tmp_path / 'ov')!r}, '--openvino']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert errors == ['error: --openvino needs the openvino package, which is not installed: pip install -e ".[deploy]" (or pip install openvino)']
    assert not (tmp_path / "ov").exists()
