"""Export a model folder to ONNX for CPU inference with ONNX Runtime, checked against PyTorch; optionally int8.

    python deploy/export.py --model_dir runs/sst2-model --output_dir runs/sst2-onnx --int8
    python deploy/export.py --model_dir runs/tuned-5m --output_dir runs/tuned-5m-onnx --task feature-extraction
    python deploy/export.py --model_dir runs/embed --output_dir runs/embed-onnx --int8     # a sentence embedder

The output folder holds model.onnx (dynamic batch and sequence length; inputs input_ids and attention_mask, plus
token_type_ids for models that read them), with --int8 model_int8.onnx (weights quantised to int8, activations
quantised on the fly: ONNX Runtime's dynamic quantisation), the tokenizer and config.json beside them, and
export.json (what was exported, from where, at which commit, and the measured difference from PyTorch). A sentence
embedder's folder (recipes/train_embeddings.py) exports as `sentence-embedding`: the encoder with its pooling and
normalisation, one vector per sentence, checked against SentenceTransformer.encode as well. It runs
with onnxruntime and tokenizers alone: no torch, no transformers, no trust_remote_code (docs/deploy.md).

Exporter: torch.onnx with the dynamo exporter (torch.export, then onnxscript). optimum-onnx, the Hugging Face
exporter, pins transformers < 4.58 and cannot be installed beside this repository's transformers 5; it also knows
nothing of the SmallEncoder architecture, which torch.export traces like any module.
The check: the exported model and PyTorch on the same padded batches of real sentences (the tokenizer's own,
varied lengths); the largest absolute difference of the outputs is printed and must stay under --tolerance
(default 1e-4 for float32; the int8 copy is compared by how often its predictions agree instead).
"""

import argparse
import contextlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.deploy import runtimes, serving

TASKS = {  # task -> (Auto class name, output name)
    "fill-mask": ("AutoModelForMaskedLM", "logits"),
    "sequence-classification": ("AutoModelForSequenceClassification", "logits"),
    "feature-extraction": ("AutoModel", "last_hidden_state"),
    "sentence-embedding": ("AutoModel", "sentence_embedding"),  # a sentence-transformers folder: pooled, normalised
}
EXPORT_FILE = "export.json"
ONNX_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"
TOLERANCE = 1e-4
# Sentences of varied length for the check (the tokenizer pads them into one batch, so padding is checked too).
CHECK_SENTENCES = [
    "a gripping, beautifully acted film.",
    "The plot is thin, the jokes fall flat, and the two hours feel like four.",
    "It was fine.",
    "Neither the script nor the direction gives the cast anything to do, though the photography is often striking "
    "and the score is better than the film deserves.",
]


