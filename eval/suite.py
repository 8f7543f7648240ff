"""One evaluation suite, one protocol per name, every figure against the random-init floor.

    python eval/suite.py --model_name_or_path runs/tuned-5m --data_dir ../shared/data --output_dir out/suite
    python eval/suite.py --model_name_or_path DIR_OR_HUB_ID --data_dir ../shared/data --output_dir OUT --protocol full

For the model and for the same architecture with random weights (the floor: what the architecture gets
with no pretraining at all, under the same protocol) it measures:
- GLUE: every task whose train and dev files are under DATA_DIR/glue, fine-tuned with eval/run_glue.py's
  code, median of 3 seeds; the GLUE average is the mean task score over the tasks present, WNLI left out
  (its dev set is adversarial to training: BERT's paper and most since report it apart).
- held-out MLM perplexity at the model's own masking rate (from its recipe.yaml; 15% for stock
  checkpoints), masks fixed by seed 0, on the run's validation files or DATA_DIR/wikitext-2/valid.txt;
- STS-B dev zero-shot (mean-pooled embeddings, cosine, Spearman x100);
- MMLU val, 0-shot, options scored by masked-LM pseudo-log-likelihood.

A model continued from another (recipes/pretrain_mlm.py --init_from: its results.json names the start model) is
measured against that start model by default, in the floor's place: with its own weights, under the same protocol,
seeds and blocks, never cached; the summary reads start -> continued (docs/recipes.md#continued-pretraining).
`--baseline floor` asks for the random-init floor instead; `--baseline_model NAME_OR_FOLDER` names another start.

The floor is cached per architecture, tokenizer and protocol (~/.cache/small-encoders/floors, or
--floor_cache), so it is paid once; it records the machine it was measured on, and a floor reused on another
kind of CPU is flagged (the same seeded fine-tuning rounds differently there). OUT/results.json holds
everything; OUT/summary.md is the table (floor, pretrained, difference) that model_cards/generate.py puts into the card.

Protocols (PROTOCOLS below), suite v3:
- cpu: for a 2-core CPU (--parallel; the measured times are in docs/evaluation.md: with v2's single rate a 20M model and
  its floor took 36 minutes, and the sweep adds two thirds to the GLUE part): GLUE training sets capped at 1,000
  examples, batch 16, 3 epochs (188 steps), batches grouped by length; MMLU capped at 5 questions per subject (285);
  perplexity on at most 1,000 blocks. Capped training sets favour pretraining more than full ones do.
- full: the standard protocol for a GPU: full training sets, batch 32, 3 epochs, all 1,529 MMLU val questions.
- gpu: `full` sized for one GPU slot (about 4 minutes for a 20M model and its floor): seed 1 only (--seeds adds), SST-2
  one epoch, and every fine-tuning a parallel process (eval/glue_jobs.py), the zero-shot parts beside them.
- smoke: every part in seconds on a CPU (32 examples, one epoch), to check a pipeline: its figures mean nothing.
`--jobs N` runs any protocol's fine-tunings as N parallel processes; `--minutes M` stops them after M minutes and
reports what finished; `--skip mmlu,perplexity,stsb_zero_shot` leaves parts out.
Both sweep the fine-tuning learning rate over 1e-4, 3e-4 and 1e-3, for the model and the floor alike: seed 1 is
fine-tuned at each rate, and the rate with its best dev score trains seeds 2 and 3 (five runs per task instead of
three). One fixed rate favours one side: at suite v2's 1e-4 a 5M pretrained model scored below a higher rate on
five of six tasks, and at 1e-3 its floor scored below its best rate on four (docs/evaluation.md). Earlier
protocols, kept so that docs/results.md's earlier figures can be measured again as they were: `cpu-v2` (suite v2's cpu: learning rate 1e-4, the figures dated 2026-12-01) and
`cpu-v1` (suite v1's: 2,000 examples in random batches of 32, 10 MMLU questions per subject, 1e-4; the figures dated
before 2026-12-01).
`--seeds 1,2,3,4,5,6,7` fine-tunes more seeds than the protocol's three (the first chooses the rate); the floor is
measured with the same seeds and cached apart; summary.md also reads the protocol's own seeds alone from those runs.
"""

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
import types
from pathlib import Path

from small_encoders.core import checks
from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import RunFolder

SUITE_VERSION = 3  # v3: the learning rate swept per task (v2: the cpu protocol resized; v1's took two hours and more)
GLUE_SETTINGS = dict(learning_rate=[1e-4, 3e-4, 1e-3], max_seq_length=128, weight_decay=0.01, warmup_ratio=0.06,
                     seeds="1,2,3")
PROTOCOLS = {
    "cpu": dict(GLUE_SETTINGS, max_train_samples=1000, per_device_train_batch_size=16, group_by_length=True,
                num_train_epochs=3.0, mmlu_max_per_subject=5, perplexity_max_blocks=1000),
    "full": dict(GLUE_SETTINGS, max_train_samples=None, per_device_train_batch_size=32, group_by_length=False,
                 num_train_epochs=3.0, mmlu_max_per_subject=None, perplexity_max_blocks=None),
    # the protocols of docs/results.md's earlier figures, kept so that they can be measured again as they were
    "cpu-v1": dict(GLUE_SETTINGS, learning_rate=1e-4, max_train_samples=2000, per_device_train_batch_size=32,
                   group_by_length=False, num_train_epochs=3.0, mmlu_max_per_subject=10, perplexity_max_blocks=1000),
}
PROTOCOLS["cpu-v2"] = dict(PROTOCOLS["cpu"], learning_rate=1e-4)  # suite v2's cpu: the same but one rate
# One GPU: full training sets, SST-2 one epoch (67k examples, 2,100 steps) and the others 3, seed 1 (--seeds adds
# more), every fine-tuning a parallel job (eval/glue_jobs.py); MMLU and perplexity in full, beside them.
PROTOCOLS["gpu"] = dict(PROTOCOLS["full"], seeds="1", task_epochs={"sst2": 1.0})
# Every phase in seconds on a CPU, to check that a pipeline runs end to end: its figures mean nothing.
PROTOCOLS["smoke"] = dict(GLUE_SETTINGS, learning_rate=[1e-4, 1e-3], seeds="1", max_train_samples=32, max_eval_samples=32,
                          per_device_train_batch_size=8, group_by_length=False, num_train_epochs=1.0,
                          mmlu_max_per_subject=1, perplexity_max_blocks=20)
