"""eval/suite.py: model and random-init floor under one protocol, the floor cached, the table and the card."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
from conftest import WORDS, tiny_config

from small_encoders.eval import suite


def synthetic_data_dir(root, rows=24, seed=0):
    """GLUE SST-2, STS-B and WNLI, two MMLU subjects and held-out text, small enough for seconds of fine-tuning."""
    rng = random.Random(seed)

    def sentence():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))

    def write(path, lines):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")

    for split in ("train", "dev"):
        write(root / "glue" / "SST-2" / f"{split}.tsv", ["sentence\tlabel"] + [f"{sentence()}\t{i % 2}" for i in range(rows)])
        write(root / "glue" / "WNLI" / f"{split}.tsv", ["index\tsentence1\tsentence2\tlabel"]
              + [f"{i}\t{sentence()}\t{sentence()}\t{i % 2}" for i in range(rows)])
        write(root / "glue" / "STS-B" / f"{split}.tsv", ["index\tsentence1\tsentence2\tscore"]
              + [f"{i}\t{sentence()}\t{sentence()}\t{rng.uniform(0, 5):.2f}" for i in range(rows)])
    for subject in ("astronomy", "virology"):
        write(root / "mmlu" / "val" / f"{subject}_val.csv",
              [",".join([sentence(), sentence(), sentence(), sentence(), sentence(), "ABCD"[i % 4]]) for i in range(3)])
    write(root / "wikitext-2" / "valid.txt", [sentence() for _ in range(200)])
    return root


@pytest.fixture
def data_dir(tmp_path):
    return synthetic_data_dir(tmp_path / "data")


def save_model(folder, tokenizer, **config):
    from small_encoders.modeling import SmallEncoderForMaskedLM

    torch.manual_seed(0)
    SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=128, **config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_suite_measures_model_and_floor_and_caches_the_floor(tmp_path, tiny_tokenizer, data_dir, monkeypatch):
    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    cache = tmp_path / "floors"
    calls = []
    measure = suite.measure
    monkeypatch.setattr(suite, "measure", lambda *a, **k: calls.append(k["random_init"]) or measure(*a, **k))

    first = suite.run_suite(model_dir, data_dir, tmp_path / "out1", "cpu", floor_cache=cache)
    assert calls == [False, True] and not first["floor_cached"]
    assert first["glue_tasks"] == ["sst2", "stsb", "wnli"]
    saved = json.loads((tmp_path / "out1" / "results.json").read_text())
    assert saved["table"] == first["table"]
    rows = {row["what"]: row for row in first["table"]}
    for row in first["table"]:
        assert row["difference"] == pytest.approx(row["pretrained"] - row["floor"])
    # The average leaves WNLI out; STS-B's score is the mean of Pearson and Spearman.
    stsb = first["pretrained"]["glue"]["stsb"]["summary"]
    sst2 = first["pretrained"]["glue"]["sst2"]["summary"]["accuracy"]["median"]
    expected = (100 * sst2 + 50 * (stsb["pearson"]["median"] + stsb["spearmanr"]["median"])) / 2
    assert rows["GLUE average (2 tasks)"]["pretrained"] == pytest.approx(expected)
    assert first["pretrained"]["glue"]["sst2"]["hyperparameters"]["seeds"] == "1,2,3"
    assert first["pretrained"]["glue"]["sst2"]["random_init"] is False and first["floor"]["glue"]["sst2"]["random_init"] is True
    assert first["pretrained"]["mmlu"]["total"] == 6 and first["pretrained"]["perplexity"]["mlm_probability"] == 0.15
    summary = (tmp_path / "out1" / "summary.md").read_text()
    assert "| measurement | random-init floor | pretrained | difference |" in summary and "GLUE sst2 (accuracy)" in summary
    # Model and floor each sweep the protocol's learning rates; the rate chosen trained the seeds reported.
    chosen = {}
    for side in ("pretrained", "floor"):
        for task, result in first[side]["glue"].items():
            sweep = result["learning_rate_sweep"]
            assert sweep["rates"] == suite.PROTOCOLS["cpu"]["learning_rate"] and sweep["seed"] == 1
            assert sweep["chosen"] == result["hyperparameters"]["learning_rate"]
            finite = [score for score in sweep["scores"].values() if math.isfinite(score)]  # a constant STS-B guess: NaN
            assert not finite or sweep["scores"][f"{sweep['chosen']:g}"] == max(finite)
            chosen[side, task] = f"{sweep['chosen']:g}"
    assert (f"Learning rate chosen per task on the first seed (pretrained / floor): "
            f"sst2 {chosen['pretrained', 'sst2']} / {chosen['floor', 'sst2']}, ") in summary
    # The seeds' spread beside it: how far apart the three seeds' task scores lie, the noise a difference must clear.
    spread = {side: [100 * seed["accuracy"] for seed in first[side]["glue"]["sst2"]["per_seed"].values()]
              for side in ("pretrained", "floor")}
    assert len(spread["floor"]) == 3
    assert (f"Seeds' spread of each task's score, max - min (pretrained / floor): sst2 "
            f"{max(spread['pretrained']) - min(spread['pretrained']):.2f} / {max(spread['floor']) - min(spread['floor']):.2f}, ") in summary

    calls.clear()
    second = suite.run_suite(model_dir, data_dir, tmp_path / "out2", "cpu", floor_cache=cache)
    assert calls == [False] and second["floor_cached"]
    for task in first["glue_tasks"]:  # the floor comes from the cache; the model's figures repeat to the digit
        assert second["floor"]["glue"][task]["per_seed"] == first["floor"]["glue"][task]["per_seed"]
        assert second["pretrained"]["glue"][task]["per_seed"] == first["pretrained"]["glue"][task]["per_seed"]
    assert second["table"] == first["table"]

    wider = save_model(tmp_path / "wider", tiny_tokenizer, hidden_size=64)
    calls.clear()
    third = suite.run_suite(wider, data_dir, tmp_path / "out3", "cpu", floor_cache=cache, tasks=["sst2"])
    assert calls == [False, True] and third["floor_key"] != first["floor_key"]


@pytest.mark.slow
def test_a_floor_cached_on_another_machine_says_so(tmp_path, tiny_tokenizer, data_dir, capsys):
    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    cache = tmp_path / "floors"
    here = suite.run_suite(model_dir, data_dir, tmp_path / "here", "cpu", floor_cache=cache, tasks=["sst2"])
    assert here["floor_hardware"] == here["hardware"] and here["hardware"].startswith("CPU (")
    assert f"measured now ({here['floor_key']}, measured on {here['hardware']})" in (tmp_path / "here" / "summary.md").read_text()
    again = suite.run_suite(model_dir, data_dir, tmp_path / "again", "cpu", floor_cache=cache, tasks=["sst2"])
    assert again["floor_cached"] and "warning" not in capsys.readouterr().out
    # The same floor file, as if measured on another kind of CPU (the same seeded runs round differently there).
    floor_file = cache / f"{here['floor_key']}.json"
    floor = json.loads(floor_file.read_text())
    floor_file.write_text(json.dumps(dict(floor, hardware="CPU (Elsewhere 9000, 2 cores, x86_64, AVX2), 1 process(es)")))
    other = suite.run_suite(model_dir, data_dir, tmp_path / "other", "cpu", floor_cache=cache, tasks=["sst2"])
    assert other["floor_cached"] and other["floor_hardware"].startswith("CPU (Elsewhere 9000")
    assert "warning: the cached floor was measured on CPU (Elsewhere 9000" in capsys.readouterr().out
    summary = (tmp_path / "other" / "summary.md").read_text()
    assert f"measured on CPU (Elsewhere 9000, 2 cores, x86_64, AVX2), 1 process(es); the model on {here['hardware']}" in summary


@pytest.mark.slow
def test_seeds_other_than_the_protocols_are_a_floor_of_their_own(tmp_path, tiny_tokenizer, data_dir, capsys):
    import statistics

    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    cache = tmp_path / "floors"
    four = suite.run_suite(model_dir, data_dir, tmp_path / "four", "cpu", floor_cache=cache, tasks=["sst2"], seeds="1,2,3, 4")
    assert not four["floor_cached"] and four["protocol_settings"]["seeds"] == "1,2,3,4"
    for side in ("pretrained", "floor"):
        result = four[side]["glue"]["sst2"]
        accuracies = [seed["accuracy"] for seed in result["per_seed"].values()]
        assert len(accuracies) == 4 and result["summary"]["accuracy"]["median"] == pytest.approx(statistics.median(accuracies))
    assert "median of seeds 1,2,3,4" in (tmp_path / "four" / "summary.md").read_text()
    # The protocol's own seeds, named or not, are one floor, apart from the four seeds' one.
    three = suite.run_suite(model_dir, data_dir, tmp_path / "three", "cpu", floor_cache=cache, tasks=["sst2"], seeds="1, 2, 3")
    assert not three["floor_cached"] and three["floor_key"] != four["floor_key"]
    default = suite.run_suite(model_dir, data_dir, tmp_path / "default", "cpu", floor_cache=cache, tasks=["sst2"])
    assert default["floor_cached"] and default["floor_key"] == three["floor_key"]
    # The four seeds' runs hold the protocol's three: read alone, they give the protocol's own figures to the digit.
    assert three["protocol_seeds_reading"] is None and default["protocol_seeds_reading"] is None
    reading = four["protocol_seeds_reading"]
    assert reading["seeds"] == "1,2,3"
    for side in ("floor", "pretrained"):
        expected = suite.task_score(three[side]["glue"]["sst2"]["summary"])
        assert reading["tasks"]["sst2"][side] == pytest.approx(expected)
        assert reading["glue_average"][side] == pytest.approx(three[side]["glue_average"])
    assert (f"The protocol's own seeds (1,2,3) alone, from the same runs (floor -> pretrained): sst2 "
            f"{reading['tasks']['sst2']['floor']:.2f} -> ") in (tmp_path / "four" / "summary.md").read_text()
    code = suite.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output_dir",
                       str(tmp_path / "bad"), "--floor_cache", str(cache), "--seeds", "1,1"])
    assert code == 1 and "--seeds repeats a seed" in capsys.readouterr().err


@pytest.mark.slow
def test_a_cached_floor_gets_its_perplexity_at_the_models_own_masking_rate(tmp_path, tiny_tokenizer, data_dir):
    import shutil

    at_15 = save_model(tmp_path / "at15", tiny_tokenizer)  # no recipe.yaml: 15%
    at_30 = tmp_path / "at30"
    shutil.copytree(at_15, at_30)
    (at_30 / "recipe.yaml").write_text("mlm_probability: 0.3\n")
    cache = tmp_path / "floors"
    first = suite.run_suite(at_15, data_dir, tmp_path / "a", "cpu", floor_cache=cache, tasks=["sst2"])
    cached = suite.run_suite(at_30, data_dir, tmp_path / "b", "cpu", floor_cache=cache, tasks=["sst2"])
    fresh = suite.run_suite(at_30, data_dir, tmp_path / "c", "cpu", floor_cache=tmp_path / "other", tasks=["sst2"])
    assert cached["floor_key"] == first["floor_key"] and cached["floor_cached"] and cached["floor_perplexity_measured_now"]
    assert not fresh["floor_cached"] and not first["floor_perplexity_measured_now"]

    def without_time(perplexity):
        return {k: v for k, v in perplexity.items() if k != "seconds"}

    # The floor's perplexity is the one a floor measured at 30% gets, not the cached one at 15%.
    assert without_time(cached["floor"]["perplexity"]) == without_time(fresh["floor"]["perplexity"])
    assert cached["floor"]["perplexity"]["mlm_probability"] == 0.3 != first["floor"]["perplexity"]["mlm_probability"]
    assert cached["floor"]["perplexity"]["perplexity"] != first["floor"]["perplexity"]["perplexity"]
    assert "perplexity measured now" in (tmp_path / "b" / "summary.md").read_text()
    # The cache keeps what it held; the GLUE figures come from it.
    assert json.loads(Path(cached["floor_cache_file"]).read_text())["perplexity"]["mlm_probability"] == 0.15
    assert cached["floor"]["glue"] == first["floor"]["glue"]


@pytest.mark.slow
def test_same_seeds_give_the_same_glue_figures_and_the_card_shows_the_table(tmp_path, tiny_tokenizer, data_dir):
    from small_encoders.model_cards.generate import build_card

    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    one = suite.run_suite(model_dir, data_dir, tmp_path / "a", "cpu", floor_cache=tmp_path / "floors", tasks=["sst2"])
    two = suite.run_suite(model_dir, data_dir, tmp_path / "b", "cpu", floor_cache=tmp_path / "other", tasks=["sst2"])
    assert one["pretrained"]["glue"]["sst2"]["per_seed"] == two["pretrained"]["glue"]["sst2"]["per_seed"]
    assert one["floor"]["glue"]["sst2"]["per_seed"] == two["floor"]["glue"]["sst2"]["per_seed"]
    card, front = build_card(model_dir, [tmp_path / "a" / "results.json"])
    row = next(r for r in one["table"] if r["what"].startswith("GLUE sst2"))
    assert f"{row['pretrained']:.2f} (random-init floor {row['floor']:.2f}, difference {row['difference']:+.2f})" in card
    assert f"eval/suite.py --protocol cpu (suite v{suite.SUITE_VERSION})" in card
    glue = [r for r in front["model-index"][0]["results"] if r["task"]["type"] == "text-classification"]
    assert glue[0]["dataset"]["config"] == "sst2"


@pytest.mark.slow
def test_suite_evaluates_a_stock_roberta_folder(tmp_path, tiny_tokenizer, data_dir):
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=tiny_tokenizer.pad_token_id, type_vocab_size=2)
    RobertaForMaskedLM(config).save_pretrained(tmp_path / "roberta")
    tiny_tokenizer.save_pretrained(tmp_path / "roberta")
    result = suite.run_suite(tmp_path / "roberta", data_dir, tmp_path / "out", "cpu", floor_cache=tmp_path / "floors", tasks=["sst2"])
    assert result["model_type"] == "roberta" and result["pretrained"]["perplexity"]["blocks"] > 0


@pytest.mark.parametrize("args, message", [
    (["--protocol", "fast"], "--protocol must be one of cpu, full, cpu-v1, cpu-v2"),
    (["--tasks", "sst2,nosuch"], "unknown GLUE task(s) ['nosuch']"),
    (["--tasks", "rte"], "--tasks rte: no train and dev files"),
])
def test_bad_suite_arguments_are_one_line(tmp_path, tiny_tokenizer, data_dir, capsys, args, message):
    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    code = suite.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output_dir", str(tmp_path / "out"),
                       "--floor_cache", str(tmp_path / "floors"), *args])
    assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


def test_missing_model_folder_is_one_line(tmp_path, data_dir, capsys):
    code = suite.main(["--model_name_or_path", str(tmp_path / "nothing"), "--data_dir", str(data_dir), "--output_dir", str(tmp_path / "o")])
    assert code == 1 and f"--model_name_or_path {tmp_path / 'nothing'}: no such file or folder" in capsys.readouterr().err
    (tmp_path / "not-a-model").mkdir()  # a folder that is there but holds no model
    code = suite.main(["--model_name_or_path", str(tmp_path / "not-a-model"), "--data_dir", str(data_dir), "--output_dir",
                       str(tmp_path / "o")])
    assert code == 1 and "not a saved model folder (no config.json in it)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["small_encoder", "electra"])
def test_suite_and_card_on_a_replaced_token_detection_discriminator(family, tmp_path, tiny_tokenizer, data_dir):
    """An RTD run's folder: GLUE and STS-B against the floor; perplexity and MMLU say why they are not measured."""
    import yaml
    from transformers import RobertaConfig

    from small_encoders.model_cards.generate import build_card
    from small_encoders.modeling.rtd import build_rtd_model

    torch.manual_seed(0)
    if family == "small_encoder":
        config = tiny_config(vocab_size=len(tiny_tokenizer), max_position_embeddings=128)
    else:
        config = RobertaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=130, pad_token_id=tiny_tokenizer.pad_token_id)
    folder = tmp_path / "rtd"
    build_rtd_model(config, fraction=0.5, special_token_ids=tiny_tokenizer.all_special_ids).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"recipe": "x", "objective": "rtd", "mlm_probability": 0.15}))
    result = suite.run_suite(folder, data_dir, tmp_path / "out", "cpu", floor_cache=tmp_path / "floors", tasks=["sst2"])
    assert result["pretrained"]["perplexity"] == {"not_applicable": suite.NOT_A_MASKED_LM}
    assert "not_applicable" in result["pretrained"]["mmlu"] and "not_applicable" in result["floor"]["mmlu"]
    assert 0 <= result["pretrained"]["glue"]["sst2"]["summary"]["accuracy"]["median"] <= 1
    assert result["pretrained"]["stsb_zero_shot"]["pairs"] > 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert f"| held-out MLM perplexity | - | - | {suite.NOT_A_MASKED_LM} |" in summary
    card, front = build_card(folder, [tmp_path / "out" / "results.json"])
    assert front["pipeline_tag"] == "feature-extraction" and "replaced-token-detection" in front["tags"]
    assert "AutoModelForSequenceClassification" in card and 'pipeline("fill-mask"' not in card
    # A masked LM of the same shape does not take this floor from the cache: it has no perplexity to compare with.
    masked_lm = save_model(tmp_path / "mlm", tiny_tokenizer) if family == "small_encoder" else None
    if masked_lm is not None:
        again = suite.run_suite(masked_lm, data_dir, tmp_path / "out2", "cpu", floor_cache=tmp_path / "floors", tasks=["sst2"])
        assert again["floor_key"] == result["floor_key"] and not again["floor_cached"]
        assert again["floor"]["perplexity"]["perplexity"] > 1


