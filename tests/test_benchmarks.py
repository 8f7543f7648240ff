"""The throughput benchmark runs from a clean checkout and prints every figure the README quotes."""

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SHARED_DATA


@pytest.mark.slow
def test_throughput_benchmark_prints_each_path_the_ratio_and_data_prep(tmp_path):
    vocab = SHARED_DATA / "tokenizers" / "bert-base-uncased" / "vocab.txt"
    if not vocab.exists():
        pytest.skip(f"{vocab} is absent (shared data folder)")
    lines = [f"the whale number {i} swam past the ship at night and the captain saw it." for i in range(400)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines))
    (tmp_path / "gz").mkdir()
    with gzip.open(tmp_path / "gz" / "part.txt.gz", "wt", encoding="utf-8") as handle:  # data_prep reads what recipes read
        handle.write("\n".join(lines[:300]) + "\n")
    result = subprocess.run(
        [sys.executable, "benchmarks/pretrain_throughput.py", "--shape", "bertmini", "--paths", "stock,packed,ours,rtd",
         "--batch_size", "2", "--steps", "1",
         "--rounds", "1", "--warmup", "1", "--corpus", str(corpus), "--num_proc", "1,2", "--speedups_for", "ours",
         "--data_prep_files", str(tmp_path / "gz")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split()[:1] in (["stock"], ["packed"], ["ours"], ["rtd"])}
    assert set(rows) == {"stock", "packed", "ours", "rtd"}
    assert float(rows["stock"][3].rstrip("%")) > 0 and rows["ours"][3] == "0.0%"  # padding share: stock pads, ours never
    assert re.search(r"ratio ours / stock: \d+\.\d\dx", result.stdout)
    assert re.search(r"ratio rtd / ours \(one RTD step against one MLM step of the same shape\): \d+\.\d\dx", result.stdout)
    assert re.search(r"collator, 2 x 128 blocks on the CPU: stock \d+\.\d ms, ours \d+\.\d ms per batch", result.stdout)
    megabytes = sum(len(line) + 1 for line in lines[:300]) / 1e6  # raw text, not the compressed file
    for num_proc, where in ((1, r" \(in this process\)"), (2, "")):
        assert re.search(rf"data_prep: {megabytes:.2f} MB of text tokenized and packed into \d+ blocks .* MB/s with num_proc={num_proc}{where}, \d+\.\d of \d+ cores busy\n",
                         result.stdout)


@pytest.mark.slow
def test_glue_padding_benchmark_shows_the_cpu_protocol_pads_less():
    """The arithmetic behind the suite's cpu protocol: v2 pushes far fewer padded tokens through GLUE than v1."""
    glue, vocab = SHARED_DATA / "glue", SHARED_DATA / "tokenizers" / "bert-base-uncased" / "vocab.txt"
    if not (glue / "RTE" / "train.tsv").exists() or not vocab.exists():
        pytest.skip(f"{glue} or {vocab} is absent (shared data folder)")
    result = subprocess.run([sys.executable, "benchmarks/glue_padding.py", "--data_dir", str(glue), "--tokenizer", str(vocab)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert {"cola", "sst2", "mrpc", "stsb", "rte", "all"} <= set(rows)
    for task in ("cola", "sst2", "mrpc", "stsb", "rte"):
        v1_real, v1_padded, _, real, padded, share = rows[task][1:]
        assert int(v1_padded.replace(",", "")) > int(v1_real.replace(",", ""))  # random batches of 32 pad
        assert int(real.replace(",", "")) < int(padded.replace(",", "")) < int(v1_padded.replace(",", ""))
    assert float(rows["all"][-1]) < 0.5
    bad = subprocess.run([sys.executable, "benchmarks/glue_padding.py", "--data_dir", str(glue), "--protocols", "laptop"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "error: --protocols: choose from" in bad.stderr


@pytest.mark.slow
def test_reference_run_smoke_pretrains_side_by_side_measures_and_feeds_the_card(tmp_path):
    """benchmarks/reference_run.py --smoke: two recipes pretrained at once, each measured by the suite against its
    floor (the smoke protocol's parallel fine-tunings), OUT/results.json and summary.md, and the card read from OUT."""
    from test_suite import synthetic_data_dir

    synthetic_data_dir(tmp_path / "data")
    out = tmp_path / "ref"
    # Started from another directory with relative paths: they mean what they mean there (the children once ran in the
    # repository root and looked for data/ and ref/ there).
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "reference_run.py"), "--recipes", "tuned-20m,quickstart",
         "--concurrent", "--smoke", "--data_dir", "data", "--output_dir", "ref", "--floor_cache", "floors",
         "--tasks", "sst2,stsb", "--skip", "mmlu"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["smoke"] and results["protocol"] == "smoke" and results["software"]["torch"]
    for name, other in (("tuned-20m", "quickstart"), ("quickstart", "tuned-20m")):
        record = results["recipes"][name]
        assert record["gpu_shared_with"] == [other]  # side by side: each result says what it shared the machine with
        assert record["pretraining"]["train_steps"] > 0 and record["pretraining"]["eval_perplexity"] > 1
        suite = record["suite"]
        assert suite["protocol"] == "smoke" and suite["glue_tasks"] == ["sst2", "stsb"] and suite["skipped"] == ["mmlu"]
        # two tasks at the smoke protocol's two rates, for the model and (unless the same shape's floor is cached) its floor
        assert suite["fine_tuning_jobs"]["finished"] == 2 * 2 * (1 if suite["floor_cached"] else 2)
        assert set(suite["tasks"]) == {"sst2", "stsb"} and suite["glue_average"]["pretrained"] is not None
        scripts = [Path(c.split()[1]) for c in record["commands"]]  # as typed in that directory
        assert [(tmp_path / script).resolve() for script in scripts] == [REPO_ROOT / "recipes" / "pretrain_mlm.py",
                                                                         REPO_ROOT / "eval" / "suite.py"]
        assert (out / name / "model" / "config.json").is_file() and (out / name / "pretrain.log").is_file()
    assert not results["recipes"]["tuned-20m"]["suite"]["floor_cached"]  # measured first
    summary = (out / "summary.md").read_text()
    assert "## quickstart" in summary and "| GLUE sst2 (accuracy) |" in summary and "(the machine shared with tuned-20m)" in summary

    card_dir = tmp_path / "card"
    result = subprocess.run([sys.executable, "model_cards/generate.py", "--run_dir", str(out), "--recipe", "quickstart",
                             "--output_dir", str(card_dir)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = (card_dir / "README.md").read_text()
    assert "GLUE sst2 (accuracy)" in card and "eval/suite.py --protocol smoke" in card
    assert "Measured by `benchmarks/reference_run.py`" in card and "shared during pretraining with tuned-20m" in card
    result = subprocess.run([sys.executable, "model_cards/generate.py", "--run_dir", str(out), "--output_dir", str(card_dir)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith("error:") and "--recipe" in result.stderr


@pytest.mark.slow
def test_the_h200_run_imports_as_a_reference_run_with_the_figures_of_its_readme(tmp_path):
    """benchmarks/import_gpu_run.py reads the first GPU run's raw outputs (model/ and glue_results.jsonl) into a
    reference-run folder: each side at its best rate of the sweep, the GLUE-5 average its README gives (63.40 against
    52.22), and benchmarks/results_table.py prints its row."""
    raw = REPO_ROOT.parent / "shared" / "gpu-runs" / "2026-12-04-h200-tuned-20m"
    if not (raw / "glue_results.jsonl").is_file():
        pytest.skip(f"{raw} is absent (the shared folder ships beside the repository only on project machines)")
    out = tmp_path / "imported"
    result = subprocess.run([sys.executable, "benchmarks/import_gpu_run.py", "--raw_dir", str(raw), "--output_dir", str(out),
                             "--software", "torch=2.11.0+cu130", "--date", "2026-12-04", "--commit", "8522b1f",
                             "--glue_data_dir", "../shared/data/glue"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "results.json").read_text())["recipes"]["tuned-20m"]
    assert record["pretraining"]["tokens_per_second"] == 667180 and record["suite"]["protocol"] == "gpu"
    average = record["suite"]["glue_average"]
    assert round(average["pretrained"], 2) == 63.40 and round(average["floor"], 2) == 52.22
    suite = json.loads((out / "tuned-20m" / "suite" / "results.json").read_text())
    sst2 = {side: suite[side]["glue"]["sst2"]["learning_rate_sweep"] for side in ("pretrained", "floor")}
    assert sst2["pretrained"]["chosen"] == 1e-4 and sst2["floor"]["chosen"] == 3e-4  # one process per rate, swept here
    assert round(100 * sst2["floor"]["scores"]["0.001"], 2) == 49.08  # collapsed to the majority class, as reported
    # Everything written says where the figures came from: imported, the run's commit, its data, one seed.
    assert json.loads((out / "results.json").read_text())["commit"] == "8522b1f" and suite["data_dir"] == "../shared/data/glue"
    summary = (out / "tuned-20m" / "suite" / "summary.md").read_text()
    assert "imported: eval/run_glue.py processes started by hand at commit 8522b1f" in summary
    assert "one seed (1): no median, no spread between seeds" in summary and "median of seeds" not in summary
    assert "Seeds' spread" not in summary
    card = subprocess.run([sys.executable, "model_cards/generate.py", "--run_dir", str(out), "--output_dir",
                           str(tmp_path / "card")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert card.returncode == 0, card.stderr[-2000:]
    text = (tmp_path / "card" / "README.md").read_text()
    assert "eval/suite.py --protocol gpu" not in text and "imported: eval/run_glue.py started by hand" in text
    assert "commit 8522b1f" in text and "median of seeds" not in text
    table = subprocess.run([sys.executable, "benchmarks/results_table.py", str(out)], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=120)
    assert "| `tuned-20m` | 1 x NVIDIA H200, 2026-12-04 | 5 min | 20.3M | 205.7M (667,180) | 27.03 (30%) | " \
           "81.65 -> 85.89 (**+4.24**) | 52.22 -> 63.40 (**+11.19**) | `gpu` |" in table.stdout


@pytest.mark.slow
def test_the_lever_ladder_times_each_lever_and_the_speed_summary_reads_it(tmp_path):
    """benchmarks/gpu_session.sh speed on a CPU at toy size: the ladder's table and JSON, then speed_summary.py's table
    with the targets' verdicts (the compile lever is left out here: tests/test_compile.py covers compiled training)."""
    vocab = SHARED_DATA / "tokenizers" / "bert-base-uncased" / "vocab.txt"
    if not vocab.exists():
        pytest.skip(f"{vocab} is absent (shared data folder)")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the whale number {i} swam past the ship at night." for i in range(300)))
    speed = tmp_path / "speed"
    speed.mkdir()
    result = subprocess.run(
        [sys.executable, "benchmarks/pretrain_throughput.py", "--ladder", "--shape", "bertmini", "--batch_size", "2",
         "--block_size", "32", "--steps", "1", "--rounds", "2", "--warmup", "1", "--workers", "1", "--corpus", str(corpus),
         "--tokenizer", str(vocab), "--ladder_paths", "stock,before,rmsnorm,workers", "--json_out", str(speed / "ladder-bertmini.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["stock"], ["before"], ["rmsnorm"], ["workers"])]
    assert [row[0] for row in rows] == ["stock", "before", "rmsnorm", "workers"]
    assert rows[0][3] == "1.00x" and rows[1][4] == "1.00x"  # each path against stock, and against the path before the levers
    ladder = json.loads((speed / "ladder-bertmini.json").read_text())
    assert [row["path"] for row in ladder["paths"]] == ["stock", "before", "rmsnorm", "workers"]
    assert all(row["tokens_per_second"] > 0 for row in ladder["paths"])
    for name, tokens_per_second in (("shipped", 3000), ("before", 1000)):
        (speed / f"recipe-{name}").mkdir()
        (speed / f"recipe-{name}" / "results.json").write_text(json.dumps({
            "train_steps": 10, "train_tokens": 30000, "train_seconds": 30000 / tokens_per_second,
            "tokens_per_second": tokens_per_second, "eval_perplexity": 500.0}))
    summary = subprocess.run([sys.executable, "benchmarks/speed_summary.py", str(speed)], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr[-2000:]
    ratio = ladder["paths"][-1]["tokens_per_second"] / ladder["paths"][0]["tokens_per_second"]
    assert f"- last lever (workers): {ratio:.2f}x the stock path against the target 3x: " in summary.stdout
    assert "- as trained, shipped against before: 3.00x tokens/s" in summary.stdout
    record = json.loads((speed / "results.json").read_text())
    assert record["recipe_speedup"] == 3.0 and (speed / "summary.md").read_text().startswith("# Speed levers, measured")


def test_the_ladder_before_path_runs_rmsnorm_as_it_ran_before_the_fix():
    """The `before` rung reproduces the unfused RMSNorm of the first H200 run: torch's dtype-mismatch warning under bf16."""
    import warnings

    import torch

    from small_encoders.benchmarks.pretrain_throughput import unfused_rmsnorm
    from small_encoders.modeling import SmallEncoderConfig, SmallEncoderForMaskedLM

    config = SmallEncoderConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=48, norm_type="rmsnorm", max_position_embeddings=32)
    ids = torch.randint(5, 60, (2, 16))
    for patch, warned in ((False, False), (True, True)):
        model = SmallEncoderForMaskedLM(config)
        model = unfused_rmsnorm(model) if patch else model
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(input_ids=ids, labels=ids)
        assert bool([w for w in caught if "Mismatch dtype" in str(w.message)]) is warned
