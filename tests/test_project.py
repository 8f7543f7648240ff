"""The project's structure: the run folder's one contract, the import boundaries, docs that match the code, and recipe
files that hold only what makes each recipe different."""

import ast
import json

import pytest
from conftest import REPO_ROOT

from small_encoders.core.errors import UserError
from small_encoders.core.run_folder import (
    BUDGET_PLAN,
    RECIPE_FILE,
    RESULTS_FILE,
    TRAINING_LOG,
    PretrainingResult,
    RunFolder,
)
from small_encoders.recipes.recipe import DEFAULTS, SMOKE_DEFAULTS, available_recipes, load_recipe


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_training_and_evaluation_do_not_import_each_other():
    for folder, other in (("recipes", "eval"), ("eval", "recipes")):
        for path in (REPO_ROOT / folder).glob("*.py"):
            crossing = [name for name in imported_modules(path) if name == other or name.startswith(other + ".")]
            assert not crossing, f"{path.relative_to(REPO_ROOT)} imports {crossing}"


def result(**changes):
    fields = dict(recipe="tuned-5m", parameters=4_647_680, data="files", hardware="CPU", command="python x",
                  block_size=128, mlm_probability=0.4, train_steps=10, train_tokens=20480, train_seconds=3.0,
                  tokens_per_second=6827, eval_loss=5.0, eval_blocks=12, eval_perplexity=148.4)
    return PretrainingResult(**{**fields, **changes})


def test_the_result_record_round_trips_and_an_older_or_foreign_file_is_told_apart(tmp_path):
    written = result()
    written.write(tmp_path)
    on_disk = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert "generator_loss" not in on_disk and on_disk["eval_perplexity"] == 148.4  # RTD fields only for RTD runs
    assert PretrainingResult.read(tmp_path) == written
    assert PretrainingResult.read(tmp_path / "nothing-here") is None  # a run not finished
    # A file from before a field existed reads with its default; a field this code does not know is left out.
    on_disk.pop("segments")
    on_disk["a_future_field"] = 1
    (tmp_path / RESULTS_FILE).write_text(json.dumps(on_disk))
    assert PretrainingResult.read(tmp_path).segments == []
    (tmp_path / RESULTS_FILE).write_text(json.dumps({"suite_version": 3, "table": []}))  # the suite's, not pretraining's
    with pytest.raises(UserError, match="was not written by recipes/pretrain_mlm.py"):
        PretrainingResult.read(tmp_path)


def test_the_run_folder_reads_what_pretraining_wrote_and_names_a_damaged_file(tmp_path):
    folder = RunFolder(tmp_path)
    assert (folder.recipe(), folder.result(), folder.training_log(), folder.budget_plan()) == ({}, None, None, None)
    assert not folder.is_finished() and folder.start_model() is None
    folder.write_recipe({"recipe": "domain", "mlm_probability": 0.2})
    folder.write_training_log([{"step": 1, "loss": 9.0}])
    folder.write_result(result(init_from="runs/start"))
    assert folder.recipe() == {"recipe": "domain", "mlm_probability": 0.2}
    assert folder.training_log() == [{"step": 1, "loss": 9.0}]
    assert folder.is_finished() and folder.result().init_from == "runs/start" and folder.start_model() == "runs/start"
    (tmp_path / RECIPE_FILE).write_text("recipe: [unclosed\n")
    with pytest.raises(UserError, match=f"{RECIPE_FILE} is not a readable YAML file"):
        folder.recipe()
    (tmp_path / TRAINING_LOG).write_text('[{"step": ')
    with pytest.raises(UserError, match=f"{TRAINING_LOG} is not a readable JSON file"):
        folder.training_log()


def test_only_the_run_folder_module_spells_the_run_folders_file_names():
    """Pretraining, the suite, the card, publishing, the reference run and the GPU import read the run folder through
    RunFolder: no other code names its files (docstrings and comments may)."""
    owned = {RECIPE_FILE, TRAINING_LOG, BUDGET_PLAN}
    spelled = []
    for path in REPO_ROOT.rglob("*.py"):
        relative = path.relative_to(REPO_ROOT)
        if relative.parts[0] in ("tests", "build") or relative.as_posix() == "core/run_folder.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        spelled += [f"{relative}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Constant)
                    and node.value in owned and id(node) not in docstrings]
    assert spelled == []


def test_every_recipe_field_is_documented():
    text = (REPO_ROOT / "docs" / "recipes.md").read_text()
    assert [key for key in DEFAULTS if f"| `{key}` |" not in text] == []


