"""Pack documents into fixed blocks with no padding, cached through `datasets`.

Each document is tokenized without special tokens and followed by the separator (`</s>` or `[SEP]`);
the stream is cut into pieces of `block_size - 2` tokens and each piece becomes
`<cls> piece <sep>` (`<s> ... </s>` or `[CLS] ... [SEP]`), so every block is exactly `block_size`
tokens and documents longer than a block simply continue in the next one.

Remainder policy: `datasets.map` packs 1,000 documents at a time; the tail of each such batch that
does not fill a block is dropped (at most `block_size - 3` tokens per 1,000 documents). A corpus too
small for a single block is an error.

Optional `document_ids` give, per token, the index of its document inside the block (0, 1, ...), for
the SmallEncoder family's document-isolated attention.

Storage is compact: token ids as uint16 when the vocabulary fits (65,536 entries or fewer), else int32, and document
ids as uint16: about 2 bytes per token in the cache instead of 16 (int64 ids and an int64 special-tokens mask, which
the collator recomputes from the ids in one `isin`).
"""

import hashlib
import json
import os
import time
from itertools import chain

import numpy as np

from small_encoders.core.errors import UserError

PACKING_VERSION = 2  # bump when the block layout changes, so old caches are not reused
BATCH = 1000


def block_edges(tokenizer):
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls is None or sep is None:
        raise UserError("the tokenizer has no [CLS]/<s> and [SEP]/</s> tokens needed to mark blocks")
    return cls, sep


def token_ids(texts, tokenizer):
    """Token ids of each text, no special tokens: the same ids as `tokenizer(texts)`, with less work.

    The Rust tokenizer is called directly and skips character offsets, which packing never reads; going
    through transformers adds a Python object per document (figures: docs/performance.md, data_prep).
    """
    backend = tokenizer.backend_tokenizer
    if backend.truncation or backend.padding:
        # Left over from an earlier call; transformers clears them the same way before an unpadded call.
        backend.no_truncation()
        backend.no_padding()
    return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]


def pack_batch(texts, tokenizer, block_size, with_document_ids):
    cls, sep = block_edges(tokenizer)
    encoded = token_ids(texts, tokenizer)
    # numpy, not Python lists: no Python loop over tokens.
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    tokens = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
    documents = np.flatnonzero(lengths)  # empty documents add nothing, not even a separator
    stream = np.insert(tokens, np.cumsum(lengths[documents]), sep)  # each document followed by its separator
    piece = block_size - 2
    count = len(stream) // piece
    body = stream[: count * piece].reshape(count, piece)
    blocks = np.concatenate([np.full((count, 1), cls), body, np.full((count, 1), sep)], axis=1)
    out = {"input_ids": blocks.astype(id_dtype(len(tokenizer)))}
    if with_document_ids:
        owners = np.repeat(np.arange(len(documents)), lengths[documents] + 1)[: count * piece].reshape(count, piece)
        first, last = owners[:, :1], owners[:, -1:]
        # Renumber from 0 inside the block; [CLS] joins the first document, the closing [SEP] the last.
        out["document_ids"] = np.concatenate([np.zeros_like(first), owners - first, last - first], axis=1).astype(
            id_dtype(block_size))
    return out


def id_dtype(count):
    """The smallest integer type that holds ids 0 .. count - 1: uint16 up to 65,536, else int32."""
    return np.uint16 if count <= 2**16 else np.int32


def tokenizer_digest(tokenizer):
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def pack_dataset(texts, tokenizer, block_size, with_document_ids=False, num_proc=None, split_name="train"):
    """Return (packed dataset, seconds, from_cache) for a dataset with a `text` column.

    `num_proc` None or 1 packs in this process with the tokenizer on every core (the fastest on the 2-core
    machine, docs/performance.md); N > 1 splits the rows over N `datasets` worker processes.
    """
    if block_size < 8:
        raise UserError(f"block_size {block_size} is too small; use at least 8")
    if num_proc is not None and num_proc <= 1:
        # In this process the Rust tokenizer spreads each batch over every core. datasets would run num_proc=1
        # in one worker process instead, where the tokenizer's threads are off (it was forked after using them).
        num_proc = None
    fingerprint = hashlib.sha256(
        json.dumps([texts._fingerprint, tokenizer_digest(tokenizer), block_size, with_document_ids, PACKING_VERSION]).encode()
    ).hexdigest()[:32]
    started = time.time()
    packed = texts.map(
        pack_batch,
        batched=True,
        batch_size=BATCH,
        input_columns="text",
        remove_columns=texts.column_names,
        fn_kwargs=dict(tokenizer=tokenizer, block_size=block_size, with_document_ids=with_document_ids),
        num_proc=num_proc,
        new_fingerprint=fingerprint,
        desc=f"tokenizing and packing {split_name} into {block_size}-token blocks",
    )
    seconds = time.time() - started
    from_cache = bool(packed.cache_files) and all(os.path.getmtime(f["filename"]) < started for f in packed.cache_files)
    if len(packed) == 0:
        raise UserError(
            f"the {split_name} text is too short to fill one {block_size}-token block; give more text or a smaller --block_size"
        )
    return packed, seconds, from_cache
