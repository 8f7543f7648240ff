"""data_prep/: the loader, the embedded corpus, the Cosmopedia filter, tokenizers and packing."""

import gzip
import json

import pytest
from conftest import shared_data
from datasets import Dataset

from small_encoders.core.errors import UserError
from small_encoders.data_prep.corpus import load_corpus
from small_encoders.data_prep.cosmopedia import filter_cosmopedia, find_duplicates
from small_encoders.data_prep.embedded_corpus import build_embedded_corpus
from small_encoders.data_prep.packing import pack_dataset
from small_encoders.data_prep.tokenizer import (
    get_tokenizer,
    load_tokenizer,
    train_bpe,
    train_wordpiece,
)

DOCS = [f"document number {i} tells of the sea and the ship and the whale, all of it long ago." for i in range(40)]


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("SMALL_ENCODERS_CACHE", str(tmp_path / "se-cache"))


def write_formats(folder):
    folder.mkdir()
    (folder / "a.txt").write_text("\n".join(DOCS) + "\n")
    with gzip.open(folder / "a.txt.gz", "wt") as handle:
        handle.write("\n".join(DOCS) + "\n")
    (folder / "a.jsonl").write_text("\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(DOCS)))
    (folder / "a.csv").write_text("body,id\n" + "\n".join(f'"{d}",{i}' for i, d in enumerate(DOCS)) + "\n")
    (folder / "a.tsv").write_text("body\tid\n" + "\n".join(f"{d}\t{i}" for i, d in enumerate(DOCS)) + "\n")
    Dataset.from_dict({"body": DOCS}).to_parquet(str(folder / "a.parquet"))
    Dataset.from_dict({"text": DOCS}).save_to_disk(str(folder / "saved"))


@pytest.mark.parametrize(
    "name, column", [("a.txt", "text"), ("a.txt.gz", "text"), ("a.jsonl", "body"), ("a.csv", "body"),
                     ("a.tsv", "body"), ("a.parquet", "body"), ("saved", "text")],
)
def test_every_local_format_loads_the_same_documents(tmp_path, name, column):
    write_formats(tmp_path / "data")
    corpus = load_corpus(train_files=str(tmp_path / "data" / name), text_column=column, validation_split_percentage=10)
    assert corpus["train"].column_names == ["text"]
    assert sorted(list(corpus["train"]["text"]) + list(corpus["validation"]["text"])) == sorted(DOCS)
    assert len(corpus["validation"]) == 4


def test_globs_and_separate_validation_files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        (folder / f"part{i}.txt").write_text("\n".join(DOCS[i * 10 : i * 10 + 10]) + "\n\n   \n")
    (folder / "held.txt").write_text("\n".join(DOCS[30:]) + "\n")
    corpus = load_corpus(train_files=str(folder / "part*.txt"), validation_files=str(folder / "held.txt"))
    assert len(corpus["train"]) == 30  # blank and whitespace-only lines dropped
    assert list(corpus["validation"]["text"]) == DOCS[30:]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: dict(train_files=str(d / "missing*.txt")), "matches no file"),
        (lambda d: dict(train_files=str(d / "empty.txt")), "is empty"),
        (lambda d: dict(train_files=str(d / "a.jsonl"), text_column="text"), "no column 'text'"),
        (lambda d: dict(train_files=str(d / "a.doc")), "cannot read"),
        (lambda d: dict(), "no data source"),
        (lambda d: dict(dataset_name="HuggingFaceTB/cosmopedia", dataset_config="stories"), "--train_files"),
    ],
)
def test_bad_sources_fail_with_the_fix(tmp_path, setup, message):
    write_formats(tmp_path / "data")
    (tmp_path / "data" / "empty.txt").write_text("")
    (tmp_path / "data" / "a.doc").write_text("x")
    with pytest.raises(UserError, match=message):
        load_corpus(**setup(tmp_path / "data"))


