"""Turn the raw outputs of a GPU run made by hand (before benchmarks/reference_run.py existed) into a reference-run
folder, so the results table, the model card and the suite read it like any other run.

    python benchmarks/import_gpu_run.py --raw_dir ../shared/gpu-runs/2026-12-04-h200-tuned-20m \\
        --output_dir benchmarks/results/2026-12-04-h200-tuned-20m --commit 8522b1f --glue_data_dir ../shared/data/glue \\
        --software torch=2.11.0+cu130,transformers=5.17.0,datasets=5.2.0 --date 2026-12-04

RAW holds model/ (the saved folder with the run's own results.json and recipe.yaml) and glue_results.jsonl (one
line per eval/run_glue.py process: {"side": "model" | "floor", "task", "rc", "result": run_glue's JSON}). A task's
learning-rate sweep may be one process (run_glue's own sweep) or one process per rate; either way each side keeps
its best rate, as the suite does. The fine-tunings must follow one suite protocol (--protocol, default gpu);
a process that did not follow it is refused. The weights stay where they are: OUT records their path.

Everything written says it was imported: the commit the run's code was at (`--commit`, from the raw README), the GLUE
data it read (`--glue_data_dir`), and that its fine-tunings were `eval/run_glue.py` processes started by hand, not an
`eval/suite.py` run (the suite summary, the reference-run summary and the model card all say so).
"""

import argparse
import json
import sys
from pathlib import Path

from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import RunFolder

SIDES = {"model": "pretrained", "floor": "floor"}


def read_lines(path):
    try:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    bad = [row.get("task") for row in rows if row.get("rc") != 0 or "result" not in row]
    if bad:
        raise UserError(f"{path}: fine-tunings that did not finish ({', '.join(map(str, bad))}); import a complete run")
    return rows


def check_protocol(result, settings):
    """The settings a run_glue result trained with must be the protocol's (the rate and epochs per task aside)."""
    from small_encoders.eval.glue_jobs import task_epochs

    hyper = result["hyperparameters"]
    expected = {"per_device_train_batch_size": settings["per_device_train_batch_size"],
                "max_train_samples": settings["max_train_samples"], "max_seq_length": settings["max_seq_length"],
                "num_train_epochs": task_epochs(settings, result["task"]), "weight_decay": settings["weight_decay"],
                "warmup_ratio": settings["warmup_ratio"]}
    differ = {key: (hyper.get(key), value) for key, value in expected.items() if hyper.get(key) != value}
    if differ:
        raise UserError(f"{result['task']} ({'floor' if result['random_init'] else 'model'}) did not follow the protocol: "
                        + ", ".join(f"{key} {got} (protocol {want})" for key, (got, want) in differ.items()))


