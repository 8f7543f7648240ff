"""eval/: GLUE readers and metrics, run_glue end to end, perplexity, the MMLU probe, embeddings."""

import json

import numpy as np
import pytest
import torch
from conftest import shared_data, tiny_config
from scipy.stats import pearsonr

from small_encoders.core.errors import UserError
from small_encoders.eval.glue_data import load_glue, read_tsv
from small_encoders.eval.metrics import glue_metric, offline_glue_metric
from small_encoders.modeling import SmallEncoderForMaskedLM


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    folder = tmp_path / "tiny-model"
    SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tiny_tokenizer), max_position_embeddings=128)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def test_metrics_on_known_predictions():
    predictions, references = [1, 0, 1, 1, 0, 1, 0, 0], [1, 0, 0, 1, 0, 1, 1, 0]
    assert offline_glue_metric("sst2", predictions, references) == {"accuracy": 0.75}
    mrpc = offline_glue_metric("mrpc", predictions, references)
    assert mrpc["accuracy"] == 0.75 and mrpc["f1"] == pytest.approx(0.75)  # tp 3, fp 1, fn 1
    assert offline_glue_metric("cola", predictions, references)["matthews_correlation"] == pytest.approx(0.5)
    scores, gold = [0.1, 2.5, 3.9, 4.2, 1.0], [0.0, 2.0, 4.5, 4.0, 1.5]
    stsb = offline_glue_metric("stsb", scores, gold)
    assert stsb["pearson"] == pytest.approx(pearsonr(gold, scores)[0]) and stsb["spearmanr"] == pytest.approx(0.9)
    compute, source = glue_metric("mrpc")
    result = compute(np.array(predictions), np.array(references))
    assert result["accuracy"] == 0.75 and result["f1"] == pytest.approx(0.75), source  # evaluate's or its fallback


@pytest.mark.parametrize(
    "task, split, rows, labels",
    [("sst2", "validation", 872, {0, 1}), ("cola", "validation", 1043, {0, 1}), ("mrpc", "validation", 408, {0, 1}),
     ("stsb", "validation", 1500, None), ("rte", "validation", 277, {0, 1}), ("wnli", "validation", 71, {0, 1}),
     ("cola", "train", 8551, {0, 1}), ("rte", "train", 2490, {0, 1})],
)
def test_glue_readers_parse_the_real_files(task, split, rows, labels):
    data = load_glue(task, shared_data("glue"), splits=[split])[split]
    assert len(data) == rows
    if labels is None:
        assert 0.0 <= min(data["label"]) and max(data["label"]) <= 5.0
    else:
        assert set(data["label"]) == labels
    assert all(s for s in data["sentence1"])


def test_glue_reader_details():
    mrpc = load_glue("mrpc", shared_data("glue"), splits=["validation"])["validation"]
    assert mrpc[0]["sentence2"].startswith('"The foodservice pie business')  # quotes are text, BOM stripped
    rte = load_glue("rte", shared_data("glue"), splits=["validation"])["validation"]
    assert rte[0]["label"] == 1  # not_entailment
    qnli = load_glue("qnli", shared_data("glue"), splits=["validation"])["validation"]
    assert len(qnli) == 5463 and set(qnli["label"]) == {0, 1}


