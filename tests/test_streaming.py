"""Streaming (`--streaming true`): the same blocks as the in-memory path, disjoint shards per process, and a budgeted
run that plans its length from its measured step time with no dataset length."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT, accelerate_launch, assert_ends_by_its_plan

from small_encoders.core.errors import UserError
from small_encoders.data_prep.corpus import load_corpus
from small_encoders.data_prep.packing import pack_dataset
from small_encoders.data_prep.streaming import pack_stream, streamed_corpus
from small_encoders.recipes.recipe import load_recipe

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


@pytest.mark.parametrize("files", [4, 1])
def test_held_out_documents_never_reach_training_with_workers_and_processes(tmp_path, files):
    """Two processes of two DataLoader workers each read the training stream as a run does (process_part, then the
    workers' split of each process's files): together they read every document but the held-out ones, once. (With
    `skip`, 50 of 100 held-out documents were read by 2 workers.)"""
    from torch.utils.data import DataLoader

    from small_encoders.data_prep.streaming import open_stream, process_part, text_only

    train_files, _ = write_corpus(tmp_path / "corpus", files=files, lines=800 // files)
    stream, validation = streamed_corpus(None, None, train_files, None, "text", None, 100, "strict", "line")
    held_out = set(validation["text"])
    read, notes = [], []
    for rank in (0, 1):
        part, note = process_part(stream, seed=7, process_index=rank, num_processes=2)
        notes.append(note)
        read += [row["text"] for row in DataLoader(part, batch_size=None, num_workers=2)]
    everything = [row["text"] for row in text_only(open_stream(train_files=train_files), "text")]
    assert len(held_out) == 100 and not held_out & set(read)
    assert sorted(read) == sorted(set(everything) - held_out)  # every other document, each read once
    if files == 1:  # fewer files than processes: said, and the rows split instead
        assert all("every process reads all of them" in note for note in notes)
    else:
        assert notes == [None, None]


def test_the_stream_shuffles_its_file_order_with_the_seed(tmp_path):
    from small_encoders.data_prep.streaming import process_part

    train_files, _ = write_corpus(tmp_path / "corpus", files=6, lines=5)
    stream, _ = streamed_corpus(None, None, train_files, None, "text", None, 2, "strict", "line")
    firsts = {next(iter(process_part(stream, seed)[0]))["text"].split()[-2] for seed in range(8)}
    assert len(firsts) > 2  # the first file read differs from seed to seed


def test_a_resumed_block_stream_reads_one_window_not_the_stream(tmp_path):
    """BlockStream's state: a stream resumed after 900 of its blocks gives the blocks an uninterrupted stream gives,
    having read at most one window (25 blocks) of its source again, whatever the position."""
    from datasets import Dataset

    from small_encoders.data_prep.streaming import BlockStream

    reads = []

    def counted(row):
        reads.append(row["id"])
        return row

    source = Dataset.from_dict({"id": list(range(400))}).to_iterable_dataset(num_shards=4).map(counted)
    whole = iter(BlockStream(source, seed=3, window=25))
    before = [next(whole)["id"] for _ in range(900)]  # two passes and more: the stream repeats
    stream = BlockStream(source, seed=3, window=25)
    iterator = iter(stream)
    for _ in range(900):
        next(iterator)
    state = stream.state_dict()
    expected = [next(whole)["id"] for _ in range(60)]
    resumed = BlockStream(source, seed=3, window=25)
    resumed.load_state_dict(state)
    reads.clear()
    iterator = iter(resumed)
    first = next(iterator)["id"]
    assert len(reads) <= 25  # one window read again to give the next block
    assert [first] + [next(iterator)["id"] for _ in range(59)] == expected
    assert sorted(before[:400]) == list(range(400)) and before[:400] != list(range(400))  # a pass: each block once, shuffled


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


@pytest.mark.slow
def test_a_budgeted_streaming_run_plans_from_its_step_time(tmp_path):
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
    # The budget sets the length, not the corpus (a stream has none): the plan is the budget over the measured step
    # time, and the run stops at the plan's step (relations that hold on a machine of any speed and load).
    assert plan["planned_steps"] == int(0.1 * 60 // plan["step_seconds"]) and results["train_steps"] == plan["steps"]
    assert_ends_by_its_plan(results)


# Records the blocks each process trains on (the collator sees every batch), then runs the script.
RECORDER = textwrap.dedent(
    """
    import json, os, runpy, sys
    from small_encoders.recipes.training import ResumableMLMCollator
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


needs_launcher = pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not installed")


