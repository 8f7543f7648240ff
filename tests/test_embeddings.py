"""Sentence embeddings: the training script (recipes/train_embeddings.py) on pairs, triplets, scored pairs and raw text;
the evaluation's three tasks on fixtures whose answer is known; the folder loading in a clean process; card and
upload. Tiny models, CPU, offline."""

import json
import subprocess
import sys

import pytest
from conftest import HUB_USER, WORDS, save_tiny_model

from small_encoders.core.errors import UserError

SENTENCES = [" ".join(WORDS[i : i + 5]) for i in range(0, len(WORDS) - 5)]
DISJOINT = [" ".join(WORDS[i : i + 4]) for i in range(0, len(WORDS) - 6 - 3, 4)]  # no word in two of them


def write_glue(root, rows=10):
    """STS-B, MRPC and QNLI dev files (and MRPC/STS-B train) whose answers a bag-of-words embedder gets exactly right:
    similar pairs are the same words, dissimilar ones share none."""
    glue = root / "glue"
    for folder in ("STS-B", "MRPC", "QNLI"):
        (glue / folder).mkdir(parents=True)
    half = DISJOINT[:rows]
    other = [" ".join(WORDS[-3:]) if i % 2 else " ".join(WORDS[-6:-3]) for i in range(rows)]
    sts = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    mrpc = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i, sentence in enumerate(half):
        same = i % 2 == 0
        sts.append(f"{i}\tg\tf\ty\to\ts\ts\t{sentence}\t{sentence if same else other[i]}\t{5.0 if same else 0.0}")
        mrpc.append(f"{1 if same else 0}\t{i}\t{i}\t{sentence}\t{sentence if same else other[i]}")
    for split in ("train", "dev"):
        (glue / "STS-B" / f"{split}.tsv").write_text("\n".join(sts) + "\n")
        (glue / "MRPC" / f"{split}.tsv").write_text("\ufeff" + "\n".join(mrpc) + "\n")
    qnli = ["index\tquestion\tsentence\tlabel"]
    for i, sentence in enumerate(half):
        words = sentence.split()
        qnli.append(f"{i}\t{' '.join(words[:3])}\t{sentence}\tentailment")  # the answer holds the question's words
        qnli.append(f"{i}\t{' '.join(words[:3])}\t{other[i]}\tnot_entailment")
    (glue / "QNLI" / "dev.tsv").write_text("\n".join(qnli) + "\n")
    return glue


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("embeddings")
    model = save_tiny_model(root)
    glue = write_glue(root)
    (root / "pairs.csv").write_text("anchor,positive\n" + "".join(f"{a},{b}\n" for a, b in zip(SENTENCES, SENTENCES[1:])))
    (root / "triplets.jsonl").write_text("".join(json.dumps({"anchor": a, "positive": b, "negative": c}) + "\n"
                                                 for a, b, c in zip(SENTENCES, SENTENCES[1:], SENTENCES[5:])))
    (root / "scored.tsv").write_text("sentence1\tsentence2\tscore\n" + "".join(
        f"{a}\t{b}\t{i % 6}\n" for i, (a, b) in enumerate(zip(SENTENCES, SENTENCES[2:]))))
    (root / "raw.txt").write_text("\n\n".join(
        f"Title {i}\n" + ". ".join(s.capitalize() for s in SENTENCES[i : i + 6]) + "." for i in range(0, 20)) + "\n")
    return root, model, glue


def train(args, capsys):
    from small_encoders.recipes.train_embeddings import main

    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    return captured.out


