"""OpenVINO int8 (and bf16) of two embedder exports against PyTorch float32, taking turns on STS-B dev's sentences."""
import csv
import sys

import torch
from transformers import AutoModel, AutoTokenizer

from small_encoders.deploy import runtimes
from small_encoders.deploy.export import sentence_modules, wrap_sentence_embedder
from small_encoders.deploy.serving import Runner

torch.set_num_threads(2)
MODEL, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
tok = AutoTokenizer.from_pretrained(MODEL)
rows = list(csv.DictReader(open("../shared/data/glue/STS-B/dev.tsv"), delimiter="\t", quoting=csv.QUOTE_NONE))
sents = [r["sentence1"] for r in rows] + [r["sentence2"] for r in rows]
batches = runtimes.batches_from(tok, sents, None, ["input_ids", "attention_mask"], 64)
pooling, normalised, _ = sentence_modules(MODEL)
pt = wrap_sentence_embedder(AutoModel.from_pretrained(MODEL, trust_remote_code=True).eval(), pooling, normalised)
class PT:
    def __call__(self, feeds):
        with torch.no_grad():
            return pt(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()
runners = {"pytorch": PT()}
for tag, folder in (("old", old), ("new", new)):
    runners[f"{tag}/openvino-int8"] = Runner(f"{folder}/openvino/model_int8.xml", "openvino-int8", 2)
    runners[f"{tag}/openvino"] = Runner(f"{folder}/openvino/model.xml", "openvino", 2)
    runners[f"{tag}/onnxruntime-int8"] = Runner(f"{folder}/model_int8.onnx", "onnxruntime-int8", 2)
for r in runners.values():
    r(batches[0])
rates, _ = runtimes.timed_turns(runners, batches, int(sys.argv[4]) if len(sys.argv) > 4 else 3)
for name, rate in rates.items():
    print(f"{name:<28} {rate:7.1f} sentences/s {rate / rates['pytorch']:5.2f}x")