def weights_digest(model_dir):
    """sha256 of the folder's weights file(s): what ties an export to the model it was made from, wherever it moves."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(Path(model_dir).glob("*.safetensors")) or sorted(Path(model_dir).glob("*.bin"))
    for path in files:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest() if files else None


def is_sentence_embedder(model_dir, config=None):
    """Whether a folder is a sentence embedder: recipes/train_embeddings.py's (its embedding_results.json), or any
    sentence-transformers folder of a bare encoder (modules.json beside an architecture with no head: a soup mixed by
    hand, one from the Hub). A pretrained or fine-tuned folder carries modules.json too, under its head: not one."""
    from small_encoders.core.run_folder import RunFolder

    if not Path(model_dir).is_dir():  # a Hub id: nothing to read here
        return False
    if RunFolder(model_dir).embedding_results() is not None:
        return True
    if not (Path(model_dir) / "modules.json").is_file():
        return False
    if config is None:
        config_file = Path(model_dir) / "config.json"
        names = json.loads(config_file.read_text()).get("architectures") if config_file.is_file() else None
    else:
        names = getattr(config, "architectures", None)
    return bool(names) and all(name.endswith("Model") for name in names)


def task_of(config, model_dir=None):
    """The task a folder was saved for: a sentence embedder (is_sentence_embedder), else from its architectures: a
    classifier, a masked LM, else the bare encoder."""
    if model_dir is not None and is_sentence_embedder(model_dir, config):
        return "sentence-embedding"
    names = " ".join(getattr(config, "architectures", None) or ())
    if "ForSequenceClassification" in names:
        return "sequence-classification"
    if "ForMaskedLM" in names:
        return "fill-mask"
    return "feature-extraction"


def check_output_dir(out, source, task, overwrite):
    """An output folder is new, empty, or an earlier export of the same model and task (replaced); anything else is
    refused in one line rather than mixed with or written over."""
    out = Path(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise UserError(f"--output_dir {out} is a file; give a folder")
    record = out / EXPORT_FILE
    earlier = None
    if record.is_file():
        try:
            earlier = json.loads(record.read_text())
        except ValueError:
            earlier = None
    same = isinstance(earlier, dict) and earlier.get("source") == str(source) and earlier.get("task") == task
    if overwrite or same:
        shutil.rmtree(out)
        return
    what = (f"another export ({earlier.get('task')} of {earlier.get('source')})" if isinstance(earlier, dict)
            else "files that are not an export of this model")
    raise UserError(f"--output_dir {out} already holds {what}; use another folder, or --overwrite to replace it")


def wrap(model, output_name):
    """The model called with its inputs by position, returning the one tensor that is exported (logits or hidden
    states) instead of a ModelOutput."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask, **extra), output_name)

    return Exported().eval()


def sentence_modules(model_dir):
    """(pooling mode "mean" or "cls", whether the vectors are normalised, max_seq_length) of a sentence-transformers
    folder, from its own files (modules.json, 1_Pooling/config.json, sentence_bert_config.json)."""
    folder = Path(model_dir)
    if not (folder / "modules.json").is_file():
        raise UserError(f"--task sentence-embedding: {folder} has no modules.json (it is not a sentence-transformers "
                        f"folder; make one with recipes/train_embeddings.py)")
    modules = json.loads((folder / "modules.json").read_text())
    pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pooling is None:
        raise UserError(f"--task sentence-embedding: {folder}/modules.json has no pooling module")
    settings = json.loads((folder / pooling["path"] / "config.json").read_text())
    modes = [name for name in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens",
                               "lasttoken") if settings.get(f"pooling_mode_{name}")]
    mode = settings.get("pooling_mode") or (modes[0] if len(modes) == 1 else None)
    mode = {"cls_token": "cls", "mean_tokens": "mean"}.get(mode, mode)
    if mode not in ("mean", "cls"):
        raise UserError(f"--task sentence-embedding: {folder}'s pooling ({mode or modes}) is not exported here; "
                        f"mean and cls are")
    normalised = any(m["type"].endswith("Normalize") for m in modules)
    if any(not m["type"].endswith(("Transformer", "Pooling", "Normalize")) for m in modules):
        raise UserError(f"--task sentence-embedding: {folder} has modules other than Transformer, Pooling and Normalize")
    length = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 128) \
        if (folder / "sentence_bert_config.json").is_file() else 128
    return mode, normalised, length


def wrap_sentence_embedder(model, pooling, normalised):
    """The encoder, its pooling and normalisation as one module: (input_ids, attention_mask) -> sentence vectors,
    what SentenceTransformer.encode returns."""
    import torch

    class Embedder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            if pooling == "cls":
                vectors = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vectors, p=2, dim=-1) if normalised else vectors

    return Embedder().eval()


def load_model(model_dir, task):
    import torch
    import transformers

    import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family
    from small_encoders.eval.loading import quiet_load_reports

    auto = getattr(transformers, TASKS[task][0])
    try:
        with quiet_load_reports():
            model = auto.from_pretrained(str(model_dir), trust_remote_code=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"--model_dir {model_dir}: cannot load it for {task} ({str(error).strip().splitlines()[0]})") from None
    if getattr(model.config, "sparse_prediction", False):
        model.config.sparse_prediction = False  # every position's logits, as a pipeline wants them
    eager_attention(model)
    return model.eval()