@pytest.mark.slow
def test_pairs_triplets_scored_pairs_and_raw_text_train_together_into_a_sentence_transformers_folder(world, tmp_path, capsys):
    root, model, glue = world
    out = tmp_path / "embedder"
    printed = train(["--recipe", "embed", "--smoke", "--ingredients", "null", "--model_name_or_path", str(model),
                     "--output_dir", str(out), "--train_files", str(root / "pairs.csv"), "--raw_text_files", str(root / "raw.txt"),
                     "--raw_pairs", "spans", "--glue_pairs", "[stsb]", "--glue_dir", str(glue), "--max_steps", "6",
                     "--report_to", "none"], capsys)
    result = json.loads((out / "embedding_results.json").read_text())
    assert {name: s["shape"] for name, s in result["training_sets"].items()} == {
        "pairs": "pairs", "glue-stsb": "scored", "raw-text": "pairs"}
    assert result["steps"] == 6 and result["saw_stsb_train"] is True
    assert "CoSENTLoss" in printed and "MultipleNegativesRankingLoss" in printed
    for name in ("modules.json", "1_Pooling/config.json", "2_Normalize", "config_sentence_transformers.json", "README.md",
                 "recipe.yaml", "training_log.json", "configuration_small_encoder.py"):
        assert (out / name).exists(), name
    assert not list(out.glob("checkpoint-*"))  # the finished folder is the model
    evaluation = result["evaluation"]
    assert set(evaluation["model"]) == {"stsb", "mrpc", "qnli"} and evaluation["start_model"] == str(model)
    card = (out / "README.md").read_text()
    assert "pipeline_tag: sentence-similarity" in card and "library_name: sentence-transformers" in card
    assert "SentenceTransformer(" in card and "trust_remote_code=True" in card and "| STS-B dev" in card

    # The folder loads in a clean process where this repository is not importable, and encodes to unit vectors.
    script = HUB_USER + (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('small_encoders') is None\n"
        "from sentence_transformers import SentenceTransformer\n"
        f"model = SentenceTransformer({str(out)!r}, trust_remote_code=True, device='cpu')\n"
        "vectors = model.encode(['the ship saw the sea', 'the whale'])\n"
        "print(vectors.shape, round(float((vectors ** 2).sum(1)[0]), 4))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "(2, 32) 1.0"

    # The export pools and normalises: its vectors are SentenceTransformer.encode's (float32), int8 close in cosine;
    # the demo's similarity (PyTorch and ONNX) and the benchmark serve the same vectors.
    from small_encoders.deploy.export import main as export

    assert export(["--model_dir", str(out), "--output_dir", str(tmp_path / "onnx"), "--int8"]) == 0
    record = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert record["task"] == "sentence-embedding" and record["sentence_embedding"]["pooling"] == "mean"
    assert record["sentence_embedding"]["max_abs_difference_from_encode"] <= 1e-4
    assert record["int8"]["agreement"] >= 0.98  # the mean cosine of the int8 vectors with PyTorch's
    from small_encoders.demo.app import Demo, OnnxDemo
    from small_encoders.eval.embeddings import embedder_from_folder

    sentences = ["the ship saw the sea", "the whale came at night", "a small house"]
    vectors = embedder_from_folder(out).encode(sentences)
    expected = (vectors @ vectors.T).flatten().tolist()
    assert sum(Demo(str(out)).similarity(sentences)[1], []) == pytest.approx(expected, abs=1e-5)
    onnx_demo = OnnxDemo(str(out), str(tmp_path / "onnx"))  # serves the int8 copy when there is one
    assert onnx_demo.model.backend == "onnxruntime-int8" and "sentence similarity" in onnx_demo.describe()
    assert sum(onnx_demo.similarity(sentences)[1], []) == pytest.approx(expected, abs=0.05)
    from small_encoders.deploy.bench import main as bench

    assert bench(["--model_dir", str(out), "--onnx", str(tmp_path / "onnx"), "--data_dir", str(glue), "--rounds", "1",
                  "--batch1_sentences", "2", "--skip_memory", "--output_json", str(tmp_path / "bench.json")]) in (0, None)
    measured = json.loads((tmp_path / "bench.json").read_text())
    assert measured["quality"] == "stsb_spearman" and measured["sentences"] == 20
    names = [row["backend"] for row in measured["rows"]]  # PyTorch's bf16 row where the CPU has bf16
    assert [name for name in names if name != "pytorch-bf16"] == ["pytorch", "onnxruntime", "onnxruntime-int8"]
    assert all(row["batch32"]["sentences_per_second"] > 0 for row in measured["rows"])

    # Publishing stages the sentence-transformers files, and the card is the embedder's.
    from small_encoders.model_cards.publish import stage

    staged = stage(out, tmp_path / "upload", repo_id="me/embedder")
    assert {"modules.json", "1_Pooling/config.json", "2_Normalize/config.json" if (out / "2_Normalize" / "config.json").exists()
            else "modules.json", "config_sentence_transformers.json", "embedding_results.json", "README.md"} <= set(staged)


def test_a_sentence_transformers_folder_made_elsewhere_is_an_embedder_and_a_pretrained_one_is_not(world, tmp_path, capsys):
    """A sentence-transformers folder with no embedding_results.json (a soup mixed by hand, a Hub download) is served,
    exported and evaluated as an embedder (the three tasks, with no start to compare with); the pretrained model, which
    also carries modules.json, is not (the evaluation gives it the STS-B zero-shot row)."""
    import shutil

    from small_encoders.deploy.export import is_sentence_embedder
    from small_encoders.eval.embeddings import main as evaluate
    from small_encoders.recipes.train_embeddings import build_embedder

    _, model, _ = world
    build_embedder(model, 16).save(str(tmp_path / "elsewhere"))
    shutil.copytree(model, tmp_path / "mlm")
    (tmp_path / "mlm" / "modules.json").write_text((tmp_path / "elsewhere" / "modules.json").read_text())
    assert is_sentence_embedder(tmp_path / "elsewhere")  # (deploy/bench.py serves and measures by the same test)
    assert not is_sentence_embedder(tmp_path / "mlm")

    glue = world[2]
    assert evaluate(["--model_name_or_path", str(tmp_path / "elsewhere"), "--data_dir", str(glue),
                     "--output_dir", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "qnli dev   ndcg@10" in printed and "->" not in printed
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["evaluation"]
    assert results["start"] is None and set(results["model"]) == {"stsb", "mrpc", "qnli"}
    assert "No start to compare with" in (tmp_path / "eval" / "summary.md").read_text()
    assert evaluate(["--model_name_or_path", str(tmp_path / "mlm"), "--data_dir", str(glue)]) == 0
    assert "STS-B dev zero-shot: Spearman" in capsys.readouterr().out


@pytest.mark.slow
def test_triplets_train_with_the_cached_loss_and_matryoshka_and_a_0_to_5_file_reads_with_its_scale(world, tmp_path, capsys):
    root, model, _ = world
    # Triplets, with the cached loss and Matryoshka: each set its loss, the vectors' first dimensions trained too.
    out2 = tmp_path / "triplets"
    printed = train(["--recipe", "embed", "--smoke", "--ingredients", "null", "--model_name_or_path", str(model),
                     "--output_dir", str(out2),
                     "--raw_text_files", "null", "--train_files", str(root / "triplets.jsonl"), "--loss", "cached_mnrl",
                     "--mini_batch_size", "3", "--matryoshka_dims", "[32,16]", "--evaluate", "false",
                     "--warmup_ratio", "0.5", "--report_to", "none"], capsys)
    assert "CachedMultipleNegativesRankingLoss (pieces of 3)" in printed and "Matryoshka over [32, 16]" in printed
    rates = [e["learning_rate"] for e in json.loads((out2 / "training_log.json").read_text()) if "learning_rate" in e]
    assert rates[0] < rates[1] and max(rates) <= 1e-4  # warming up over half the 4 steps (no time budget), then decaying
    assert json.loads((out2 / "embedding_results.json").read_text())["training_sets"]["pairs"]["shape"] == "triplets"

    # A scored file on a 0-5 scale reads with --max_score 5 (scores become 0-1).
    from small_encoders.data_prep.pairs import load_pair_files

    scored, shape = load_pair_files(str(root / "scored.tsv"), max_score=5)
    assert shape == "scored" and max(scored["score"]) == 1.0 and min(scored["score"]) == 0.0
    with pytest.raises(UserError, match="--max_score 5"):
        load_pair_files(str(root / "scored.tsv"))


def bag_of_words_embedder():
    """A SentenceTransformer whose vector is the mean of one-hot word vectors: similar = same words, exactly."""
    import tempfile
    from pathlib import Path

    import torch
    from conftest import tiny_vocab
    from sentence_transformers import SentenceTransformer

    from small_encoders.data_prep.tokenizer import wordpiece_from_vocab
    from small_encoders.recipes.train_embeddings import st_module

    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
        tokenizer = wordpiece_from_vocab(Path(scratch) / "vocab.txt")
    static = st_module("modules").StaticEmbedding(tokenizer, embedding_weights=torch.eye(len(tokenizer)))
    return SentenceTransformer(modules=[static], device="cpu")


def test_the_three_evaluations_give_the_known_answer_on_fixtures_built_for_it(tmp_path):
    from small_encoders.eval.embeddings import measure, qnli_retrieval, task_data

    glue = write_glue(tmp_path)
    data = task_data(str(glue))
    queries, corpus, relevant = data["qnli"]
    assert len(queries) == 10 and len(corpus) == 10 + 2  # every answer sentence, and the two others once each
    assert all(len(found) == 1 for found in relevant.values())
    results = measure(bag_of_words_embedder(), data)
    assert results["stsb"]["spearman"] == pytest.approx(100) and results["stsb"]["pairs"] == 10
    assert results["mrpc"]["ap"] == pytest.approx(100) and results["mrpc"]["split"] == "dev"
    assert results["qnli"]["recall@1"] == pytest.approx(100) and results["qnli"]["ndcg@10"] == pytest.approx(100)

    # Flip the STS-B scores: the same embeddings now disagree with every gold score.
    sts = glue / "STS-B" / "dev.tsv"
    lines = sts.read_text().splitlines()
    sts.write_text("\n".join([lines[0]] + [line.rsplit("\t", 1)[0] + "\t" + str(5.0 - float(line.rsplit("\t", 1)[1]))
                                           for line in lines[1:]]) + "\n")
    assert measure(bag_of_words_embedder(), task_data(str(glue)))["stsb"]["spearman"] == pytest.approx(-100)

    # Questions without an entailed answer are no queries; an answer shared by two questions is one corpus entry.
    from datasets import Dataset

    dev = Dataset.from_dict({"sentence1": ["q1", "q1", "q2", "q3"], "sentence2": ["s1", "s2", "s1", "s3"],
                             "label": [0, 1, 0, 1]})
    queries, corpus, relevant = qnli_retrieval(dev)
    assert sorted(queries.values()) == ["q1", "q2"] and len(corpus) == 3
    assert relevant == {"q0": {"d0"}, "q1": {"d0"}}


def test_glue_train_sets_become_scored_pairs_with_every_mrpc_pair_labelled(tmp_path):
    """MRPC's paraphrases score 1 and its non-paraphrases 0 (CoSENT ranks them apart), RTE's entailments 1 and the rest
    0, STS-B's 0-5 scores are divided by 5; every train row is kept, and the dev split is never read."""
    from small_encoders.data_prep.pairs import glue_pairs

    glue = write_glue(tmp_path)
    (glue / "MRPC" / "dev.tsv").write_text("not a GLUE file")  # read, it would fail
    mrpc, shape = glue_pairs("mrpc", str(glue))
    assert shape == "scored" and mrpc.column_names == ["sentence1", "sentence2", "score"]
    assert mrpc["score"] == [1.0 if i % 2 == 0 else 0.0 for i in range(10)]
    assert all(row["sentence1"] == row["sentence2"] for row in mrpc if row["score"] == 1.0)
    stsb, shape = glue_pairs("stsb", str(glue))
    assert shape == "scored" and stsb["score"] == [1.0 if i % 2 == 0 else 0.0 for i in range(10)]
    (glue / "RTE").mkdir()
    (glue / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA cat sat on the mat.\tA cat sat.\t"
                                            "entailment\n1\tA cat sat on the mat.\tA dog ran.\tnot_entailment\n")
    (glue / "RTE" / "dev.tsv").write_text("not a GLUE file")
    rte, shape = glue_pairs("rte", str(glue))
    assert shape == "scored" and rte["score"] == [1.0, 0.0] and rte["sentence2"] == ["A cat sat.", "A dog ran."]
    with pytest.raises(UserError, match="no pairs are made from cola; choose mrpc, stsb, rte"):
        glue_pairs("cola", str(glue))


def test_raw_text_pairs_are_made_four_ways_and_never_repeat(tmp_path):
    from small_encoders.data_prep.pairs import raw_text_pairs, sentences_of

    text = tmp_path / "articles.txt"
    text.write_text("\n\n".join(
        f"Article {i}\nThe first sentence of article {i} is here. The second one of article {i} follows it. "
        f"A third sentence of article {i} ends it.\nHeading.\nAnother paragraph of article {i} with words." for i in range(8)))
    titles, line = raw_text_pairs(str(text), "title", "paragraph", max_pairs=100)
    assert set(titles["anchor"]) == {f"Article {i}" for i in range(8)} and "title pairs from 8 of 8 documents" in line
    assert all("Heading." != p for p in titles["positive"])  # a short heading line is no passage
    following, _ = raw_text_pairs(str(text), "next", "paragraph", max_pairs=100)
    for anchor, positive in zip(following["anchor"], following["positive"]):
        number = anchor.split("article ")[1].split()[0]
        assert f"article {number}" in positive  # the next sentence of the same document
    spans, _ = raw_text_pairs(str(text), "spans", "paragraph", max_pairs=100)
    pairs = list(zip(spans["anchor"], spans["positive"]))
    assert len(pairs) == len(set(pairs)) and all(a != p for a, p in pairs)
    assert all(a.split("article ")[1][0] == p.split("article ")[1][0] for a, p in pairs)  # both from one document
    same, line = raw_text_pairs(str(text), "same", "paragraph", max_pairs=100)
    sentences = {s for t in text.read_text().split("\n\n") for s in sentences_of(t)}
    assert list(same["anchor"]) == list(same["positive"]) and set(same["anchor"]) == sentences  # 4 of each of 8
    assert len(same) == 32 and "same pairs from 8 of 8 documents" in line


def test_training_dropout_is_set_on_every_layer_and_the_saved_model_keeps_its_own(world, tmp_path):
    import torch

    from small_encoders.recipes.train_embeddings import build_embedder, dropouts, set_training_dropout

    _, model, _ = world  # ours, saved with no dropout
    embedder = build_embedder(model, 16)
    places = dropouts(embedder)
    assert {name for _, name in places} == {"p", "dropout_p"}  # the layers and the attention's number
    assert max(getattr(m, name) for m, name in places) == 0.0
    assert set_training_dropout(embedder, None) == 0.0  # null: the model's own

    def twice(training):
        embedder.train(training)
        features = embedder.tokenize(["the ship saw the sea"])
        with torch.no_grad():
            return [embedder(dict(features))["sentence_embedding"] for _ in range(2)]

    assert torch.equal(*twice(True))  # no dropout: one sentence gives one vector (the same pair kind would teach nothing)
    assert set_training_dropout(embedder, 0.1) == 0.1
    assert all(getattr(m, name) == 0.1 for m, name in places)
    assert not torch.equal(*twice(True)) and torch.equal(*twice(False))  # two views in training, one in use
    embedder.save(str(tmp_path / "saved"))
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["hidden_dropout_prob"] == 0.0


def test_the_embedding_recipe_is_typed_and_its_help_lists_every_setting(capsys):
    from small_encoders.recipes.embedding_recipe import EmbeddingRecipe, ingredient_recipes, load_embedding_recipe
    from small_encoders.recipes.train_embeddings import main

    recipe = load_embedding_recipe("embed-no-stsb", {"model_name_or_path": "m", "learning_rate": "3e-4"})
    assert recipe.glue_pairs == ["mrpc", "rte"] and recipe.learning_rate == 3e-4 and recipe.raw_pairs == "title"
    assert recipe.time_budget == 30 and list(recipe.ingredients) == ["retrieval", "next", "similarity"]
    # --max_steps on the command line trains fixed steps: the recipe's time budget is set aside, and says so.
    capsys.readouterr()
    assert load_embedding_recipe("embed", {"model_name_or_path": "m", "max_steps": 3}).time_budget is None
    assert "the recipe's 30-minute time budget is set aside" in capsys.readouterr().out
    with pytest.raises(UserError, match="--max_steps 3 and --time_budget 5 both given"):
        load_embedding_recipe("embed", {"model_name_or_path": "m", "max_steps": 3, "time_budget": 5})
    soup = ingredient_recipes(load_embedding_recipe("embed", {"model_name_or_path": "m", "ingredients": {
        "retrieval": {"glue_pairs": [], "max_steps": 7}, "similarity": {"raw_text_files": None}}}))
    assert (soup["retrieval"].time_budget, soup["retrieval"].max_steps) == (None, 7)  # its own steps, no budget
    assert soup["similarity"].time_budget == 15  # half of 30 minutes
    assert main(["--recipe", "embed", "--help"]) == 0
    shown = capsys.readouterr().out
    for name in EmbeddingRecipe.fields():
        assert f"--{name} " in shown, name
    assert "embed-raw" in shown and "--glue_pairs (list; embed: [mrpc, stsb])" in shown
    with pytest.raises(UserError, match="did you mean --raw_pairs"):
        load_embedding_recipe("embed", {"raw_pair": "title", "model_name_or_path": "m"})


def test_a_hub_dataset_of_pairs_reads_like_a_file(tmp_path):
    """The Hub path through `datasets.load_dataset`, here on a local dataset folder (no hub is reachable)."""
    from small_encoders.data_prep.pairs import load_hub_pairs

    folder = tmp_path / "my-pairs"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"sentence1": a, "sentence2": b}) + "\n"
                                                for a, b in zip(SENTENCES, SENTENCES[1:])))
    pairs, shape = load_hub_pairs(str(folder))
    assert shape == "pairs" and pairs.column_names == ["anchor", "positive"] and len(pairs) == len(SENTENCES) - 1
    with pytest.raises(UserError, match="could not load the Hub dataset"):
        load_hub_pairs(str(tmp_path / "nosuch"))


