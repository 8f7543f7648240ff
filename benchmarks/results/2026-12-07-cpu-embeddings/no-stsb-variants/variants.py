"""Soups mixed otherwise from one seed's finished `embed-no-stsb` ingredients, each saved as a sentence-transformers
folder for eval/embeddings.py: the recipe's uniform mean, the start as a fourth part (every change shrunk by a
quarter), the title and labelled-pair ingredients alone, and the labelled pairs weighted twice.

    python variants.py START SEED_FOLDER OUT_FOLDER
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

if __name__ == "__main__":
    start, seed_folder, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    for name, parts in VARIANTS.items():
        ingredients = [p for p in parts if p != "start"]
        total = sum(parts.values())
        model = average_embedders([seed_folder / "ingredients" / p for p in ingredients],
                                  [parts[p] / sum(parts[q] for q in ingredients) for p in ingredients])
        if "start" in parts:  # soup = start + (ingredients' share) x (their mean change)
            share = 1 - parts["start"] / total
            origin = build_embedder(start, model.max_seq_length).state_dict()
            state = model.state_dict()
            model.load_state_dict({k: (origin[k].float() + share * (v.float() - origin[k].float())).to(v.dtype)
                                   if v.is_floating_point() else v for k, v in state.items()})
        model.save(str(out / name))
        print(f"{name}: {parts} -> {out / name}", flush=True)
