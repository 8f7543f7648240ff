"""Side measurement (issue 58): dynamic int8 of the fused graph against dynamic int8 of the plain graph, batch 32 over
SST-2 dev, 2 threads, 5 alternating rounds, the median; plus prediction agreement between them."""
import argparse
import statistics
import sys
import time

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

from small_encoders.data_prep.tokenizer import load_tokenizer
from small_encoders.deploy import bench
from small_encoders.deploy.serving import Runner

folder = sys.argv[1]
quantize_dynamic(f"{folder}/model_fused.onnx", "/tmp/fused_int8.onnx", weight_type=QuantType.QInt8, per_channel=True)
tok = load_tokenizer(f"{folder}", "x")
a = argparse.Namespace(task_name="sst2", data_dir="../shared/data/glue", max_sentences=None, max_length=128)
enc, labels, _ = bench.load_dev(a, tok)
batches = bench.batches_of(enc, 32)
runners = {"int8": Runner(f"{folder}/model_int8.onnx", "onnxruntime-int8", 2), "fused-int8": Runner("/tmp/fused_int8.onnx", "onnxruntime-int8", 2)}
rates = {k: [] for k in runners}
outs = {}
for r in runners.values():
    r(batches[0])
for i in range(5):
    for name in (list(runners) if i % 2 == 0 else list(reversed(runners))):
        t = time.perf_counter()
        o = np.concatenate([runners[name](b) for b in batches])
        rates[name].append(len(labels) / (time.perf_counter() - t))
        outs[name] = o
for name in runners:
    print(name, round(statistics.median(rates[name]), 1), "sentences/s; accuracy", round(100 * float((outs[name].argmax(-1) == labels).mean()), 2))
print("agreement", float((outs["int8"].argmax(-1) == outs["fused-int8"].argmax(-1)).mean()))
