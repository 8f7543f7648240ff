"""Ingredients combined by task arithmetic instead of a mean: start + scale * sum(ingredient - start) over every
floating-point weight (Ilharco et al., "Editing models with task arithmetic", 2023). scale 1/N is the uniform soup that
recipes/train_embeddings.py makes; scale 1 adds each ingredient's whole change. A copy of the first folder with its
model.safetensors replaced.

    python combine.py --start START_MODEL --scale 1 --output_dir OUT FOLDER FOLDER [...]
"""
import argparse
import shutil

from safetensors.torch import load_file, save_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", required=True, help="the model folder the ingredients were trained from")
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    shutil.copytree(args.folders[0], args.output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "checkpoint-*", "ingredients", "embedding_results.json"))
    start = load_file(f"{args.start}/model.safetensors")  # an MLM folder: its encoder's weights are under model.
    states = [load_file(f"{folder}/model.safetensors") for folder in args.folders]
    combined = {}
    for key, value in states[0].items():
        if not value.is_floating_point():
            combined[key] = value
            continue
        base = start[f"model.{key}"].float()
        combined[key] = (base + args.scale * sum(state[key].float() - base for state in states)).contiguous()
    save_file(combined, f"{args.output_dir}/model.safetensors", metadata={"format": "pt"})
    print(f"start + {args.scale:g} x the sum of {len(states)} ingredients' changes -> {args.output_dir}")


if __name__ == "__main__":
    main()