@pytest.mark.slow
@needs_launcher
@pytest.mark.parametrize("files", [4, 1])
def test_two_processes_of_two_workers_stream_disjoint_blocks_and_no_held_out_text(tmp_path, files):
    """Two processes (gloo), two collation workers each, the held-out documents taken from the stream itself: no block
    is trained by both processes, and no held-out document is in any trained block (each document ends in its own
    'file line' numbers, found in the decoded blocks). With one file the processes split its rows, say so, and share
    the first process's tokenizer."""
    import re

    from tokenizers import Tokenizer

    train_files, _ = write_corpus(tmp_path / "corpus", files=files, lines=800 // files)
    (tmp_path / "recorder.py").write_text(RECORDER)
    seen = tmp_path / "seen"
    seen.mkdir()
    out = tmp_path / "out"
    args = ["--recipe", "tuned-20m", "--smoke", "--streaming", "true", "--train_files", train_files,
            "--max_validation_samples", "100", "--dataloader_num_workers", "2", "--max_steps", "12", "--output_dir",
            str(out), "--report_to", "none"]
    done = subprocess.run(accelerate_launch() + [str(tmp_path / "recorder.py"), str(seen), SCRIPT, *args], env=environment(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [[tuple(json.loads(line)) for line in (seen / f"rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)]
    assert min(len(ranks[0]), len(ranks[1])) >= 12 * 8  # 12 steps of 8 blocks (and the batches collated ahead)
    assert not set(ranks[0]) & set(ranks[1])  # no block trained twice
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    # a document's numbers, whole: right before its [SEP] (a block may cut a document and ends in a [SEP] of its own,
    # left out here)
    text = "\n".join(tokenizer.decode(block[:-1], skip_special_tokens=False) for block in set(ranks[0]) | set(ranks[1]))
    documents = {(int(a), int(b)) for a, b in re.findall(r"(?<![\w])(\d+) (\d+) \[SEP\]", text)}
    held_out = {(0, line) for line in range(100)}  # the stream's first 100 documents: file 0's first lines
    assert len(documents) > 200 and not documents & held_out
    (note,) = [line for line in done.stdout.splitlines() if line.startswith("note: the stream has")] or [None]
    if files == 1:
        assert "every process reads all of them" in note
        assert "(by the first process, shared)" not in done.stdout  # the header is the first process's
    else:
        assert note is None


# Delays the first process's checkpoint writing (as a large model's would), then runs the script.
SLOW_SAVE = textwrap.dedent(
    """
    import os, runpy, sys, time
    from small_encoders.recipes.training import MLMTrainer
    save = MLMTrainer._save_checkpoint
    def slow(self, *args, **kwargs):
        if self.args.process_index == 0:
            time.sleep(0.6)
        return save(self, *args, **kwargs)
    MLMTrainer._save_checkpoint = slow
    script = sys.argv[1]
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
    """
)


@pytest.mark.slow
@needs_launcher
def test_two_processes_with_a_time_budget_and_frequent_saves_end_together(tmp_path):
    """The first process writes each checkpoint while the other waits for it in its next step: each process timed its
    own steps differently, and re-planned to different step counts, so one stopped first and the other waited forever
    in an all-reduce. Both now plan from the same figures: the run ends, at the step their shared plan set."""
    train_files, validation_files = write_corpus(tmp_path / "corpus")
    (tmp_path / "slow.py").write_text(SLOW_SAVE)
    out = tmp_path / "out"
    args = ["--recipe", "tuned-20m", "--smoke", "--streaming", "true", "--train_files", train_files,
            "--validation_files", validation_files, "--max_steps", "-1", "--time_budget", "0.4", "--save_steps", "5",
            "--logging_steps", "5", "--eval_steps", "1000", "--output_dir", str(out), "--report_to", "none"]
    try:
        done = subprocess.run(accelerate_launch() + [str(tmp_path / "slow.py"), SCRIPT, *args], env=environment(tmp_path),
                              cwd=tmp_path, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the two processes did not end together (a process waits for the other): {str(error.stdout)[-1500:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    plan = results["time_budget"]
    # Both processes re-planned alike (a plan of 20 steps or more is re-planned) and ended at the step the plan set
    # (before the fix: 36.2 s of a 24 s budget, the first re-plan was due by time only; 25.4 s after, alone on the
    # 2-core CPU, and 24.95 s in a CI run on a busy machine: why no test asserts the seconds).
    assert bool(plan.get("replans")) == (plan["planned_steps"] >= 20) and results["train_steps"] == plan["steps"]
    assert_ends_by_its_plan(results)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_killed_streaming_run_resumes_to_the_same_weights(tmp_path, workers):
    """Resuming loads the stream's saved state (every worker's place in its files and in its shuffled window) and the
    collator numbers the next batch as an uninterrupted run did, with or without workers: the resumed run trains on
    exactly the blocks, and with the masks, of an uninterrupted one."""
    from safetensors.torch import load_file
    from test_reliability import run

    train_files, validation_files = write_corpus(tmp_path / "corpus")
    args = ["--recipe", "tuned-20m", "--smoke", "--streaming", "true", "--train_files", train_files, "--validation_files",
            validation_files, "--max_steps", "8", "--save_steps", "3", "--eval_steps", "3", "--logging_steps", "3",
            "--report_to", "none", "--dataloader_num_workers", str(workers)]
    assert run(args + ["--output_dir", str(tmp_path / "whole")], tmp_path).returncode == 0
    killed = run(args + ["--output_dir", str(tmp_path / "killed")], tmp_path, wrapper=["kill", "3"])
    assert killed.returncode == -9 and (tmp_path / "killed" / "checkpoint-3" / "stream_state_0.pt").is_file()
    resumed = run(args + ["--output_dir", str(tmp_path / "killed"), "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "read again from its start" not in resumed.stdout
    expected, actual = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "killed" / "model.safetensors")
    for name in expected:
        assert (expected[name] - actual[name]).abs().max().item() < 1e-5, name