def test_smoke_runs_share_one_block_and_each_recipe_file_holds_only_its_tiny_shape():
    for name in available_recipes():
        smoke = load_recipe(name, smoke=True)
        assert {key: smoke[key] for key in SMOKE_DEFAULTS} == SMOKE_DEFAULTS, name
        assert smoke["model_config"]["hidden_size"] == 64 and smoke["model_config"]["num_hidden_layers"] == 2, name
    # A smoke block's shape merges into the recipe's model_config: the tuned recipes keep their mean pooling.
    assert load_recipe("tuned-20m", smoke=True)["model_config"]["classifier_pooling"] == "mean"


def test_the_tuned_preset_is_the_block_the_tuned_recipes_wrote_out_before():
    from small_encoders.recipes.pretrain_mlm import model_settings_config

    config = model_settings_config(load_recipe("tuned-20m"))
    assert (config.mlp_type, config.norm_type, config.norm_eps, config.use_bias) == ("swiglu", "rmsnorm", 1e-6, False)
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.tie_word_embeddings) == (0.0, 0.0, True)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.position_embedding_type) == (
        384, 10, 1024, "rope")


def test_the_code_passes_its_lint():
    """`ruff check .` with pyproject.toml's settings (ruff is a test dependency)."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements.txt installs it)")
    done = subprocess.run([ruff, "check", "."], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.slow
def test_the_distribution_installs_one_name_of_its_own(tmp_path):
    """The wheel `pip install .` would install holds one top-level package, small_encoders, with the repository's
    folders inside it as subpackages (installed as top-level packages, core/, eval/ or demo/ would collide with other
    distributions' packages of those names), the recipes' YAML files with them, and its commands point into it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"  # a copy of what the build reads: setuptools writes build/ beside its sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in PACKAGE_FOLDERS + ("small_encoders", "tests"):  # tests/ present, as in the clone, and left out
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "results"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), "-q"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {name for name in top if not name.endswith(".dist-info")} == {"small_encoders"}, top
    assert {f"small_encoders/{folder}/__init__.py" for folder in PACKAGE_FOLDERS} <= set(names)
    assert "small_encoders/recipes/quickstart.yaml" in names and "small_encoders/recipes/pretrain_mlm.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "small-encoders-pretrain = small_encoders.recipes.pretrain_mlm:main" in entry_points
    command = shutil.which("small-encoders-pretrain")
    if command:  # installed from this clone (pip install -e .): the command is the training script
        shown = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=300)
        assert shown.returncode == 0 and "--recipe NAME" in shown.stdout, shown.stderr[-1500:]


# The repository's folders that install as subpackages of small_encoders (pyproject.toml's package-dir).
PACKAGE_FOLDERS = ("core", "recipes", "modeling", "data_prep", "eval", "model_cards", "demo", "deploy", "benchmarks")


def test_no_file_edits_the_import_path():
    """Every script, test and module imports the installed package: no sys.path edit anywhere, no E402 ignore."""
    edits = ("sys.path" + ".insert", "sys.path" + ".append", "sys.path" + "[")
    offenders = [str(path.relative_to(REPO_ROOT)) for folder in PACKAGE_FOLDERS + ("small_encoders", "tests")
                 for path in (REPO_ROOT / folder).rglob("*.py") if any(edit in path.read_text() for edit in edits)]
    assert not offenders
    assert "E402" not in (REPO_ROOT / "pyproject.toml").read_text()


def test_the_fast_tier_covers_every_test_module():
    """`pytest -m "not slow"` (docs/development.md) keeps at least one test of every test module: each module's
    behaviour is covered at tiny size in the tier run between two edits."""
    import ast

    uncovered = []
    for path in sorted((REPO_ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_slow = any("pytest.mark.slow" in ast.unparse(node) for node in tree.body
                          if isinstance(node, ast.Assign) and "pytestmark" in ast.unparse(node.targets[0]))
        fast = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                and (node.name.startswith("test") or isinstance(node, ast.ClassDef) and node.name.endswith("Test"))
                and not any("slow" in ast.unparse(d) for d in node.decorator_list)]
        if module_slow or not fast:
            uncovered.append(path.name)
    assert uncovered == [], uncovered


def test_an_atomic_write_makes_its_folder_and_leaves_no_temporary_file(tmp_path):
    """`eval/perplexity.py --output_json runs/domain-eval/imdb-start.json` (docs/results.md) into a folder not made yet:
    found by running the docs' commands (benchmarks/docs_commands.py)."""
    from small_encoders.core.files import write_atomic

    target = tmp_path / "runs" / "domain-eval" / "imdb-start.json"
    write_atomic(target, '{"perplexity": 1}')
    write_atomic(target, b'{"perplexity": 2}')
    assert target.read_text() == '{"perplexity": 2}' and [p.name for p in target.parent.iterdir()] == [target.name]