class Killed(Exception):
    pass


@pytest.mark.slow
def test_a_killed_embedding_run_resumes_from_its_last_checkpoint(world, tmp_path, capsys, monkeypatch):
    from small_encoders.recipes import train_embeddings

    root, model, _ = world
    args = ["--recipe", "embed", "--smoke", "--ingredients", "null", "--model_name_or_path", str(model),
            "--output_dir", str(tmp_path / "run"),
            "--max_steps", "6", "--evaluate", "false", "--report_to", "none"]
    make = train_embeddings.make_trainer_class

    def killed_after_the_first_checkpoint():
        base = make()

        class Dies(base):
            def _save_checkpoint(self, *a, **k):
                super()._save_checkpoint(*a, **k)
                raise Killed

        return Dies

    monkeypatch.setattr(train_embeddings, "make_trainer_class", killed_after_the_first_checkpoint)
    with pytest.raises(Killed):
        train_embeddings.main(args)
    assert (tmp_path / "run" / "checkpoint-2").is_dir() and not (tmp_path / "run" / "embedding_results.json").exists()
    assert capsys.readouterr().out.count("'loss'") == 2  # steps 1 and 2 before the kill
    monkeypatch.setattr(train_embeddings, "make_trainer_class", make)
    printed = train(args + ["--resume_from_checkpoint", "latest"], capsys)
    result = json.loads((tmp_path / "run" / "embedding_results.json").read_text())
    assert result["steps"] == 6 and "trained         6 steps" in printed
    steps = [entry["step"] for entry in json.loads((tmp_path / "run" / "training_log.json").read_text()) if "loss" in entry]
    assert steps == [1, 2, 4, 6]  # one history across the kill
    assert printed.count("'loss'") == 2  # and the resumed run trained only the steps after its checkpoint


