"""Every entry point against bad input: one `error:` line naming what to fix, exit code 1 or 2, no traceback, and no
output folder left behind. Each runs in this process through its main(argv) (no training: every case fails in its
checks), so the table stays fast."""

import importlib
import json
import shutil

import pytest

ENTRY_POINTS = {
    "pretrain": "small_encoders.recipes.pretrain_mlm", "run_glue": "small_encoders.eval.run_glue", "suite": "small_encoders.eval.suite", "perplexity": "small_encoders.eval.perplexity",
    "mmlu": "small_encoders.eval.mmlu_probe", "embeddings": "small_encoders.eval.embeddings", "card": "small_encoders.model_cards.generate", "publish": "small_encoders.model_cards.publish",
    "demo": "small_encoders.demo.app", "glue_padding": "small_encoders.benchmarks.glue_padding", "throughput": "small_encoders.benchmarks.pretrain_throughput",
    "reference_run": "small_encoders.benchmarks.reference_run", "import_gpu_run": "small_encoders.benchmarks.import_gpu_run",
    "results_table": "small_encoders.benchmarks.results_table", "export": "small_encoders.deploy.export", "bench": "small_encoders.deploy.bench",
    "train_embeddings": "small_encoders.recipes.train_embeddings",
}

# (entry point, arguments with {placeholders}, what the error line must say)
CASES = [
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--train_files", "{missing}", "--output_dir", "{out}"], "matches no file"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--output_dir", "{file}"], "is a file"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--output_dir", "{file}/sub"], "is a file"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--model_config", "{hidden_size: 100, num_attention_heads: 3}",
                  "--output_dir", "{out}"], "--model_config"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--model_config", "[1, 2]", "--output_dir", "{out}"], "must be a mapping"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--block_size", "1024", "--model_config",
                  "{position_embedding_type: absolute}", "--output_dir", "{out}"], "learned positions"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--learning_rate", "abc", "--output_dir", "{out}"], "--learning_rate"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--model_config", "{position_embedding_type:absolute}", "--output_dir",
                  "{out}"], "unknown model_config field"),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--no_such_setting", "1", "--output_dir", "{out}"], "unknown setting"),
    ("pretrain", ["--recipe", "bertmini", "--smoke", "--tokenizer_name", "./no/such/tokenizer", "--output_dir", "{out}"],
     "no such file or folder"),
    ("pretrain", ["--recipe", "nosuch"], "unknown recipe"),
    ("run_glue", ["--model_name_or_path", "runs/nosuch", "--task_name", "sst2", "--output_dir", "{out}"], "no such file"),
    ("run_glue", ["--model_name_or_path", "someorg/nosuch", "--task_name", "sst2", "--output_dir", "{out}"],
     "not in the local Hub cache"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst2", "--data_dir", "{binary_glue}", "--output_dir", "{out}"],
     "not UTF-8"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst2", "--data_dir", "{wrong_glue}", "--output_dir", "{out}"],
     "missing column"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst2", "--data_dir", "{empty_dir}", "--output_dir", "{out}"],
     "not found"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst9", "--output_dir", "{out}"], "unknown GLUE task"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst2", "--num_train_epochs", "-1", "--output_dir", "{out}"],
     "--num_train_epochs"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst2", "--seeds", "x", "--output_dir", "{out}"], "--seeds"),
    ("run_glue", ["--model_name_or_path", "{model}", "--task_name", "sst2", "--data_dir", "{good_glue}", "--output_dir", "{file}"],
     "is a file"),
    ("suite", ["--model_name_or_path", "./missing-model", "--data_dir", "{data}", "--output_dir", "{out}"], "no such file"),
    ("suite", ["--model_name_or_path", "{model}", "--data_dir", "{file}", "--output_dir", "{out}"], "not a folder"),
    ("suite", ["--model_name_or_path", "{model}", "--data_dir", "{data}", "--output_dir", "{out}", "--protocol", "fast"], "--protocol"),
    ("suite", ["--model_name_or_path", "{model}", "--data_dir", "{data}", "--output_dir", "{out}", "--skip", "glue"], "--skip"),
    ("suite", ["--model_name_or_path", "{model}", "--data_dir", "{data}", "--output_dir", "{out}", "--jobs", "0"], "--jobs"),
    ("suite", ["--model_name_or_path", "{model}", "--data_dir", "{data}", "--output_dir", "{out}", "--tasks", "sst9"], "unknown GLUE"),
    ("perplexity", ["--model_name_or_path", "{model}", "--files", "{binary}"], "--encoding_errors replace"),
    ("perplexity", ["--model_name_or_path", "{model}", "--files", "{empty}"], "empty"),
    ("perplexity", ["--model_name_or_path", "{model}", "--files", "{missing}"], "matches no file"),
    ("perplexity", ["--model_name_or_path", "../missing-model", "--files", "{text}"], "no such file"),
    ("perplexity", ["--model_name_or_path", "{model}", "--files", "{text}", "--block_size", "0"], "--block_size"),
    ("mmlu", ["--model_name_or_path", "{model}", "--data_dir", "{missing}"], "{missing}"),
    ("mmlu", ["--model_name_or_path", "{model}", "--data_dir", "{wrong_mmlu}"], "MMLU rows are question,A,B,C,D,answer"),
    ("mmlu", ["--model_name_or_path", "{model}", "--data_dir", "{data}/mmlu", "--k_shot", "-1"], "--k_shot"),
    ("embeddings", ["--model_name_or_path", "/no/such/model"], "no such file"),
    ("embeddings", ["--model_name_or_path", "{model}", "--data_dir", "{binary_glue}"], "not UTF-8"),
    ("card", ["--model_dir", "{missing}"], "config.json"),
    ("card", ["--model_dir", "{model}", "--results", "{binary}", "--output_dir", "{out}"], "cannot read"),
    ("card", ["--model_dir", "{missing}", "--output_dir", "{out}"], "config.json"),
    ("card", ["--model_dir", "{model}", "--results", "{wrong_json}", "--output_dir", "{out}"], "not a results file"),
    ("card", ["--run_dir", "{file}", "--output_dir", "{out}"], "cannot read"),
    ("publish", ["--model_dir", "{missing}", "--repo_id", "me/model", "--dry_run", "{out}"], "{missing}"),
    ("demo", ["--model_name_or_path", "./no-such-model"], "no such file"),
    ("demo", ["--model_name_or_path", "{model}", "--port", "0"], "--port"),
    ("demo", ["--onnx", "{missing}"], "no such folder"),
    ("demo", ["--model_name_or_path", "{model}", "--onnx", "{missing}"], "no such folder"),
    ("demo", ["--onnx", "{model}"], "not an export folder"),
    ("glue_padding", ["--data_dir", "{missing}"], "not a folder"),
    ("glue_padding", ["--data_dir", "{good_glue}", "--protocols", "fast"], "--protocols"),
    ("throughput", ["--corpus", "{missing}"], "--corpus"),
    ("throughput", ["--corpus", "{binary}"], "not UTF-8"),
    ("throughput", ["--batch_size", "0"], "--batch_size"),
    ("throughput", ["--num_proc", "two"], "--num_proc"),
    ("reference_run", ["--recipe", "nosuch", "--data_dir", "{data}", "--output_dir", "{out}"], "unknown recipe"),
    ("reference_run", ["--recipe", "quickstart", "--data_dir", "{missing}", "--output_dir", "{out}"], "glue/"),
    ("reference_run", ["--recipe", "quickstart", "--data_dir", "{data}", "--output_dir", "{file}"], "is a file"),
    ("reference_run", ["--recipe", "quickstart", "--data_dir", "{data}", "--output_dir", "{out}", "--wall_minutes", "-3"],
     "--wall_minutes"),
    ("reference_run", ["--recipe", "quickstart", "--data_dir", "{data}", "--output_dir", "{out}", "--wall_minutes", "2"],
     "--wall_minutes"),
    ("reference_run", ["--recipe", "quickstart", "--data_dir", "{data}", "--output_dir", "{out}", "--stray"], "--key value"),
    ("import_gpu_run", ["--raw_dir", "{missing}", "--output_dir", "{out}", "--date", "2026-12-04", "--commit", "8522b1f",
                        "--glue_data_dir", "{missing}"], "model/results.json"),
    ("export", ["--model_dir", "{missing}", "--output_dir", "{out}"], "no such folder"),
    ("export", ["--model_dir", "{model}", "--output_dir", "{out}", "--task", "translation"], "--task"),
    ("export", ["--model_dir", "{model}", "--output_dir", "{file}"], "is a file"),
    ("export", ["--model_dir", "{model}", "--output_dir", "{data}"], "not an export"),
    ("bench", ["--model_dir", "{model}", "--data_dir", "{binary_glue}", "--task_name", "sst2"], "not UTF-8"),
    ("bench", ["--model_dir", "{model}", "--data_dir", "{good_glue}", "--task_name", "stsb"], "classification task"),
    ("bench", ["--model_dir", "{model}", "--onnx", "{model}", "--data_dir", "{good_glue}"], "no model.onnx"),
    ("bench", ["--model_dir", "{model}", "--int8", "{missing}", "--data_dir", "{good_glue}"], "no such file"),
    ("results_table", ["{missing}"], "cannot read"),
    ("results_table", ["{data}"], "cannot read"),
    # an embedding run's data and model: each refused before the output folder is made
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "null",
                          "--train_files", "{pairs_wrong}", "--output_dir", "{out}"], "needs the columns anchor,positive"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "null",
                          "--train_files", "{pairs_one}", "--output_dir", "{out}"], "has one column"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "null",
                          "--train_files", "{empty_csv}", "--output_dir", "{out}"], "is empty"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "null",
                          "--train_files", "{scored_bad}", "--output_dir", "{out}"], "outside 0 to 1"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "null",
                          "--train_files", "{text}", "--output_dir", "{out}"], "is plain text"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{no_tokenizer}", "--output_dir", "{out}"],
     "tokenizer"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "null",
                          "--output_dir", "{out}"], "no training data"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--glue_pairs", "qqp",
                          "--output_dir", "{out}"], "--glue_pairs"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--matryoshka_dims", "[0]",
                          "--output_dir", "{out}"], "--matryoshka_dims"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_pairs", "title",
                          "--raw_text_sample_by", "line", "--raw_text_files", "{text}", "--output_dir", "{out}"],
     "--raw_pairs title"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--raw_text_files", "{text}",
                          "--output_dir", "{out}"], "distinct"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--ingredients", "null",
                          "--raw_pairs", "same", "--output_dir", "{out}"], "--raw_pairs same"),  # and no dropout
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--dropout", "1.5",
                          "--output_dir", "{out}"], "--dropout"),
    # a soup: the second ingredient's bad file is refused before the first trains or any folder is made
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--ingredients",
                          "{a: {}, b: {raw_text_files: null, train_files: '{pairs_one}'}}", "--output_dir", "{out}"],
     "has one column"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--ingredients",
                          "{a: {}, b: {share: 0}}", "--output_dir", "{out}"], "share must be a positive number"),
    ("train_embeddings", ["--recipe", "nosuch", "--model_name_or_path", "{model}"], "unknown recipe"),
    ("train_embeddings", ["--recipe", "embed", "--smoke", "--model_name_or_path", "{model}", "--learning_rat", "1",
                          "--output_dir", "{out}"], "did you mean --learning_rate"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    from conftest import save_tiny_model

    root = tmp_path_factory.mktemp("bad-input")
    save_tiny_model(root)
    (root / "file").write_text("a file, not a folder\n")
    (root / "empty.txt").write_text("")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 8)  # a .txt name, bytes that are no text
    (root / "text.txt").write_text("the ship saw the sea at night\n" * 20)
    (root / "wrong.json").write_text(json.dumps({"what": "not a result"}))
    for name, content in (("binary_glue", bytes(range(256)) * 4), ("wrong_glue", b"a,b,c\n1,2,3\n"),
                          ("good_glue", b"sentence\tlabel\nthe ship\t1\nthe sea\t0\n")):
        for folder in ("SST-2", "STS-B"):
            (root / name / folder).mkdir(parents=True)
            for split in ("train", "dev"):
                (root / name / folder / f"{split}.tsv").write_bytes(content)
    (root / "empty_dir").mkdir()
    (root / "pairs_wrong.csv").write_text("question,answer\nthe ship,the sea\n")
    (root / "pairs_one.csv").write_text("text\nthe ship\n")
    (root / "empty.csv").write_text("")
    (root / "scored_bad.csv").write_text("sentence1,sentence2,score\nthe ship,the sea,0.5\nthe sea,the night,7\n")
    shutil.copytree(root / "model", root / "no_tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (root / "no_tokenizer" / name).unlink()
    (root / "wrong_mmlu" / "val").mkdir(parents=True)
    (root / "wrong_mmlu" / "val" / "astronomy_val.csv").write_text("only,three,fields\n")
    (root / "data" / "glue").mkdir(parents=True)
    (root / "data" / "mmlu").mkdir()
    values = {name: str(root / name) for name in ("model", "file", "binary_glue", "wrong_glue", "good_glue", "empty_dir",
                                                  "wrong_mmlu", "data", "no_tokenizer")}
    values.update({name: str(root / f"{name}.csv") for name in ("pairs_wrong", "pairs_one", "scored_bad")},
                  empty_csv=str(root / "empty.csv"))
    values.update(missing=str(root / "missing.txt"), empty=str(root / "empty.txt"), binary=str(root / "binary.txt"),
                  text=str(root / "text.txt"), wrong_json=str(root / "wrong.json"))
    return root, values


@pytest.mark.parametrize("entry, arguments, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_ends_in_one_error_line(entry, arguments, message, places, tmp_path, capsys, monkeypatch):
    root, values = places
    values = dict(values, out=str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)  # relative paths (./no-such-model, runs/nosuch) resolve in a folder holding runs/ only
    (tmp_path / "runs").mkdir()
    main = importlib.import_module(ENTRY_POINTS[entry]).main

    def fill(text):  # {name} placeholders only: YAML mappings in the arguments keep their braces
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text

    try:
        code = main([fill(argument) for argument in arguments])
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip() and not line.lstrip().startswith(("warnings.warn",))]
    errors = [line for line in lines if line.startswith("error:")]
    assert code in (1, 2), (code, captured.err[-2000:])
    assert len(errors) == 1 and fill(message) in errors[0], captured.err[-2000:]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists(), "an output folder was left behind"


def test_every_shipped_recipe_makes_a_model_before_any_data_is_read():
    """The early check (recipes/pretrain_mlm.py: model_settings_config) accepts every recipe and its smoke block."""
    from small_encoders.recipes.pretrain_mlm import model_settings_config
    from small_encoders.recipes.recipe import available_recipes, load_recipe

    for name in available_recipes():
        for smoke in (False, True):
            if load_recipe(name, smoke=smoke)["init_from"]:  # its model is the one it continues (tests/test_continued.py)
                continue
            config = model_settings_config(load_recipe(name, smoke=smoke))
            assert config.max_position_embeddings >= load_recipe(name, smoke=smoke)["block_size"], name
