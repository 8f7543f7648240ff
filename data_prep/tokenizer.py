"""Tokenizers: train a byte-level BPE (RoBERTa style) or WordPiece (BERT style) with `tokenizers`,
or load an existing one (Hub name, local folder, or a bare BERT vocab.txt)."""

import hashlib
import json
import os
from pathlib import Path

from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from small_encoders.core.errors import UserError

ROBERTA_SPECIALS = dict(bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>", mask_token="<mask>")
BERT_SPECIALS = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
TRAINED = ("train-bpe", "train-wordpiece")


def batches(texts, size=1000):
    for start in range(0, len(texts), size):
        yield texts[start : start + size]["text"]


def train_bpe(texts, vocab_size, min_frequency=2):
    """Byte-level BPE with RoBERTa's special tokens and post-processing (<s> ... </s>)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=True,
    )
    tokenizer.train_from_iterator(batches(texts), trainer=trainer, length=len(texts))
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")))
    specials = dict(ROBERTA_SPECIALS, mask_token=AddedToken("<mask>", lstrip=True, special=True))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **specials)


def wordpiece_pipeline(model):
    """Wrap a WordPiece model in BERT's uncased normaliser, pre-tokenizer, decoder and [CLS] ... [SEP] template."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def finish_wordpiece(tokenizer):
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls is None or sep is None:
        raise UserError("the WordPiece vocabulary lacks [CLS] or [SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **BERT_SPECIALS)


def train_wordpiece(texts, vocab_size, min_frequency=2):
    """Uncased WordPiece with BERT's special tokens and post-processing ([CLS] ... [SEP]).

    The trainer orders pieces of equal frequency differently from one run to the next (two trainings on the
    pretraining corpus gave the same 8,192 pieces with 724 ids swapped), and `eval/suite.py` keys its cached floor
    by the tokenizer. So the ids are renumbered: the special tokens first, then the pieces in sorted order.
    WordPiece looks pieces up by their text, so tokenization is unchanged, and the same corpus gives the same
    tokenizer.json, which the suite's floor cache can recognise."""
    tokenizer = wordpiece_pipeline(models.WordPiece(unk_token="[UNK]"))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=True)
    tokenizer.train_from_iterator(batches(texts), trainer=trainer, length=len(texts))
    pieces = specials + sorted(set(tokenizer.get_vocab()) - set(specials))
    trained = tokenizer.model
    tokenizer = wordpiece_pipeline(models.WordPiece(
        {piece: i for i, piece in enumerate(pieces)}, unk_token=trained.unk_token,
        continuing_subword_prefix=trained.continuing_subword_prefix, max_input_chars_per_word=trained.max_input_chars_per_word,
    ))
    tokenizer.add_special_tokens(specials)
    return finish_wordpiece(tokenizer)


def wordpiece_from_vocab(vocab_file):
    """BERT's uncased tokenizer from a bare vocab.txt (as bert-base-uncased ships it)."""
    return finish_wordpiece(wordpiece_pipeline(models.WordPiece.from_file(str(vocab_file), unk_token="[UNK]")))


def load_tokenizer(name_or_path, flag="--tokenizer_name"):
    """A fast tokenizer from a Hub name, a saved folder, or a BERT vocab.txt (file or folder holding only it).
    `flag` is the caller's option that named it, for the error message."""
    from small_encoders.core.hub import check_source

    check_source(name_or_path, flag, filename="tokenizer_config.json")
    path = Path(os.path.expanduser(str(name_or_path)))
    vocab = path if path.name == "vocab.txt" else path / "vocab.txt"
    if vocab.is_file() and not (path.is_dir() and ((path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists())):
        return wordpiece_from_vocab(vocab)
    if path.is_dir():
        # AutoTokenizer reads the folder's config.json first; with the SmallEncoder family registered here, a
        # SmallEncoder folder needs no remote code and transformers does not stop at its "run the custom code?" prompt.
        import small_encoders.modeling  # noqa: F401
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except Exception as error:
        example = "../shared/data/tokenizers/roberta-base" if flag == "--tokenizer_name" else "runs/quickstart"
        raise UserError(
            f"could not load a tokenizer from {flag} {name_or_path!r} ({type(error).__name__}); without network pass a "
            f"local folder{' or vocab.txt' if flag == '--tokenizer_name' else ''} (e.g. {example})"
        ) from None
    if not tokenizer.is_fast:
        raise UserError(f"tokenizer {name_or_path!r} has no fast (Rust) version; packing needs one")
    return tokenizer


def training_sample(texts, max_samples, seed=0):
    """The documents a tokenizer learns from: all of `texts` (a Dataset with a `text` column) when they are no more
    than `max_samples` (or it is None), else `max_samples` of them drawn with a seed, in corpus order."""
    if not max_samples or len(texts) <= max_samples:
        return texts
    import numpy as np

    picked = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_samples, replace=False))
    return texts.select(picked)


def tokenizer_cache_dir(kind, vocab_size, texts, cache_root):
    """Keyed by the text the tokenizer learns from (a hash of the sample itself), not by the corpus it came from."""
    digest = hashlib.sha256(json.dumps([kind, vocab_size, len(texts)]).encode())
    for batch in batches(texts):
        for text in batch:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return Path(cache_root) / "tokenizers" / f"{kind}-{vocab_size}-{digest.hexdigest()[:16]}"


def get_tokenizer(name, train_texts=None, vocab_size=None, cache_root=None, max_samples=None, seed=0):
    """Load `name`, or train one ('train-bpe' / 'train-wordpiece') on at most `max_samples` documents of `train_texts`
    (a seeded sample; all of them with None), cached by the sample's text."""
    if name not in TRAINED:
        return load_tokenizer(name), "loaded"
    if not vocab_size:
        raise UserError(f"tokenizer_name={name} needs vocab_size in the recipe")
    sample = training_sample(train_texts, max_samples, seed)
    learned = (f"{len(sample):,} of the {len(train_texts):,} training documents" if len(sample) < len(train_texts)
               else f"the {len(sample):,} training documents")
    cache = tokenizer_cache_dir(name, vocab_size, sample, cache_root) if cache_root else None
    if cache is not None and (cache / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(cache)), f"trained earlier on {learned}, cached in {cache}"
    tokenizer = (train_bpe if name == "train-bpe" else train_wordpiece)(sample, vocab_size)
    if cache is not None:
        tokenizer.save_pretrained(str(cache))
    return tokenizer, f"trained on {learned}"
