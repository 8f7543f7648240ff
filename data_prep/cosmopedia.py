"""Filter Cosmopedia (columns: prompt, text, token_length, audience, format, seed_data) for pretraining.

Criteria, applied in this order, each counted in the report:
1. `audience`: keep rows whose audience is in the allowed list (all when the list is empty).
2. `format`: likewise for the format column.
3. `length`: keep `min_tokens <= token_length <= max_tokens` (Cosmopedia's own Mistral token count).
4. `quality`: English prose check on the text: at least `min_words` words, at least 70% of
   non-space characters alphabetic, at least 3% of words common English stop words, and mean word
   length between 3 and 10 characters.
5. `exact_duplicate`: identical text after lower-casing and collapsing whitespace (first kept).
6. `near_duplicate`: word 5-gram shingle sets whose Jaccard similarity to a kept row, estimated by
   a 64-permutation MinHash, is at least 0.8 (first kept). MinHash and the LSH index that finds the
   candidates are `datasketch`'s (`MinHash`, `MinHashLSH` at the same 0.8 threshold).
7. `sample`: a seeded shuffle, then the first `max_samples` rows are kept.

Everything is deterministic for a given input and seed.
"""

import hashlib
import re

from small_encoders.core.errors import UserError

STOP_WORDS = frozenset(
    "the of and to a in is that it for as was with be by on not he this are or his from at which but have an "
    "they you were her she all one their there been has we when who will more no if out so what its can would".split()
)
WORD = re.compile(r"\w+")
SHINGLE = 5
NEAR_JACCARD = 0.8


def quality_ok(text, min_words):
    words = WORD.findall(text)
    if len(words) < min_words:
        return False
    letters = sum(c.isalpha() for c in text)
    visible = sum(not c.isspace() for c in text) or 1
    stop_share = sum(w.lower() in STOP_WORDS for w in words) / len(words)
    mean_length = sum(map(len, words)) / len(words)
    return letters / visible >= 0.7 and stop_share >= 0.03 and 3 <= mean_length <= 10


def normalise(text):
    return " ".join(text.lower().split())


PERMUTATIONS = 64
MINHASH_SEED = 1  # datasketch's default: the same permutations in every process, so the filter is deterministic


def minhash(text):
    """`datasketch.MinHash` (64 permutations) of the word 5-gram shingles of a text."""
    from datasketch import MinHash

    words = WORD.findall(text.lower())
    shingles = {" ".join(words[i : i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    signature = MinHash(num_perm=PERMUTATIONS, seed=MINHASH_SEED)
    signature.update_batch([s.encode() for s in sorted(shingles)])
    return signature


def find_duplicates(texts, threshold=NEAR_JACCARD):
    """Indices to drop as exact and as near duplicates of an earlier row (the first of a group is kept)."""
    from datasketch import MinHashLSH

    exact, near = [], []
    seen_exact = set()
    index_of_kept = MinHashLSH(threshold=threshold, num_perm=PERMUTATIONS)
    kept = []
    for index, text in enumerate(texts):
        key = hashlib.blake2b(normalise(text).encode(), digest_size=16).digest()
        if key in seen_exact:
            exact.append(index)
            continue
        seen_exact.add(key)
        signature = minhash(text)
        # LSH candidates are likely, not certain, matches: keep the threshold on the estimated Jaccard itself.
        if any(signature.jaccard(kept[k]) >= threshold for k in index_of_kept.query(signature)):
            near.append(index)
            continue
        index_of_kept.insert(len(kept), signature)
        kept.append(signature)
    return exact, near


def filter_cosmopedia(
    dataset,
    max_samples=50_000,
    audiences=(),
    formats=(),
    min_tokens=64,
    max_tokens=2048,
    min_words=50,
    seed=42,
    num_proc=None,
):
    """Return (filtered dataset, report) where the report maps each criterion to the rows it dropped."""
    required = {"text", "token_length", "audience", "format"}
    missing = required - set(dataset.column_names)
    if missing:
        raise UserError(f"Cosmopedia filter: the data lacks columns {sorted(missing)} (has {dataset.column_names})")
    report = {"input": len(dataset)}
    audiences, formats = set(audiences or ()), set(formats or ())
    checks = [
        ("audience", lambda b: [not audiences or a in audiences for a in b["audience"]]),
        ("format", lambda b: [not formats or f in formats for f in b["format"]]),
        ("length", lambda b: [min_tokens <= n <= max_tokens for n in b["token_length"]]),
        ("quality", lambda b: [quality_ok(t, min_words) for t in b["text"]]),
    ]
    for name, check in checks:
        before = len(dataset)
        dataset = dataset.filter(check, batched=True, num_proc=num_proc, desc=f"cosmopedia filter: {name}")
        report[name] = before - len(dataset)
    exact, near = find_duplicates(dataset["text"])
    dropped = set(exact) | set(near)
    dataset = dataset.select([i for i in range(len(dataset)) if i not in dropped])
    report["exact_duplicate"], report["near_duplicate"] = len(exact), len(near)
    before = len(dataset)
    dataset = dataset.shuffle(seed=seed)
    if max_samples:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    report["sample"] = before - len(dataset)
    report["kept"] = len(dataset)
    if len(dataset) == 0:
        raise UserError(f"Cosmopedia filter kept no rows ({report}); loosen the criteria in the recipe")
    return dataset.flatten_indices(), report


def format_report(report):
    lines = [f"Cosmopedia filter: {report['input']:,} rows in"]
    lines += [f"  - {name}: dropped {count:,}" for name, count in report.items() if name not in ("input", "kept")]
    lines.append(f"  = kept {report['kept']:,}")
    return "\n".join(lines)
