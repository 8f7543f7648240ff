"""An embedder's vectors post-processed by a linear map fitted on Wikipedia sentences alone (no evaluation data, no
labels): centred (their mean taken away), centred with the top principal directions dropped ("all-but-the-top"), or
whitened (BERT-whitening). Each map is a sentence-transformers Dense layer (identity activation) put before the
folder's Normalize, so eval/embeddings.py measures it unchanged.

    python center.py MODEL OUT [--sentences 10000] [--drop 1 2 4] [--whiten]

MODEL: a sentence-transformers folder (a trained embedder) or any encoder (mean-pooled). Prints a screen of every
map on STS-B dev (Spearman of cosine) and MRPC dev (average precision) and writes each map as OUT/NAME.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

from small_encoders.data_prep.pairs import raw_text_pairs
from small_encoders.eval.embeddings import load_embedder, task_data
from small_encoders.recipes.train_embeddings import st_module

WIKIPEDIA = "../shared/data/pretrain-corpus/wikipedia/*.txt.gz"


def pooled(model, sentences):
    """The vectors before any Normalize: the map is fitted and applied where the Dense layer will sit."""
    unnormalized = type(model)(modules=[m for m in model if type(m).__name__ != "Normalize"], device="cpu")
    return unnormalized.encode(sentences, batch_size=64, convert_to_numpy=True, show_progress_bar=False).astype(np.float64)


def maps(fit, drop, whiten):
    """{name: (W, b)} with y = W x + b for each post-processing."""
    mean = fit.mean(0)
    centred = fit - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    eye = np.eye(fit.shape[1])
    found = {"centre": (eye, -mean)}
    for k in drop:
        top = vt[:k]
        project = eye - top.T @ top
        found[f"centre-drop{k}"] = (project, -project @ mean)
    if whiten:
        scale = np.sqrt(len(fit) - 1) / s
        w = (vt.T * scale).T  # rows: principal directions, each scaled to unit variance
        found["whiten"] = (w, -w @ mean)
    return found


def screen_sets(model, data):
    """[(vectors of the first sentences, of the second, gold, metric)] for STS-B dev and MRPC dev, encoded once."""
    stsb, (mrpc, _) = data["stsb"], data["mrpc"]
    return [(pooled(model, list(pairs["sentence1"])), pooled(model, list(pairs["sentence2"])), list(pairs["label"]), metric)
            for pairs, metric in ((stsb, lambda gold, cosine: spearmanr(cosine, gold)[0]),
                                  (mrpc, average_precision_score))]


def screen(sets, name, transform):
    row = []
    for first, second, gold, metric in sets:
        a, b = transform(first), transform(second)
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        row.append(100 * metric(gold, cosine))
    print(f"{name:16s} STS-B dev {row[0]:6.2f}  MRPC dev AP {row[1]:6.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--drop", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--whiten", action="store_true")
    parser.add_argument("--data_dir", default="../shared/data/glue")
    args = parser.parse_args()
    model = load_embedder(args.model)
    pairs, line = raw_text_pairs(WIKIPEDIA, kind="same", max_pairs=args.sentences, seed=0)
    print(line, flush=True)
    fit = pooled(model, list(pairs["anchor"]))
    sets = screen_sets(model, task_data(args.data_dir))
    screen(sets, "as trained", lambda x: x)
    modules = st_module("modules")
    for name, (w, b) in maps(fit, args.drop, args.whiten).items():
        screen(sets, name, lambda x, w=w, b=b: x @ w.T + b)
        dense = modules.Dense(w.shape[1], w.shape[0], bias=True, activation_function=torch.nn.Identity(),
                              init_weight=torch.tensor(w, dtype=torch.float32),
                              init_bias=torch.tensor(b, dtype=torch.float32))
        unnormalized = [m for m in model if type(m).__name__ != "Normalize"]
        mapped = type(model)(modules=unnormalized + [dense, modules.Normalize()], device="cpu")
        mapped.save(str(Path(args.out) / name))


if __name__ == "__main__":
    main()
