"""Serve an export folder (deploy/export.py) with the fastest runtime that is installed and that this CPU rewards:
no torch, no transformers. One file with no import from this repository: deploy/export.py copies it into every
export folder as serving.py, so a Hub user, the demo's ONNX page and its Space load a model the same way.

    from small_encoders.deploy.serving import ExportedModel   # or the copy in the export folder, serving.py
    model = ExportedModel("runs/sst2-onnx")             # backend "auto": the one deploy/export.py measured fastest here
    model.backend                                       # e.g. "openvino-int8"
    logits = model(["a gripping film", "two hours that feel like four"])
    ExportedModel("runs/sst2-onnx", prefer="latency")       # the fastest one sentence at a time (a server of single requests)
    ExportedModel("runs/sst2-onnx", backend="onnxruntime")   # force one (BACKENDS)

Backends, each an artefact of the export folder and the runtime that runs it:

    openvino-int8            openvino/model_int8.xml   OpenVINO, weights and activations int8 (NNCF, calibrated)
    openvino                 openvino/model.xml        OpenVINO at its default precision for this CPU (bf16 where
                                                       the CPU has AMX or AVX-512 BF16, else float32)
    onnxruntime-fused-int8   model_fused_int8.onnx     ONNX Runtime, int8 weights, the fused graph (attention, RMSNorm)
    onnxruntime-int8-static  model_int8_static.onnx    ONNX Runtime, int8 weights and calibrated int8 activations
    onnxruntime-int8         model_int8.onnx           ONNX Runtime, int8 weights, activations quantised on the fly
    onnxruntime-fused        model_fused.onnx          ONNX Runtime, float32, attention and RMSNorm fused into its
                                                       contrib operators
    onnxruntime              model.onnx                ONNX Runtime, float32

"auto" takes the order export.json's `serving` section records (the export timed every artefact it wrote on this kind
of CPU, at batch 32 and one sentence at a time, and kept those within its quality check; prefer="latency" takes the
one-at-a-time order), else the order above; the first whose file is there and whose
runtime imports. OpenVINO comes with `pip install -e ".[deploy]"` (or `pip install openvino`).
"""

import importlib.util
import json
import sys
from pathlib import Path

try:  # inside the repository a refusal is its one `error:` line (core/errors.py); a copy stands alone
    from small_encoders.core.errors import UserError as _Refusal
except ImportError:  # pragma: no cover - the copy in an export folder
    _Refusal = Exception

EXPORT_FILE = "export.json"
BACKENDS = {  # name -> (the Python module that runs it, its file in the export folder, precision)
    "openvino-int8": ("openvino", "openvino/model_int8.xml", "int8"),
    "openvino": ("openvino", "openvino/model.xml", "bf16 where the CPU has it, else float32"),
    "onnxruntime-fused-int8": ("onnxruntime", "model_fused_int8.onnx", "int8 weights, dynamic activations, fused graph"),
    "onnxruntime-int8-static": ("onnxruntime", "model_int8_static.onnx", "int8"),
    "onnxruntime-int8": ("onnxruntime", "model_int8.onnx", "int8 weights, dynamic activations"),
    "onnxruntime-fused": ("onnxruntime", "model_fused.onnx", "float32, fused attention and norms"),
    "onnxruntime": ("onnxruntime", "model.onnx", "float32"),
}
INSTALL = {"openvino": 'pip install -e ".[deploy]" (or pip install openvino)', "onnxruntime": "pip install onnxruntime"}
CPU_FEATURES = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


class ServingError(_Refusal):
    """What cannot be served, in one line."""


def cpu_features():
    """{feature: present} for the instructions that decide which precision pays on this CPU (Linux's /proc/cpuinfo;
    elsewhere every feature reads as absent)."""
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {name: name in flags for name in CPU_FEATURES}


