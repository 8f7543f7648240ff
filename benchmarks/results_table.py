"""The results table (README, docs/results.md), read from reference-run folders (benchmarks/reference_run.py's OUT).

    python benchmarks/results_table.py benchmarks/results/2026-12-04-h200-tuned-20m [OUT ...]

One row per recipe in each folder: hardware, budget, parameters, tokens and tokens/s, held-out perplexity, SST-2
and the GLUE-5 average against the random-init floor (protocol named), and the folder. Paste it into the README's table and docs/results.md
as it prints; every figure in it is the folder's own.
"""

import argparse
import json
import sys
from pathlib import Path

from small_encoders.core.errors import ArgumentParser, UserError, entry_point

HEADER = ("| recipe | hardware, date | budget | parameters | tokens (tokens/s) | held-out perplexity | "
          "SST-2: floor -> pretrained | GLUE-5: floor -> pretrained | suite | details |")


def pair(floor, pretrained):
    if floor is None or pretrained is None:
        return "-"
    return f"{floor:.2f} -> {pretrained:.2f} (**{pretrained - floor:+.2f}**)"


def rows(folder):
    folder = Path(folder)
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {folder / 'results.json'}: {error}") from None
    if "reference_run" not in results:
        raise UserError(f"{folder / 'results.json'} was not written by benchmarks/reference_run.py")
    for name, record in results["recipes"].items():
        run, suite = record["pretraining"], record["suite"]
        if run is None:
            yield f"| `{name}` | {results['hardware']}, {results['date'][:10]} | - | - | - | - | - | - | - | pretraining did not finish |"
            continue
        budget = (run.get("time_budget") or {}).get("minutes")
        shared = " (shared)" if record.get("gpu_shared_with") else ""
        sst2 = (suite or {}).get("tasks", {}).get("sst2", {})
        average = (suite or {}).get("glue_average") or {}
        glue5 = pair(average.get("floor"), average.get("pretrained")) if suite and len(
            [t for t in suite["tasks"] if t != "wnli"]) == 5 else "-"
        yield (f"| `{name}`{' (smoke)' if results['smoke'] else ''} | {results['hardware']}{shared}, {results['date'][:10]} | "
               f"{f'{budget:g} min' if budget else '-'} | {run['parameters'] / 1e6:.1f}M | {run['train_tokens'] / 1e6:,.1f}M "
               f"({run['tokens_per_second']:,}) | {run['eval_perplexity']:.2f} ({run['mlm_probability']:.0%}) | "
               f"{pair(sst2.get('floor'), sst2.get('pretrained'))} | {glue5} | "
               f"{'`' + suite['protocol'] + '`' if suite else '-'} | [{folder.name}]({folder.as_posix()}) |")


def table(folders):
    return "\n".join([HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"] + [row for f in folders for row in rows(f)])


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="reference-run output folders")
    args = parser.parse_args(argv)
    print(table(args.folders))


if __name__ == "__main__":
    sys.exit(main())