@pytest.mark.slow
def test_a_soup_trains_each_ingredient_apart_and_averages_their_weights_and_resumes_per_ingredient(world, tmp_path, capsys):
    """--ingredients: two runs from the start with their own data, the model the mean of their weights; a finished
    ingredient is not trained again when the soup is run again; what an ingredient may not change is one error."""
    import torch
    import yaml
    from safetensors.torch import load_file

    from small_encoders.recipes.embedding_recipe import ingredient_recipes, load_embedding_recipe

    root, model, glue = world
    out = tmp_path / "soup"
    args = ["--recipe", "embed", "--smoke", "--model_name_or_path", str(model), "--output_dir", str(out),
            "--glue_dir", str(glue), "--report_to", "none", "--max_eval_pairs", "10",
            "--ingredients", "{retrieval: {glue_pairs: []}, similarity: {raw_text_files: null, train_files: '%s', max_score: 5}}"
            % (root / "scored.tsv")]
    printed = train(args, capsys)
    assert "model soup      2 ingredients" in printed and "the weights of 2 ingredients averaged" in printed
    result = json.loads((out / "embedding_results.json").read_text())
    assert set(result["ingredients"]) == {"retrieval", "similarity"}
    assert set(result["training_sets"]) == {"retrieval/raw-text", "similarity/pairs"}
    assert result["training_sets"]["similarity/pairs"]["shape"] == "scored"
    assert result["steps"] == 8 and "evaluation" in result
    retrieval = load_file(out / "ingredients" / "retrieval" / "model.safetensors")
    similarity = load_file(out / "ingredients" / "similarity" / "model.safetensors")
    soup = load_file(out / "model.safetensors")
    assert set(soup) == set(retrieval)
    moved = [k for k in soup if soup[k].is_floating_point() and not torch.equal(retrieval[k], similarity[k])]
    assert moved  # the two ingredients learned different things ...
    for key in moved:  # ... and the soup is their mean
        assert torch.allclose(soup[key], (retrieval[key] + similarity[key]) / 2, atol=1e-6), key
    card = (out / "README.md").read_text()
    assert "model soup" in card and "| retrieval |" in card and "| similarity |" in card

    # Run again: both ingredients are finished, so none is trained; the soup is made again from them.
    stamp = (out / "ingredients" / "retrieval" / "model.safetensors").stat().st_mtime_ns
    printed = train(args + ["--evaluate", "false"], capsys)
    assert printed.count("already trained") == 2 and "embedding run" not in printed
    assert (out / "ingredients" / "retrieval" / "model.safetensors").stat().st_mtime_ns == stamp
    assert torch.equal(load_file(out / "model.safetensors")[moved[0]], soup[moved[0]])

    # Weighted (`weight: N` parts each): the same finished ingredients, three parts retrieval to one of similarity.
    weighted = args[:-1] + [args[-1].replace("{glue_pairs: []}", "{glue_pairs: [], weight: 3}")]
    printed = train(weighted + ["--evaluate", "false"], capsys)
    assert printed.count("already trained") == 2 and "retrieval (75%), similarity (25%)" in printed
    remade = load_file(out / "model.safetensors")
    for key in moved:
        assert torch.allclose(remade[key], 0.75 * retrieval[key] + 0.25 * similarity[key], atol=1e-6), key
    assert json.loads((out / "embedding_results.json").read_text())["ingredients"]["retrieval"]["weight"] == 0.75

    # A finished ingredient copied into another soup's folder is kept there too (its path is not what it trained).
    import shutil

    other = tmp_path / "other"
    shutil.copytree(out / "ingredients" / "retrieval", other / "ingredients" / "retrieval")
    changed = [a if a != str(out) else str(other) for a in args]
    changed[-1] = changed[-1].replace("max_score: 5}", "max_score: 5, learning_rate: 5.0e-5}")
    printed = train(changed + ["--evaluate", "false"], capsys)
    assert "retrieval: already trained" in printed and printed.count("embedding run") == 1  # similarity's own

    for ingredients, message in [("{only: {glue_pairs: []}}", "two or more runs"),
                                 ("{a: {pooling: cls}, b: {}}", "a sets pooling, which an ingredient cannot change"),
                                 ("{a: {}, b: [1]}", "b must be a mapping"),
                                 ("{a: {}, b: {learning_rate: -1}}", "--ingredients: b: --learning_rate"),
                                 ("{a: {weight: 0}, b: {}}", "a's weight must be a positive number")]:
        with pytest.raises(UserError, match=message):
            recipe = load_embedding_recipe("embed", {"model_name_or_path": str(model), "ingredients": yaml.safe_load(ingredients)})
            ingredient_recipes(recipe)


