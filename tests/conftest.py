"""Shared fixtures: tiny configs, an in-memory WordPiece tokenizer, and the shared data folder."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (the README's `-n 2`) the workers share the cores: each worker, and every process it starts, uses
# its share of them (torch would start one thread per core in every worker, and two workers on two cores then run
# slower than one). Set before torch is imported.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# The first line of a child process that plays a Hub user's machine: this repository is not importable there, even
# where `pip install -e .` installed it (its editable finder is taken off the import machinery).
HUB_USER = ('import sys; sys.meta_path[:] = [f for f in sys.meta_path '
            'if not getattr(f, "__module__", "").startswith("__editable__")]\n')

WORDS = (
    "the a of and to in is was he she it that his her for on with as at by from this which "
    "house ship sea whale captain man woman day night said went came saw love old new time "
    "good great little long first last never always very more most small large"
).split()


def accelerate_launch(processes=2):
    """`accelerate launch` of `processes` CPU (gloo) processes through torchrun, on a port free now: two tests that
    launch at once (pytest-xdist's workers) would both take torch's default 29500. On a machine without GPUs,
    accelerate 1.x starts DDP processes with --multi_gpu; its --cpu flag alone launches a single process unless MPI is
    set up."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return ["accelerate", "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]


def pytest_configure(config):
    # Marks used by transformers' common tests (tests/test_transformers_common.py), registered so pytest knows them.
    for mark in ("accelerate_tests", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test", "torch_compile_test"):
        config.addinivalue_line("markers", f"{mark}: a transformers common-test mark")


def tiny_vocab():
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz.," if c not in WORDS]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + letters


@pytest.fixture
def tiny_tokenizer(tmp_path):
    """A BERT-style fast tokenizer over a few dozen words, built without any download."""
    from small_encoders.data_prep.tokenizer import wordpiece_from_vocab

    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = wordpiece_from_vocab(vocab_file)
    assert len(tokenizer) == len(tiny_vocab())
    return tokenizer


def tiny_config(**overrides):
    from small_encoders.modeling import SmallEncoderConfig

    fields = dict(
        vocab_size=len(tiny_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    fields.update(overrides)
    return SmallEncoderConfig(**fields)


def save_tiny_model(root):
    """A tiny SmallEncoder masked LM and its in-memory WordPiece tokenizer saved in root/model (and root/vocab.txt)."""
    import torch

    from small_encoders.data_prep.tokenizer import wordpiece_from_vocab
    from small_encoders.modeling import SmallEncoderForMaskedLM

    (root / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = wordpiece_from_vocab(root / "vocab.txt")
    torch.manual_seed(0)
    SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=128)).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root / "model"


def shared_data(*parts):
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder ships beside the repository only on project machines)")
    return path


LOOPBACK = ("localhost", "127.", "::1", "0.0.0.0")


def is_loopback(host):
    """This machine: no host (a local socket), the loopback names and addresses."""
    return host in (None, "", b"") or str(host).startswith(LOOPBACK)


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to reach another machine (a name looked up, a connection opened) is refused as offline would be,
    and recorded: a test asserts that bad input never even tried the Hub (no retries), which holds on any machine
    however slow, where a bound on the seconds it took does not. Loopback stays open."""
    import socket

    attempts = []
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def guarded_lookup(host, *args, **kwargs):
        if not is_loopback(host):
            attempts.append(("lookup", host))
            raise socket.gaierror(f"no network in this test (looked up {host})")
        return lookup(host, *args, **kwargs)

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            attempts.append(("connect", address[0]))
            raise OSError(f"no network in this test (connected to {address[0]})")
        return connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


class Hung(Exception):
    pass


@pytest.fixture
def hang_guard():
    """`with hang_guard(seconds, what):` fails the test with a clear message if the block runs longer (a hang: a Hub
    retry loop, a wait that never ends). The bound is for hangs, not speed: set it far above what a machine three
    times slower with every core busy takes."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def guard(seconds, what=""):
        def stop(signum, frame):
            raise Hung(f"{what or 'the call'} still running after {seconds} s: a hang")

        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return guard


def assert_ends_by_its_plan(results):
    """What a budgeted run that really trained (a subprocess, real time) can promise on any machine: the plan that set
    its end spent the time left at the step time it had just measured (or gave the schedule its short decay tail when
    no time was left), and the run stopped at that plan's step. Relations between figures the run recorded, never a
    wall-clock figure: how long the steps after the last plan really took depends on the machine's load (a CI run on a
    busy machine took 24.95 s of a 24 s budget), and whether a budget is kept in time is tested on the simulated clock
    of tests/test_budget.py."""
    import math

    plan = results["time_budget"]
    budget = plan["minutes"] * 60
    replans = plan.get("replans") or []
    # The re-plan that set the end: the first of the last ones that all planned the same total (a re-plan inside a
    # decay tail granted earlier keeps that tail's end, so it may fall on the last step itself: a busy machine, CI)
    while len(replans) > 1 and replans[-2]["steps"] == replans[-1]["steps"]:
        replans = replans[:-1]
    last = replans[-1] if replans else {"at_step": 0, "step_seconds": plan["step_seconds"], "seconds_left": budget}
    steps_after = results["train_steps"] - last["at_step"]
    tail = max(1, math.ceil(0.02 * plan["planned_steps"]))
    assert results["train_steps"] == plan.get("steps", plan["planned_steps"])
    assert 0 < steps_after <= max(tail, max(0.0, last["seconds_left"]) // last["step_seconds"]), (steps_after, last)
