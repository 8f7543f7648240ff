"""A default English corpus that needs no network and no data files: the docstrings of the Python
standard library installed on this machine, read from its source files with `ast` (nothing is
imported or executed). Deterministic for a given Python; nothing is copied into the repository.

    python -m data_prep.embedded_corpus --output_dir ~/.cache/small-encoders/embedded
"""

import argparse
import ast
import inspect
import sys
import sysconfig
import zlib
from pathlib import Path

SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo"}
MIN_WORDS = 8
VALIDATION_EVERY = 20  # every 20th document (by a hash of its text) goes to the validation split


def default_cache_dir():
    version = f"py{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    from small_encoders.core.run_folder import cache_root

    root = cache_root()
    return root / "embedded-corpus" / version


def stdlib_files():
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def docstrings(path):
    """Cleaned docstrings of a module, its classes and functions, in source order."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    for node in nodes:
        text = ast.get_docstring(node, clean=False)
        if text:
            yield inspect.cleandoc(text)


def help_topics():
    """pydoc's help topics: long English prose about the language, shipped with every CPython."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return []
    return [topics[key] for key in sorted(topics)]


def documents():
    seen = set()
    for text in [*help_topics(), *(doc for path in stdlib_files() for doc in docstrings(path))]:
        # One paragraph block per document; very short ones (argument lists, stubs) carry no language.
        text = "\n".join(line.rstrip() for line in text.strip().splitlines())
        if len(text.split()) >= MIN_WORDS and text not in seen:
            seen.add(text)
            yield text


def build_embedded_corpus(output_dir=None):
    """Write train.txt and validation.txt (one document per line) and return their paths."""
    output_dir = Path(output_dir or default_cache_dir())
    train_path, validation_path = output_dir / "train.txt", output_dir / "validation.txt"
    if train_path.exists() and validation_path.exists():
        return train_path, validation_path
    output_dir.mkdir(parents=True, exist_ok=True)
    train, validation = [], []
    for text in documents():
        line = " ".join(text.split())  # a line-based format: collapse the layout
        (validation if zlib.crc32(line.encode()) % VALIDATION_EVERY == 0 else train).append(line)
    for path, lines in ((train_path, train), (validation_path, validation)):
        temporary = path.with_suffix(".tmp")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temporary.replace(path)
    return train_path, validation_path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=None, help="where to write train.txt / validation.txt")
    args = parser.parse_args()
    for path in build_embedded_corpus(args.output_dir):
        text = path.read_text(encoding="utf-8")
        print(f"{path}: {text.count(chr(10)):,} documents, {len(text.split()):,} words, {len(text.encode()) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
