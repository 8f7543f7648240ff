"""Shared fixtures: tiny configs, an in-memory WordPiece tokenizer, and the shared data folder."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# The first line of a child process that plays a Hub user's machine: this repository is not importable there, even
# where `pip install -e .` installed it (its editable finder is taken off the import machinery).
HUB_USER = ('import sys; sys.meta_path[:] = [f for f in sys.meta_path '
            'if not getattr(f, "__module__", "").startswith("__editable__")]\n')
sys.path.insert(0, str(REPO_ROOT))

WORDS = (
    "the a of and to in is was he she it that his her for on with as at by from this which "
    "house ship sea whale captain man woman day night said went came saw love old new time "
    "good great little long first last never always very more most small large"
).split()


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
    from data_prep.tokenizer import wordpiece_from_vocab

    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = wordpiece_from_vocab(vocab_file)
    assert len(tokenizer) == len(tiny_vocab())
    return tokenizer


def tiny_config(**overrides):
    from modeling import SmallEncoderConfig

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

    from data_prep.tokenizer import wordpiece_from_vocab
    from modeling import SmallEncoderForMaskedLM

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