def eager_attention(model):
    """Attention as plain matmul, additive mask, softmax, matmul in the exported graph: torch's SDPA exports with a
    Where and an IsNaN guard around the softmax that OpenVINO and ONNX Runtime run as separate operators, and the eager
    form is what their attention fusions match (docs/performance.md, "The export's graph made for the runtimes").
    Models without the setting keep theirs."""
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, ValueError):
        pass
    return model


def input_names_for(tokenizer, model):
    import inspect

    names = ["input_ids", "attention_mask"]
    accepts = inspect.signature(model.forward).parameters
    if "token_type_ids" in tokenizer.model_input_names and "token_type_ids" in accepts:
        names.append("token_type_ids")
    return names


def encode(tokenizer, sentences, names, max_length=128):
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {name: batch[name].astype("int64") for name in names}


@contextlib.contextmanager
def quiet_logger(name):
    """The named logger at ERROR for the duration (the exporter's notes on optional packages, the quantiser's advice)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(wrapped, sample, names, path, opset):
    """torch.onnx's dynamo exporter with a dynamic batch and sequence axis on every input."""
    import torch

    batch, sequence = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("sequence", min=2, max=8192)
    args = tuple(torch.from_numpy(sample[name]) for name in names)
    shapes = {name: {0: batch, 1: sequence} for name in names}
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as log, quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(wrapped, args, input_names=names, output_names=["output"], dynamic_shapes=shapes,
                                        dynamo=True, opset_version=opset, optimize=True)
        except Exception as error:  # the exporter's own error types; its message names the operator it could not trace
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"torch.onnx could not export this model ({reason}); the exporter's log:\n{log.getvalue()[-1500:]}") from None
    program.save(str(path), external_data=False)


def outputs_of(wrapped, feeds):
    """PyTorch's output for a batch of int64 arrays, as numpy."""
    import torch

    with torch.no_grad():
        return wrapped(**{name: torch.from_numpy(value) for name, value in feeds.items()}).numpy()


def largest_difference(session, wrapped, feeds):
    import numpy as np

    expected = outputs_of(wrapped, feeds)
    got = session.run(None, feeds)[0]
    return float(np.abs(got - expected).max()), got, expected


def agreement(got, expected, task, mask):
    """How often the int8 copy's prediction is PyTorch's: the class (a classifier), the top token (a masked LM, over
    real tokens); for hidden states, the cosine of the vectors (mean over real tokens)."""
    import numpy as np

    if task == "sequence-classification":
        return float((got.argmax(-1) == expected.argmax(-1)).mean())
    if task == "sentence-embedding":  # the cosine of each sentence's vector with PyTorch's
        return float(((got * expected).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(expected, axis=-1) + 1e-12)).mean())
    real = mask.astype(bool)
    if task == "fill-mask":
        return float((got.argmax(-1)[real] == expected.argmax(-1)[real]).mean())
    a, b = got[real], expected[real]
    return float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)).mean())


def difference_from_encode(model_dir, got):
    """Largest |ONNX Runtime - SentenceTransformer.encode| on the check sentences (the folder loaded as a user loads it)."""
    import numpy as np

    from small_encoders.eval.embeddings import embedder_from_folder

    expected = embedder_from_folder(model_dir).encode(CHECK_SENTENCES, convert_to_numpy=True, batch_size=len(CHECK_SENTENCES))
    return float(np.abs(got - expected).max())


