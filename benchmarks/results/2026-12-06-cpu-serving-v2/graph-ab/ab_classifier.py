"""OpenVINO int8 and bf16 and ONNX Runtime int8 of two classifier exports against PyTorch float32, taking turns on
SST-2 dev (in order, batch 32)."""
import csv
import sys

import torch
from transformers import AutoTokenizer

from small_encoders.deploy import runtimes
from small_encoders.deploy.export import load_model, wrap
from small_encoders.deploy.serving import Runner

torch.set_num_threads(2)
MODEL, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
tok = AutoTokenizer.from_pretrained(MODEL)
rows = csv.DictReader(open("../shared/data/glue/SST-2/dev.tsv"), delimiter="\t", quoting=csv.QUOTE_NONE)
batches = runtimes.batches_from(tok, [r["sentence"] for r in rows], None, ["input_ids", "attention_mask"], 128)
model = load_model(MODEL, "sequence-classification")
model.set_attn_implementation("sdpa")  # PyTorch as a user runs it
pt = wrap(model, "logits")


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