def test_non_utf8_is_refused_unless_replace_is_asked(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("\n".join(DOCS[:10]).encode() + "\ncaf\xe9 au lait is good\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8.*--encoding_errors replace"):
        load_corpus(train_files=str(bad))
    corpus = load_corpus(train_files=str(bad), encoding_errors="replace")
    texts = list(corpus["train"]["text"]) + list(corpus["validation"]["text"])
    assert "caf\ufffd au lait is good" in texts


@pytest.mark.slow
def test_embedded_corpus_is_deterministic_english(tmp_path):
    train_a, valid_a = build_embedded_corpus(tmp_path / "a")
    train_b, valid_b = build_embedded_corpus(tmp_path / "b")
    assert train_a.read_bytes() == train_b.read_bytes() and valid_a.read_bytes() == valid_b.read_bytes()
    lines = train_a.read_text().splitlines()
    assert len(lines) > 3000 and len(valid_a.read_text().splitlines()) > 100
    words = " ".join(lines).split()
    assert len(words) > 200_000
    assert sum(w.lower() in ("the", "of", "a", "to", "is") for w in words) / len(words) > 0.05
    assert not set(lines) & set(valid_a.read_text().splitlines())


def cosmopedia_sample():
    good = (
        "The history of the river is long and it shaped the valley where people built their homes. "
        "Farmers learned that the floods brought rich soil, and they planned their year around them. {i} "
    )
    good = good + " ".join(f"Then came season {k} of story {{n}}, and the valley changed again." for k in range(20))
    rows = []
    for i in range(20):
        rows.append(dict(prompt="p", text=good.format(i=f"Story {i} adds its own ending about harvest number {i * 7}.", n=i),
                         token_length=300, audience="general", format="blogpost", seed_data="web"))
    rows.append(dict(rows[0], audience="children"))  # audience
    rows.append(dict(rows[1], format="poem"))  # format
    rows.append(dict(rows[2], token_length=10))  # length
    rows.append(dict(rows[3], text="$$ 1+1=2 ;; {x_1, x_2} ## 3.14 ** 2.71 " * 20))  # quality
    rows.append(dict(rows[4], text="  " + rows[4]["text"].upper() + "  "))  # exact duplicate (case, spaces)
    rows.append(dict(rows[5], text=rows[5]["text"].replace("homes", "houses")))  # near duplicate
    return Dataset.from_list(rows)


def test_cosmopedia_filter_reports_each_criterion():
    filtered, report = filter_cosmopedia(
        cosmopedia_sample(), max_samples=15, audiences=["general"], formats=["blogpost"], min_tokens=64, min_words=20
    )
    assert report == {"input": 26, "audience": 1, "format": 1, "length": 1, "quality": 1,
                      "exact_duplicate": 1, "near_duplicate": 1, "sample": 5, "kept": 15}
    again, _ = filter_cosmopedia(
        cosmopedia_sample(), max_samples=15, audiences=["general"], formats=["blogpost"], min_tokens=64, min_words=20
    )
    assert list(filtered["text"]) == list(again["text"])  # deterministic
    assert set(filtered.column_names) >= {"text", "audience", "format"}


def test_near_duplicate_detection_keeps_distinct_texts():
    texts = [" ".join(f"word{i}_{j}" for j in range(300)) for i in range(30)]
    assert find_duplicates(texts) == ([], [])
    edited = texts[3].replace("word3_150", "other")
    assert find_duplicates(texts + [edited]) == ([], [30])


def test_cosmopedia_filter_that_keeps_nothing_is_an_error():
    with pytest.raises(UserError, match="kept no rows"):
        filter_cosmopedia(cosmopedia_sample(), audiences=["nobody"])


def test_bpe_training_gives_roberta_style_tokenizer(tmp_path):
    tokenizer = train_bpe(Dataset.from_dict({"text": DOCS * 5}), vocab_size=400)
    assert len(tokenizer) <= 400
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(5)] == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    ids = tokenizer("the whale")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the whale"
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path)("the whale")["input_ids"] == ids


def test_wordpiece_training_and_cache(tmp_path):
    texts = Dataset.from_dict({"text": DOCS * 5})
    tokenizer = train_wordpiece(texts, vocab_size=300)
    ids = tokenizer("The Whale")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[0]) == "[CLS]" and tokenizer.convert_ids_to_tokens(ids[-1]) == "[SEP]"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the whale"
    first, origin = get_tokenizer("train-wordpiece", texts, 300, cache_root=tmp_path)
    second, origin_again = get_tokenizer("train-wordpiece", texts, 300, cache_root=tmp_path)
    assert origin == f"trained on the {len(texts):,} training documents" and origin_again.startswith("trained earlier")
    assert first.get_vocab() == second.get_vocab()