@pytest.mark.slow
def test_parallel_suite_gives_the_figures_of_the_sequential_one(tmp_path, tiny_tokenizer, data_dir):
    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    one = suite.run_suite(model_dir, data_dir, tmp_path / "a", "cpu", floor_cache=tmp_path / "f1", tasks=["sst2"])
    two = suite.run_suite(model_dir, data_dir, tmp_path / "b", "cpu", floor_cache=tmp_path / "f2", tasks=["sst2"], parallel=True)
    for side in ("pretrained", "floor"):
        assert one[side]["glue"]["sst2"]["per_seed"] == two[side]["glue"]["sst2"]["per_seed"]
        assert one[side]["perplexity"]["perplexity"] == pytest.approx(two[side]["perplexity"]["perplexity"], rel=1e-5)
    assert [r["difference"] for r in one["table"]] == pytest.approx([r["difference"] for r in two["table"]], rel=1e-5)
    assert {"mmlu", "stsb_zero_shot"} <= set(two["pretrained"]) & set(two["floor"])
    # --skip holds on the side-by-side path too (it measured the skipped parts, and the summary said skipped)
    cut = suite.run_suite(model_dir, data_dir, tmp_path / "c", "cpu", floor_cache=tmp_path / "f3", tasks=["sst2"],
                          parallel=True, skip=["mmlu", "stsb_zero_shot"])
    for side in ("pretrained", "floor"):
        assert "sst2" in cut[side]["glue"] and not {"mmlu", "stsb_zero_shot"} & set(cut[side])
    assert not any("MMLU" in row["what"] or "STS-B" in row["what"] for row in cut["table"])