@pytest.mark.parametrize(
    "task, content, message",
    [
        ("rte", "index\tsentence1\tlabel\n0\ta\tentailment\n", "missing column"),
        ("rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", "unknown label 'maybe'"),
        ("sst2", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n", "missing column"),
        ("cola", "gj04\t1\n", "fields"),
        ("stsb", "sentence1\tsentence2\tscore\na\tb\thigh\n", "not a number"),
    ],
)
def test_bad_glue_files_fail_clearly(tmp_path, task, content, message):
    path = tmp_path / "dev.tsv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_tsv(task, path)


@pytest.mark.slow
def test_run_glue_seeds_lora_and_random_init(tmp_path, tiny_model_dir):
    from small_encoders.eval.run_glue import main

    glue = shared_data("glue")
    common = ["--model_name_or_path", str(tiny_model_dir), "--data_dir", str(glue), "--task_name", "sst2",
              "--max_train_samples", "64", "--max_eval_samples", "48", "--num_train_epochs", "1",
              "--per_device_train_batch_size", "16", "--max_seq_length", "32"]
    assert main(common + ["--output_dir", str(tmp_path / "full"), "--seeds", "1,2"]) == 0
    result = json.loads((tmp_path / "full" / "sst2.json").read_text())
    accuracies = [result["per_seed"][s]["accuracy"] for s in ("1", "2")]
    assert result["summary"]["accuracy"]["median"] == pytest.approx(float(np.median(accuracies)))
    assert result["summary"]["accuracy"]["spread"] == pytest.approx(max(accuracies) - min(accuracies))
    assert result["eval_examples"] == {"validation": 48} and result["train_examples"] == 64
    assert main(common + ["--output_dir", str(tmp_path / "lora"), "--lora_r", "4"]) == 0
    assert json.loads((tmp_path / "lora" / "sst2.json").read_text())["lora_r"] == 4
    assert main(common + ["--output_dir", str(tmp_path / "random"), "--random_init"]) == 0
    assert json.loads((tmp_path / "random" / "sst2.json").read_text())["random_init"] is True


@pytest.mark.slow
def test_a_learning_rate_sweep_keeps_the_best_rate_of_the_first_seed_for_the_others(tmp_path, tiny_model_dir):
    from small_encoders.eval.run_glue import main

    glue = shared_data("glue")
    common = ["--model_name_or_path", str(tiny_model_dir), "--data_dir", str(glue), "--task_name", "stsb",
              "--max_train_samples", "64", "--max_eval_samples", "48", "--num_train_epochs", "2",
              "--per_device_train_batch_size", "16", "--max_seq_length", "32", "--seeds", "1,2"]
    assert main(common + ["--output_dir", str(tmp_path / "sweep"), "--learning_rate", "1e-5,3e-3"]) == 0
    result = json.loads((tmp_path / "sweep" / "stsb.json").read_text())
    sweep = result["learning_rate_sweep"]
    tried = {rate: json.loads((tmp_path / "sweep" / f"stsb-seed1-lr{rate:g}" / "seed_result.json").read_text())["metrics"]
             for rate in (1e-5, 3e-3)}
    scores = {rate: (m["pearson"] + m["spearmanr"]) / 2 for rate, m in tried.items()}
    assert sweep["rates"] == [1e-5, 3e-3] and sweep["seed"] == 1
    assert sweep["scores"] == pytest.approx({"1e-05": scores[1e-5], "0.003": scores[3e-3]})
    assert scores[1e-5] != scores[3e-3]  # the two rates train differently, so the choice is a real one
    chosen = max(scores, key=scores.get)
    assert sweep["chosen"] == chosen and result["hyperparameters"]["learning_rate"] == chosen
    assert result["per_seed"]["1"] == tried[chosen]
    # The other seed trained at the chosen rate: its figures are what one run at that rate gives.
    assert main(common + ["--output_dir", str(tmp_path / "one"), "--learning_rate", f"{chosen:g}"]) == 0
    alone = json.loads((tmp_path / "one" / "stsb.json").read_text())
    assert alone["per_seed"] == result["per_seed"] and "learning_rate_sweep" not in alone


def test_run_glue_all_writes_a_summary(tmp_path, tiny_model_dir):
    from small_encoders.eval.run_glue import main

    glue = tmp_path / "glue"
    (glue / "WNLI").mkdir(parents=True)
    source = shared_data("glue", "WNLI")
    for name in ("train.tsv", "dev.tsv"):
        (glue / "WNLI" / name).write_text((source / name).read_text())
    assert main(["--model_name_or_path", str(tiny_model_dir), "--data_dir", str(glue), "--task_name", "all",
                 "--output_dir", str(tmp_path / "out"), "--num_train_epochs", "1", "--max_seq_length", "32"]) == 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| wnli | accuracy |" in summary


def test_group_by_length_trains_on_less_padding(tmp_path, tiny_model_dir, tiny_tokenizer):
    """The cpu protocol's length-grouped batches: the same examples, fewer padded tokens than random batches."""
    import random

    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from small_encoders.eval.run_glue import sampling_strategy

    rng = random.Random(0)
    rows = [{"input_ids": [2] + [rng.randrange(5, len(tiny_tokenizer)) for _ in range(rng.randrange(2, 60))] + [3],
             "label": rng.randrange(2)} for _ in range(400)]
    data = Dataset.from_list(rows)
    padded = {}
    for grouped in (False, True):
        args = TrainingArguments(output_dir=str(tmp_path / str(grouped)), per_device_train_batch_size=8, seed=1,
                                 report_to="none", use_cpu=True, **sampling_strategy(grouped))
        trainer = Trainer(model=SmallEncoderForMaskedLM.from_pretrained(tiny_model_dir), args=args, train_dataset=data,
                          data_collator=DataCollatorWithPadding(tiny_tokenizer))
        batches = list(trainer.get_train_dataloader())
        assert sum(len(b["input_ids"]) for b in batches) == len(rows)
        padded[grouped] = sum(b["input_ids"].numel() for b in batches)
    assert padded[True] < 0.8 * padded[False]


def test_run_glue_figures_do_not_depend_on_evaluation_padding(tmp_path, tiny_model_dir):
    """Evaluation runs longest first in padded batches; one example at a time (no padding) gives the same metrics
    (STS-B: continuous predictions, so any change in a score would show)."""
    from small_encoders.eval.run_glue import main

    common = ["--model_name_or_path", str(tiny_model_dir), "--data_dir", str(shared_data("glue")), "--task_name", "stsb",
              "--max_train_samples", "32", "--max_eval_samples", "40", "--num_train_epochs", "1", "--seeds", "1",
              "--per_device_train_batch_size", "8", "--max_seq_length", "64", "--group_by_length"]
    figures = {}
    for batch in ("1", "40"):
        assert main(common + ["--output_dir", str(tmp_path / batch), "--per_device_eval_batch_size", batch]) == 0
        figures[batch] = json.loads((tmp_path / batch / "stsb.json").read_text())
    assert figures["40"]["hyperparameters"]["group_by_length"] is True
    assert figures["1"]["per_seed"]["1"] == pytest.approx(figures["40"]["per_seed"]["1"], abs=1e-6)


def test_run_glue_unknown_task_is_one_line(tmp_path, tiny_model_dir, capsys):
    from small_encoders.eval.run_glue import main

    assert main(["--model_name_or_path", str(tiny_model_dir), "--task_name", "sts", "--output_dir", str(tmp_path)]) == 1
    assert "unknown GLUE task 'sts'" in capsys.readouterr().err


def test_perplexity_is_repeatable_to_the_digit(tmp_path, tiny_model_dir, capsys):
    from small_encoders.eval.perplexity import main

    text = tmp_path / "held.txt"
    text.write_text("the captain saw the whale on the sea and the ship was old\n" * 60)
    args = ["--model_name_or_path", str(tiny_model_dir), "--files", str(text), "--block_size", "32", "--mlm_probability", "0.3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and "scored tokens" in first
    assert main(args + ["--seed", "7"]) == 0
    assert capsys.readouterr().out != first
    assert main(args + ["--pseudo", "--max_blocks", "2", "--output_json", str(tmp_path / "p.json")]) == 0
    pseudo = json.loads((tmp_path / "p.json").read_text())
    assert pseudo["tokens_scored"] == 2 * 28 and pseudo["perplexity"] > 1  # 30 inner tokens less 2 separators per block


def test_mmlu_reader_rejects_bad_rows(tmp_path):
    from small_encoders.eval.mmlu_probe import read_mmlu_folder

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x_val.csv").write_text("q,1,2,3,A\n")
    with pytest.raises(UserError, match="5 columns"):
        read_mmlu_folder(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x_val.csv").write_text("q,1,2,3,4,E\n")
    with pytest.raises(UserError, match="answer 'E' is not one of A, B, C, D"):
        read_mmlu_folder(tmp_path / "b")
    real = read_mmlu_folder(shared_data("mmlu", "val"))
    assert sum(len(rows) for rows in real.values()) == 1529 and len(real) == 57


def test_mmlu_scorer_picks_the_planted_answer(tiny_tokenizer):
    from small_encoders.eval.mmlu_probe import (
        OptionScorer,
        format_question,
        run_probe,
        wilson_interval,
    )

    torch.manual_seed(0)
    model = SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tiny_tokenizer), max_position_embeddings=128))
    question = "what did the captain see on the sea ?"
    context = format_question(question, ["ship", "whale", "house", "night"])
    ids = tiny_tokenizer(context + " whale")["input_ids"]
    target = len(ids) - 2  # the option token, before [SEP]
    inputs = torch.tensor([ids] * 8)
    inputs[:, target] = tiny_tokenizer.mask_token_id
    labels = torch.full_like(inputs, -100)
    labels[:, target] = tiny_tokenizer.convert_tokens_to_ids("whale")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):  # teach the tiny model that the answer here is "whale"
        loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    scorer = OptionScorer(model, tiny_tokenizer)
    questions = {"seafaring": [(question, ["ship", "whale", "house", "night"], 1)]}
    assert run_probe(scorer, questions) == {"seafaring": (1, 1)}
    low, high = wilson_interval(30, 100)
    assert (round(low, 4), round(high, 4)) == (0.2189, 0.3959)  # Wilson score interval for 30/100


