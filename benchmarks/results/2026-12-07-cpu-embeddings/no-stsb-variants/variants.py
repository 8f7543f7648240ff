"""Soups mixed otherwise from one seed's finished `embed-no-stsb` ingredients, each saved as a sentence-transformers
folder for eval/embeddings.py: the recipe's uniform mean, the start as a fourth part (every change shrunk by a
quarter), the title and labelled-pair ingredients alone, the labelled pairs weighted twice; the uniform soup's
change from the start stretched (1.25 and 1.5 times); and (added later) the two unlabelled ingredients alone and the
labelled pairs at half weight.

    python variants.py START SEED_FOLDER OUT_FOLDER [NAME ...]   # every mix, or the ones named

Every mix is start + scale x (the weighted mean of its ingredients - start), by the recipe's own `average_embedders`;
a `start` part counts in the weights (its change is none), so it shrinks the scale.
"""
import sys
from pathlib import Path

from small_encoders.recipes.train_embeddings import average_embedders, build_embedder

UNIFORM = {"retrieval": 1, "next": 1, "similarity": 1}
MIXES = {  # name: {part: weight, "scale": stretch of the mean change (default 1)}
    "uniform": UNIFORM,
    "with-start": {"start": 1, **UNIFORM},
    "title-labels": {"retrieval": 1, "similarity": 1},
    "labels-x2": {"retrieval": 1, "next": 1, "similarity": 2},
    "uniform-x1.25": {**UNIFORM, "scale": 1.25},
    "uniform-x1.5": {**UNIFORM, "scale": 1.5},
    "title-next": {"retrieval": 1, "next": 1},  # no labelled pairs at all
    "labels-half": {"retrieval": 2, "next": 2, "similarity": 1},
}

if __name__ == "__main__":
    start, seed_folder, out, *wanted = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:]
    origin = None
    for name, mix in MIXES.items():
        if wanted and name not in wanted:
            continue
        parts = {part: weight for part, weight in mix.items() if part not in ("start", "scale")}
        total = sum(parts.values())
        model = average_embedders([seed_folder / "ingredients" / part for part in parts],
                                  [weight / total for weight in parts.values()])
        scale = mix.get("scale", 1) * total / (total + mix.get("start", 0))
        if scale != 1:
            origin = origin or build_embedder(start, model.max_seq_length).state_dict()
            model.load_state_dict({k: (origin[k].float() + scale * (v.float() - origin[k].float())).to(v.dtype)
                                   if v.is_floating_point() else v for k, v in model.state_dict().items()})
        model.save(str(out / name))
        print(f"{name}: {mix} -> {out / name}", flush=True)
