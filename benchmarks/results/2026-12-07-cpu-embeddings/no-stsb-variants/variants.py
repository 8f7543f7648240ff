"""Soups mixed otherwise from one seed's finished `embed-no-stsb` ingredients, each saved as a sentence-transformers
folder for eval/embeddings.py: the recipe's uniform mean, the start as a fourth part (every change shrunk by a
quarter), the title and labelled-pair ingredients alone, the labelled pairs weighted twice; and the uniform soup's
change from the start scaled past it (1.25 and 1.5 times: start + scale x the mean change).

    python variants.py START SEED_FOLDER OUT_FOLDER [NAME ...]   # every variant, or the ones named
"""
import sys
from pathlib import Path

from small_encoders.recipes.train_embeddings import average_embedders, build_embedder

VARIANTS = {  # name: {part: weight}; "start" is the start model, mean-pooled and normalised like the ingredients
    "uniform": {"retrieval": 1, "next": 1, "similarity": 1},
    "with-start": {"start": 1, "retrieval": 1, "next": 1, "similarity": 1},
    "title-labels": {"retrieval": 1, "similarity": 1},
    "labels-x2": {"retrieval": 1, "next": 1, "similarity": 2},
}
SCALED = {"uniform-x1.25": 1.25, "uniform-x1.5": 1.5}  # start + scale x (uniform soup - start)


def moved(model, origin, share):
    """`model` with every floating-point weight at origin + share x (its weight - origin)."""
    state = model.state_dict()
    model.load_state_dict({k: (origin[k].float() + share * (v.float() - origin[k].float())).to(v.dtype)
                           if v.is_floating_point() else v for k, v in state.items()})
    return model



if __name__ == "__main__":
    start, seed_folder, out, *wanted = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:]
    mixes = {**VARIANTS, **{name: dict(VARIANTS["uniform"], scale=scale) for name, scale in SCALED.items()}}
    for name, parts in mixes.items():
        if wanted and name not in wanted:
            continue
        ingredients = [p for p in parts if p not in ("start", "scale")]
        model = average_embedders([seed_folder / "ingredients" / p for p in ingredients],
                                  [parts[p] / sum(parts[q] for q in ingredients) for p in ingredients])
        if "start" in parts or "scale" in parts:
            origin = build_embedder(start, model.max_seq_length).state_dict()
            share = parts.get("scale", 1 - parts.get("start", 0) / sum(v for k, v in parts.items() if k != "scale"))
            moved(model, origin, share)  # start as a part: each change shrunk by its share; scale: stretched
        model.save(str(out / name))
        print(f"{name}: {parts} -> {out / name}", flush=True)