def test_a_tokenizer_learns_from_a_seeded_sample_cached_by_its_text_not_the_corpus_fingerprint(tmp_path):
    texts = Dataset.from_dict({"text": [f"{doc} number {i}" for i, doc in enumerate(DOCS * 40)]})
    _, origin = get_tokenizer("train-wordpiece", texts, 300, cache_root=tmp_path, max_samples=50, seed=3)
    assert origin == f"trained on 50 of the {len(texts):,} training documents"
    # The same documents through another datasets pipeline (another fingerprint): the cache is found.
    relabelled = texts.map(lambda row: row, desc="a step that changes the fingerprint only")
    assert relabelled._fingerprint != texts._fingerprint
    _, again = get_tokenizer("train-wordpiece", relabelled, 300, cache_root=tmp_path, max_samples=50, seed=3)
    assert again.startswith("trained earlier on 50 of")
    _, other = get_tokenizer("train-wordpiece", texts, 300, cache_root=tmp_path, max_samples=50, seed=4)
    assert other.startswith("trained on 50 of")  # another sample is other text: trained anew
    assert len(list((tmp_path / "tokenizers").iterdir())) == 2


def test_wordpiece_ids_are_the_same_whichever_order_the_trainer_gives_ties():
    # Every word once, and room for every piece: the set of pieces is fixed but they all tie, so the trainer's own
    # ids follow the row order. Two corpora that differ only in row order must give one tokenizer.json (the
    # suite's floor cache is keyed by it).
    words = [f"{a}{b}{c}" for a in "bdfg" for b in "aeiou" for c in "klmnprst"]
    forward, backward = (train_wordpiece(Dataset.from_dict({"text": [" ".join(ws)] * 3}), vocab_size=1000)
                         for ws in (words, words[::-1]))
    assert forward.backend_tokenizer.to_str() == backward.backend_tokenizer.to_str()
    pieces = forward.convert_ids_to_tokens(list(range(len(forward))))
    assert pieces[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and pieces[5:] == sorted(pieces[5:])
    assert forward.decode(forward("bak dop")["input_ids"], skip_special_tokens=True) == "bak dop"


def test_shared_tokenizers_load_from_local_copies():
    bert = load_tokenizer(shared_data("tokenizers", "bert-base-uncased"))
    assert len(bert) == 30522 and bert.mask_token == "[MASK]"
    roberta = load_tokenizer(shared_data("tokenizers", "roberta-base"))
    assert len(roberta) == 50265 and roberta.mask_token == "<mask>"


def test_unknown_tokenizer_names_the_flag():
    with pytest.raises(UserError, match="--tokenizer_name"):
        load_tokenizer("no-such-org/no-such-tokenizer")


def packed_blocks(tokenizer, texts, block_size, **kwargs):
    dataset = Dataset.from_dict({"text": texts})
    return pack_dataset(dataset, tokenizer, block_size, **kwargs)[0]


def test_packing_makes_full_blocks_with_edges_and_separators(tiny_tokenizer):
    texts = ["the captain saw the whale", "", "she said the house was old", "a long day at sea " * 30]  # "" adds nothing
    blocks = packed_blocks(tiny_tokenizer, texts, 16, with_document_ids=True)
    cls, sep = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id
    stream = []
    assert blocks.features["input_ids"].feature.dtype == "uint16" and blocks.features["document_ids"].feature.dtype == "uint16"
    assert blocks.column_names == ["input_ids", "document_ids"]  # no special-tokens mask: the collator recomputes it
    for ids, docs in zip(list(blocks["input_ids"]), list(blocks["document_ids"])):
        assert len(ids) == 16 and ids[0] == cls and ids[-1] == sep
        assert docs[0] == 0 and docs == sorted(docs)  # contiguous runs numbered from 0
        stream.extend(ids[1:-1])
    first_doc = tiny_tokenizer("the captain saw the whale", add_special_tokens=False)["input_ids"]
    assert stream[: len(first_doc) + 1] == first_doc + [sep]
    assert blocks["document_ids"][0][: len(first_doc) + 2] == [0] * (len(first_doc) + 2)
    assert blocks["document_ids"][0][len(first_doc) + 2] == 1
    total = sum(len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts if t)
    assert len(blocks) == total // 14  # remainder dropped, as documented


def test_packing_too_little_text_is_an_error(tiny_tokenizer):
    with pytest.raises(UserError, match="too short to fill one 128-token block"):
        packed_blocks(tiny_tokenizer, ["the whale"], 128)


def test_second_packing_run_comes_from_cache(tmp_path, tiny_tokenizer):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(DOCS * 20) + "\n")
    corpus = load_corpus(train_files=str(path), validation_files=str(path))
    first, _, cached_first = pack_dataset(corpus["train"], tiny_tokenizer, 32)
    again = load_corpus(train_files=str(path), validation_files=str(path))
    second, _, cached_second = pack_dataset(again["train"], tiny_tokenizer, 32)
    assert not cached_first and cached_second
    assert list(first["input_ids"]) == list(second["input_ids"])