def test_sts_probe_and_sentence_transformers_files(tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    from small_encoders.data_prep.tokenizer import load_tokenizer
    from small_encoders.eval.embeddings import add_sentence_transformers_files, sts_zero_shot

    add_sentence_transformers_files(tiny_model_dir, 64)
    assert (tiny_model_dir / "modules.json").exists()
    encoder = SentenceTransformer(str(tiny_model_dir), trust_remote_code=True, device="cpu")
    vectors = encoder.encode(["the captain saw the whale", "the old house"])
    model = AutoModel.from_pretrained(tiny_model_dir, trust_remote_code=True).eval()
    tokenizer = load_tokenizer(tiny_model_dir)
    from small_encoders.eval.embeddings import mean_pooled

    ours = mean_pooled(model, tokenizer, ["the captain saw the whale", "the old house"]).numpy()
    assert np.allclose(vectors, ours, atol=1e-5)  # SentenceTransformer = our mean pooling
    spearman, pairs = sts_zero_shot(model, tokenizer, shared_data("glue"))
    assert pairs == 1500 and -100 <= spearman <= 100


def test_bad_glue_and_mmlu_files_exit_1_without_results(tmp_path, tiny_model_dir, capsys):
    from small_encoders.eval.mmlu_probe import main as mmlu_main
    from small_encoders.eval.run_glue import main as glue_main

    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    (rte / "train.tsv").write_text("sentence\tlabel\nit is good .\t1\n")  # SST-2's file under RTE: the wrong task
    (rte / "dev.tsv").write_text("sentence\tlabel\nit is bad .\t0\n")
    out = tmp_path / "out"
    assert glue_main(["--model_name_or_path", str(tiny_model_dir), "--task_name", "rte", "--data_dir", str(tmp_path / "glue"),
                      "--output_dir", str(out)]) == 1
    assert "missing column(s)" in capsys.readouterr().err and not (out / "rte.json").exists()
    (tmp_path / "mmlu" / "val").mkdir(parents=True)
    (tmp_path / "mmlu" / "val" / "x_val.csv").write_text("q,1,2,3,4,F\n")
    assert mmlu_main(["--model_name_or_path", str(tiny_model_dir), "--data_dir", str(tmp_path / "mmlu"),
                      "--output_json", str(tmp_path / "m.json")]) == 1
    assert "not one of A, B, C, D" in capsys.readouterr().err and not (tmp_path / "m.json").exists()


def test_run_glue_caps_the_sequence_length_at_what_the_model_reads(tmp_path, tiny_tokenizer, capsys):
    """A RoBERTa trained on 32-token blocks (34 positions) and RTE's long pairs: capped with one line, no IndexError."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    from small_encoders.eval.run_glue import main

    folder = tmp_path / "short-roberta"
    RobertaForMaskedLM(RobertaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=34,
                                     pad_token_id=tiny_tokenizer.pad_token_id)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)  # model_max_length unset: the positions are the limit
    assert main(["--model_name_or_path", str(folder), "--data_dir", str(shared_data("glue")), "--task_name", "rte",
                 "--max_train_samples", "16", "--max_eval_samples", "16", "--num_train_epochs", "1",
                 "--output_dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "--max_seq_length 128 is longer than" in out and "using 33" in out  # positions 1..33 (pad id 0)
    assert json.loads((tmp_path / "out" / "rte.json").read_text())["hyperparameters"]["max_seq_length"] == 33


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("run_glue", ["--learning_rate", "-1"], "error: --learning_rate must be a positive number, got '-1'"),
        ("run_glue", ["--learning_rate", "1e-4,x"], "error: --learning_rate must be a positive number, got 'x'"),
        ("run_glue", ["--learning_rate", "1e-4,1e-4"], "error: --learning_rate repeats a rate: '1e-4,1e-4'"),
        ("run_glue", ["--learning_rate", "1e-4,1e-3", "--save_model", "out"], "error: --save_model keeps one fine-tuned model"),
        ("run_glue", ["--num_train_epochs", "0"], "error: argument --num_train_epochs: must be between 0.001 and 1,000, got '0'"),
        ("run_glue", ["--per_device_train_batch_size", "0"], "error: argument --per_device_train_batch_size: must be between 1 and 65,536"),
        ("run_glue", ["--per_device_train_batch_size", "abc"], "error: argument --per_device_train_batch_size: must be an integer between 1 and 65,536, got 'abc'"),
        ("run_glue", ["--seeds", "1,x"], "error: --seeds must be comma-separated integers"),
        ("run_glue", ["--max_seq_length", "-5"], "error: argument --max_seq_length: must be between 2 and 1,048,576"),
        ("run_glue", ["--warmup_ratio", "1.5"], "error: argument --warmup_ratio: must be between 0 and 0.999"),
        ("perplexity", ["--mlm_probability", "1.2"], "error: argument --mlm_probability: must be between 0.001 and 0.999"),
        ("perplexity", ["--batch_size", "0"], "error: argument --batch_size: must be between 1 and 65,536"),
        ("mmlu_probe", ["--k_shot", "-1"], "error: argument --k_shot: must be between 0 and 64"),
    ],
)
def test_bad_numbers_end_in_one_line_naming_the_flag(script, args, message, tiny_model_dir, capsys):
    import importlib

    main = importlib.import_module(f"small_encoders.eval.{script}").main
    common = ["--model_name_or_path", str(tiny_model_dir)] + (["--task_name", "sst2"] if script == "run_glue" else [])
    try:
        code = main(common + args)
    except SystemExit as exit_:  # argparse's own type errors exit 2 after their one line
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(err) == 1 and err[0].startswith(message), err


def test_a_missing_model_names_the_scripts_own_flag(tmp_path, capsys):
    from small_encoders.eval.run_glue import main

    assert main(["--model_name_or_path", str(tmp_path / "nope"), "--task_name", "sst2"]) == 1
    err = capsys.readouterr().err
    assert "--model_name_or_path" in err and "--tokenizer_name" not in err


def test_a_bf16_saved_model_is_fine_tuned_and_measured_in_float32(tmp_path, tiny_tokenizer):
    """transformers 5 loads a checkpoint in its saved dtype: a GPU run's bf16 folder would be fine-tuned in bf16 (no
    float32 master weights; emulated, 16x slower, on an AVX2 CPU). The model and its random-init floor get float32."""
    from small_encoders.eval.run_glue import load_model, parse_args
    from small_encoders.eval.suite import load_for_zero_shot

    folder = tmp_path / "bf16-model"
    SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tiny_tokenizer))).to(torch.bfloat16).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    for random_init in (False, True):
        args = parse_args(["--model_name_or_path", str(folder), "--task_name", "sst2", "--output_dir", str(tmp_path / "o")]
                          + (["--random_init"] if random_init else []))
        assert {p.dtype for p in load_model(args, "sst2", seed=1).parameters()} == {torch.float32}
        assert {p.dtype for p in load_for_zero_shot(folder, random_init, False).parameters()} == {torch.float32}