@pytest.mark.slow
def test_an_interrupted_suite_run_again_keeps_the_seeds_it_finished(tmp_path, tiny_tokenizer, data_dir, monkeypatch):
    import os

    import transformers

    from small_encoders.eval.suite import PROTOCOLS, run_glue_tasks

    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    settings, scratch = PROTOCOLS["cpu"], tmp_path / "out" / "scratch" / "model"
    first = run_glue_tasks(model_dir, tiny_tokenizer, ["sst2"], settings, data_dir, scratch, random_init=False)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(transformers.Trainer, "train", no_training)
    again = run_glue_tasks(model_dir, tiny_tokenizer, ["sst2"], settings, data_dir, scratch, random_init=False)
    assert again["sst2"]["per_seed"] == first["sst2"]["per_seed"]
    assert again["sst2"]["summary"] == first["sst2"]["summary"]

    # Other weights in the same folder (a newer file), or the floor instead of the model: the seeds are trained again.
    weights = next(model_dir.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="trained again"):
        run_glue_tasks(model_dir, tiny_tokenizer, ["sst2"], settings, data_dir, scratch, random_init=False)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns - 10**9))
    with pytest.raises(AssertionError, match="trained again"):
        run_glue_tasks(model_dir, tiny_tokenizer, ["sst2"], settings, data_dir, scratch, random_init=True)


