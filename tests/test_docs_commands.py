"""Every command the README and docs/ show names a file that exists and passes the flags its script takes, with the values
it accepts (nothing runs: benchmarks/docs_commands.py runs them at smoke size from a fresh clone)."""

import argparse
import importlib
from unittest import mock

import pytest
from conftest import REPO_ROOT

from small_encoders.benchmarks.docs_commands import (
    SHELL_STEPS,
    DocCommand,
    distinct,
    extract_commands,
    in_dependency_order,
    plan,
    split_chain,
)
from small_encoders.recipes.embedding_recipe import EmbeddingRecipe, load_embedding_recipe
from small_encoders.recipes.recipe import FIELDS, load_recipe, parse_overrides

COMMANDS = extract_commands()


class Parsed(Exception):
    """Raised in place of running a script once its arguments are parsed (or, for a fragment, once its parser is built)."""


def script_arguments(command):
    """(the script, its arguments as written, whether the command is a fragment written with `...`)."""
    argv = command.argv
    start = argv.index(command.script) + 1
    rest = [token for token in argv[start:] if token != "..." and not token.startswith("[") and not token.endswith("]")]
    return command.script, rest, "..." in argv or any(token.startswith("[") for token in argv)


def check_recipe_command(rest, fragment, fields, load):
    """Every --key is a setting of the script's typed recipe (`fields`); a whole command's values pass the recipe's
    checks (`load`; paths are not opened)."""
    where = rest.index("--recipe")
    overrides = parse_overrides([t for i, t in enumerate(rest) if t != "--smoke" and i not in (where, where + 1)])
    unknown = sorted(set(overrides) - set(fields))
    assert not unknown, f"settings the recipe does not have: {unknown}"
    if not fragment:
        load(rest[where + 1], overrides, smoke="--smoke" in rest)


def check_script(script, rest, fragment):
    """Run the script's main up to its argument parsing: the arguments parse (a fragment: each flag is one it has)."""
    module = importlib.import_module("small_encoders." + script[: -len(".py")].replace("/", "."))
    real_parse_known = argparse.ArgumentParser.parse_known_args

    def parse_known_then_stop(parser, args=None, namespace=None, extras_allowed=True):
        if fragment:
            unknown = sorted({t.split("=")[0] for t in rest if t.startswith("--") and " " not in t}  # (a value may start with --)
                             - set(parser._option_string_actions))
            assert not unknown, f"{script} has no {unknown}"
            raise Parsed()
        namespace, extras = real_parse_known(parser, args, namespace)
        assert extras_allowed or not extras, f"{script} does not take {extras}"
        raise Parsed(namespace)

    def parse_then_stop(parser, args=None, namespace=None):
        parse_known_then_stop(parser, args, namespace, extras_allowed=False)

    with (mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop),
          mock.patch.object(argparse.ArgumentParser, "parse_known_args", parse_known_then_stop), pytest.raises(Parsed)):
        module.main(rest)


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.source}:{c.argv[1] if len(c.argv) > 1 else ''}" for c in COMMANDS])
def test_a_documented_command_names_a_file_that_exists_and_flags_its_script_takes(command):
    if command.argv[:2] == ["python", "-c"]:
        compile(command.argv[2], command.source, "exec")  # a python block: valid code
        return
    if command.script is None:
        assert command.argv[0] in ("pip", "tensorboard", *SHELL_STEPS) or command.argv[:3] == ["python", "-m", "pytest"], command.text
        return
    assert (REPO_ROOT / command.script).is_file(), f"{command.source}: {command.script} does not exist"
    if not command.script.endswith(".py") or command.script.startswith("tests/"):
        return
    script, rest, fragment = script_arguments(command)
    if script == "recipes/pretrain_mlm.py":
        check_recipe_command(rest, fragment, FIELDS, load_recipe)
    elif script == "recipes/train_embeddings.py":
        check_recipe_command(rest, fragment, EmbeddingRecipe.names(), load_embedding_recipe)
    else:
        check_script(script, rest, fragment)


def test_the_docs_show_the_commands_a_user_types_first():
    """The extraction finds what the README's front door shows (a check that it reads the blocks at all)."""
    texts = [c.text for c in COMMANDS if c.source.startswith("README.md")]
    assert "python recipes/pretrain_mlm.py --recipe quickstart" in texts
    assert "accelerate launch recipes/pretrain_mlm.py --recipe coberta" in texts
    assert any(c.argv[:2] == ["python", "-c"] for c in COMMANDS)  # docs/deploy.md's python block


def test_a_command_line_is_split_joined_and_planned_at_smoke_size(tmp_path):
    assert split_chain(["pip", "install", "x", "&&", "python", "a.py"]) == [["pip", "install", "x"], ["python", "a.py"]]
    launch = DocCommand("README.md:1", "", ["accelerate", "launch", "recipes/pretrain_mlm.py", "--recipe", "coberta"])
    planned = plan(launch)
    assert planned.argv[:5] == ["accelerate", "launch", "--cpu", "--num_processes", "2"]
    assert "--smoke" in planned.argv and planned.argv[planned.argv.index("--max_steps") + 1] == "4"
    made_by_docs = "runs/made-by-a-command-not-run-here"  # (runs/t20 may be there in a clone the docs ran in)
    suite = DocCommand("x.md:1", "", ["python", "eval/suite.py", "--model_name_or_path", made_by_docs, "--data_dir",
                                      "DATA", "--protocol", "gpu"])
    planned = plan(suite, made={made_by_docs})
    assert planned.argv[planned.argv.index("--protocol") + 1] == "smoke"
    assert planned.argv[planned.argv.index("--data_dir") + 1] == "../shared/data"
    assert plan(suite).argv[3] == "runs/quickstart"  # a folder no command made here: the quickstart's stands in
    upload = DocCommand("x.md:1", "", ["python", "model_cards/publish.py", "--model_dir", "runs/t20", "--repo_id", "a/b"])
    assert plan(upload).argv is None and "Hub" in plan(upload).reason
    # A reader is moved after the command that makes what it reads, wherever that is written.
    reader = DocCommand("README.md:9", "", ["python", "deploy/export.py", "--model_dir", "runs/sst2-model"])
    maker = DocCommand("docs/deploy.md:8", "", ["python", "eval/run_glue.py", "--save_model", "runs/sst2-model"])
    assert in_dependency_order([reader, maker]) == [maker, reader]
    # A command of a form already kept still runs when it makes what a kept command reads.
    export = DocCommand("README.md:2", "", ["python", "deploy/export.py", "--model_dir", "a", "--output_dir", "runs/a-onnx"])
    again = DocCommand("docs/x.md:3", "", ["python", "deploy/export.py", "--model_dir", "b", "--output_dir", "runs/b-onnx"])
    bench = DocCommand("docs/x.md:4", "", ["python", "deploy/bench.py", "--model_dir", "b", "--onnx", "runs/b-onnx"])
    assert distinct([export, again, bench]) == [export, again, bench]
    assert distinct([export, again]) == [export]
