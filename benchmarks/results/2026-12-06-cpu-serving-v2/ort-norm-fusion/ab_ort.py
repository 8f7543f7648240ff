"""ONNX Runtime artefacts of one classifier taking turns in one process against PyTorch float32 (SST-2 dev in order,
batch 32; then 64 single sentences): the graph as exported, fused as deploy/export.py --ort_fusions did before
(attention only), fused with RMSNorm/SkipRMSNorm as well (make.py), and dynamic int8 of each.

    python ab_ort.py --model_dir MODEL --rounds 3 NAME=FILE.onnx ...   (a NAME with "int8" runs as the int8 backend)
"""
import argparse
import csv

import numpy as np
import torch
from transformers import AutoTokenizer

from small_encoders.deploy import runtimes
from small_encoders.deploy.export import load_model, wrap
from small_encoders.deploy.serving import Runner


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data_dir", default="../shared/data/glue")
    parser.add_argument("files", nargs="+", help="NAME=FILE.onnx")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = list(csv.DictReader(open(f"{args.data_dir}/SST-2/dev.tsv"), delimiter="\t", quoting=csv.QUOTE_NONE))
    texts, labels = [r["sentence"] for r in rows], np.array([int(r["label"]) for r in rows])
    batches = runtimes.batches_from(AutoTokenizer.from_pretrained(args.model_dir), texts, None,
                                    ["input_ids", "attention_mask"], 128)
    model = load_model(args.model_dir, "sequence-classification")
    model.set_attn_implementation("sdpa")  # PyTorch as a user runs it
    pt = wrap(model, "logits")

    def pytorch(feeds):
        with torch.no_grad():
            return pt(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()

    runners = {"pytorch": pytorch}
    for item in args.files:
        name, file = item.split("=", 1)
        runners[name] = Runner(file, "onnxruntime-int8" if "int8" in name else "onnxruntime", 2)
    for runner in runners.values():  # warm-up
        runner(batches[0])
    rates, outputs = runtimes.timed_turns(runners, batches, args.rounds)
    single_rates, _ = runtimes.timed_turns(runners, runtimes.single_sentences(batches), args.rounds)
    for name in runners:
        predicted = np.concatenate(outputs[name]).argmax(-1)
        print(f"{name:<24} batch32 {rates[name]:7.1f} s/s {rates[name] / rates['pytorch']:5.2f}x | batch1 "
              f"{single_rates[name]:6.1f} s/s {single_rates[name] / single_rates['pytorch']:5.2f}x | accuracy "
              f"{100 * (predicted == labels).mean():.2f}")


if __name__ == "__main__":
    main()
