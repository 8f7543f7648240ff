"""The console commands (`small-encoders-pretrain`, ...): each runs the clone's own script, as `python SCRIPT` would."""

import sys
from pathlib import Path


def clone():
    """The clone this package was installed from (editable), put first on the import path; a copy installed without
    its clone (`pip install .`) has no recipes or data to run and says so."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "recipes" / "pretrain_mlm.py").is_file():
        print("error: small-encoders runs from a clone of its repository: clone it and run `pip install -e .` there "
              "(the scripts also run as files: python recipes/pretrain_mlm.py)", file=sys.stderr)
        raise SystemExit(1)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def run(module):
    import importlib

    clone()
    return importlib.import_module(module).main()


def pretrain():
    return run("recipes.pretrain_mlm")


def glue():
    return run("eval.run_glue")


def suite():
    return run("eval.suite")


def perplexity():
    return run("eval.perplexity")


def card():
    return run("model_cards.generate")


def publish():
    return run("model_cards.publish")
