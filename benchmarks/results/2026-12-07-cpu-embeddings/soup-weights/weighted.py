"""A weighted soup of two ingredients: every floating-point weight w x A + (1 - w) x B (w = 0.5 is the uniform soup
recipes/train_embeddings.py makes), by the recipe's own averaging (average_embedders), saved as a
sentence-transformers folder.

    python weighted.py --weight 0.6 --output_dir OUT FOLDER_A FOLDER_B
"""
import argparse

from small_encoders.recipes.train_embeddings import average_embedders


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weight", type=float, required=True, help="the first folder's share, in [0, 1]")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args(argv)
    average_embedders([args.first, args.second], [args.weight, 1 - args.weight]).save(args.output_dir)
    print(f"{args.weight:g} x {args.first} + {1 - args.weight:g} x {args.second} -> {args.output_dir}")


if __name__ == "__main__":
    main()
