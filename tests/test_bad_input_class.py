"""Bad input as a class, not a list: every numeric flag of every entry point against a negative and an absurd value,
every numeric recipe setting likewise, every kind of model file damaged three ways against every program that reads
it, every folder argument empty, every checkpoint file damaged, and commands with nothing to do. Each must end in one
`error:` line, a non-zero exit, no traceback and no output folder, without trying the network (in this process:
nothing trains)."""

import importlib
import json
import shutil

import pytest
import torch
from conftest import save_tiny_model
from test_bad_input import ENTRY_POINTS

from small_encoders.core.errors import ArgumentParser, UserError

NEGATIVE, ABSURD = "-7", str(10**13)
# Each refusal takes well under a second here (2-core CPU, every core busy: under 3 s for the slowest reader). The guard
# is for a hang (a Hub retry loop, a wait), not a speed check: far above what a machine three times slower needs.
HANG_SECONDS = 120


class Captured(Exception):
    pass


def parser_of(entry, monkeypatch):
    """The ArgumentParser an entry point builds (caught as it parses, before it does anything)."""
    box = {}

    def capture(self, *args, **kwargs):
        box["parser"] = self
        raise Captured

    monkeypatch.setattr(ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(ArgumentParser, "parse_known_args", capture)
    with pytest.raises(Captured):
        importlib.import_module(ENTRY_POINTS[entry]).main([])
    monkeypatch.undo()
    return box["parser"]


ARGPARSE_ENTRIES = [entry for entry in ENTRY_POINTS if entry not in ("pretrain", "demo", "train_embeddings")]


def one_error_line(capsys, code, expected=None):
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code in (1, 2), (code, captured.err[-1500:], captured.out[-800:])
    assert len(errors) == 1, captured.err[-1500:]
    assert "Traceback" not in captured.err + captured.out
    if expected:
        assert expected in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("entry", ARGPARSE_ENTRIES)
def test_every_numeric_flag_refuses_a_negative_and_an_absurd_value(entry, monkeypatch, capsys, no_network, hang_guard):
    parser = parser_of(entry, monkeypatch)
    required = []
    for action in parser._actions:
        if action.required and action.option_strings:
            required += [action.option_strings[0], "x"]
        elif not action.option_strings and action.dest != "help":
            required += ["x"]
    numeric = [a for a in parser._actions if a.type is not None and getattr(a.type, "__name__", "") in ("int", "float")]
    assert entry != "run_glue" or len(numeric) == 10  # the capture sees the flags
    for action in numeric:
        flag = action.option_strings[0]
        for value in (NEGATIVE, ABSURD):
            with hang_guard(HANG_SECONDS, f"{entry} {flag} {value}"), pytest.raises(SystemExit) as stop:
                parser.parse_known_args(required + [flag, value])
            one_error_line(capsys, stop.value.code, flag)
    assert not no_network, no_network  # refused by the parser alone: nothing looked up, nothing loaded


def test_the_network_guard_records_and_refuses_another_machine_but_not_this_one(no_network):
    import socket

    with pytest.raises(OSError):
        socket.getaddrinfo("huggingface.co", 443)
    assert no_network == [("lookup", "huggingface.co")]
    assert socket.getaddrinfo("127.0.0.1", 80) and no_network == [("lookup", "huggingface.co")]


def test_no_numeric_flag_escapes_a_range():
    """small_encoders.core.errors.ArgumentParser refuses a bare type=int or type=float when the parser is built."""
    with pytest.raises(TypeError, match="give a numeric argument its range"):
        ArgumentParser().add_argument("--steps", type=int)


def numeric_recipe_settings():
    from small_encoders.recipes.recipe import DEFAULTS, LIMITS

    found = {key for key, value in DEFAULTS.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return sorted(found | set(LIMITS))


@pytest.mark.parametrize("key", numeric_recipe_settings())
def test_every_numeric_recipe_setting_refuses_a_negative_and_an_absurd_value(key):
    from small_encoders.recipes.recipe import load_recipe

    for value in (-7, 10**13):
        with pytest.raises(UserError, match=f"--{key}"):
            load_recipe("quickstart", {key: value})


def numeric_embedding_settings():
    from small_encoders.recipes.embedding_recipe import DEFAULTS, EmbeddingRecipe

    limited = {name for name, field in EmbeddingRecipe.fields().items() if field.metadata["limits"] or field.metadata["kind"]}
    found = {key for key, value in DEFAULTS.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return sorted(found | limited)


@pytest.mark.parametrize("key", numeric_embedding_settings())
def test_every_numeric_embedding_setting_refuses_a_negative_and_an_absurd_value(key):
    from small_encoders.recipes.embedding_recipe import load_embedding_recipe

    for value in (-7, 10**13):
        with pytest.raises(UserError, match=f"--{key}"):
            load_embedding_recipe("embed", {key: value, "model_name_or_path": "m"})


def test_an_absurd_model_is_refused_before_anything_is_allocated(monkeypatch):
    from small_encoders.modeling import build
    from small_encoders.recipes.pretrain_mlm import model_settings_config
    from small_encoders.recipes.recipe import load_recipe

    built, build_model = [], build.build_mlm_model

    def recording(config):
        model = build_model(config)
        built.append({parameter.device.type for parameter in model.parameters()})
        return model

    monkeypatch.setattr(build, "build_mlm_model", recording)
    recipe = load_recipe("tuned-20m", {"model_config": {"hidden_size": 10**6, "num_attention_heads": 1}})
    with pytest.raises(UserError, match="more than this repository trains"):
        model_settings_config(recipe)
    assert built == [{"meta"}]  # counted once, on the meta device: no memory was allocated for its weights


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny saved model, GLUE and MMLU folders, text: each damaged copy is made from these."""
    root = tmp_path_factory.mktemp("class")
    save_tiny_model(root)
    for folder, header in (("SST-2", "sentence\tlabel\n"), ("STS-B", None)):
        (root / "data" / "glue" / folder).mkdir(parents=True)
        for split in ("train", "dev"):
            if header:
                (root / "data" / "glue" / folder / f"{split}.tsv").write_text(header + "the ship\t1\nthe sea\t0\n" * 8)
    shutil.rmtree(root / "data" / "glue" / "STS-B")
    (root / "data" / "mmlu" / "val").mkdir(parents=True)
    (root / "data" / "mmlu" / "val" / "astronomy_val.csv").write_text("What is the sun?,a star,a planet,a moon,a comet,A\n" * 3)
    (root / "text.txt").write_text("the ship saw the sea at night\n" * 40)
    (root / "empty").mkdir()
    return root


def damaged(world, tmp_path, name, how):
    folder = tmp_path / f"model-{how}"
    shutil.copytree(world / "model", folder)
    path = folder / name
    content = path.read_bytes()
    path.write_bytes({"truncated": content[: len(content) // 2], "garbage": b"\x00\xff" * 64, "empty": b""}[how])
    return str(folder)


READERS = {  # entry point: arguments that read a model folder M (and name no other bad input)
    "run_glue": lambda w, m, out: ["--model_name_or_path", m, "--task_name", "sst2", "--data_dir", f"{w}/data/glue",
                                   "--output_dir", out, "--num_train_epochs", "0.01", "--max_train_samples", "4"],
    "suite": lambda w, m, out: ["--model_name_or_path", m, "--data_dir", f"{w}/data", "--output_dir", out,
                                "--protocol", "smoke", "--tasks", "sst2"],
    "perplexity": lambda w, m, out: ["--model_name_or_path", m, "--files", f"{w}/text.txt", "--max_blocks", "2"],
    "mmlu": lambda w, m, out: ["--model_name_or_path", m, "--data_dir", f"{w}/data/mmlu"],
    "embeddings": lambda w, m, out: ["--model_name_or_path", m, "--data_dir", f"{w}/data/glue"],
    "card": lambda w, m, out: ["--model_dir", m, "--output_dir", out],
    "publish": lambda w, m, out: ["--model_dir", m, "--repo_id", "me/model", "--dry_run", out],
    "export": lambda w, m, out: ["--model_dir", m, "--output_dir", out],
    "train_embeddings": lambda w, m, out: ["--recipe", "embed", "--smoke", "--model_name_or_path", m, "--raw_text_files",
                                           f"{w}/text.txt", "--output_dir", out],
    "bench": lambda w, m, out: ["--model_dir", m, "--task_name", "sst2", "--data_dir", f"{w}/data/glue", "--rounds", "1",
                                "--batch1_sentences", "2", "--skip_memory", "--output_json", f"{out}/bench.json"],
}
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")


def call(entry, arguments):
    try:
        return importlib.import_module(ENTRY_POINTS[entry]).main(arguments)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("name", MODEL_FILES)
@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_a_damaged_model_file_is_one_error_line_for_every_reader(world, tmp_path, name, how, capsys, monkeypatch,
                                                                 no_network, hang_guard):
    monkeypatch.chdir(tmp_path)
    model = damaged(world, tmp_path, name, how)
    for entry, arguments in READERS.items():
        out = tmp_path / f"out-{entry}"
        with hang_guard(HANG_SECONDS, entry):
            code = call(entry, arguments(world, model, str(out)))
        line = one_error_line(capsys, code)
        assert name in line or "config" in line or "tokenizer" in line, (entry, line)
        assert not out.exists(), f"{entry} left {out} behind"
        assert not no_network, (entry, no_network)  # a local folder's damage is told, never retried on the Hub


FOLDER_ARGUMENTS = [  # (entry, arguments with {empty} where a folder goes and {w} for the good world)
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--train_files", "{empty}", "--output_dir", "{out}"]),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--validation_files", "{empty}", "--train_files", "{w}/text.txt",
                  "--output_dir", "{out}"]),
    ("pretrain", ["--recipe", "bertmini", "--smoke", "--tokenizer_name", "{empty}", "--output_dir", "{out}"]),
    ("pretrain", ["--recipe", "quickstart", "--smoke", "--resume_from_checkpoint", "{empty}", "--output_dir", "{out}"]),
    ("run_glue", ["--model_name_or_path", "{empty}", "--task_name", "sst2", "--data_dir", "{w}/data/glue", "--output_dir", "{out}"]),
    ("run_glue", ["--model_name_or_path", "{w}/model", "--task_name", "sst2", "--data_dir", "{empty}", "--output_dir", "{out}"]),
    ("run_glue", ["--model_name_or_path", "{w}/model", "--task_name", "all", "--data_dir", "{empty}", "--output_dir", "{out}"]),
    ("suite", ["--model_name_or_path", "{empty}", "--data_dir", "{w}/data", "--output_dir", "{out}"]),
    ("suite", ["--model_name_or_path", "{w}/model", "--data_dir", "{empty}", "--output_dir", "{out}"]),
    ("perplexity", ["--model_name_or_path", "{empty}", "--files", "{w}/text.txt"]),
    ("perplexity", ["--model_name_or_path", "{w}/model", "--files", "{empty}"]),
    ("mmlu", ["--model_name_or_path", "{empty}", "--data_dir", "{w}/data/mmlu"]),
    ("mmlu", ["--model_name_or_path", "{w}/model", "--data_dir", "{empty}"]),
    ("embeddings", ["--model_name_or_path", "{empty}", "--data_dir", "{w}/data/glue"]),
    ("embeddings", ["--model_name_or_path", "{w}/model", "--data_dir", "{empty}"]),
    ("card", ["--model_dir", "{empty}", "--output_dir", "{out}"]),
    ("card", ["--run_dir", "{empty}", "--output_dir", "{out}"]),
    ("publish", ["--model_dir", "{empty}", "--repo_id", "me/model", "--dry_run", "{out}"]),
    ("publish", ["--model_dir", "{w}/model", "--repo_id", "me/model", "--onnx", "{empty}", "--dry_run", "{out}"]),
    ("export", ["--model_dir", "{empty}", "--output_dir", "{out}"]),
    ("bench", ["--model_dir", "{empty}", "--data_dir", "{w}/data/glue"]),
    ("bench", ["--model_dir", "{w}/model", "--data_dir", "{empty}"]),
    ("bench", ["--model_dir", "{w}/model", "--onnx", "{empty}", "--data_dir", "{w}/data/glue"]),
    ("bench", ["--model_dir", "{w}/model", "--int8", "{empty}", "--data_dir", "{w}/data/glue"]),
    ("demo", ["--model_name_or_path", "{empty}"]),
    ("demo", ["--onnx", "{empty}"]),
    ("glue_padding", ["--data_dir", "{empty}"]),
    ("reference_run", ["--recipe", "quickstart", "--smoke", "--data_dir", "{empty}", "--output_dir", "{out}"]),
    ("import_gpu_run", ["--raw_dir", "{empty}", "--output_dir", "{out}", "--date", "2026-12-04", "--commit", "8522b1f",
                        "--glue_data_dir", "{empty}"]),
    ("results_table", ["{empty}"]),
    ("throughput", ["--corpus", "{empty}"]),
]


@pytest.mark.parametrize("entry, arguments", FOLDER_ARGUMENTS, ids=[f"{c[0]}-{i}" for i, c in enumerate(FOLDER_ARGUMENTS)])
def test_an_empty_folder_argument_is_one_error_line(world, tmp_path, entry, arguments, capsys, monkeypatch, no_network,
                                                    hang_guard):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"

    def fill(text):
        return text.replace("{empty}", str(world / "empty")).replace("{w}", str(world)).replace("{out}", str(out))

    with hang_guard(HANG_SECONDS, entry):
        one_error_line(capsys, call(entry, [fill(a) for a in arguments]))
    assert not out.exists() and not no_network, no_network
    assert not any((world / "empty").iterdir())


CHECKPOINT_FILES = ("model.safetensors", "trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                    "stream_state_0.pt")


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_a_damaged_checkpoint_is_refused_before_anything_is_read(world, tmp_path, name, capsys, monkeypatch):
    """A run killed while writing its checkpoint, or a copy cut short: resuming names the file and the way out."""
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "run" / "checkpoint-4"
    shutil.copytree(world / "model", checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 4, "log_history": []}))
    for saved in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "stream_state_0.pt"):
        torch.save({"state": torch.arange(1000.0)}, checkpoint / saved)
    path = checkpoint / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    code = call("pretrain", ["--recipe", "quickstart", "--smoke", "--output_dir", str(tmp_path / "run"),
                             "--resume_from_checkpoint", "latest"])
    line = one_error_line(capsys, code, name)
    assert "damaged or incomplete" in line and "checkpoint" in line


def test_a_damaged_recipe_results_glue_or_mmlu_file_is_one_error_line(world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("base: quickstart\nblock_size: [64\n")
    one_error_line(capsys, call("pretrain", ["--recipe", str(tmp_path / "bad.yaml"), "--smoke"]), "bad.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xff" * 20)
    one_error_line(capsys, call("pretrain", ["--recipe", str(tmp_path / "binary.yaml"), "--smoke"]), "binary.yaml")
    run = tmp_path / "ref"
    (run / "tuned-20m" / "model").mkdir(parents=True)
    (run / "results.json").write_text('{"reference_run": 1, "recipes": {"tuned-20m": {')  # cut short
    one_error_line(capsys, call("card", ["--run_dir", str(run), "--output_dir", str(tmp_path / "card")]))
    one_error_line(capsys, call("results_table", [str(run)]))
    model = tmp_path / "model"
    shutil.copytree(world / "model", model)
    (model / "results.json").write_text('{"recipe": "x", "parameters": ')
    one_error_line(capsys, call("card", ["--model_dir", str(model), "--output_dir", str(tmp_path / "card")]), "results.json")
    glue = tmp_path / "glue"
    shutil.copytree(world / "data" / "glue", glue)
    (glue / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nthe ship\t1\nthe sea\t")  # the last row cut short
    one_error_line(capsys, call("run_glue", ["--model_name_or_path", str(world / "model"), "--task_name", "sst2",
                                             "--data_dir", str(glue), "--output_dir", str(tmp_path / "out")]))
    mmlu = tmp_path / "mmlu"
    shutil.copytree(world / "data" / "mmlu", mmlu)
    (mmlu / "val" / "astronomy_val.csv").write_text("What is the sun?,a star,a planet,a moon,a comet,A\nWhat is")
    one_error_line(capsys, call("mmlu", ["--model_name_or_path", str(world / "model"), "--data_dir", str(mmlu)]))
    assert not (tmp_path / "out").exists() and not (tmp_path / "card").exists()


def test_a_command_with_nothing_to_do_says_so(world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "glue").mkdir(parents=True)  # no task folder in it
    one_error_line(capsys, call("suite", ["--model_name_or_path", str(world / "model"), "--data_dir", str(tmp_path / "data"),
                                          "--output_dir", str(tmp_path / "out"), "--skip", "perplexity,mmlu,stsb_zero_shot"]))
    one_error_line(capsys, call("perplexity", ["--model_name_or_path", str(world / "model"), "--files",
                                               str(tmp_path / "nothing-*.txt")]), "matches no file")
    one_error_line(capsys, call("results_table", [str(tmp_path)]))
    assert not (tmp_path / "out").exists()
