"""A weighted soup of two ingredients: every floating-point weight w * A + (1 - w) * B (w = 0.5 is the uniform soup
recipes/train_embeddings.py makes). A copy of the first folder with its model.safetensors replaced.

    python weighted.py --weight 0.6 --output_dir OUT FOLDER_A FOLDER_B
"""
import argparse
import shutil

from safetensors.torch import load_file, save_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weight", type=float, required=True, help="the first folder's share, in [0, 1]")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args(argv)
    shutil.copytree(args.first, args.output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "checkpoint-*", "ingredients", "embedding_results.json"))
    a, b = load_file(f"{args.first}/model.safetensors"), load_file(f"{args.second}/model.safetensors")
    mixed = {key: ((args.weight * value.float() + (1 - args.weight) * b[key].float()).to(value.dtype).contiguous()
                   if value.is_floating_point() else value) for key, value in a.items()}
    save_file(mixed, f"{args.output_dir}/model.safetensors", metadata={"format": "pt"})
    print(f"{args.weight:g} x {args.first} + {1 - args.weight:g} x {args.second} -> {args.output_dir}")


if __name__ == "__main__":
    main()
