"""The pilot's averaging (issue 57, before recipes/train_embeddings.py had `ingredients`): a copy of the first folder
with every floating-point weight of model.safetensors the mean of the folders'.

    python soup.py --output_dir OUT FOLDER FOLDER [...]
"""
import argparse
import shutil

from safetensors.torch import load_file, save_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    shutil.copytree(args.folders[0], args.output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "checkpoint-*", "embedding_results.json"))
    states = [load_file(f"{folder}/model.safetensors") for folder in args.folders]
    averaged = {key: (sum(state[key].float() for state in states) / len(states)).contiguous()
                if value.is_floating_point() else value for key, value in states[0].items()}
    save_file(averaged, f"{args.output_dir}/model.safetensors", metadata={"format": "pt"})
    print("averaged", args.folders, "->", args.output_dir)


if __name__ == "__main__":
    main()