@pytest.mark.slow
def test_a_soup_killed_in_its_second_ingredient_resumes_there(world, tmp_path, capsys, monkeypatch):
    from small_encoders.recipes import train_embeddings

    root, model, _ = world
    out = tmp_path / "soup"
    args = ["--recipe", "embed", "--smoke", "--model_name_or_path", str(model), "--output_dir", str(out),
            "--max_steps", "6", "--evaluate", "false", "--report_to", "none"]  # the smoke soup: spans, then next
    make, calls = train_embeddings.make_trainer_class, []

    def killed_in_the_second_ingredient():
        base = make()
        calls.append(1)

        class Dies(base):
            def _save_checkpoint(self, *a, **k):
                super()._save_checkpoint(*a, **k)
                if len(calls) == 2:
                    raise Killed

        return Dies

    monkeypatch.setattr(train_embeddings, "make_trainer_class", killed_in_the_second_ingredient)
    with pytest.raises(Killed):
        train_embeddings.main(args)
    second = out / "ingredients" / "next"
    assert (out / "ingredients" / "spans" / "embedding_results.json").is_file()
    assert (second / "checkpoint-2").is_dir() and not (second / "embedding_results.json").exists()
    assert not (out / "model.safetensors").exists()
    capsys.readouterr()
    monkeypatch.setattr(train_embeddings, "make_trainer_class", make)
    printed = train(args + ["--resume_from_checkpoint", "latest"], capsys)
    assert "spans: already trained (6 steps" in printed and printed.count("'loss'") == 2  # next's steps 4 and 6 only
    steps = [entry["step"] for entry in json.loads((second / "training_log.json").read_text()) if "loss" in entry]
    assert steps == [1, 2, 4, 6]
    assert json.loads((out / "embedding_results.json").read_text())["steps"] == 12 and (out / "model.safetensors").is_file()
