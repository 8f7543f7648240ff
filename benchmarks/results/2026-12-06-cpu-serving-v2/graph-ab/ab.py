"""Two exports of one model taking turns in one process (OpenVINO int8 and bf16, ONNX Runtime int8) against PyTorch
float32: a classifier on SST-2 dev, a sentence embedder (a folder with modules.json) on STS-B dev's sentences; in order,
batch 32.

    python ab.py MODEL_DIR OLD_EXPORT NEW_EXPORT [ROUNDS]
"""
import csv
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

from small_encoders.deploy import runtimes
from small_encoders.deploy.export import load_model, sentence_modules, wrap, wrap_sentence_embedder
from small_encoders.deploy.serving import Runner

torch.set_num_threads(2)
MODEL, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
embedder = (Path(MODEL) / "modules.json").is_file()


def column(task, names):
    rows = list(csv.DictReader(open(f"../shared/data/glue/{task}/dev.tsv"), delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row[name] for name in names for row in rows]


texts = column("STS-B", ["sentence1", "sentence2"]) if embedder else column("SST-2", ["sentence"])
batches = runtimes.batches_from(AutoTokenizer.from_pretrained(MODEL), texts, None, ["input_ids", "attention_mask"], 128)
model = load_model(MODEL, "sentence-embedding" if embedder else "sequence-classification")
model.set_attn_implementation("sdpa")  # PyTorch as a user runs it
pt = wrap_sentence_embedder(model, *sentence_modules(MODEL)[:2]) if embedder else wrap(model, "logits")


class PyTorch:
    def __call__(self, feeds):
        with torch.no_grad():
            return pt(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()


runners = {"pytorch": PyTorch()}
for tag, folder in (("old", old), ("new", new)):
    runners[f"{tag}/openvino-int8"] = Runner(f"{folder}/openvino/model_int8.xml", "openvino-int8", 2)
    runners[f"{tag}/openvino"] = Runner(f"{folder}/openvino/model.xml", "openvino", 2)
    runners[f"{tag}/onnxruntime-int8"] = Runner(f"{folder}/model_int8.onnx", "onnxruntime-int8", 2)
for runner in runners.values():
    runner(batches[0])
rates, _ = runtimes.timed_turns(runners, batches, int(sys.argv[4]) if len(sys.argv) > 4 else 3)
for name, rate in rates.items():
    print(f"{name:<28} {rate:7.1f} sentences/s {rate / rates['pytorch']:5.2f}x")