def test_collator_never_masks_special_tokens(tiny_tokenizer):
    import torch
    from transformers import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    blocks = packed_blocks(tiny_tokenizer, ["the captain saw the whale on the sea"] * 200, 32)
    collator = DataCollatorForLanguageModeling(tiny_tokenizer, mlm_probability=0.3)
    batch = collator([blocks[i] for i in range(len(blocks))])
    special = torch.isin(torch.tensor(list(blocks["input_ids"])), torch.tensor(tiny_tokenizer.all_special_ids))
    assert (batch["labels"][special] == -100).all()
    rate = (batch["labels"][~special] != -100).float().mean().item()
    assert 0.27 < rate < 0.33


def test_recipe_collator_stacks_blocks_with_the_stock_collators_masks(tiny_tokenizer):
    import torch
    from transformers import DataCollatorForLanguageModeling

    from small_encoders.recipes.training import ResumableMLMCollator, derived_seed

    blocks = packed_blocks(tiny_tokenizer, ["the captain saw the whale on the sea"] * 200, 32)
    rows = [{"input_ids": blocks[i]["input_ids"]} for i in range(16)]  # as Trainer passes them: no special_tokens_mask
    ours = ResumableMLMCollator(tiny_tokenizer, 0.3, seed=7)(rows)
    stock = DataCollatorForLanguageModeling(tiny_tokenizer, mlm_probability=0.3)
    stock.generator = torch.Generator().manual_seed(derived_seed(7, "train", 0, 0))
    expected = stock([dict(row) for row in rows])
    assert set(ours) == {"input_ids", "labels"}  # no all-ones attention mask for packed blocks
    assert torch.equal(ours["input_ids"], expected["input_ids"]) and torch.equal(ours["labels"], expected["labels"])
    assert (ours["labels"] != -100).any()


def test_recipe_collator_gives_the_same_batches_with_dataloader_workers(tiny_tokenizer):
    import torch
    from torch.utils.data import DataLoader

    from small_encoders.recipes.training import ResumableMLMCollator

    blocks = packed_blocks(tiny_tokenizer, ["the captain saw the whale on the sea"] * 200, 32)
    rows = [{"input_ids": blocks[i]["input_ids"]} for i in range(40)]

    def labels(num_workers):
        collator = ResumableMLMCollator(tiny_tokenizer, 0.3, seed=3)
        collator.batches_done = 5  # as SyncCollatorWithState sets it at an epoch's start
        loader = DataLoader(rows, batch_size=4, collate_fn=collator, num_workers=num_workers)
        return [batch["labels"] for batch in loader]

    alone, workers = labels(0), labels(2)
    assert len(alone) == len(workers) == 10
    assert all(torch.equal(a, w) for a, w in zip(alone, workers))
    assert len({tuple(a.flatten().tolist()) for a in alone}) == 10  # each batch its own masks


def test_packed_blocks_take_about_two_bytes_per_token(tiny_tokenizer):
    import numpy as np

    from small_encoders.data_prep.packing import id_dtype

    blocks = packed_blocks(tiny_tokenizer, ["the captain saw the whale on the sea"] * 400, 64)
    tokens = len(blocks) * 64
    assert blocks.data.nbytes / tokens <= 2.1  # uint16 ids and the Arrow offsets of each row
    assert id_dtype(2**16) == np.uint16 and id_dtype(2**16 + 1) == np.int32  # RoBERTa's 50,265 fit; a 100k vocabulary not