def session_for(path, threads=None, **settings):
    """An ONNX Runtime CPU session; `settings` are SessionOptions attributes (enable_profiling=True, ...)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    for name, value in settings.items():
        setattr(options, name, value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize_int8(staging, out, feeds, expected, task, scales, source=ONNX_FILE, target=INT8_FILE):
    """Write `target` (model_int8.onnx) from `source` (model.onnx) in `staging` with ONNX Runtime's dynamic
    quantisation and compare it with PyTorch on the check sentences: (its size in bytes, the record's int8 entry)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_logger(""):  # the root logger: the quantiser's advice to pre-process (for static quantisation)
        quantize_dynamic(str(staging / source), str(staging / target), weight_type=QuantType.QInt8,
                         per_channel=scales == "channel")
    got_int8 = session_for(staging / target).run(None, feeds)[0]
    agreed = agreement(got_int8, expected, task, feeds["attention_mask"])
    measure = {"feature-extraction": "cosine of the hidden states",
               "sentence-embedding": "cosine of the sentence vectors"}.get(task, "predictions that agree")
    print(f"int8 copy {out / target}: {(staging / target).stat().st_size / 2**20:.1f} MiB "
          f"(float32 {(staging / source).stat().st_size / 2**20:.1f} MiB); {measure} with PyTorch on the "
          f"check sentences: {agreed:.4f} (accuracy on a dev set: deploy/bench.py)")
    return (staging / target).stat().st_size, {
        "quantization": f"onnxruntime dynamic, QInt8 weights, a scale per {scales}", "agreement": agreed, "measure": measure}


def run(args):
    import onnxruntime  # noqa: F401  (fails here, clearly, when the runtime is not installed)
    from transformers import AutoConfig

    from small_encoders.core.hub import check_model_folder
    from small_encoders.core.run_folder import source_commit
    from small_encoders.data_prep.tokenizer import load_tokenizer

    model_dir = Path(args.model_dir)
    if args.openvino:  # before any work: the optional runtime is there
        runtimes.require("openvino", "--openvino")
    if not model_dir.is_dir():
        raise UserError(f"--model_dir {model_dir}: no such folder (give a saved model folder)")
    check_model_folder(model_dir, "--model_dir")
    import small_encoders.modeling  # noqa: F401

    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=True)
    task = args.task or task_of(config, model_dir)
    if task not in TASKS:
        raise UserError(f"--task {task}: choose one of {', '.join(TASKS)}")
    out = Path(args.output_dir)
    check_output_dir(out, model_dir, task, args.overwrite)
    tokenizer = load_tokenizer(model_dir, "--model_dir")
    model = load_model(model_dir, task)
    names = input_names_for(tokenizer, model)
    max_length, sentence = 128, None
    if task == "sentence-embedding":
        pooling, normalised, max_length = sentence_modules(model_dir)
        wrapped = wrap_sentence_embedder(model, pooling, normalised)
        sentence = {"pooling": pooling, "normalized": normalised, "max_seq_length": max_length}
    else:
        wrapped = wrap(model, TASKS[task][1])
    sample = encode(tokenizer, CHECK_SENTENCES[:2], names, max_length)
    staging = out.with_name(out.name + ".partial")  # the folder appears whole or not at all
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        started = time.time()
        export_onnx(wrapped, sample, names, staging / ONNX_FILE, args.opset)
        seconds = time.time() - started
        feeds = encode(tokenizer, CHECK_SENTENCES, names, max_length)
        difference, got, expected = largest_difference(session_for(staging / ONNX_FILE), wrapped, feeds)
        if sentence is not None:  # and against sentence-transformers itself, as a user encodes
            sentence["max_abs_difference_from_encode"] = difference_from_encode(model_dir, got)
            difference = max(difference, sentence["max_abs_difference_from_encode"])
        print(f"exported {task} to {out / ONNX_FILE} in {seconds:.1f} s; largest |ONNX Runtime - PyTorch| on "
              f"{len(CHECK_SENTENCES)} sentences (batch {feeds['input_ids'].shape}): {difference:.2e} "
              f"(tolerance {args.tolerance:g})")
        if not difference <= args.tolerance:
            raise UserError(f"the exported model differs from PyTorch by {difference:.3g}, more than --tolerance "
                            f"{args.tolerance:g}; nothing was written")
        record = {"source": str(model_dir), "weights_sha256": weights_digest(model_dir), "task": task, "model_type": config.model_type, "inputs": names,
                  "output": TASKS[task][1], "opset": args.opset, "exporter": "torch.onnx (dynamo)",
                  "check": {"sentences": len(CHECK_SENTENCES), "max_abs_difference": difference,
                            "tolerance": args.tolerance},
                  "files": {ONNX_FILE: (staging / ONNX_FILE).stat().st_size}, "commit": source_commit(),
                  "command": " ".join(["python"] + sys.argv), **({"sentence_embedding": sentence} if sentence else {})}
        if args.int8:
            record["files"][INT8_FILE], record["int8"] = quantize_int8(staging, out, feeds, expected, task, args.int8_scales)
        record.update(runtimes.stage(args, staging, task, tokenizer, names, max_length, lambda batch: outputs_of(wrapped, batch)))
        shutil.copyfile(Path(serving.__file__), staging / "serving.py")  # the loader, beside what it loads
        record["files"] = {path.relative_to(staging).as_posix(): path.stat().st_size
                           for path in sorted(staging.rglob("*")) if path.is_file()}
        tokenizer.save_pretrained(str(staging))
        config.save_pretrained(str(staging))  # what optimum-style loaders read; the weights are in the .onnx files
        write_atomic(staging / EXPORT_FILE, json.dumps(record, indent=1))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"saved to {out}: run it with onnxruntime and the tokenizer beside it (docs/deploy.md); no torch needed")
    return record


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a saved model folder (pretrained or fine-tuned)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--task", default=None, choices=list(TASKS),
                        help="what the exported model outputs (default: from the folder's architecture)")
    parser.add_argument("--int8", action="store_true", help="also write model_int8.onnx (dynamic int8 quantisation)")
    parser.add_argument("--int8_scales", default="channel", choices=["channel", "tensor"],
                        help="int8 weight scales: one per output channel (default; as fast as one per tensor on the "
                             "project's CPU and closer to float32) or one per weight tensor (docs/performance.md#cpu-inference)")
    parser.add_argument("--openvino", action="store_true",
                        help="also write OpenVINO's IR (openvino/model.xml) and, with calibration text, its NNCF int8 "
                             "copy (openvino/model_int8.xml); needs the deploy extra (pip install -e '.[deploy]')")
    parser.add_argument("--ort_fusions", action="store_true",
                        help="also write model_fused.onnx: attention fused into ONNX Runtime's MultiHeadAttention, RMSNorm "
                             "into (Skip)SimplifiedLayerNormalization (with --int8 also its int8 copy, model_fused_int8.onnx) "
                             "(onnxscript's ort_fusions), checked against PyTorch like model.onnx")
    parser.add_argument("--int8_static", action="store_true",
                        help="also write model_int8_static.onnx (ONNX Runtime static int8, calibrated)")
    parser.add_argument("--calibration_task", default=None,
                        help="a GLUE task whose train sentences calibrate the int8 copies and, held out, decide the "
                             "default backend (e.g. sst2; a sentence embedder's default: stsb when --data_dir is given)")
    parser.add_argument("--data_dir", default=None, help="GLUE TSV folders for --calibration_task (default: the Hub)")
    parser.add_argument("--calibration_sentences", type=checks.bounded(int, 8, 100000), default=320,
                        help="train sentences that calibrate (default 320)")
    parser.add_argument("--pick_sentences", type=checks.bounded(int, 32, 100000), default=512,
                        help="further train sentences on which every artefact is timed and checked (default 512)")
    parser.add_argument("--threads", type=checks.bounded(int, 1, 1024), default=None,
                        help="threads for the timing that picks the default backend (default: the runtime's)")
    parser.add_argument("--tolerance", type=checks.bounded(float, 0, 1e3), default=TOLERANCE,
                        help="largest absolute difference from PyTorch the float32 export may show")
    parser.add_argument("--opset", type=checks.bounded(int, 17, 30), default=18)
    parser.add_argument("--overwrite", action="store_true", help="replace whatever --output_dir holds")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