def side_results(rows, settings):
    """{side: {task: run_task-form result}}: one process per rate (or one process with its own sweep) -> the sweep."""
    from small_encoders.eval.glue_jobs import assemble

    rates = settings["learning_rate"]
    seeds = [int(s) for s in str(settings["seeds"]).split(",")]
    found = {}
    for row in rows:
        result = row["result"]
        check_protocol(result, settings)
        by_rate = found.setdefault((SIDES[row["side"]], row["task"]), {})
        sweep = result.get("learning_rate_sweep")
        if sweep:  # run_glue's own sweep: the chosen rate's result, and the others' first-seed scores
            by_rate[sweep["chosen"], seeds[0]] = result
            for rate, score in sweep["scores"].items():
                if float(rate) != sweep["chosen"]:
                    by_rate[float(rate), seeds[0]] = dict(result, per_seed={seeds[0]: {"score": score}})
        else:
            for seed, metrics in result["per_seed"].items():
                by_rate[result["hyperparameters"]["learning_rate"], int(seed)] = dict(result, per_seed={int(seed): metrics})
    out = {"pretrained": {}, "floor": {}}
    for (side, task), by_rate in found.items():
        assembled = assemble(by_rate, rates, seeds)
        if assembled is None or assembled.get("learning_rate_sweep", {}).get("unfinished_rates"):
            raise UserError(f"{task} ({side}): not every rate of the protocol's sweep is in the raw results")
        out[side][task] = assembled
    return out


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw_dir", required=True, help="the raw outputs: model/ and glue_results.jsonl")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--protocol", default="gpu", help="the suite protocol the fine-tunings followed")
    parser.add_argument("--software", default="", help="name=version pairs, comma-separated, as the raw log printed them")
    parser.add_argument("--date", required=True, help="the day of the run, YYYY-MM-DD")
    parser.add_argument("--commit", required=True, help="the commit of this repository the run's code was at (its raw README says)")
    parser.add_argument("--glue_data_dir", required=True, help="the GLUE folder its fine-tunings read (as the raw README names it)")
    args = parser.parse_args(argv)
    import re

    if not re.fullmatch(r"[0-9a-f]{7,40}", args.commit):
        raise UserError(f"--commit {args.commit!r}: give the run's git commit (7 to 40 hex digits)")
    from small_encoders.eval import suite

    raw = Path(args.raw_dir)
    model_dir = raw / "model"
    if not RunFolder(model_dir).is_finished() or not (raw / "glue_results.jsonl").is_file():
        raise UserError(f"--raw_dir {raw} needs model/results.json and glue_results.jsonl")
    if args.protocol not in suite.PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(suite.PROTOCOLS)}")
    settings = dict(suite.PROTOCOLS[args.protocol])
    run = RunFolder(model_dir).result()
    glue = side_results(read_lines(raw / "glue_results.jsonl"), settings)
    tasks = [t for t in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli") if t in glue["pretrained"]]
    measured = {side: {"glue": {t: glue[side][t] for t in tasks}, "glue_average": suite.glue_average(
        {t: glue[side][t] for t in tasks}), "seconds": round(max(r["seconds"] for r in glue[side].values()), 1)}
        for side in glue}
    table = [{"what": what, "floor": f, "pretrained": p, "difference": p - f}
             for what, f, p in suite.table_rows(measured["pretrained"], measured["floor"])]
    out = Path(args.output_dir)
    command = " ".join(["python", "benchmarks/import_gpu_run.py", *(argv if argv is not None else sys.argv[1:])])
    suite_results = {
        "suite_version": suite.SUITE_VERSION, "protocol": args.protocol, "protocol_settings": settings,
        "model": str(model_dir), "model_type": json.loads((model_dir / "config.json").read_text())["model_type"],
        "data_dir": args.glue_data_dir, "perplexity_data": None, "glue_tasks": tasks,
        "floor_key": None, "floor_cached": False, "floor_cache_file": None, "floor_perplexity_measured_now": False,
        "hardware": run.hardware, "floor_hardware": run.hardware, "command": command,
        "skipped": list(suite.PARTS), "fine_tuning_jobs": None, "not_measured": [],
        "pretrained": measured["pretrained"], "floor": measured["floor"], "table": table,
        "imported_from": str(raw), "commit": args.commit,
        "provenance": f"imported: eval/run_glue.py processes started by hand at commit {args.commit}, under protocol "
                      f"{args.protocol}'s settings (checked), read in by benchmarks/import_gpu_run.py; not an eval/suite.py run",
    }
    suite_results["protocol_seeds_reading"] = None
    (out / run.recipe / "suite").mkdir(parents=True, exist_ok=True)
    write_atomic(out / run.recipe / "suite" / "results.json", json.dumps(suite_results, indent=1))
    write_atomic(out / run.recipe / "suite" / "summary.md", suite.summary_markdown(suite_results))
    from small_encoders.benchmarks.reference_run import recipe_record, summary_markdown

    record = recipe_record(run.recipe, model_dir, out / run.recipe / "suite", [run.command, command], [], 0, 0)
    software = dict(part.split("=", 1) for part in args.software.split(",") if "=" in part)
    results = {
        "reference_run": 1, "date": args.date, "recipes": {run.recipe: record}, "hardware": run.hardware,
        "software": software, "commit": args.commit, "command": command, "wall_minutes": None, "wall_seconds": None,
        "smoke": run.smoke, "protocol": args.protocol, "time_budget": run.time_budget["minutes"],
        "imported_from": str(raw),
    }
    write_atomic(out / "results.json", json.dumps(results, indent=1))
    write_atomic(out / "summary.md", summary_markdown(results))
    print(summary_markdown(results))
    print(f"wrote {out / 'results.json'}, {out / 'summary.md'} and {out / run.recipe / 'suite'}")


if __name__ == "__main__":
    sys.exit(main())
