"""Pack documents into fixed blocks with no padding, cached through `datasets`.

Each document is tokenized without special tokens and followed by the separator (`</s>` or `[SEP]`);
the stream is cut into pieces of `block_size - 2` tokens and each piece becomes
`<cls> piece <sep>` (`<s> ... </s>` or `[CLS] ... [SEP]`), so every block is exactly `block_size`
tokens and documents longer than a block simply continue in the next one.

Remainder policy: `datasets.map` packs 1,000 documents at a time; the tail of each such batch that
does not fill a block is dropped (at most `block_size - 3` tokens per 1,000 documents). A corpus too
small for a single block is an error.

Optional `document_ids` give, per token, the index of its document inside the block (0, 1, ...), for
the SmallEncoder family's document-isolated attention. A `special_tokens_mask` column lets the MLM
collator skip special tokens without recomputing them.
"""

import hashlib
import json
import os
import time

from .errors import UserError

PACKING_VERSION = 1  # bump when the block layout changes, so old caches are not reused
BATCH = 1000


def block_edges(tokenizer):
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls is None or sep is None:
        raise UserError("the tokenizer has no [CLS]/<s> and [SEP]/</s> tokens needed to mark blocks")
    return cls, sep


def pack_batch(texts, tokenizer, block_size, with_document_ids):
    cls, sep = block_edges(tokenizer)
    special = set(tokenizer.all_special_ids)
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
    stream, owners = [], []
    for doc_index, ids in enumerate(encoded):
        if ids:
            stream.extend(ids)
            stream.append(sep)
            owners.extend([doc_index] * (len(ids) + 1))
    piece = block_size - 2
    out = {"input_ids": [], "special_tokens_mask": []}
    if with_document_ids:
        out["document_ids"] = []
    for start in range(0, len(stream) - piece + 1, piece):
        block = [cls] + stream[start : start + piece] + [sep]
        out["input_ids"].append(block)
        out["special_tokens_mask"].append([1 if t in special else 0 for t in block])
        if with_document_ids:
            chunk = owners[start : start + piece]
            first = chunk[0]
            # Renumber from 0 inside the block; [CLS] joins the first document, the closing [SEP] the last.
            out["document_ids"].append([0] + [o - first for o in chunk] + [chunk[-1] - first])
    return out


def tokenizer_digest(tokenizer):
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def pack_dataset(texts, tokenizer, block_size, with_document_ids=False, num_proc=None, split_name="train"):
    """Return (packed dataset, seconds, from_cache) for a dataset with a `text` column."""
    if block_size < 8:
        raise UserError(f"block_size {block_size} is too small; use at least 8")
    if num_proc is None:
        num_proc = min(os.cpu_count() or 1, 8) if len(texts) >= 20 * BATCH else None
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