@pytest.mark.slow
def test_parallel_fine_tuning_jobs_give_the_sequential_figures_and_keep_each_as_it_ends(tmp_path, tiny_tokenizer, data_dir):
    """The gpu protocol's way (eval/glue_jobs.py: every (side, task, rate, seed) a job of a worker pool) measures what
    the one-after-the-other way measures, records each fine-tuning as it ends, and caches the floor."""
    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    settings = dict(suite.PROTOCOLS["smoke"], seeds="1,2")
    monkey_protocols = dict(suite.PROTOCOLS, smoke2=settings)
    import unittest.mock

    with unittest.mock.patch.dict(suite.PROTOCOLS, monkey_protocols):
        jobs = suite.run_suite(model_dir, data_dir, tmp_path / "jobs", "smoke2", floor_cache=tmp_path / "f1", jobs=1)
        sequential = suite.run_suite(model_dir, data_dir, tmp_path / "seq", "smoke2", floor_cache=tmp_path / "f2")
    assert sequential["fine_tuning_jobs"] is None and jobs["fine_tuning_jobs"]["finished"] == 2 * 3 * 3  # 2 rates + 1 seed
    for side in ("pretrained", "floor"):
        for task in ("sst2", "stsb", "wnli"):
            ours, theirs = jobs[side]["glue"][task], sequential[side]["glue"][task]
            assert ours["learning_rate_sweep"] == theirs["learning_rate_sweep"]
            assert ours["per_seed"] == theirs["per_seed"] and ours["hyperparameters"] == theirs["hyperparameters"]
    assert jobs["table"] == sequential["table"]
    lines = [json.loads(line) for line in (tmp_path / "jobs" / "fine_tunings.jsonl").read_text().splitlines()]
    assert len(lines) == 18 and {(j["side"], j["task"], j["rate"], j["seed"]) for j in lines} >= {("floor", "sst2", 1e-3, 1)}
    assert all(line["seed"] == 1 for line in lines[:12])  # the sweep first; seed 2 at each task's chosen rate after it
    assert "Fine-tunings: 18 of 18 finished as parallel jobs, 1 at a time" in (tmp_path / "jobs" / "summary.md").read_text()