JOB_PROTOCOLS = ("gpu", "smoke")  # fine-tuned as parallel jobs even without --jobs
PARTS = ("perplexity", "stsb_zero_shot", "mmlu")  # what --skip can leave out (GLUE is the suite)
NOT_AVERAGED = ("wnli",)


def task_score(summary):
    """A task's one GLUE score, x100, from the medians of its metrics (eval/run_glue.py's glue_score: the GLUE
    leaderboard's mean of MRPC's F1 and accuracy, STS-B's Pearson and Spearman, MNLI's matched and mismatched)."""
    from small_encoders.eval.run_glue import glue_score

    return 100 * glue_score({name: value["median"] for name, value in summary.items()})


def glue_average(glue):
    scores = [task_score(result["summary"]) for task, result in glue.items() if task not in NOT_AVERAGED]
    return statistics.mean(scores) if scores else None


def model_facts(path):
    """(masking rate, block size, recorded validation files) from a folder this repository saved, else defaults."""
    recipe = RunFolder(path).recipe()
    return float(recipe.get("mlm_probability") or 0.15), recipe.get("block_size"), recipe.get("validation_files")


def architecture_key(config, tokenizer, protocol, seeds=None):
    """What decides the floor: the config without names and paths, the tokenizer, the protocol (with --seeds where
    they are not the protocol's own), the suite version."""
    settings = dict(PROTOCOLS[protocol], **({"seeds": seeds} if seeds else {}))
    fields = {k: v for k, v in config.to_dict().items()
              if k not in ("_name_or_path", "transformers_version", "architectures", "auto_map", "dtype", "torch_dtype",
                           "id2label", "label2id", "sparse_prediction")}
    tokenizer_text = tokenizer.backend_tokenizer.to_str() if tokenizer.is_fast else repr(sorted(tokenizer.get_vocab().items()))
    blob = json.dumps([SUITE_VERSION, protocol, settings, fields,
                       hashlib.sha256(tokenizer_text.encode()).hexdigest()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def baseline_side(baseline):
    """What the suite needs of a --baseline_model: config, tokenizer (and whether it is the measured model's), whether it
    is a discriminator. A folder is checked whole first (one error line for a damaged file)."""
    from transformers import AutoConfig

    from small_encoders.core.hub import check_source
    from small_encoders.data_prep.tokenizer import load_tokenizer

    check_source(baseline, "--baseline_model")
    try:
        config = AutoConfig.from_pretrained(str(baseline), trust_remote_code=True)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a model from --baseline_model {baseline!r}: {str(error).splitlines()[0]}") from None
    return {"config": config, "tokenizer": load_tokenizer(baseline, "--baseline_model"),
            "discriminator": is_discriminator(config)}


def glue_tasks(data_dir):
    from small_encoders.eval.glue_data import available_tasks

    return available_tasks(Path(data_dir) / "glue") if (Path(data_dir) / "glue").is_dir() else []


def run_glue_tasks(model_path, tokenizer, tasks, settings, data_dir, output_dir, random_init):
    from small_encoders.eval.glue_jobs import task_epochs
    from small_encoders.eval.run_glue import HYPERPARAMETERS, parse_args, run_task

    results = {}
    for task in tasks:
        # --resume: an interrupted suite, run again, keeps the seeds it finished (the scratch folder stays)
        args = parse_args(["--model_name_or_path", str(model_path), "--task_name", task, "--output_dir", str(output_dir),
                           "--data_dir", str(Path(data_dir) / "glue"), "--resume"])
        for key in HYPERPARAMETERS:
            if key in settings:
                setattr(args, key, settings[key])
        args.num_train_epochs = task_epochs(settings, task)
        args.random_init = random_init
        results[task] = run_task(args, task, tokenizer)
        print(f"[{'floor' if random_init else 'model'}] {task}: "
              + ", ".join(f"{k} {v['median']:.4f}" for k, v in results[task]["summary"].items()), flush=True)
    return results


DISCRIMINATORS = ("ElectraForPreTraining", "SmallEncoderForPreTraining")
NOT_A_MASKED_LM = "not applicable: a replaced-token-detection discriminator has no masked-LM head"


def is_discriminator(config):
    """True for the folder of an RTD run (ELECTRA's discriminator): no MLM head, so no perplexity or MLM scoring."""
    return bool(set(getattr(config, "architectures", None) or ()) & set(DISCRIMINATORS))


def load_for_zero_shot(model_path, random_init, discriminator):
    """The masked LM (the encoder alone for a discriminator), pretrained or with random weights (the floor)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    from small_encoders.eval.loading import float32_weights, quiet_load_reports

    auto = AutoModel if discriminator else AutoModelForMaskedLM
    with quiet_load_reports():
        if random_init:
            torch.manual_seed(0)
            config = AutoConfig.from_pretrained(model_path, trust_remote_code=True)
            return auto.from_config(config, trust_remote_code=True, **float32_weights()).eval()
        return auto.from_pretrained(model_path, trust_remote_code=True, **float32_weights()).eval()


def perplexity_measure(model, tokenizer, blocks, mlm_probability):
    """Held-out MLM perplexity with the masks fixed by seed 0, and what it was measured on."""
    from small_encoders.eval.perplexity import masked_perplexity

    started = time.time()
    value, loss, count = masked_perplexity(model, tokenizer, blocks, mlm_probability, seed=0)
    return {"perplexity": value, "loss": loss, "tokens_scored": count, "blocks": len(blocks),
            "mlm_probability": mlm_probability, "seconds": round(time.time() - started, 1)}


def zero_shot_measures(model_path, tokenizer, data_dir, settings, perplexity_blocks, mlm_probability, random_init,
                       discriminator=False, skip=()):
    """Perplexity, STS-B zero-shot and MMLU for the model or its random-init floor (a discriminator: STS-B only, and
    the other two say why not), on the GPU where there is one; `skip` leaves parts out (PARTS)."""
    import torch

    from small_encoders.eval.embeddings import sts_zero_shot
    from small_encoders.eval.mmlu_probe import (
        OptionScorer,
        read_mmlu_folder,
        run_probe,
        wilson_interval,
    )

    model = load_for_zero_shot(model_path, random_init, discriminator)
    if torch.cuda.is_available():
        model = model.to("cuda")
    if "perplexity" in skip:
        perplexity_blocks = None
    out = {}
    if discriminator:
        out["perplexity"] = out["mmlu"] = {"not_applicable": NOT_A_MASKED_LM}
    if perplexity_blocks is not None and not discriminator:
        out["perplexity"] = perplexity_measure(model, tokenizer, perplexity_blocks, mlm_probability)
    stsb = Path(data_dir) / "glue" / "STS-B" / "dev.tsv"
    if stsb.is_file() and "stsb_zero_shot" not in skip:
        started = time.time()
        spearman, pairs = sts_zero_shot(model.base_model, tokenizer, Path(data_dir) / "glue")
        out["stsb_zero_shot"] = {"spearman": spearman, "pairs": pairs, "seconds": round(time.time() - started, 1)}
    mmlu = Path(data_dir) / "mmlu" / "val"
    if mmlu.is_dir() and not discriminator and "mmlu" not in skip:
        started = time.time()
        per_subject = run_probe(OptionScorer(model, tokenizer), read_mmlu_folder(mmlu), max_questions=settings["mmlu_max_per_subject"])
        correct, total = sum(c for c, _ in per_subject.values()), sum(t for _, t in per_subject.values())
        out["mmlu"] = {"accuracy": correct / total, "ci95": list(wilson_interval(correct, total)), "correct": correct,
                       "total": total, "k_shot": 0, "seconds": round(time.time() - started, 1)}
    return out


def measure_with_jobs(common, scratch, discriminator, measure_floor, workers, deadline, record, skip, reference=None):
    """(model, floor or None, status): every GLUE fine-tuning of both sides as parallel jobs (eval/glue_jobs.py) while
    this process measures the zero-shot parts; the floor is None where it comes from the cache. `reference`: the
    baseline model's (path, tokenizer, perplexity blocks, discriminator), measured in the floor's place."""
    import threading

    from small_encoders.eval.glue_jobs import fine_tune_all

    model_path, tokenizer, data_dir, settings, tasks, blocks, mlm_probability = common
    sides = ("pretrained", "floor") if measure_floor else ("pretrained",)
    started = time.time()
    box = {}

    def fine_tune():
        try:
            box["glue"] = fine_tune_all(model_path, Path(data_dir) / "glue", settings, tasks, sides, scratch, workers,
                                        deadline, record, baseline=reference[0] if reference else None)
        except BaseException as error:  # re-raised in the calling thread
            box["error"] = error

    thread = threading.Thread(target=fine_tune, name="glue-jobs")
    thread.start()
    zero_shot = {"pretrained": zero_shot_measures(model_path, tokenizer, data_dir, settings, blocks, mlm_probability,
                                                  False, discriminator, skip)}
    if measure_floor and reference:
        path, reference_tokenizer, reference_blocks, reference_discriminator = reference
        zero_shot["floor"] = zero_shot_measures(path, reference_tokenizer, data_dir, settings, reference_blocks,
                                                mlm_probability, False, reference_discriminator, skip)
    elif measure_floor:
        zero_shot["floor"] = zero_shot_measures(model_path, tokenizer, data_dir, settings, blocks, mlm_probability,
                                                True, discriminator, skip)
    thread.join()
    if "error" in box:
        raise box["error"]
    glue, status = box["glue"]
    seconds = round(time.time() - started, 1)
    measured = {side: json.loads(json.dumps({"glue": glue[side], "glue_average": glue_average(glue[side]),
                                             **zero_shot[side], "seconds": seconds})) for side in sides}
    return measured["pretrained"], measured.get("floor"), status


def measure(model_path, tokenizer, data_dir, settings, tasks, perplexity_blocks, mlm_probability, scratch, random_init,
            discriminator=False, skip=()):
    started = time.time()
    result = {"glue": run_glue_tasks(model_path, tokenizer, tasks, settings, data_dir, scratch, random_init)}
    result["glue_average"] = glue_average(result["glue"])
    result.update(zero_shot_measures(model_path, tokenizer, data_dir, settings, perplexity_blocks, mlm_probability,
                                     random_init, discriminator, skip))
    result["seconds"] = round(time.time() - started, 1)
    return json.loads(json.dumps(result))  # as it will be read back from results.json and the floor cache (string keys)


def table_rows(model, floor):
    """[(what, floor, pretrained)] with the numbers as they are reported (x100 for GLUE, accuracy in %)."""
    rows = []
    for task in [t for t in model["glue"] if t in floor["glue"]]:
        label = f"GLUE {task} ({'/'.join(model['glue'][task]['summary'])})" + (" (not averaged)" if task in NOT_AVERAGED else "")
        rows.append((label, task_score(floor["glue"][task]["summary"]), task_score(model["glue"][task]["summary"])))
    if model.get("glue_average") is not None and floor.get("glue_average") is not None:
        rows.append((f"GLUE average ({len([t for t in model['glue'] if t not in NOT_AVERAGED])} tasks)",
                     floor["glue_average"], model["glue_average"]))
    if "not_applicable" in model.get("perplexity", {}):
        rows.append(("held-out MLM perplexity", None, None))
    elif "perplexity" in model and "perplexity" in floor:
        rows.append((f"held-out MLM perplexity ({model['perplexity']['mlm_probability']:.0%} masking; lower is better)",
                     floor["perplexity"]["perplexity"], model["perplexity"]["perplexity"]))
    if "stsb_zero_shot" in model and "stsb_zero_shot" in floor:
        rows.append(("STS-B dev zero-shot (Spearman x100)", floor["stsb_zero_shot"]["spearman"], model["stsb_zero_shot"]["spearman"]))
    if "not_applicable" in model.get("mmlu", {}):
        rows.append(("MMLU val 0-shot accuracy (masked-LM option scoring)", None, None))
    elif "mmlu" in model and "mmlu" in floor:
        rows.append((f"MMLU val 0-shot accuracy % ({model['mmlu']['total']:,} questions; chance 25)",
                     100 * floor["mmlu"]["accuracy"], 100 * model["mmlu"]["accuracy"]))
    return rows


def chosen_rates(results):
    """['sst2 1e-3 / 3e-4', ...]: the rate each side's sweep chose per task (empty without a sweep)."""
    def rate(side, task):
        sweep = results[side]["glue"].get(task, {}).get("learning_rate_sweep")
        return f"{sweep['chosen']:g}" if sweep else None

    return [f"{task} {rate('pretrained', task)} / {rate('floor', task)}" for task in results["pretrained"]["glue"]
            if rate("pretrained", task) and rate("floor", task)]


def seed_spreads(results):
    """['sst2 1.15 / 2.29', ...]: per task, how far the seeds' scores lie apart (max - min, x100), pretrained / floor:
    the noise a difference in the table has to clear."""
    from small_encoders.eval.run_glue import glue_score

    def spread(side, task):
        scores = [100 * glue_score(metrics) for metrics in results[side]["glue"][task]["per_seed"].values()]
        return max(scores) - min(scores) if all(map(math.isfinite, scores)) else math.nan  # a constant STS-B guess

    return [f"{task} {spread('pretrained', task):.2f} / {spread('floor', task):.2f}" for task in results["pretrained"]["glue"]]


def protocol_seeds_reading(results):
    """With --seeds that begin with the protocol's (1,2,3,4,5,6,7 for its 1,2,3), what the protocol alone would have
    read, from the same runs: per task and for the average, the median over the protocol's seeds only (the first seed
    chose the rate either way, and each run is seeded). None for other seeds."""
    from small_encoders.eval.run_glue import summarize_seeds

    own = PROTOCOLS[results["protocol"]]["seeds"].split(",")
    given = results["protocol_settings"]["seeds"].split(",")
    if given == own or given[: 1] != own[: 1] or not set(own) <= set(given):
        return None
    glue = {side: {task: {"summary": summarize_seeds(metrics for seed, metrics in result["per_seed"].items()
                                                     if str(seed) in own)}
                   for task, result in results[side]["glue"].items()}
            for side in ("floor", "pretrained")}
    return {"seeds": ",".join(own),
            "tasks": {task: {side: task_score(glue[side][task]["summary"]) for side in glue} for task in glue["pretrained"]},
            "glue_average": {side: glue_average(glue[side]) for side in glue}}


def summary_markdown(results):
    header = f"Suite v{SUITE_VERSION}, protocol `{results['protocol']}`, model `{results['model']}`"
    if results.get("provenance"):  # not measured by this program (benchmarks/import_gpu_run.py)
        header = f"Protocol `{results['protocol']}`, model `{results['model']}`: {results['provenance']}"
    baseline = results.get("reference", {}).get("model")
    before, after = ("start", "continued") if baseline else ("floor", "pretrained")
    lines = [header] + ([f"Against the model it started from, `{baseline}` (start -> continued), with the same "
                         f"protocol, seeds and held-out blocks; not against the random-init floor."] if baseline else [])
    lines += ["", f"| measurement | {f'start (`{baseline}`)' if baseline else 'random-init floor'} | "
                  f"{after} | difference |", "|---|---|---|---|"]
    for row in results["table"]:
        if row["pretrained"] is None:
            lines.append(f"| {row['what']} | - | - | {NOT_A_MASKED_LM} |")
        else:
            lines.append(f"| {row['what']} | {row['floor']:.2f} | {row['pretrained']:.2f} | {row['difference']:+.2f} |")
    ran = sorted({int(seed) for result in results["pretrained"]["glue"].values() for seed in result["per_seed"]})
    seeds = (f"median of seeds {','.join(map(str, ran))}" if len(ran) > 1 else
             f"one seed ({ran[0]}): no median, no spread between seeds" if ran else "no seed finished")
    lines += ["", f"GLUE: dev sets, {seeds}; settings {json.dumps(results['protocol_settings'])}."]
    reading = results.get("protocol_seeds_reading")
    if reading:
        parts = [f"{task} {v['floor']:.2f} -> {v['pretrained']:.2f} ({v['pretrained'] - v['floor']:+.2f})"
                 for task, v in reading["tasks"].items()]
        average = reading["glue_average"]
        if average["floor"] is not None:
            parts.append(f"GLUE average {average['floor']:.2f} -> {average['pretrained']:.2f} "
                         f"({average['pretrained'] - average['floor']:+.2f})")
        lines.append(f"The protocol's own seeds ({reading['seeds']}) alone, from the same runs ({before} -> {after}): "
                     + ", ".join(parts) + ".")
    chosen = chosen_rates(results)
    if chosen:
        lines.append(f"Learning rate chosen per task on the first seed ({after} / {before}): " + ", ".join(chosen) + ".")
    if len(ran) > 1:
        lines.append(f"Seeds' spread of each task's score, max - min ({after} / {before}): "
                     + ", ".join(seed_spreads(results)) + ".")
    jobs = results.get("fine_tuning_jobs")
    if jobs:
        lines.append(f"Fine-tunings: {jobs['finished']} of {jobs['jobs']} finished as parallel jobs, {jobs['workers']} at a "
                     f"time, in {jobs['seconds']:.0f} s" + (f"; stopped at the deadline: {len(jobs['unfinished'])} unfinished"
                                                            if jobs["unfinished"] else "")
                     + (f"; {len(jobs['failed'])} failed ({jobs['failed'][0]['error']})" if jobs["failed"] else "") + ".")
    short = [f"{task} {side} {','.join(map(str, result['unfinished_seeds']))}" for side in ("pretrained", "floor")
             for task, result in results[side]["glue"].items() if result.get("unfinished_seeds")]
    if short:
        lines.append(f"Seeds not reached before the deadline (those tasks' medians are over fewer seeds): {', '.join(short)}.")
    if results.get("not_measured"):
        lines.append(f"Not measured (cut short): {', '.join(results['not_measured'])}; the average is over the tasks in the table.")
    if results.get("skipped"):
        lines.append(f"Skipped (--skip): {', '.join(results['skipped'])}.")
    floor_hardware = results.get("floor_hardware")
    where = f", measured on {floor_hardware}" if floor_hardware else ""
    if floor_hardware and floor_hardware != results["hardware"]:
        where += f"; the model on {results['hardware']}"
    if baseline:
        lines.append(f"Start model measured now, on {results['hardware']}. Time: continued {results['pretrained']['seconds']:.0f} s, "
                     f"start {results['floor']['seconds']:.0f} s.")
    else:
        lines.append(
              f"Floor {'from the cache' if results['floor_cached'] else 'measured now'} ({results['floor_key']}{where})"
              f"{'; its perplexity measured now, at this masking rate' if results.get('floor_perplexity_measured_now') else ''}. "
              f"Time: model {results['pretrained']['seconds']:.0f} s, floor {results['floor']['seconds']:.0f} s "
              f"({'earlier' if results['floor_cached'] else 'now'}).")
    lines += [
              f"Command: `{results['command']}`" + (f" at commit {results['commit']}" if results.get("commit") else ""), ""]
    return "\n".join(lines)


def floor_process_setup():
    """One thread; and the name of a main process, which it is for its work: transformers' seeded MLM collator (the
    perplexity's fixed masks) takes any other process for a DataLoader worker and refuses to seed itself there."""
    import multiprocessing

    import torch

    from small_encoders.eval.glue_jobs import die_with_parent

    die_with_parent()  # a suite stopped with kill takes its floor process with it
    torch.set_num_threads(1)
    multiprocessing.current_process().name = "MainProcess"


def measure_side_by_side(common, scratch, discriminator, reference_common=None, reference_discriminator=False, skip=()):
    """(model, floor) measured at once in two processes of one thread each: on a 2-core machine about half the wall
    time of one after the other, with the same figures (each fine-tuning run is seeded). With `reference_common` the
    floor's place is taken by that (baseline) model, with its own weights. `skip`: parts of PARTS left out."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=floor_process_setup) as pool:
        if reference_common:
            floor = pool.submit(measure, *reference_common, scratch / "baseline", random_init=False,
                                discriminator=reference_discriminator, skip=skip)
        else:
            floor = pool.submit(measure, *common, scratch / "floor", random_init=True, discriminator=discriminator,
                                skip=skip)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model = measure(*common, scratch / "model", random_init=False, discriminator=discriminator, skip=skip)
        finally:
            torch.set_num_threads(threads)
        return model, floor.result()


def run_suite(model_path, data_dir, output_dir, protocol="cpu", floor_cache=None, perplexity_files=None, tasks=None,
              parallel=False, seeds=None, jobs=None, deadline=None, skip=(), baseline=None):
    """Measure the model and its floor; write OUT/results.json and OUT/summary.md; return the results. `seeds`
    ('1,2,3,4,5'): the GLUE seeds instead of the protocol's (the first one chooses the learning rate). `jobs`: GLUE
    fine-tunings as that many parallel processes (the gpu and smoke protocols always run them so: the default is a
    process per CPU core on a GPU machine, capped by its free memory). `deadline` (a time.time()): stop the fine-tunings then and report what
    finished. `skip`: parts of PARTS to leave out. `baseline` (a folder or Hub id, e.g. the model a continued
    pretraining started from): measured in the floor's place, from its own weights, with the same protocol, seeds and
    held-out blocks; nothing is cached for it."""
    plan = suite_plan(model_path, data_dir, protocol, perplexity_files, tasks, seeds, skip, baseline)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = FloorCache(plan, floor_cache)
    against = (f"against the model it started from, {baseline} (not the random-init floor)" if plan.reference else
               f"floor {'cached' if cache.floor is not None else 'to measure'} ({plan.key})")
    print(f"suite v{SUITE_VERSION}, protocol {protocol}: GLUE {', '.join(plan.present) or 'none'}; perplexity on "
          f"{plan.files or 'nothing (no held-out text)'}; {against}", flush=True)
    if plan.reference and not plan.reference["same_tokenizer"] and plan.blocks is not None:
        print(f"note: {baseline} has another tokenizer: each side's perplexity is over its own tokens of the same text "
              f"(not directly comparable)", flush=True)
    if plan.discriminator:
        print(f"{model_path} is a replaced-token-detection discriminator: perplexity and MMLU (masked-LM scoring) are "
              f"not applicable and are not measured", flush=True)
    scratch = output_dir / "scratch"
    model, floor, status = measure_sides(plan, cache, scratch, output_dir, parallel, jobs, deadline)
    complete = status is None or not (status["unfinished"] or status["failed"])
    floor = cache.settle(floor, complete)
    results = suite_results(plan, cache, model, floor, status)
    write_atomic(output_dir / "results.json", json.dumps(results, indent=1))
    write_atomic(output_dir / "summary.md", summary_markdown(results))
    import shutil

    if complete:
        shutil.rmtree(scratch, ignore_errors=True)
    else:  # each finished fine-tuning's seed_result.json: the same command again resumes from them
        print(f"cut short: the finished fine-tunings are kept in {scratch}; the same command again continues from them",
              flush=True)
    return results


def suite_plan(model_path, data_dir, protocol, perplexity_files, tasks, seeds, skip, baseline):
    """What the suite will measure, checked before anything runs: the protocol's settings, the model's config and
    tokenizer (and the baseline's), the GLUE tasks present, the held-out blocks for perplexity, the floor's key."""
    from transformers import AutoConfig

    import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family
    from small_encoders.core.hub import check_source
    from small_encoders.data_prep.tokenizer import load_tokenizer

    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    unknown = sorted(set(skip) - set(PARTS))
    if unknown:
        raise UserError(f"--skip {','.join(unknown)}: choose from {', '.join(PARTS)}")
    if not Path(data_dir).is_dir():
        raise UserError(f"--data_dir {data_dir} is not a folder; give the folder that holds glue/, mmlu/ and wikitext-2/")
    settings = dict(PROTOCOLS[protocol])
    if seeds is not None:
        from small_encoders.core.checks import seed_list

        seeds = ",".join(map(str, seed_list(seeds)))
        settings["seeds"] = seeds
    check_source(model_path, "--model_name_or_path")
    try:
        config = AutoConfig.from_pretrained(str(model_path), trust_remote_code=True)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a model from --model_name_or_path {model_path!r}: {str(error).splitlines()[0]}") from None
    tokenizer = load_tokenizer(model_path, "--model_name_or_path")
    reference = baseline_side(baseline) if baseline is not None else None
    if reference:
        reference["same_tokenizer"] = tokenizer.backend_tokenizer.to_str() == reference["tokenizer"].backend_tokenizer.to_str()
    plan = types.SimpleNamespace(
        model_path=model_path, data_dir=data_dir, protocol=protocol, settings=settings, seeds=seeds, skip=skip,
        baseline=baseline, config=config, tokenizer=tokenizer, reference=reference,
        present=chosen_tasks(data_dir, tasks), discriminator=is_discriminator(config),
        key=architecture_key(config, tokenizer, protocol, seeds))
    cut_glue_inputs(plan)
    held_out_blocks(plan, perplexity_files)
    return plan


def chosen_tasks(data_dir, tasks):
    """The GLUE tasks to measure: --tasks, each checked, or every task present; none is one error line."""
    from small_encoders.eval.glue_data import TASKS

    present = glue_tasks(data_dir)
    if tasks:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise UserError(f"unknown GLUE task(s) {unknown} in --tasks; choose from {', '.join(TASKS)}")
        missing = [t for t in tasks if t not in present]
        if missing:
            raise UserError(f"--tasks {','.join(missing)}: no train and dev files under {Path(data_dir) / 'glue'}")
        present = list(tasks)
    if not present:  # GLUE is the suite: without a task it would measure nothing and write a table of nothing
        raise UserError(f"no GLUE task under {Path(data_dir) / 'glue'} (folders like SST-2/ holding train.tsv and "
                        f"dev.tsv); point --data_dir at the folder that holds glue/")
    return present


def cut_glue_inputs(plan):
    """GLUE inputs no longer than both sides read (the protocol's max_seq_length lowered where a model reads fewer)."""
    from small_encoders.eval.run_glue import readable_length

    limit = readable_length(plan.config, plan.tokenizer)
    if plan.reference:  # the shorter of the two: both sides fine-tune on the same inputs
        other = readable_length(plan.reference["config"], plan.reference["tokenizer"])
        limit = other if limit is None else (limit if other is None else min(limit, other))
    if limit is not None and plan.settings["max_seq_length"] > limit:
        print(f"protocol {plan.protocol}: GLUE inputs are cut at {limit} tokens, what {plan.model_path} reads "
              f"(the protocol's {plan.settings['max_seq_length']} is longer)")
        plan.settings["max_seq_length"] = limit


def held_out_blocks(plan, perplexity_files):
    """plan.files (the held-out text: --perplexity_files, the run's validation files, or WikiText-2 valid), its blocks
    at the model's block size (the baseline's own where its tokenizer differs), and the masking rate to measure at."""
    from small_encoders.eval.perplexity import eval_blocks
    from small_encoders.modeling.build import readable_positions

    plan.mlm_probability, block_size, recorded_validation = model_facts(plan.model_path)
    reference = plan.reference
    limit = min(readable_positions(c) or 512 for c in [plan.config] + ([reference["config"]] if reference else []))
    block_size = min(block_size or 128, limit)
    files = perplexity_files or (recorded_validation if recorded_validation and all(
        Path(p).exists() for p in str(recorded_validation).split(",")) else None)
    if files is None and (Path(plan.data_dir) / "wikitext-2" / "valid.txt").is_file():
        files = str(Path(plan.data_dir) / "wikitext-2" / "valid.txt")
    plan.files = None if "perplexity" in plan.skip else files
    most = plan.settings["perplexity_max_blocks"]
    plan.blocks = eval_blocks(plan.tokenizer, plan.files, block_size=block_size, max_blocks=most) if plan.files else None
    if reference:
        same = reference["same_tokenizer"]
        reference["blocks"] = plan.blocks if same or not plan.files else eval_blocks(
            reference["tokenizer"], plan.files, block_size=block_size, max_blocks=most)


class FloorCache:
    """The random-init floor of an architecture, tokenizer and protocol, measured once and kept in a JSON file
    (~/.cache/small-encoders/floors, or --floor_cache). `floor` is the cached floor when it serves this measurement
    (every task, part and held-out text asked for), else None; a measurement against a baseline uses no cache."""

    def __init__(self, plan, folder):
        from small_encoders.core.run_folder import cache_root, describe_hardware

        self.plan, self.hardware = plan, describe_hardware(1)
        self.file = Path(folder or cache_root() / "floors") / f"{plan.key}.json"
        floor = json.loads(self.file.read_text()) if self.file.is_file() and not plan.reference else None
        data_dir = Path(plan.data_dir)
        # A floor measured for a discriminator (GLUE and STS-B only) does not serve a masked LM, which needs its perplexity.
        wanted = [part for part, there in (("stsb_zero_shot", (data_dir / "glue" / "STS-B" / "dev.tsv").is_file()),
                                           ("mmlu", (data_dir / "mmlu" / "val").is_dir() and not plan.discriminator))
                  if there and part not in plan.skip]
        serves = (floor is not None and set(plan.present) <= set(floor["glue"])
                  and (plan.blocks is None or floor.get("perplexity_data") == plan.files)
                  and (plan.discriminator or "not_applicable" not in floor.get("perplexity", {}))
                  and all(part in floor for part in wanted))
        self.floor = floor if serves else None
        self.perplexity_measured_now = False

    def settle(self, floor, complete):
        """The floor to report: a newly measured, complete one is written to the cache; a cached one measured on
        another machine is flagged, and its perplexity measured again when this model masks at another rate."""
        plan = self.plan
        if not plan.reference and self.floor is None and complete and set(plan.present) <= set(floor["glue"]):
            floor["perplexity_data"] = plan.files  # (a floor cut short is not cached)
            floor["hardware"] = self.hardware
            self.file.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.file, json.dumps(floor, indent=1))
        if self.floor is None:
            return floor
        if floor.get("hardware") != self.hardware:
            # The same seeded fine-tuning rounds differently on another kind of CPU (AVX2 against AVX512: up to 2.2
            # points on a task, docs/results.md), about the size of the differences the suite is there to measure.
            print(f"warning: the cached floor was measured on {floor.get('hardware') or 'an unrecorded machine'}, this "
                  f"is {self.hardware}; its figures can differ by a point or two from this machine's (measure it here "
                  f"with an empty --floor_cache folder)", flush=True)
        rate = plan.mlm_probability
        if plan.blocks is not None and not plan.discriminator and floor.get("perplexity", {}).get("mlm_probability") != rate:
            # The cache holds the floor's perplexity at the masking rate of the first model measured with this
            # architecture; this model masks at another rate, so the floor's is measured again at this one (random
            # weights seeded as for the cached floor; one pass, the GLUE figures stay cached).
            print(f"floor perplexity: cached at {floor['perplexity']['mlm_probability']:.0%} masking, measured now at "
                  f"{rate:.0%}", flush=True)
            random_model = load_for_zero_shot(plan.model_path, random_init=True, discriminator=False)
            floor = dict(floor, perplexity=perplexity_measure(random_model, plan.tokenizer, plan.blocks, rate))
            self.perplexity_measured_now = True
        return floor


def measure_sides(plan, cache, scratch, output_dir, parallel, jobs, deadline):
    """The runner: the model and its floor (or baseline) measured, as parallel fine-tuning jobs, side by side in two
    processes, or one after the other; a cached floor is not measured again. Returns (model, floor, job status)."""
    common = (plan.model_path, plan.tokenizer, plan.data_dir, plan.settings, plan.present, plan.blocks,
              plan.mlm_probability)
    reference, skip, floor_cached = plan.reference, plan.skip, cache.floor is not None
    reference_common = (plan.baseline, reference["tokenizer"], plan.data_dir, plan.settings, plan.present,
                        reference["blocks"], plan.mlm_probability) if reference else None
    if jobs or deadline is not None or plan.protocol in JOB_PROTOCOLS:
        from small_encoders.eval.glue_jobs import jsonl_recorder

        record = jsonl_recorder(output_dir / "fine_tunings.jsonl")  # each fine-tuning as it ends
        model, measured_floor, status = measure_with_jobs(
            common, scratch, plan.discriminator, not floor_cached, jobs, deadline, record, skip,
            (plan.baseline, reference["tokenizer"], reference["blocks"], reference["discriminator"]) if reference else None)
        return model, cache.floor if floor_cached else measured_floor, status
    if parallel and not floor_cached:
        model, floor = measure_side_by_side(common, scratch, plan.discriminator, reference_common,
                                            bool(reference and reference["discriminator"]), skip)
        return model, floor, None
    model = measure(*common, scratch, random_init=False, discriminator=plan.discriminator, skip=skip)
    floor = cache.floor
    if reference:
        floor = measure(*reference_common, scratch / "baseline", random_init=False,
                        discriminator=reference["discriminator"], skip=skip)
    elif not floor_cached:
        floor = measure(*common, scratch, random_init=True, discriminator=plan.discriminator, skip=skip)
    return model, floor, None


def suite_results(plan, cache, model, floor, status):
    """results.json: the tasks both sides finished, each side's GLUE average, the table, and what was measured how."""
    import shlex

    from small_encoders.core.run_folder import source_commit

    def swept(side, task):  # a sweep cut short at the deadline would compare one side's best rate with a partial choice
        return not side["glue"][task].get("learning_rate_sweep", {}).get("unfinished_rates")

    present = plan.present
    measured = [t for t in present if t in model["glue"] and t in floor["glue"] and swept(model, t) and swept(floor, t)]
    floor = dict(floor, glue={t: floor["glue"][t] for t in measured})
    floor["glue_average"] = glue_average(floor["glue"])
    model = dict(model, glue={t: model["glue"][t] for t in measured})
    model["glue_average"] = glue_average(model["glue"])
    table = [{"what": what, "floor": f, "pretrained": p, "difference": None if p is None else p - f}
             for what, f, p in table_rows(model, floor)]
    results = {
        "suite_version": SUITE_VERSION, "protocol": plan.protocol, "protocol_settings": plan.settings,
        "model": str(plan.model_path), "model_type": plan.config.model_type, "data_dir": str(plan.data_dir),
        "perplexity_data": plan.files, "glue_tasks": present,
        "floor_key": plan.key, "floor_cached": cache.floor is not None, "floor_cache_file": str(cache.file),
        "floor_perplexity_measured_now": cache.perplexity_measured_now,
        "hardware": cache.hardware, "floor_hardware": floor.get("hardware"),
        "command": " ".join(["python"] + [shlex.quote(a) for a in sys.argv]), "commit": source_commit(),
        "skipped": sorted(plan.skip), "fine_tuning_jobs": status,
        "not_measured": [t for t in present if t not in measured],
        "pretrained": model, "floor": floor, "table": table,
        # What the "floor" side is: the random-init floor, or the model this one started from.
        "reference": ({"kind": "baseline", "model": str(plan.baseline)} if plan.reference
                      else {"kind": "random-init floor"}),
    }
    results["protocol_seeds_reading"] = protocol_seeds_reading(results)
    return results


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="a saved model folder or a Hub id (any masked LM)")
    parser.add_argument("--data_dir", required=True, help="folder holding glue/, mmlu/ and wikitext-2/ (../shared/data here)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--protocol", default="cpu", help=f"one of {', '.join(PROTOCOLS)}")
    parser.add_argument("--perplexity_files", default=None, help="held-out text for perplexity (default: the run's validation files, else wikitext-2/valid.txt)")
    parser.add_argument("--tasks", default=None, help="comma-separated GLUE tasks (default: every task present)")
    parser.add_argument("--floor_cache", default=None, help="folder of cached floors (default: ~/.cache/small-encoders/floors)")
    parser.add_argument("--seeds", default=None,
                        help="GLUE seeds instead of the protocol's 1,2,3, e.g. 1,2,3,4,5,6,7: a median that moves less "
                             "with one seed; the first seed chooses the learning rate; the floor is measured with them too")
    parser.add_argument("--parallel", action="store_true",
                        help="measure the model and its floor at once, in two processes of one thread each (a 2-core CPU)")
    parser.add_argument("--jobs", type=checks.bounded(int, 1, 4096), default=None,
                        help="run the GLUE fine-tunings as this many parallel processes (the gpu protocol always does: "
                             "default on a GPU machine one per CPU core, at most as many as the GPU's free memory holds at 2 GiB each)")
    parser.add_argument("--baseline", default="start", choices=("start", "floor"),
                        help="what the model is measured against: start (default) is the model its run folder says it "
                             "was continued from (--init_from), and the random-init floor where it names none; floor "
                             "is always the random-init floor")
    parser.add_argument("--baseline_model", default=None,
                        help="measure against this model instead (e.g. the start of a continued pretraining made "
                             "elsewhere): same protocol, same seeds; the summary reads start -> continued")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {', '.join(PARTS)}")
    parser.add_argument("--minutes", type=checks.bounded(float, 1e-3, 525_600), default=None,
                        help="stop the fine-tunings after this many minutes and report what finished")
    args = parser.parse_args(argv)
    baseline = args.baseline_model
    if baseline is not None and args.baseline == "floor":
        raise UserError("--baseline floor and --baseline_model name two different references; give one")
    if baseline is None and args.baseline == "start":
        baseline = RunFolder(args.model_name_or_path).start_model()
        if baseline is not None:
            print(f"note: {args.model_name_or_path} was continued from {baseline} (its results.json says so): measured "
                  f"against that start model, not the random-init floor (--baseline floor for the floor)", flush=True)
    deadline = time.time() + 60 * args.minutes if args.minutes else None
    results = run_suite(args.model_name_or_path, args.data_dir, args.output_dir, args.protocol, args.floor_cache,
                        args.perplexity_files, [t for t in args.tasks.split(",") if t] if args.tasks else None,
                        args.parallel, args.seeds, args.jobs, deadline, [p for p in args.skip.split(",") if p],
                        baseline)
    print(summary_markdown(results))
    print(f"wrote {Path(args.output_dir) / 'results.json'} and {Path(args.output_dir) / 'summary.md'}")


if __name__ == "__main__":
    sys.exit(main())
