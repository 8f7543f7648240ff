"""Training sets for a sentence embedder: pairs, triplets and scored pairs, from a user's files, a Hub dataset, the
labelled GLUE train sets, or made from raw text with no labels at all.

Every set comes out in one of three shapes, which decide its loss (recipes/train_embeddings.py):

- `pairs`:    anchor, positive            (in-batch negatives: MultipleNegativesRankingLoss)
- `triplets`: anchor, positive, negative  (the same, with the negative added to the others)
- `scored`:   sentence1, sentence2, score (a similarity in [0, 1]: CoSENTLoss)

A file's columns say its shape: anchor/positive[/negative], or sentence1/sentence2[/score] (scores divided by
`max_score`, so a 0-5 STS file reads with max_score 5). Raw text becomes pairs in one of three ways (`kind`):

- `title`: a document's first line (a Wikipedia title) and the paragraph after it;
- `spans`: two distinct passages of one document (one to two sentences, and one to three others);
- `next`:  a sentence and the sentence after it.
"""

import math
import random
import re

from datasets import Dataset

from small_encoders.core.errors import UserError

SHAPES = {"pairs": ("anchor", "positive"), "triplets": ("anchor", "positive", "negative"),
          "scored": ("sentence1", "sentence2", "score")}
WANTED = "anchor,positive[,negative] or sentence1,sentence2[,score]"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
GLUE_NAMES = {"mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}
MIN_WORDS = 4  # a line shorter than this is a heading ("Etymology and terminology."), not a sentence of text


def shape_of(columns, where):
    """The shape a set's columns make, or one error line naming what it has and what it needs."""
    columns = set(columns)
    if {"anchor", "positive"} <= columns:
        return "triplets" if "negative" in columns else "pairs"
    if {"sentence1", "sentence2"} <= columns:
        return "scored" if "score" in columns else "pairs"
    count = "one column" if len(columns) == 1 else f"columns {sorted(columns)}"
    raise UserError(f"{where} has {count}; a training set of pairs needs the columns {WANTED}")


def as_shape(dataset, where, max_score=1.0):
    """(the set with only its shape's columns, in their names, without rows with an empty text; its shape)."""
    if len(dataset) == 0:
        raise UserError(f"{where} holds no rows; give a file with pairs")
    shape = shape_of(dataset.column_names, where)
    if shape == "pairs" and "anchor" not in dataset.column_names:
        dataset = dataset.rename_columns({"sentence1": "anchor", "sentence2": "positive"})
    columns = SHAPES[shape]
    dataset = dataset.select_columns(list(columns))
    texts = [c for c in columns if c != "score"]
    if shape == "scored":
        dataset = check_scores(dataset, where, max_score)
    before = len(dataset)
    dataset = dataset.filter(lambda row: all(isinstance(row[c], str) and row[c].strip() for c in texts),
                             desc="dropping rows with an empty text")
    if len(dataset) == 0:
        raise UserError(f"{where}: every row has an empty text in {', '.join(texts)}")
    if len(dataset) < before:
        print(f"note: {where}: {before - len(dataset):,} of {before:,} rows had an empty text and were left out", flush=True)
    return dataset, shape


def check_scores(dataset, where, max_score):
    """Scores as numbers in [0, 1] (divided by max_score); one that is no number, or outside [0, max_score], is one
    error line with its row."""
    scores = dataset["score"]
    for row, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise UserError(f"{where}: row {row + 1} has the score {score!r}, not a number")
        if not 0 <= score <= max_score:
            hint = " (a 0-5 STS-style file reads with --max_score 5)" if max_score == 1 and score <= 5 else ""
            raise UserError(f"{where}: row {row + 1} has the score {score:g}, outside 0 to {max_score:g}{hint}")
    return dataset.map(lambda batch: {"score": [float(s) / max_score for s in batch["score"]]}, batched=True,
                       desc="scaling scores to [0, 1]")


def check_batches(dataset, where, batch_size):
    """A set must fill one batch of distinct texts (the batches are free of duplicates, so in-batch negatives are
    never the positive itself); one error line otherwise."""
    first = dataset.column_names[0]
    distinct = len(set(dataset[first]))
    if distinct < batch_size:
        raise UserError(f"{where} has {distinct:,} distinct {first} text(s), fewer than one batch of {batch_size} "
                        f"(batches hold no duplicate texts); give more pairs or a smaller --per_device_train_batch_size")


def load_pair_files(patterns, max_score=1.0, encoding_errors="strict"):
    """One training set from pair files (csv, tsv, jsonl, parquet): (dataset, shape)."""
    from small_encoders.data_prep.corpus import builder_for, expand_files, load_local

    files = expand_files(patterns, "--train_files")
    if any(builder_for(f) == "text" for f in files):
        raise UserError(f"--train_files {files[0]} is plain text; pairs come in .csv, .tsv, .jsonl or .parquet files "
                        f"with the columns {WANTED} (raw text goes to --raw_text_files)")
    where = files[0] if len(files) == 1 else f"--train_files ({len(files)} files)"
    return as_shape(load_local(files, encoding_errors), where, max_score)


def load_hub_pairs(name, config=None, split="train", max_score=1.0):
    from small_encoders.data_prep.corpus import load_hub

    return as_shape(load_hub(name, config, split), f"the Hub dataset {name}", max_score)


def glue_pairs(task, glue_dir=None):
    """A GLUE train set as scored pairs: MRPC's pairs with their label (1 a paraphrase, 0 not) as the score, RTE's
    with theirs (1 the second sentence follows from the first, 0 not), STS-B's 0-5 scores divided by 5. All train
    with CoSENT, which ranks every pair of a batch by its score: MRPC's non-paraphrases (most share many words with
    their sentence) are negatives that in-batch negatives of the paraphrases alone never show (with the paraphrases
    only, MRPC's average precision fell below the start's in every run of docs/results.md). Only the train split is
    read (dev and test are for evaluation)."""
    from small_encoders.eval.glue_data import load_glue

    if task not in GLUE_NAMES:
        raise UserError(f"--glue_pairs: no pairs are made from {task}; choose {', '.join(GLUE_NAMES)}")
    train = load_glue(task, glue_dir, splits=["train"])["train"]
    if task == "rte":  # label 0 is entailment: the hypothesis follows from the premise
        scored = train.map(lambda row: {"score": float(row["label"] == 0)}, remove_columns=["label"], desc="RTE labels as scores")
        return as_shape(scored, "RTE train")
    if task == "mrpc":
        scored = train.map(lambda row: {"score": float(row["label"])}, remove_columns=["label"], desc="MRPC labels as scores")
        return as_shape(scored, "MRPC train")
    return as_shape(train.rename_column("label", "score"), "STS-B train", max_score=5.0)


def sentences_of(text):
    """The sentences of a document's lines of text (headings and other short lines left out)."""
    found = []
    for line in text.splitlines():
        if len(line.split()) >= MIN_WORDS:
            found.extend(s.strip() for s in SENTENCE_END.split(line.strip()) if len(s.split()) >= MIN_WORDS)
    return found


def pairs_from_document(text, kind, rng, count):
    """Up to `count` (anchor, positive) pairs made from one document."""
    if kind == "title":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        body = [line for line in lines[1:] if len(line.split()) >= MIN_WORDS]
        if len(lines) < 2 or not body or len(lines[0].split()) > 20:
            return []
        return [(lines[0], paragraph) for paragraph in body[:count]]
    sentences = sentences_of(text)
    if kind == "same":  # a sentence and itself: the two copies differ only by the encoder's dropout (SimCSE)
        return [(sentence, sentence) for sentence in rng.sample(sentences, min(count, len(sentences)))]
    if kind == "next":
        if len(sentences) < 2:
            return []
        starts = rng.sample(range(len(sentences) - 1), min(count, len(sentences) - 1))
        return [(sentences[i], sentences[i + 1]) for i in starts]
    # spans: an anchor of one or two sentences and a positive of one to three others, apart from it
    pairs = []
    for _ in range(count):
        if len(sentences) < 2:
            break
        length = rng.randint(1, min(2, len(sentences) - 1))
        start = rng.randrange(len(sentences) - length + 1)
        anchor = sentences[start : start + length]
        rest = [i for i in range(len(sentences)) if not start <= i < start + length]
        begin = rng.choice(rest)
        span = [i for i in rest if i >= begin][: rng.randint(1, 3)]
        pairs.append((" ".join(anchor), " ".join(sentences[i] for i in span)))
    return pairs


def raw_text_pairs(patterns, kind="spans", sample_by="paragraph", max_pairs=50_000, seed=42, encoding_errors="strict",
                   per_document=32):
    """Pairs made from the documents of raw text files, with no labels: (dataset of anchor, positive; a line saying
    what was made). Documents are taken in a seeded random order, up to `per_document` pairs each (as many as
    `max_pairs` needs, spread over the documents), and the pairs shuffled so one document's pairs rarely share a batch."""
    from small_encoders.data_prep.corpus import expand_files, load_local

    if patterns == "embedded":  # the Python-docstring corpus (data_prep/embedded_corpus.py): no files needed
        from small_encoders.data_prep.embedded_corpus import build_embedded_corpus

        patterns, sample_by = str(build_embedded_corpus()[0]), "line"
    files = expand_files(patterns, "--raw_text_files")
    corpus = load_local(files, encoding_errors, sample_by)
    column = "text" if "text" in corpus.column_names else corpus.column_names[0]
    documents = [t for t in corpus[column] if isinstance(t, str) and t.strip()]
    if not documents:
        raise UserError(f"--raw_text_files {patterns!r} holds no text")
    rng = random.Random(seed)
    order = list(range(len(documents)))
    rng.shuffle(order)
    each = max(1, min(per_document, math.ceil(max_pairs / len(documents))))
    pairs, seen, used = [], set(), 0
    for index in order:
        made = []
        for pair in pairs_from_document(documents[index], kind, rng, each):
            if pair not in seen:
                seen.add(pair)
                made.append(pair)
        used += bool(made)
        pairs.extend(made[: max_pairs - len(pairs)])
        if len(pairs) >= max_pairs:
            break
    if not pairs:
        why = {"title": "a first line followed by text (pass --raw_text_sample_by paragraph for articles separated by "
                        "blank lines, or --raw_pairs spans)",
               "next": f"two sentences of {MIN_WORDS} words or more", "spans": f"two sentences of {MIN_WORDS} words or more",
               "same": f"a sentence of {MIN_WORDS} words or more"}
        raise UserError(f"--raw_pairs {kind}: no document of --raw_text_files has {why[kind]}")
    rng.shuffle(pairs)
    line = (f"raw text        {len(pairs):,} {kind} pairs from {used:,} of {len(documents):,} documents "
            f"({len(files)} file(s), a document per {sample_by})")
    return Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}), line