def test_a_suite_stopped_at_its_deadline_reports_what_finished_and_caches_no_floor(tmp_path, tiny_tokenizer, data_dir):
    import time

    model_dir = save_model(tmp_path / "model", tiny_tokenizer)
    cut = suite.run_suite(model_dir, data_dir, tmp_path / "cut", "smoke", floor_cache=tmp_path / "floors",
                          deadline=time.time(), skip=["mmlu"])
    assert cut["not_measured"] == ["sst2", "stsb", "wnli"] and cut["fine_tuning_jobs"]["unfinished"]
    assert not list((tmp_path / "floors").glob("*.json"))  # a floor cut short is not cached
    rows = [row["what"] for row in cut["table"]]
    assert not any(what.startswith("GLUE") for what in rows) and not any("MMLU" in what for what in rows)
    assert any("perplexity" in what for what in rows)  # the zero-shot parts do not wait for the fine-tunings
    summary = (tmp_path / "cut" / "summary.md").read_text()
    assert "Not measured (cut short): sst2, stsb, wnli" in summary and "Skipped (--skip): mmlu." in summary
    assert suite.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output_dir",
                       str(tmp_path / "bad"), "--skip", "glue"]) == 1


def test_the_job_pool_fails_a_dead_workers_job_and_still_trains_every_other_seed(tmp_path):
    """A worker killed mid-job (SIGKILL, as the out-of-memory killer does) fails that job with the reason and is
    replaced; a sweep whose last rate failed still starts its other seeds at the best rate that finished. (With
    multiprocessing.Pool the killed worker's job never came back and the pool waited forever; the failed last rate
    left the other seeds unstarted.)"""
    import time

    from fake_jobs import fake_fine_tuning

    from small_encoders.eval.glue_jobs import fine_tune_all

    settings = {"learning_rate": [1e-5, 2e-5, 3e-5], "seeds": "1,2,3", "num_train_epochs": 1}
    # The deadline is the pool's own bound: a pool that waited for the killed job would reach it and leave jobs
    # unfinished (asserted below), on a machine of any speed. Far above what the fake jobs need (seconds).
    results, status = fine_tune_all(tmp_path / "model", tmp_path / "glue", settings, ["rte", "mrpc"], ("pretrained",),
                                    tmp_path / "scratch", workers=2, deadline=time.time() + 600, runner=fake_fine_tuning)
    failed = {(job["task"], job["rate"]): job["error"] for job in status["failed"]}
    assert "killed by SIGKILL" in failed["rte", 2e-5] and "out-of-memory killer" in failed["rte", 2e-5]
    assert failed["mrpc", 3e-5].startswith("ValueError: CUDA out of memory")
    assert not status["unfinished"] and status["finished"] == 2 * 2 + 2 * 2  # 2 rates of each sweep, 2 more seeds each
    assert results["pretrained"]["rte"]["hyperparameters"]["learning_rate"] == 3e-5
    assert results["pretrained"]["mrpc"]["hyperparameters"]["learning_rate"] == 2e-5
    assert sorted(results["pretrained"]["mrpc"]["per_seed"]) == [1, 2, 3]


def test_the_job_pool_is_capped_by_gpu_memory():
    from small_encoders.eval.glue_jobs import GPU_GIB_PER_JOB, default_workers

    gib = 2**30
    assert default_workers(gpu_free_bytes=139 * gib, cores=192) == int(139 / GPU_GIB_PER_JOB)  # not one per core
    assert default_workers(gpu_free_bytes=139 * gib, cores=16) == 16
    assert default_workers(gpu_free_bytes=1 * gib, cores=64) == 1  # at least one
