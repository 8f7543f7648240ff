"""Validation perplexity against passes over the training data, from the evaluations of finished pretraining runs.

    python benchmarks/passes_curve.py runs/passes-curve/chesterton runs/passes-curve/austen     # a Markdown table

Each run folder's training_log.json holds its evaluations (a `keep_best` run evaluates `--evaluations` times, and a
continued run its start at step 0); results.json gives the passes its steps made. docs/recipes.md#continued-pretraining
shows the table for the runs it names, and the command that made them.
"""

import argparse
import sys

from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.run_folder import RunFolder
from small_encoders.recipes.training import perplexity


def curve(folder):
    """[(passes, validation perplexity)] of one finished run, the start (step 0) first where it was measured."""
    run = RunFolder(folder)
    result, log = run.result(), run.training_log()
    if result is None or log is None:
        raise UserError(f"{folder} holds no finished run (results.json and training_log.json)")
    if not result.passes or not result.train_steps:
        raise UserError(f"{folder}: its results.json records no passes (a streamed run, or one from before they were)")
    per_step = result.passes / result.train_steps
    return [(row["step"] * per_step, perplexity(row["eval_loss"])) for row in log if "eval_loss" in row]


def table(folders):
    """A Markdown table: one row per evaluation step of the longest curve, one column per run."""
    curves = {folder: curve(folder) for folder in folders}
    lines = ["| evaluation | " + " | ".join(f"`{folder}`: passes, perplexity" for folder in curves) + " |",
             "|---|" + "---|" * len(curves)]
    for index in range(max(len(points) for points in curves.values())):
        cells = [f"{points[index][0]:.2f}: {points[index][1]:.2f}" if index < len(points) else "" for points in curves.values()]
        lines.append(f"| {index} | " + " | ".join(cells) + " |")
    best = [f"`{folder}` lowest {min(p for _, p in points):.2f} at {min(points, key=lambda x: x[1])[0]:.2f} passes"
            for folder, points in curves.items()]
    return "\n".join(lines + ["", "; ".join(best)])


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="finished run folders (recipes/pretrain_mlm.py with --keep_best)")
    args = parser.parse_args(argv)
    print(table(args.folders))


if __name__ == "__main__":
    sys.exit(main())
