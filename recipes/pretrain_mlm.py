"""Pretrain a masked-language model from a recipe.

    python recipes/pretrain_mlm.py --recipe quickstart
    accelerate launch recipes/pretrain_mlm.py --recipe coberta [--key value ...] [--smoke]

The recipe (recipes/NAME.yaml) names the corpus, tokenizer, model shape, masking rate and training
settings; any of them can be overridden on the command line. The finished folder holds the model,
the tokenizer, recipe.yaml (the resolved recipe), training_log.json and results.json.
"""

import math
import os
import shlex
import shutil
import sys
import time
import types
from pathlib import Path

from small_encoders.core.errors import UserError, entry_point
from small_encoders.core.run_folder import (
    PretrainingResult,
    RunFolder,
    add_sentence_transformers_files,
    cache_root,
    describe_hardware,
    source_commit,
)
from small_encoders.recipes.budget import PlanComplete, attach_budget, budget_line, calibrate, few_steps_hint
from small_encoders.recipes.recipe import available_recipes, help_text, load_recipe, parse_overrides, run_identity

USAGE = "usage: pretrain_mlm.py --recipe NAME [--smoke] [--key value ...]"


def prepare_output_dir(recipe, is_main):
    """Refuse to mix two runs in one folder; find the checkpoint to resume from. Returns (it or None, whether the folder
    holds a run that --overwrite_output_dir replaces: removed by `clear_output_dir` once the new run's data, tokenizer
    and model have been checked, so a mistyped flag does not cost the old run)."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(recipe["output_dir"])
    run_folder = RunFolder(out)
    resume = recipe["resume_from_checkpoint"]
    if recipe["overwrite_output_dir"] and out.exists() and not resume:
        return None, True
    if run_folder.recipe_file.exists():
        previous = run_folder.recipe()
        before, now = run_identity(previous), run_identity(recipe)
        if before != now:
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise UserError(
                f"{out} holds a different run (settings differ: {', '.join(changed)}); use another --output_dir, "
                f"or --overwrite_output_dir true to replace it"
            )
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if resume in (True, "latest", "last"):
        if last is None:
            raise UserError(f"--resume_from_checkpoint {resume}: {out} has no checkpoint-* folder to resume from")
        return check_checkpoint(last), False
    if resume:
        if not Path(resume).is_dir():
            raise UserError(f"--resume_from_checkpoint {resume}: no such checkpoint folder")
        return check_checkpoint(str(resume)), False
    if run_folder.is_finished():
        raise UserError(f"{out} already holds a finished run; use another --output_dir or --overwrite_output_dir true")
    if last is not None:
        raise UserError(
            f"{out} holds an unfinished run ({Path(last).name}); pass --resume_from_checkpoint latest to continue "
            f"it, or --overwrite_output_dir true to start over"
        )
    return None, False


def check_checkpoint(folder):
    """A checkpoint folder whose every file opens (a run killed while writing, a copy cut short): what any model folder
    is checked for (core.hub.check_model_folder: the JSON files, the weights' headers; the RTD generator's folder too),
    and the zip archives torch saves (.pt, .pth, .bin: each member's checksum, nothing unpickled). Returns the folder;
    a damaged file is one error line naming it and the way out, before any data is read."""
    import zipfile

    from small_encoders.core.hub import check_model_folder

    folder, flag = Path(folder), "--resume_from_checkpoint"
    if not (folder / "trainer_state.json").is_file():
        raise UserError(f"{flag}: {folder} has no trainer_state.json (not a whole checkpoint); resume from another "
                        f"checkpoint-* folder, or start over with --overwrite_output_dir true")
    way_out = (f"resume from an earlier checkpoint ({flag} {folder.parent / 'checkpoint-N'}), or remove {folder} and "
               f"resume from the latest one left")
    for model_folder in (folder, folder / "generator"):
        if model_folder.is_dir():
            check_model_folder(model_folder, flag, way_out)
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".pt", ".pth", ".bin")):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise ValueError(f"{bad} fails its checksum")
        except (ValueError, zipfile.BadZipFile, OSError) as error:
            raise UserError(f"{flag} {folder}: {path.relative_to(folder)} is damaged or incomplete "
                            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); {way_out}") from None
    return str(folder)


def clear_output_dir(out, is_main):
    """The replaced run's folder removed (by the first process; the others wait for it)."""
    from accelerate import PartialState

    if is_main and out.exists():
        shutil.rmtree(out)
    PartialState().wait_for_everyone()


def load_text(recipe, args):
    from small_encoders.data_prep.corpus import load_corpus
    from small_encoders.data_prep.embedded_corpus import build_embedded_corpus

    train_files, validation_files = recipe["train_files"], recipe["validation_files"]
    dataset_name = recipe["dataset_name"]
    if not train_files and dataset_name == "embedded":
        with args.main_process_first(desc="building the embedded corpus"):
            train_path, validation_path = build_embedded_corpus()
        train_files, validation_files, dataset_name = str(train_path), str(validation_path), None
    train_filter, report = None, {}
    if recipe["cosmopedia_filter"] is not None:
        from small_encoders.data_prep.cosmopedia import filter_cosmopedia

        def train_filter(dataset):
            filtered, stats = filter_cosmopedia(dataset, seed=recipe["seed"], **recipe["cosmopedia_filter"])
            report.update(stats)
            return filtered

    if recipe["streaming"]:
        from small_encoders.data_prep.streaming import streamed_corpus

        with args.main_process_first(desc="opening the corpus stream"):
            train, validation = streamed_corpus(
                dataset_name, recipe["dataset_config"], train_files, validation_files, recipe["text_column"],
                recipe["max_train_samples"], recipe["max_validation_samples"], recipe["encoding_errors"],
                recipe["text_sample_by"])
        texts = {"train": train, "validation": validation}
    else:
        with args.main_process_first(desc="loading the corpus"):
            texts = load_corpus(
                dataset_name=dataset_name, dataset_config=recipe["dataset_config"], train_files=train_files,
                validation_files=validation_files, text_column=recipe["text_column"],
                validation_split_percentage=recipe["validation_split_percentage"],
                max_train_samples=recipe["max_train_samples"], max_validation_samples=recipe["max_validation_samples"],
                seed=recipe["seed"], encoding_errors=recipe["encoding_errors"], train_filter=train_filter,
                sample_by=recipe["text_sample_by"],
            )
    source = train_files if train_files else f"{dataset_name}" + (f" ({recipe['dataset_config']})" if recipe["dataset_config"] else "")
    if recipe["dataset_name"] == "embedded" and not recipe["train_files"]:
        source = f"embedded corpus: docstrings of the Python {sys.version.split()[0]} standard library"
    if recipe["replay_files"]:
        from small_encoders.data_prep.corpus import mix_in_replay

        with args.main_process_first(desc="mixing in the replay text"):
            texts["train"], replayed = mix_in_replay(texts["train"], recipe["replay_files"], recipe["replay_fraction"],
                                                     recipe["seed"], recipe["encoding_errors"])
        source = f"{source}; {replayed}"
    return texts, source, report


def planned_steps(recipe, num_blocks, world_size):
    """Optimizer steps and blocks per step; an epoch is whole batches only (the training loader drops a partial last
    batch: one shape for every step)."""
    per_step = recipe["per_device_train_batch_size"] * world_size * recipe["gradient_accumulation_steps"]
    if recipe["max_steps"] and recipe["max_steps"] > 0:
        return recipe["max_steps"], per_step
    return math.ceil(recipe["num_train_epochs"] * (num_blocks // per_step)), per_step


def speed_settings(recipe, cuda, local_processes=1):
    """`torch_compile` and `dataloader_num_workers` with `auto` resolved for this machine: on a GPU the model is compiled
    and batches are collated (masking included) in worker processes, up to 4 per GPU process (8 when the corpus is
    streamed, which the workers also tokenize), one core left to each process; on a CPU neither (compilation did not speed up the 2-core CPU, and workers take cores from the step)."""
    compiled = cuda if recipe["torch_compile"] == "auto" else bool(recipe["torch_compile"])
    workers = recipe["dataloader_num_workers"]
    if workers == "auto":
        # A stream is tokenized in the workers too (one core each): up to 8 of them.
        most = 8 if recipe.get("streaming") else 4
        workers = max(0, min(most, (os.cpu_count() or 1) // max(1, local_processes) - 1)) if cuda else 0
    return compiled, workers


def fill_mask_example(model, recipe, tokenizer, trust_remote_code=False):
    """The top 5 (token, probability) of `model` (a folder, or a model in memory) for the recipe's example."""
    from transformers import pipeline

    model = str(model) if isinstance(model, Path) else model
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, trust_remote_code=trust_remote_code, device=-1)
    text = recipe["fill_mask_example"].format(mask=tokenizer.mask_token)
    return text, [(p["token_str"].strip(), round(p["score"], 4)) for p in fill(text, top_k=5)]


def side_by_side(untrained, trained, before="untrained", after="trained"):
    """Two columns of (token, probability): what the model guessed before training and after."""
    lines = [f"    {before:>16}  {'':6}  {after:>16}"]
    for (token, score), (after, after_score) in zip(untrained, trained):
        lines.append(f"    {repr(token):>16}  {score:.4f}  {repr(after):>16}  {after_score:.4f}")
    return "\n".join(lines)


def model_lines(model, rtd, recipe):
    """The header's model line(s): the class and exact parameter count; with RTD the discriminator (what is kept) and
    the generator (what shares its embeddings)."""
    from small_encoders.modeling.build import count_parameters

    if not rtd:
        return [f"model             {type(model).__name__}, {count_parameters(model):,} parameters"]
    generator, discriminator = model.generator, model.discriminator
    own = count_parameters(model) - count_parameters(discriminator)
    return [
        f"model             {type(discriminator).__name__} (the discriminator, what is saved), "
        f"{count_parameters(discriminator):,} parameters",
        f"generator         {type(generator).__name__}, {generator.config.hidden_size} wide "
        f"({generator.config.hidden_size / discriminator.config.hidden_size:.2g} of the discriminator), "
        f"{generator.config.num_attention_heads} head(s), {own:,} parameters besides the shared embeddings; saved in generator/",
        f"objective         replaced-token detection: generator MLM loss + {recipe['discriminator_weight']:g} x "
        f"discriminator loss, samples at temperature {recipe['generator_temperature']:g}",
    ]


def native_bf16():
    """Whether this machine computes bfloat16 natively: a GPU that supports it or, with no GPU, a CPU with
    AVX512-BF16 or AMX (where oneDNN's bf16 matrix products are faster than fp32; on other CPUs they are emulated
    and slower). `bf16: auto` turns bf16 on for a GPU only: on a CPU it is `--bf16 true` by hand (docs/recipes.md#training:
    the one CPU-tier run in bf16 trained 1.4 times the tokens and read a lower GLUE average)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def model_settings_config(recipe, tokenizer=None):
    """The recipe's model config (a stand-in vocabulary before the tokenizer exists); a setting that makes no model is
    one error line naming the flags."""
    from small_encoders.modeling.build import build_mlm_config, check_model_settings

    settings = (recipe["model_family"], recipe["block_size"])
    named = dict(preset=recipe["model_preset"], fields=recipe["model_config"], vocab_size=recipe["model_vocab_size"])
    try:
        if tokenizer is None:
            return check_model_settings(*settings, **named)
        return build_mlm_config(recipe["model_family"], tokenizer, recipe["block_size"], **named)
    except (ValueError, TypeError) as error:
        raise UserError(f"the model settings make no model (--model_config, --model_preset, --block_size): "
                        f"{str(error).strip().splitlines()[0]}") from None


def stream_tokenizer(recipe, documents, args):
    """A tokenizer trained on a stream's first documents (a stream has no length to sample from), the files in a seeded
    order and the documents through a buffer (else a corpus sorted by source would teach it one source only). The first
    process draws the sample and trains (or finds it cached); the others receive its files (no second read of the
    stream, and the same tokenizer on every machine of a multi-node run)."""
    import tempfile

    from accelerate.utils import broadcast_object_list
    from transformers import AutoTokenizer

    from small_encoders.data_prep.streaming import SHUFFLE_BUFFER, as_dataset
    from small_encoders.data_prep.tokenizer import get_tokenizer

    shared = [None, None]
    if args.process_index == 0:
        sample = as_dataset(documents.shuffle(seed=recipe["seed"], buffer_size=SHUFFLE_BUFFER), recipe["tokenizer_train_samples"])
        tokenizer, origin = get_tokenizer(recipe["tokenizer_name"], sample, recipe["vocab_size"], cache_root=cache_root(),
                                          max_samples=recipe["tokenizer_train_samples"], seed=recipe["seed"])
        if args.world_size == 1:
            return tokenizer, origin
        with tempfile.TemporaryDirectory() as folder:
            tokenizer.save_pretrained(folder)
            shared = [{path.name: path.read_bytes() for path in Path(folder).iterdir()}, origin]
    files, origin = broadcast_object_list(shared, from_process=0)
    if args.process_index == 0:
        return tokenizer, origin
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        return AutoTokenizer.from_pretrained(folder), origin + " (by the first process, shared)"


class Run(types.SimpleNamespace):
    """What one pretraining run has gathered so far, stage by stage: run() below is the stages in order."""


def run(recipe):
    """Pretrain the model the recipe describes, stage by stage. Returns the exit code: 1 where --fail_if_worse is set and
    no step beat the start model, else 0."""
    job = prepare(recipe)  # the model settings checked, the machine's settings, TrainingArguments, the output folder
    load_data(job)  # text, tokenizer, blocks (packed in memory, or a stream)
    build_model(job)  # from scratch, continued (--init_from), or replaced-token detection
    plan(job)  # a time budget's plan or the step count, the header, recipe.yaml
    train(job)  # the Trainer, the budget's callback, train() (resumed where asked)
    report(job)  # the saved model, results.json, the summary lines
    return 1 if recipe.fail_if_worse and job.kept and job.kept.kept_start else 0


def prepare(recipe):
    """The checks that need no data (the model settings or the start model), the machine's settings (bf16, compile,
    workers), the TrainingArguments, and the output folder (a checkpoint to resume from, or a run to replace)."""
    import torch
    from transformers import set_seed

    continued = recipe.init_from
    if continued:  # the model's own config instead of the recipe's model settings, checked before any data is read
        from small_encoders.recipes.continued import continued_config

        checked = continued_config(recipe)
    else:
        checked = model_settings_config(recipe)  # before any data is read: a bad --model_config fails in a second
    positions = getattr(checked, "max_position_embeddings", None)
    if not continued and recipe.model_family == "small_encoder" and positions == recipe.block_size and recipe.block_size > (
            {**(recipe.model_config or {})}.get("max_position_embeddings") or 512):
        print(f"note: --block_size {recipe.block_size} is longer than the recipe's positions: max_position_embeddings "
              f"raised to {positions} (RoPE: a limit, no table, so nothing learned changes)")
    bf16 = recipe.bf16
    if bf16 == "auto":
        bf16 = torch.cuda.is_available() and native_bf16()
    elif bf16 and not native_bf16():
        print("warning: --bf16 true on hardware without native bf16 (no GPU that supports it, no AVX512-BF16 or AMX "
              "on the CPU): it is emulated there and slower than fp32", file=sys.stderr)
    compiled, workers = speed_settings(recipe, torch.cuda.is_available(), int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    # Pinned batches copied without waiting (the next step's launch does not wait for its batch's copy). A stream is
    # split between the processes by data_prep.streaming, not by accelerate (recipes/training.py).
    args = recipe.training_arguments(bf16=bool(bf16), torch_compile=compiled, dataloader_num_workers=workers,
                                     accelerator_config={"non_blocking": torch.cuda.is_available()},
                                     use_cpu=not torch.cuda.is_available())
    is_main = args.process_index == 0
    resume, replace = prepare_output_dir(recipe, is_main)
    set_seed(recipe.seed)
    return Run(recipe=recipe, continued=continued, checked=checked, bf16=bf16, compiled=compiled, workers=workers,
               args=args, is_main=is_main, out=Path(recipe.output_dir), resume=resume, replace=replace,
               rtd=recipe.objective == "rtd", streaming=recipe.streaming, notes=[])


def load_data(job):
    """The corpus, the tokenizer (named, or trained on the corpus), and the blocks: packed in memory, or a stream
    packed on the fly with a sample for the budget's calibration."""
    from small_encoders.data_prep.tokenizer import get_tokenizer

    recipe, args = job.recipe, job.args
    job.texts, job.source, filter_report = load_text(recipe, args)
    if filter_report and job.is_main:
        from small_encoders.data_prep.cosmopedia import format_report

        print(format_report(filter_report))
    if job.streaming and recipe.tokenizer_name in ("train-bpe", "train-wordpiece"):
        job.tokenizer, job.tokenizer_origin = stream_tokenizer(recipe, job.texts["train"], args)
    else:
        with args.main_process_first(desc="tokenizer"):
            job.tokenizer, job.tokenizer_origin = get_tokenizer(
                recipe.tokenizer_name, job.texts["train"], recipe.vocab_size, cache_root=cache_root(),
                max_samples=recipe.tokenizer_train_samples, seed=recipe.seed,
            )
    job.tokenizer.model_max_length = recipe.block_size  # what the saved model can read, for pipelines' truncation
    if job.tokenizer.mask_token is None:
        raise UserError(f"tokenizer {recipe.tokenizer_name!r} has no mask token, so it cannot train an MLM")
    pack_blocks(job)


def pack_blocks(job):
    """job.packed (train, validation, and a stream's calibration sample) and job.timings; refused in one line when the
    training blocks do not fill one optimizer step."""
    from small_encoders.data_prep.packing import pack_dataset

    recipe, args, tokenizer = job.recipe, job.args, job.tokenizer
    with args.main_process_first(desc="packing"):
        job.packed, job.timings = {}, {}
        for split in ("validation",) if job.streaming else ("train", "validation"):
            job.packed[split], seconds, cached = pack_dataset(
                job.texts[split], tokenizer, recipe.block_size, with_document_ids=recipe.document_isolation,
                num_proc=recipe.preprocessing_num_workers, split_name=split,
            )
            job.timings[split] = f"{seconds:.1f} s ({'from cache' if cached else 'tokenized now'})"
    per_step_blocks = recipe.per_device_train_batch_size * args.world_size * recipe.gradient_accumulation_steps
    if job.streaming:
        from small_encoders.data_prep.streaming import BlockStream, as_dataset, pack_stream, process_part

        documents, stream_note = process_part(job.texts["train"], recipe.seed, args.process_index, args.world_size)
        job.notes.append(stream_note)
        blocks = pack_stream(documents, tokenizer, recipe.block_size, recipe.document_isolation)
        # What the time budget's calibration steps on (and a check that this process's part of the stream holds a
        # step's worth of text).
        started = time.time()
        job.packed["sample"] = as_dataset(blocks, 4 * per_step_blocks)
        job.timings["train"] = f"first {len(job.packed['sample']):,} blocks in {time.time() - started:.1f} s"
        job.packed["train"] = BlockStream(blocks, recipe.seed)
        per_step_blocks //= args.world_size  # what one process needs
    job.train_blocks = job.packed["sample"] if job.streaming else job.packed["train"]
    if len(job.train_blocks) < per_step_blocks:
        raise UserError(
            f"the training data packs into {len(job.train_blocks):,} blocks of {recipe.block_size} tokens"
            + (" in this process's part of the stream" if job.streaming else "") + f", fewer than one optimizer step "
            f"takes ({per_step_blocks:,}: --per_device_train_batch_size x "
            + ("" if job.streaming else "processes x ") + "--gradient_accumulation_steps); give more text or a smaller "
            "--per_device_train_batch_size")


def build_model(job):
    """job.model (what trains) and job.mlm (its masked LM: the model itself, or RTD's generator), sparse prediction,
    the collator, and the start's fill-mask guesses."""
    from small_encoders.modeling import enable_sparse_prediction
    from small_encoders.modeling.build import build_mlm_model
    from small_encoders.modeling.sparse_mlm import trace_sparse_selection_when_compiled
    from small_encoders.recipes.training import ResumableMLMCollator

    recipe, tokenizer = job.recipe, job.tokenizer
    if not job.continued and recipe.model_vocab_size and recipe.model_vocab_size < len(tokenizer):
        raise UserError(
            f"the tokenizer has {len(tokenizer):,} entries but model_vocab_size is {recipe.model_vocab_size:,}: "
            f"token ids would fall outside the embedding table; raise model_vocab_size or drop it"
        )
    if job.continued:
        from small_encoders.recipes.continued import load_continued_model

        job.model, load_note = load_continued_model(recipe, job.checked, tokenizer)
        job.mlm = job.model
        job.notes.append(load_note)
        if recipe.keep_best:  # put back where no step beats them (recipes/keep_best.py)
            job.start_state = {name: tensor.detach().clone() for name, tensor in job.model.state_dict().items()}
    elif job.rtd:
        from small_encoders.modeling.rtd import build_rtd_model

        job.model = build_rtd_model(model_settings_config(recipe, tokenizer), recipe.generator_size,
                                    recipe.discriminator_weight, recipe.generator_temperature, tokenizer.all_special_ids)
        job.mlm = job.model.generator  # the run's masked LM: sparse prediction and the fill-mask example are the generator's
    else:
        job.model = job.mlm = build_mlm_model(model_settings_config(recipe, tokenizer))
    job.sparse = recipe.sparse_prediction
    if job.sparse:
        try:
            enable_sparse_prediction(job.mlm)
        except ValueError as error:  # a continued model of a family without a head the hooks know
            job.sparse = False
            job.notes.append(f"sparse prediction off: {error}")
        if job.sparse and job.compiled:
            trace_sparse_selection_when_compiled()
    if not job.sparse and job.mlm.config.model_type == "small_encoder":
        job.mlm.config.sparse_prediction = False
    job.collator = ResumableMLMCollator(tokenizer, float(recipe.mlm_probability), recipe.seed, job.args.process_index,
                                        sampling_seed=job.rtd)
    # shown next to the trained ones (a continued model's guesses at its start)
    _, job.untrained_predictions = fill_mask_example(job.mlm.eval(), recipe, tokenizer)
    job.model.train()


def plan(job):
    """The steps: a time budget's plan (measured on this machine, or recorded by the run resumed) or the recipe's
    count; the warmup; the header; recipe.yaml in the run folder."""
    recipe, args = job.recipe, job.args
    if job.replace:  # everything checked (data, tokenizer, model): the old run goes now, before the first file is written
        clear_output_dir(job.out, job.is_main)
    job.budget = None
    if recipe.time_budget is not None:
        job.budget = calibrate(recipe, job.model, job.collator, job.train_blocks, args, job.resume, job.is_main)
        cap_passes(job)
        args.max_steps = job.budget.cap  # an upper bound: the TimeBudget callback ends the run
    job.steps, job.per_step = planned_steps(dict(recipe, max_steps=job.budget.planned_steps) if job.budget else recipe,
                                            None if job.streaming else len(job.packed["train"]), args.world_size)
    args.warmup_steps = int(math.ceil(float(recipe.warmup_ratio) * job.steps))
    if recipe.keep_best:
        from small_encoders.recipes.keep_best import keep_best_arguments

        job.evaluation_interval = keep_best_arguments(args, job.steps, recipe)
    if not recipe.smoke_run:
        job.notes.append(validation_note(job))
    if not job.is_main:
        return
    print("\n".join(["=" * 72, *header_lines(job), "=" * 72]), flush=True)
    for note in job.notes:
        if note:
            print(f"note: {note}", flush=True)
    hint = job.budget and few_steps_hint(job.budget.planned_steps, recipe.per_device_train_batch_size)
    if hint and not recipe.smoke_run:
        print(hint, flush=True)
    job.out.mkdir(parents=True, exist_ok=True)
    RunFolder(job.out).write_recipe(recipe.to_dict())


def cap_passes(job):
    """A time budget that would take more than --max_passes passes over the training blocks plans that many instead
    (continued pretraining: 3 by default; a small corpus seen over and over is learned by heart, and the model gets
    worse on the text it is for). A stream has no count of blocks to pass over."""
    recipe, plan = job.recipe, job.budget
    if job.streaming or not recipe.max_passes or plan.resumed:
        return
    blocks, per_step = len(job.packed["train"]), planned_steps(recipe, 0, job.args.world_size)[1]
    afforded = plan.planned_steps
    if plan.cap_passes(recipe.max_passes, blocks, per_step):
        job.notes.append(
            f"the {plan.minutes:g}-minute budget affords {afforded:,} steps, {afforded * per_step / blocks:.1f} passes "
            f"over the {blocks:,} training blocks; planned {plan.planned_steps:,} steps, at most {recipe.max_passes:g} "
            f"passes (--max_passes: more passes over a small corpus make the model worse on held-out text of the same "
            f"kind; docs/recipes.md#continued-pretraining); give more text, or --max_passes N to change it")
        if job.is_main:
            plan.write(job.out)


# Below this many held-out tokens a validation loss moves by more than the gains it is meant to show.
FEW_VALIDATION_TOKENS = 20_000


def validation_note(job):
    """A note when the held-out set is too small to mean much (its tokens are in the header's validation line)."""
    tokens = validation_tokens(job)
    if tokens >= FEW_VALIDATION_TOKENS:
        return None
    return (f"the validation set holds {tokens:,} tokens, fewer than {FEW_VALIDATION_TOKENS:,}: its loss is a noisy "
            f"figure; give --validation_files, or raise --validation_split_percentage / --max_validation_samples")


def validation_tokens(job):
    return len(job.packed["validation"]) * job.recipe.block_size


def keep_best_line(job):
    """The header's line for keep_best (recipes/keep_best.py)."""
    recipe = job.recipe
    return (f"keep best         evaluated every {job.evaluation_interval:,} steps"
            + (" and before the first (the start model)" if job.continued else "")
            + "; the weights with the lowest validation loss are saved"
            + (f"; stops after {recipe.early_stopping_patience} evaluations in a row without a new best"
               if recipe.early_stopping_patience else ""))


def header_lines(job):
    """The run header: model, data, tokenizer, masking, batch, plan, speed settings, output and logging."""
    recipe, args, packed, texts, timings = job.recipe, job.args, job.packed, job.texts, job.timings
    steps, per_step, out = job.steps, job.per_step, job.out
    if job.streaming:
        from small_encoders.data_prep.streaming import SHUFFLE_BUFFER
    return [
        f"recipe            {recipe.recipe}{' (smoke)' if recipe.smoke_run else ''}",
        *model_lines(job.model, job.rtd, recipe),
        *([f"continued from    {job.continued}: its weights, config and tokenizer (the recipe's model settings, "
           f"vocab_size and tokenizer_name are not used); peak learning rate {recipe.learning_rate:g}, warm-up "
           f"{recipe.warmup_ratio:g} of the steps"] if job.continued else []),
        f"data              {job.source}",
        (f"                  train streamed: tokenized and packed on the fly ({timings['train']}), files and blocks "
         f"shuffled ({SHUFFLE_BUFFER:,} blocks at a time)" if job.streaming else
         f"                  train {len(texts['train']):,} documents -> {len(packed['train']):,} blocks in {timings['train']}"),
        f"                  validation {len(texts['validation']):,} documents -> {len(packed['validation']):,} blocks "
        f"({validation_tokens(job):,} tokens) in {timings['validation']}",
        f"tokenizer         {recipe.tokenizer_name} ({job.tokenizer_origin}), vocabulary {len(job.tokenizer):,}",
        f"block length      {recipe.block_size}" + (" (document-isolated attention)" if recipe.document_isolation else ""),
        f"masking rate      {recipe.mlm_probability:.0%} (80/10/10), sparse prediction {'on' if job.sparse else 'off'}",
        f"effective batch   {per_step} blocks = {per_step * recipe.block_size:,} tokens per step ({args.world_size} process(es))",
        *([budget_line(job.budget)] if job.budget else []),
        *([keep_best_line(job)] if recipe.keep_best else []),
        f"planned           {steps:,} steps, {steps * per_step * recipe.block_size:,} tokens"
        + ("" if job.streaming else f" ({steps * per_step / max(1, len(packed['train'])):.2f} epochs)")
        + f", warmup {args.warmup_steps} steps, "
        f"{recipe.lr_scheduler_type} decay to the last step, bf16 {bool(job.bf16)}",
        f"speed             torch.compile {'on' if job.compiled else 'off'}"
        + (" (the first step compiles; the budget counts it)" if job.compiled and job.budget else "")
        + f", collation in {f'{job.workers} worker processes' if job.workers else 'the training process'}",
        f"output            {out}",
        f"logging           {', '.join(recipe.report_to)}" + (
            f" (event files under {out / 'runs'}; view with: tensorboard --logdir {out})"
            if "tensorboard" in recipe.report_to else ""),
    ]


def train(job):
    """The Trainer (replaced-token detection's or the masked LM's), the budget attached, train() from the checkpoint
    resumed if any; then the final evaluation."""
    from small_encoders.recipes.training import MLMTrainer, RTDTrainer, earlier_segments

    recipe, args = job.recipe, job.args
    trainer = job.trainer = (RTDTrainer if job.rtd else MLMTrainer)(
        model=job.model, args=args, train_dataset=job.packed["train"], eval_dataset=job.packed["validation"],
        data_collator=job.collator, processing_class=job.tokenizer,
    )
    if recipe.keep_best:
        from small_encoders.recipes.keep_best import attach_keep_best

        attach_keep_best(trainer, recipe, job.continued)
    if job.budget:
        attach_budget(trainer, job.budget, recipe.lr_scheduler_type, args.warmup_steps, job.out, job.is_main)
    if job.workers:
        # The DataLoader's workers are forked after the tokenizer has used its threads here: its parallelism is turned
        # off in them (one core each) rather than left on in a fork, where the Rust thread pool can deadlock.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    trainer.earlier_segments = earlier_segments(job.resume)
    try:
        trainer.train(resume_from_checkpoint=job.resume)
    except PlanComplete as done:
        if job.is_main:
            print(f"resumed at step {done.args[0]:,}, the plan's last: nothing left to train", flush=True)
    # Training time proper: evaluations and checkpoints inside train() are reported on their own. After a kill and a
    # resume, the segments before it count too (as recorded at the checkpoint resumed: work after it was redone).
    job.segments = trainer.segments()
    job.train_seconds = sum(segment["seconds"] for segment in job.segments)
    job.kept = None
    if recipe.keep_best:
        from small_encoders.recipes.keep_best import kept_weights

        job.kept = kept_weights(trainer, job.continued)
        if job.kept.kept_start:  # no step beat the start: its weights, copied in build_model, are the ones saved
            job.model.load_state_dict(job.start_state)
    job.metrics = final_metrics(trainer, job.kept.kept_step if job.kept else None)


def report(job):
    """On the first process: the model saved with its tokenizer, training log and sentence-transformers files;
    results.json; the summary lines (time, held-out loss, fill-mask before and after); the Hub push if asked."""
    trainer, recipe, out = job.trainer, job.recipe, job.out
    if not trainer.is_world_process_zero():
        return
    trainer.save_model(str(out))
    # Trainer pickles its arguments next to the model; the folder keeps recipe.yaml instead, and no pickle.
    (out / "training_args.bin").unlink(missing_ok=True)
    RunFolder(out).write_training_log(trainer.state.log_history)
    job.trust = job.mlm.config.model_type == "small_encoder" or bool(getattr(job.mlm.config, "auto_map", None))
    add_sentence_transformers_files(out, recipe.block_size)
    # The saved folder, as a Hub user loads it (with RTD, the generator: the discriminator has no MLM head).
    job.example, job.predictions = fill_mask_example(out / "generator" if job.rtd else out, recipe, job.tokenizer,
                                                     job.trust)
    result = pretraining_result(job)
    RunFolder(out).write_result(result)
    print_summary(job, result)
    if recipe.push_to_hub:
        trainer.push_to_hub(commit_message=f"{recipe.recipe} pretraining")


def pretraining_result(job):
    """results.json's record of the run."""
    from small_encoders.modeling.build import count_parameters
    from small_encoders.recipes.training import perplexity

    trainer, recipe, args, metrics, model = job.trainer, job.recipe, job.args, job.metrics, job.model
    tokens = trainer.state.global_step * job.per_step * recipe.block_size
    result = PretrainingResult(
        recipe=recipe.recipe, smoke=recipe.smoke_run, init_from=str(job.continued) if job.continued else None,
        parameters=count_parameters(model.discriminator if job.rtd else model),
        data=job.source,
        validation_data=validation_source(recipe),
        hardware=describe_hardware(args.world_size), bf16=bool(args.bf16),
        command=" ".join(["accelerate launch" if args.world_size > 1 else "python"] + [shlex.quote(a) for a in sys.argv]),
        commit=source_commit(),
        block_size=recipe.block_size, mlm_probability=recipe.mlm_probability,
        train_steps=trainer.state.global_step, train_tokens=tokens,
        train_seconds=round(job.train_seconds, 2), segments=job.segments,
        tokens_per_second=round(tokens / max(job.train_seconds, 1e-9)),
        eval_seconds_during_training=round(trainer.eval_seconds, 1), save_seconds=round(trainer.save_seconds, 1),
        # The step count of the plan in force: the last re-plan's, or the calibration's where none was due (a plan
        # under 20 steps, e.g. on a loaded machine, is not re-planned).
        time_budget=job.budget.result() if job.budget else None,
        objective=recipe.objective, eval_loss=metrics["eval_loss"],
        # With RTD the loss is generator + weight x discriminator: its exponential is no perplexity.
        eval_perplexity=None if job.rtd else perplexity(metrics["eval_loss"]),
        eval_blocks=len(job.packed["validation"]), validation_tokens=validation_tokens(job),
        passes=None if job.streaming else round(trainer.state.global_step * job.per_step / len(job.packed["train"]), 2),
        kept=job.kept.as_json() if job.kept else None,
        fill_mask_example={"text": job.example, "top5": job.predictions, "untrained_top5": job.untrained_predictions},
    )
    if job.rtd:
        result.generator_parameters = count_parameters(model) - count_parameters(model.discriminator)
        for key in ("generator_loss", "generator_perplexity", "discriminator_loss", "discriminator_accuracy",
                    "replaced_fraction", "discriminator_chance_loss"):
            setattr(result, key, metrics[f"eval_{key}"])
    return result


def print_summary(job, result):
    """The lines a finished run ends with."""
    trainer, recipe, out, segments = job.trainer, job.recipe, job.out, job.segments
    blocks = len(job.packed["validation"])
    resumed = (f" in {len(segments)} segments (resumed at step{'s' if len(segments) > 2 else ''} "
               + ", ".join(f"{segment['from_step']:,}" for segment in segments[1:]) + ")") if len(segments) > 1 else ""
    print(f"trained {trainer.state.global_step:,} steps, {result.train_tokens:,} tokens in {job.train_seconds / 60:.1f} min"
          f"{resumed} ({result.tokens_per_second:,} tokens/s"
          + (f"; budget {job.budget.minutes:g} min" if job.budget else "")
          + f"); evaluation {trainer.eval_seconds:.0f} s and saving {trainer.save_seconds:.0f} s not counted")
    if job.rtd:
        print(f"held-out generator MLM loss {result.generator_loss:.4f}, perplexity {result.generator_perplexity:.2f}; "
              f"discriminator loss {result.discriminator_loss:.4f}, accuracy {result.discriminator_accuracy:.2%} "
              f"with {result.replaced_fraction:.1%} of the scored tokens replaced "
              f"({recipe.mlm_probability:.0%} masking, {blocks:,} blocks)")
        chance = result.discriminator_chance_loss
        if result.discriminator_loss > 0.98 * chance:
            print(f"warning: the discriminator's loss is within 2% of its chance loss {chance:.4f} (always predicting "
                  f"the replaced fraction): it has learned next to nothing from the tokens (docs/results.md#"
                  f"rtd-against-run-2)")
    else:
        print(f"held-out MLM loss {job.metrics['eval_loss']:.4f}, perplexity {result.eval_perplexity:.2f} "
              f"({recipe.mlm_probability:.0%} masking, {blocks:,} blocks)")
    if job.kept:
        print(job.kept.line(trainer.state.global_step))
    print(f"fill-mask{' (the generator, in ' + str(out / 'generator') + ')' if job.rtd else ''}: {job.example}")
    print(side_by_side(job.untrained_predictions, job.predictions, *(("start", "continued") if job.continued else ())))
    loader = "AutoModelForPreTraining" if job.rtd else "AutoModelForMaskedLM"
    print(f"saved to {out} (load with {loader}.from_pretrained({str(out)!r}{', trust_remote_code=True' if job.trust else ''})"
          + ("; it is the discriminator: fine-tune it with AutoModelForSequenceClassification; the generator is in "
             "generator/" if job.rtd else "") + ")")


def validation_source(recipe):
    """What the held-out perplexity was measured on, as data_prep/corpus.py and data_prep/streaming.py chose it."""
    if recipe.get("validation_files"):
        return recipe["validation_files"]
    hub = bool(recipe["dataset_name"]) and not recipe["train_files"]
    if hub and recipe["dataset_name"] == "embedded":
        return "the embedded corpus's validation file"
    cap = recipe["max_validation_samples"]
    if recipe["streaming"]:
        held = f"the training stream's first {cap or 2000:,} documents, left out of training"
        return f"the dataset's validation split (its first {cap or 2000:,} documents), or where it has none {held}" if hub else held
    held = f"{recipe['validation_split_percentage']}% held out of the training data" + (f", at most {cap:,} documents" if cap else "")
    return f"the dataset's validation split, or where it has none {held}" if hub else held


def final_metrics(trainer, kept_step=None):
    """The held-out metrics of the saved model. The Trainer evaluates at its last step (an --eval_steps multiple,
    or the end of training, which a time budget sets), and keep_best's model is one it evaluated (`kept_step`; 0: the
    start): those are reused rather than measured a second time."""
    step = trainer.state.global_step if kept_step is None else kept_step
    row = next((row for row in reversed(trainer.state.log_history) if "eval_loss" in row and row.get("step") == step),
               None)
    if row is not None:
        return {key: value for key, value in row.items() if key.startswith("eval_")}
    return trainer.evaluate()


@entry_point
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        named = argv[argv.index("--recipe") + 1] if "--recipe" in argv[:-1] else None
        shown = load_recipe(named, smoke="--smoke" in argv) if named else None  # that recipe's values
        print(__doc__ + "\n" + USAGE + "\nrecipes: " + ", ".join(available_recipes()) + "\n\n" + help_text(shown))
        return 0
    if "--recipe" not in argv or argv.index("--recipe") + 1 >= len(argv):
        raise UserError(f"name a recipe with --recipe NAME ({', '.join(available_recipes())})")
    index = argv.index("--recipe")
    name = argv[index + 1]
    rest = argv[:index] + argv[index + 2 :]
    smoke = "--smoke" in rest
    rest = [a for a in rest if a != "--smoke"]
    recipe = load_recipe(name, parse_overrides(rest), smoke=smoke, check_sources=True)
    return run(recipe)


if __name__ == "__main__":
    sys.exit(main())