def installed(module):
    """Whether `module` can be imported here (one set to None in sys.modules counts as missing, as Python treats it)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def read_record(folder):
    path = Path(folder) / EXPORT_FILE
    if not path.is_file():
        raise ServingError(f"{folder}: not an export folder (no {EXPORT_FILE}; make one with deploy/export.py)")
    return json.loads(path.read_text())


def present(folder):
    """The backends whose artefact the folder holds, in the preference order (installed or not)."""
    return [name for name, (_, file, _) in BACKENDS.items() if (Path(folder) / file).is_file()]


PREFER = ("throughput", "latency")


def choose(folder, backend="auto", record=None, prefer="throughput"):
    """The backend to serve `folder` with: `backend` itself when it can run here (else one line saying what is
    missing), or for "auto" the first of the export's measured order that can: fastest at batch 32 for
    prefer="throughput", fastest one sentence at a time for prefer="latency" (a server answering single requests)."""
    if prefer not in PREFER:
        raise ServingError(f"prefer={prefer!r}: choose {' or '.join(PREFER)}")
    folder = Path(folder)
    record = read_record(folder) if record is None else record
    if backend != "auto":
        if backend not in BACKENDS:
            raise ServingError(f"backend {backend!r}: choose auto or one of {', '.join(BACKENDS)}")
        module, file, _ = BACKENDS[backend]
        if not (folder / file).is_file():
            raise ServingError(f"{folder}: no {file} for the {backend} backend (deploy/export.py writes it: "
                               f"{EXPORT_FLAGS.get(backend, '')})")
        if not installed(module):
            raise ServingError(f"the {backend} backend needs the {module} package, which is not installed: {INSTALL[module]}")
        return backend
    picked = record.get("serving") or {}
    ranking = (picked.get("latency_ranking") if prefer == "latency" else None) or picked.get("ranking") or []
    unmeasured = [name for name in BACKENDS if name not in ranking and name not in picked.get("measured", {})]
    for name in ranking + unmeasured:  # one that failed the export's quality check is never served by default
        if name in BACKENDS and (folder / BACKENDS[name][1]).is_file() and installed(BACKENDS[name][0]):
            return name
    raise ServingError(f"{folder}: no artefact here can run: install onnxruntime or openvino ({INSTALL['openvino']})")


EXPORT_FLAGS = {"openvino-int8": "--openvino with calibration text", "openvino": "--openvino",
                "onnxruntime-fused-int8": "--ort_fusions --int8", "onnxruntime-int8-static": "--int8_static",
                "onnxruntime-int8": "--int8",
                "onnxruntime-fused": "--ort_fusions", "onnxruntime": "always"}


class Runner:
    """One artefact on one runtime: called with a dict of int64 arrays (input_ids, attention_mask[, token_type_ids]),
    returns the output as a float32 numpy array. `settings`: OpenVINO compile properties, or ONNX Runtime
    SessionOptions attributes."""

    def __init__(self, path, backend, threads=None, **settings):
        self.backend, self.path = backend, Path(path)
        module = BACKENDS[backend][0]
        if not installed(module):
            raise ServingError(f"the {backend} backend needs the {module} package, which is not installed: {INSTALL[module]}")
        if module == "openvino":
            import openvino

            core = openvino.Core()
            config = {"PERFORMANCE_HINT": "LATENCY", **settings}  # e.g. INFERENCE_PRECISION_HINT="f32"
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
            self.inputs = {item.get_any_name() for item in self.compiled.inputs}
            self.request = self.compiled.create_infer_request()
            hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # bf16 or f32 here
            self.precision = f"int8, other operations {hint}" if backend == "openvino-int8" else hint
            self.session = None
        else:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            for name, value in settings.items():  # SessionOptions attributes (enable_profiling=True, ...)
                setattr(options, name, value)
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.inputs = {item.name for item in self.session.get_inputs()}
            self.precision = BACKENDS[backend][2]

    def __call__(self, feeds):
        feeds = {name: value for name, value in feeds.items() if name in self.inputs}
        if self.session is not None:
            return self.session.run(None, feeds)[0]
        import numpy

        result = self.request.infer(feeds)
        return numpy.asarray(next(iter(result.values())), dtype=numpy.float32).copy()


def _beside(folder, name):
    """`name` in the export folder, else in the folder above (a model repository: onnx/ beside the tokenizer)."""
    return next((p for p in (Path(folder) / name, Path(folder).parent / name) if p.is_file()), None)


class ExportedModel:
    """An export folder served from text: its tokenizer (tokenizer.json, padded to each batch's longest, cut at the
    model's length) and the chosen backend's Runner. Calling it with sentences (and optional second sentences) gives
    the export's output: a classifier's logits, an embedder's sentence vectors, a masked LM's logits, or hidden
    states."""

    def __init__(self, folder, backend="auto", threads=None, prefer="throughput"):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.record = read_record(self.folder)
        self.task = self.record.get("task")
        self.backend = choose(self.folder, backend, self.record, prefer)
        self.runner = Runner(self.folder / BACKENDS[self.backend][1], self.backend, threads)
        tokenizer_file, config_file = _beside(self.folder, "tokenizer.json"), _beside(self.folder, "config.json")
        if tokenizer_file is None or config_file is None:
            raise ServingError(f"{folder}: the export's tokenizer.json or config.json is missing")
        self.config = json.loads(config_file.read_text())
        self.settings = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = _beside(self.folder, name)
            if path is not None:
                for key, value in json.loads(path.read_text()).items():
                    self.settings[key] = value.get("content") if isinstance(value, dict) else value
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        sentence = self.record.get("sentence_embedding") or {}
        self.max_length = min(int(sentence.get("max_seq_length") or self.settings.get("model_max_length") or 512),
                              int(self.config.get("max_position_embeddings") or 514) - 2, 512)
        self.tokenizer.enable_truncation(self.max_length)
        pad = self.settings.get("pad_token")
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad or "[PAD]")
        self.labels = {int(k): v for k, v in (self.config.get("id2label") or {}).items()}

    def describe(self):
        return f"{self.backend} ({BACKENDS[self.backend][1]}, {self.runner.precision})"

    def feeds(self, encodings):
        import numpy

        feeds = {"input_ids": numpy.array([e.ids for e in encodings], dtype=numpy.int64),
                 "attention_mask": numpy.array([e.attention_mask for e in encodings], dtype=numpy.int64)}
        if "token_type_ids" in self.runner.inputs:
            feeds["token_type_ids"] = numpy.array([e.type_ids for e in encodings], dtype=numpy.int64)
        return feeds

    def encode_batch(self, texts, text_pairs=None):
        rows = list(zip(texts, text_pairs)) if text_pairs is not None else list(texts)
        return self.tokenizer.encode_batch(rows)

    def __call__(self, texts, text_pairs=None):
        if isinstance(texts, str):
            texts, text_pairs = [texts], None if text_pairs is None else [text_pairs]
        return self.runner(self.feeds(self.encode_batch(texts, text_pairs)))
