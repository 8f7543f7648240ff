"""Streaming (`--streaming true`): the same blocks as the in-memory path, disjoint shards per process, and a budgeted
run that plans and ends on time with no dataset length."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

from cli.errors import UserError
from data_prep.corpus import load_corpus
from data_prep.packing import pack_dataset
from data_prep.streaming import pack_stream, streamed_corpus
from recipes.recipe import load_recipe

SCRIPT = str(REPO_ROOT / "recipes" / "pretrain_mlm.py")


def write_corpus(folder, files=4, lines=300):
    """Gzipped text files of numbered documents (each line one document), and a validation file."""
    folder.mkdir(parents=True, exist_ok=True)
    words = "the captain saw the whale near the ship and the sea was calm that night".split()
    for index in range(files):
        with gzip.open(folder / f"part-{index:02d}.txt.gz", "wt", encoding="utf-8") as handle:
            for line in range(lines):
                # every word marked with its file's letter: a block of one file never equals a block of another
                handle.write(" ".join(words[(line + k) % len(words)] + "qxzjvw"[index % 6] for k in range(5 + line % 17))
                             + f" {index} {line}\n")
    (folder / "valid.txt").write_text("\n".join(f"the whale swam by the ship {i}" for i in range(80)) + "\n")
    return str(folder / "part-*.txt.gz"), str(folder / "valid.txt")


def test_streamed_blocks_are_the_in_memory_blocks_of_the_same_documents(tmp_path, tiny_tokenizer):
    train_files, validation_files = write_corpus(tmp_path / "corpus", files=3, lines=700)  # batches of 1,000 cross files
    memory = load_corpus(train_files=train_files, validation_files=validation_files)
    stream, validation = streamed_corpus(None, None, train_files, validation_files, "text", None, None, "strict", "line")
    assert validation["text"] == memory["validation"]["text"]
    expected = pack_dataset(memory["train"], tiny_tokenizer, 32, with_document_ids=True)[0]
    streamed = list(pack_stream(stream, tiny_tokenizer, 32, with_document_ids=True))
    assert len(streamed) == len(expected) > 100

    def ints(rows):
        return [[int(t) for t in row] for row in rows]

    assert ints(row["input_ids"] for row in streamed) == ints(expected["input_ids"])
    assert ints(row["document_ids"] for row in streamed) == ints(expected["document_ids"])


def test_a_stream_without_validation_files_holds_out_its_first_documents(tmp_path):
    train_files, _ = write_corpus(tmp_path / "corpus", files=1, lines=50)
    stream, validation = streamed_corpus(None, None, train_files, None, "text", None, 10, "strict", "line")
    rows = [row["text"] for row in stream]
    assert len(validation) == 10 and len(rows) == 40 and not set(validation["text"]) & set(rows)


def test_streaming_needs_a_length_and_a_corpus_it_can_stream():
    with pytest.raises(UserError, match="needs --time_budget MINUTES or --max_steps N"):
        load_recipe("tuned-20m", {"streaming": True, "time_budget": None})
    with pytest.raises(UserError, match="cosmopedia_filter deduplicates over the whole corpus"):
        load_recipe("coberta", {"streaming": True, "max_steps": 10})
    assert load_recipe("tuned-20m")["streaming"] is True  # the GPU tier streams by default
    assert load_recipe("tuned-5m")["streaming"] is False  # the CPU tier reads into memory


def environment(tmp_path):
    return dict(os.environ, SMALL_ENCODERS_CACHE=str(tmp_path / "cache"), HF_DATASETS_CACHE=str(tmp_path / "hf"),
                HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


def test_a_budgeted_streaming_run_plans_and_ends_on_time(tmp_path):
    train_files, validation_files = write_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    args = ["--recipe", "tuned-20m", "--smoke", "--streaming", "true", "--train_files", train_files,
            "--validation_files", validation_files, "--max_steps", "-1", "--time_budget", "0.1", "--output_dir", str(out),
            "--report_to", "none"]
    done = subprocess.run([sys.executable, SCRIPT, *args], env=environment(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train streamed: tokenized and packed on the fly" in done.stdout
    results = json.loads((out / "results.json").read_text())
    plan = results["time_budget"]
    assert plan["planned_steps"] > 20 and results["train_steps"] == plan["steps"]  # more steps than the corpus's epoch
    # The budget is 6 s: alone on a 2-core CPU this run trained 6.0 s; a machine loaded by other work (CI) slows steps
    # after the last re-plan, which no plan can foresee.
    assert results["train_seconds"] <= 0.1 * 60 * 2


# Records the blocks each process trains on (the collator sees every batch), then runs the script.
RECORDER = textwrap.dedent(
    """
    import json, os, runpy, sys
    from recipes.training import ResumableMLMCollator
    call, folder = ResumableMLMCollator.torch_call, sys.argv[1]
    def recording(self, examples):
        if not self.evaluating:
            with open(os.path.join(folder, f"rank{self.process_index}.jsonl"), "a") as handle:
                for row in examples:
                    handle.write(json.dumps([int(t) for t in row["input_ids"]]) + "\\n")
        return call(self, examples)
    ResumableMLMCollator.torch_call = recording
    script = sys.argv[2]
    sys.argv = [script] + sys.argv[3:]
    runpy.run_path(script, run_name="__main__")
    """
)


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")
def test_two_processes_stream_disjoint_shards(tmp_path):
    train_files, validation_files = write_corpus(tmp_path / "corpus", files=4, lines=200)
    (tmp_path / "recorder.py").write_text(f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n" + RECORDER)
    seen = tmp_path / "seen"
    seen.mkdir()
    launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
                "no", "--dynamo_backend", "no"]
    args = ["--recipe", "tuned-20m", "--smoke", "--streaming", "true", "--train_files", train_files, "--validation_files",
            validation_files, "--max_steps", "12", "--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    done = subprocess.run(launcher + [str(tmp_path / "recorder.py"), str(seen), SCRIPT, *args], env=environment(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [[tuple(json.loads(line)) for line in (seen / f"rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)]
    assert min(len(ranks[0]), len(ranks[1])) >= 12 * 8  # 12 steps of 8 blocks (and the batch the loader collated ahead)
    assert not set(ranks[0]) & set(ranks[1])  # each process its own shards (files): no block trained twice


def test_a_killed_streaming_run_resumes_to_the_same_weights(tmp_path):
    """Resuming replays the stream from its start and skips the batches already trained (the stream's order is fixed by
    the seed), so the resumed run trains on exactly the blocks of an uninterrupted one."""
    from safetensors.torch import load_file
    from test_reliability import run

    train_files, validation_files = write_corpus(tmp_path / "corpus")
    args = ["--recipe", "tuned-20m", "--smoke", "--streaming", "true", "--train_files", train_files, "--validation_files",
            validation_files, "--max_steps", "8", "--save_steps", "4", "--eval_steps", "4", "--logging_steps", "2",
            "--report_to", "none"]
    assert run(args + ["--output_dir", str(tmp_path / "whole")], tmp_path).returncode == 0
    killed = run(args + ["--output_dir", str(tmp_path / "killed")], tmp_path, wrapper=["kill", "4"])
    assert killed.returncode == -9 and (tmp_path / "killed" / "checkpoint-4").is_dir()
    resumed = run(args + ["--output_dir", str(tmp_path / "killed"), "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, actual = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "killed" / "model.safetensors")
    for name in expected:
        assert (expected[name] - actual[name]).abs().max().item() < 1e-5, name
