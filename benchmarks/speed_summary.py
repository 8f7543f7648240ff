"""The table of a `benchmarks/gpu_session.sh speed` run: the lever ladders and the recipe as trained, against the
targets of the GPU speed work (tuned-20m at least 2,000,000 tokens/s and 3x the stock path; bertmini 3x stock).

    python benchmarks/speed_summary.py runs/gpu-session/speed      # writes results.json and summary.md there
"""

import json
import sys
from pathlib import Path

from small_encoders.core.errors import ArgumentParser, UserError, entry_point

TARGETS = {"tuned-20m": (2_000_000, 3.0), "bertmini": (None, 3.0)}  # shape: (tokens/s, times the stock path)


def ladder_lines(ladder):
    rows = {row["path"]: row for row in ladder["paths"]}
    stock = rows.get("stock", {}).get("tokens_per_second")
    lines = [f"### {ladder['shape']}: batch {ladder['batch_size']} x {ladder['block_size']}, {ladder['device']}, "
             f"bf16 {ladder['bf16']}, torch {ladder['torch']}", "",
             "| path | step ms | tokens/s | x stock | peak memory | MFU |", "|---|---|---|---|---|---|"]
    for row in ladder["paths"]:
        times = f"{row['tokens_per_second'] / stock:.2f}x" if stock else "-"
        memory = f"{row['peak_memory_gib']:.2f} GiB" if row["peak_memory_gib"] is not None else "-"
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "-"
        lines.append(f"| {row['path']} | {row['step_ms']:.1f} | {row['tokens_per_second']:,} | {times} | {memory} | {mfu} |")
    best = ladder["paths"][-1]
    tokens_target, ratio_target = TARGETS.get(ladder["shape"], (None, None))
    verdicts = []
    if tokens_target:
        verdicts.append(f"{best['tokens_per_second']:,} tokens/s against the target {tokens_target:,}: "
                        f"{'reached' if best['tokens_per_second'] >= tokens_target else 'not reached'}")
    if ratio_target and stock:
        ratio = best["tokens_per_second"] / stock
        verdicts.append(f"{ratio:.2f}x the stock path against the target {ratio_target:g}x: "
                        f"{'reached' if ratio >= ratio_target else 'not reached'}")
    return lines + ([""] + [f"- last lever ({best['path']}): " + v for v in verdicts] if verdicts else []), verdicts


def summarize(folder):
    folder = Path(folder)
    ladders = [json.loads(path.read_text()) for path in sorted(folder.glob("ladder-*.json"))]
    recipes = {path.parent.name.removeprefix("recipe-"): json.loads(path.read_text())
               for path in sorted(folder.glob("recipe-*/results.json"))}
    if not ladders and not recipes:
        raise UserError(f"{folder} holds no ladder-*.json and no recipe-*/results.json (run benchmarks/gpu_session.sh speed)")
    lines, record = ["# Speed levers, measured", ""], {"ladders": ladders, "recipes": {}}
    for ladder in ladders:
        table, verdicts = ladder_lines(ladder)
        lines += table + [""]
        record.setdefault("verdicts", {})[ladder["shape"]] = verdicts
    if recipes:
        lines += ["### tuned-20m as trained (the Trainer loop, collation, logging and the budget's bookkeeping included)", "",
                  "| variant | steps | tokens | training s | tokens/s | held-out perplexity |", "|---|---|---|---|---|---|"]
        for name, result in recipes.items():
            perplexity = f"{result['eval_perplexity']:.2f}" if result.get("eval_perplexity") else "-"
            lines.append(f"| {name} | {result['train_steps']:,} | {result['train_tokens']:,} | {result['train_seconds']:.1f} | "
                         f"{result['tokens_per_second']:,} | {perplexity} |")
            record["recipes"][name] = {key: result.get(key) for key in (
                "command", "hardware", "train_steps", "train_tokens", "train_seconds", "tokens_per_second", "eval_perplexity",
                "time_budget")}
        if {"shipped", "before"} <= set(recipes):
            ratio = recipes["shipped"]["tokens_per_second"] / max(1, recipes["before"]["tokens_per_second"])
            lines += ["", f"- as trained, shipped against before: {ratio:.2f}x tokens/s"]
            record["recipe_speedup"] = round(ratio, 3)
    (folder / "results.json").write_text(json.dumps(record, indent=1))
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("folder", help="the speed folder of a gpu_session.sh run")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        raise UserError(f"{args.folder}: no such folder")
    print(summarize(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
