"""Train a sentence embedder from any encoder with sentence-transformers' own trainer.

    python recipes/train_embeddings.py --recipe embed --model_name_or_path MODEL --output_dir OUT [--key value ...] [--smoke]

The recipe (recipes/embeddings/NAME.yaml) names the training data: pair files, a Hub dataset, the labelled pairs of
GLUE train sets, or raw text from which pairs are made with no labels. Pairs and triplets train with in-batch
negatives (MultipleNegativesRankingLoss, or its cached variant for a large batch on a small machine), scored pairs with
CoSENT, each set its own loss, batches free of duplicate texts; Matryoshka is an option. The output folder is a
sentence-transformers model (`SentenceTransformer(folder, trust_remote_code=True)`) with recipe.yaml, the training
log, embedding_results.json (the trained model and its start, mean-pooled, measured by eval/embeddings.py) and a
model card.
"""

import copy
import importlib.metadata
import shlex
import sys
import time
from pathlib import Path

from small_encoders.core.errors import UserError, entry_point
from small_encoders.core.run_folder import RunFolder, describe_hardware, source_commit
from small_encoders.recipes.embedding_recipe import (
    GROUPS,
    EmbeddingRecipe,
    available_embedding_recipes,
    load_embedding_recipe,
)
from small_encoders.recipes.recipe import help_text, parse_overrides

USAGE = "usage: train_embeddings.py --recipe NAME --model_name_or_path MODEL [--output_dir OUT] [--smoke] [--key value ...]"
# Settings that do not change what is trained (a recipe's name, text and `base:` neither: its resolved settings do;
# nor the folder's own path: a run folder copied elsewhere holds the same run).
IDENTITY_NEUTRAL = {"resume_from_checkpoint", "overwrite_output_dir", "push_to_hub", "hub_model_id", "hub_private_repo",
                    "logging_steps", "report_to", "description", "evaluate", "eval_data_dir", "max_eval_pairs",
                    "recipe", "base", "smoke", "output_dir"}


def st_module(name):
    """A sentence-transformers module by its 6.x path (sentence_transformers.sentence_transformer.NAME), or the 5.x one."""
    import importlib

    try:
        return importlib.import_module(f"sentence_transformers.sentence_transformer.{name}")
    except ImportError:
        return importlib.import_module(f"sentence_transformers.{'models' if name == 'modules' else name}")


# ---------------------------------------------------------------------------------------------------- the output folder
def prepare_output_dir(recipe):
    """The checkpoint to resume from, or None; refuses to mix two different runs in one folder."""
    import shutil

    from transformers.trainer_utils import get_last_checkpoint

    out, folder = Path(recipe.output_dir), RunFolder(recipe.output_dir)
    if recipe.overwrite_output_dir and out.exists() and not recipe.resume_from_checkpoint:
        shutil.rmtree(out)
        return None
    if folder.recipe_file.exists():
        changed = changed_settings(folder, recipe)
        if changed:
            raise UserError(f"{out} holds a different run (settings differ: {', '.join(changed)}); use another "
                            f"--output_dir, or --overwrite_output_dir true to replace it")
    elif out.is_dir() and any(not (recipe.ingredients and child.name == "ingredients") for child in out.iterdir()):
        # (a soup's folder may start with ingredients copied in from an earlier soup: those are kept)
        raise UserError(f"{out} is not empty and holds no embedding run; use another --output_dir, or "
                        f"--overwrite_output_dir true to replace it")
    resume = recipe.resume_from_checkpoint
    if recipe.ingredients:
        return bool(resume)  # a soup: each ingredient resumes from its own last checkpoint (make_soup)
    if resume in (True, "latest", "last"):
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise UserError(f"--resume_from_checkpoint {resume}: {out} has no checkpoint-* folder to resume from")
        return last
    if resume and not Path(resume).is_dir():
        raise UserError(f"--resume_from_checkpoint {resume} is not a folder")
    return resume or None


def changed_settings(folder, recipe):
    """The settings (other than those that do not change what is trained) in which the run recorded in `folder`
    differs from `recipe`. A soup's ingredients' weights are not among them: a soup made again with other weights
    mixes the same finished ingredients."""
    from small_encoders.recipes.embedding_recipe import WEIGHT

    def trained(settings):
        kept = {k: v for k, v in settings.items() if k not in IDENTITY_NEUTRAL}
        if isinstance(kept.get("ingredients"), dict):
            kept["ingredients"] = {name: {k: v for k, v in about.items() if k != WEIGHT} if isinstance(about, dict)
                                   else about for name, about in kept["ingredients"].items()}
        return kept

    before, now = trained(folder.recipe()), trained(recipe.to_dict())
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


# --------------------------------------------------------------------------------------------------------------- data
def training_sets(recipe):
    """({name: dataset}, {name: shape}, lines describing them): one training set per source the recipe names."""
    from small_encoders.data_prep import pairs

    sets, shapes, lines = {}, {}, []

    def add(name, dataset, shape, what):
        if recipe.max_train_pairs:
            dataset = dataset.shuffle(seed=recipe.seed).select(range(min(recipe.max_train_pairs, len(dataset))))
        pairs.check_batches(dataset, f"the training set {name}", recipe.per_device_train_batch_size)
        sets[name], shapes[name] = dataset, shape
        lines.append(f"{name:<15} {len(dataset):,} {shape}{what}")

    if recipe.train_files:
        add("pairs", *pairs.load_pair_files(recipe.train_files, recipe.max_score, recipe.encoding_errors), f" from {recipe.train_files}")
    if recipe.dataset_name:
        add("hub", *pairs.load_hub_pairs(recipe.dataset_name, recipe.dataset_config, recipe.dataset_split,
                                         recipe.max_score), f" from the Hub dataset {recipe.dataset_name}")
    for task in recipe.glue_pairs:
        add(f"glue-{task}", *pairs.glue_pairs(task, recipe.glue_dir), f" from {pairs.GLUE_NAMES[task]} train")
    if recipe.raw_text_files:
        dataset, line = pairs.raw_text_pairs(recipe.raw_text_files, recipe.raw_pairs, recipe.raw_text_sample_by,
                                             recipe.max_raw_pairs, recipe.seed, recipe.encoding_errors)
        pairs.check_batches(dataset, "the pairs made from --raw_text_files", recipe.per_device_train_batch_size)
        sets["raw-text"], shapes["raw-text"] = dataset, "pairs"
        lines.append(line)
    return sets, shapes, lines


# -------------------------------------------------------------------------------------------------------------- model
def load_transformer(path, max_seq_length):
    """The sentence-transformers Transformer module over a model folder or Hub id, in float32 (a model saved in bf16
    trains and encodes on a CPU in float32), with the repository's own code trusted (our architectures)."""
    import torch
    from transformers.utils import logging as hf_logging

    modules = st_module("modules")
    remote = {"trust_remote_code": True}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # an MLM folder read as a bare encoder reports its unused head: expected here
    try:
        return modules.Transformer(str(path), max_seq_length=max_seq_length, model_kwargs={**remote, "dtype": torch.float32},
                                   config_kwargs=remote)
    except (OSError, ValueError) as error:
        raise UserError(f"--model_name_or_path {path}: cannot load it as an encoder with its tokenizer "
                        f"({' '.join(str(error).split())[:300]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def build_embedder(path, max_seq_length=128, pooling="mean", normalize=True):
    """SentenceTransformer: the encoder, its pooling and (optionally) unit length. With mean pooling and no
    normalisation it is the start model's mean-pooled floor (cosine similarity does not see the length)."""
    from sentence_transformers import SentenceTransformer

    import small_encoders.modeling  # noqa: F401  (our architectures, registered with the Auto classes)

    modules = st_module("modules")
    transformer = load_transformer(path, max_seq_length)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    parts = [transformer, modules.Pooling(dimension(), pooling_mode=pooling)] + ([modules.Normalize()] if normalize else [])
    return SentenceTransformer(modules=parts, device="cpu" if not _cuda() else None)


# Attention modules that hold their dropout as a number rather than a layer: ours (dropout_p), ModernBERT and the
# Llama family (attention_dropout), others (dropout_prob).
DROPOUT_NUMBERS = ("dropout_p", "attention_dropout", "dropout_prob")


def dropouts(model):
    """[(module, attribute)] of every dropout in the model: each nn.Dropout's p and each attention's number."""
    import torch

    found = []
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            found.append((module, "p"))
        found.extend((module, name) for name in DROPOUT_NUMBERS if type(getattr(module, name, None)) is float)
    return found


def set_training_dropout(model, rate):
    """Every dropout of the model set to `rate` for training; the config, and so the saved model, keeps its own.
    Returns the highest dropout the model now trains with."""
    places = dropouts(model)
    if rate is not None:
        if not places and rate > 0:
            raise UserError(f"--dropout {rate}: {type(model[0].auto_model).__name__} has no dropout layer to set")
        for module, name in places:
            setattr(module, name, float(rate))
    return max((getattr(module, name) for module, name in places), default=0.0)


def _cuda():
    import torch

    return torch.cuda.is_available()


def embedding_dimension(model):
    """The vector size (sentence-transformers 6 renamed the method)."""
    return (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()


def make_losses(recipe, model, shapes):
    """One loss per training set: in-batch negatives for pairs and triplets, CoSENT for scored pairs; each wrapped in
    Matryoshka when asked."""
    losses = st_module("losses")
    made = {}
    for name, shape in shapes.items():
        if shape == "scored":
            loss = losses.CoSENTLoss(model, scale=recipe.scale)
        elif recipe.loss == "cached_mnrl":
            loss = losses.CachedMultipleNegativesRankingLoss(model, scale=recipe.scale, mini_batch_size=recipe.mini_batch_size)
        else:
            loss = losses.MultipleNegativesRankingLoss(model, scale=recipe.scale)
        if recipe.matryoshka_dims:
            dimension = embedding_dimension(model)
            too_wide = [d for d in recipe.matryoshka_dims if d > dimension]
            if too_wide:
                raise UserError(f"--matryoshka_dims {too_wide} exceed the model's {dimension} dimensions")
            loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=sorted(set(recipe.matryoshka_dims), reverse=True))
        made[name] = loss
    return made


def loss_line(recipe, shapes):
    kinds = sorted(set(shapes.values()))
    named = {"mnrl": "MultipleNegativesRankingLoss", "cached_mnrl": f"CachedMultipleNegativesRankingLoss (pieces of {recipe.mini_batch_size})"}
    parts = []
    if {"pairs", "triplets"} & set(kinds):
        parts.append(f"{named[recipe.loss]} (in-batch negatives, scale {recipe.scale:g}) on pairs/triplets")
    if "scored" in kinds:
        parts.append(f"CoSENTLoss (scale {recipe.scale:g}) on scored pairs")
    matryoshka = f"; Matryoshka over {recipe.matryoshka_dims}" if recipe.matryoshka_dims else ""
    return "loss            " + "; ".join(parts) + matryoshka


# ------------------------------------------------------------------------------------------------------------ trainer
def make_trainer_class():
    """SentenceTransformerTrainer with what the time budget reads (recipes/budget.py): evaluation and saving timed
    apart from training, a learning-rate schedule whose length may change; and a stop on a non-finite loss."""
    from sentence_transformers import SentenceTransformerTrainer

    from small_encoders.recipes.training import budget_scheduler, check_finite_loss

    class EmbeddingTrainer(SentenceTransformerTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.eval_seconds, self.save_seconds, self.lr_lambda = 0.0, 0.0, None

        def create_scheduler(self, num_training_steps, optimizer=None):
            return budget_scheduler(self, super().create_scheduler, num_training_steps, optimizer)

        def _save_checkpoint(self, *args, **kwargs):  # Trainer has no public hook around a checkpoint's writing
            started = time.perf_counter()
            try:
                return super()._save_checkpoint(*args, **kwargs)
            finally:
                self.save_seconds += time.perf_counter() - started

        def log(self, logs, *args, **kwargs):
            check_finite_loss(self, logs)
            super().log(logs, *args, **kwargs)

    return EmbeddingTrainer


def auto_bf16():
    """bf16 autocast where it pays: a GPU that supports it, else a CPU that computes bf16 natively (AMX or AVX-512
    BF16; on the project's 2-core EPYC an embedding step took 0.76x the float32 time, and the STS-B, MRPC and QNLI
    figures of docs/results.md were measured so)."""
    import torch

    from small_encoders.deploy.serving import cpu_features

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    features = cpu_features()
    return features["amx_bf16"] or features["avx512_bf16"]


def training_arguments(recipe, shapes):
    import torch

    st_args = st_module("training_args")
    same = {name: recipe[name] for name, f in EmbeddingRecipe.fields().items() if f.metadata["trainer"]}
    bf16 = auto_bf16() if recipe.bf16 == "auto" else bool(recipe.bf16)
    return st_args.SentenceTransformerTrainingArguments(
        # warm-up: a time budget's schedule sets its own (plan_budget); otherwise the ratio (transformers 5 reads a
        # warmup_steps below 1 as a share of the steps)
        output_dir=recipe.output_dir, **same, max_steps=recipe.max_steps, bf16=bf16,
        warmup_steps=recipe.warmup_ratio if recipe.time_budget is None and recipe.warmup_ratio < 1 else 0,
        batch_sampler="no_duplicates", multi_dataset_batch_sampler=recipe.multi_dataset_batch_sampler,
        save_strategy="steps", eval_strategy="no", logging_first_step=True, data_seed=recipe.seed,
        dataloader_drop_last=True, dataloader_pin_memory=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available())


def measure_step_seconds(trainer, steps=3):
    """Seconds of one training step (forward and backward of the real loss on real batches, the first left out)."""
    import torch

    loader = iter(trainer.get_train_dataloader())
    model = trainer.model
    model.train()
    times = []
    for _ in range(steps):
        try:
            batch = next(loader)
        except StopIteration:
            break
        batch = trainer._prepare_inputs(batch)
        started = time.perf_counter()
        with trainer.accelerator.autocast():  # bf16 where the run trains in it, as its steps will
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        times.append(time.perf_counter() - started)
    model.zero_grad(set_to_none=True)
    del loader
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return sum(times[1:]) / max(1, len(times) - 1) if len(times) > 1 else times[0]


def plan_budget(recipe, trainer, args):
    """A time budget's plan (recipes/budget.py): step time measured here, re-planned during training from the Trainer's
    own step times, the schedule ending with the plan."""
    from small_encoders.recipes.budget import attach_budget, plan_for

    started = time.time()
    seconds = measure_step_seconds(trainer)
    plan = plan_for(recipe.time_budget, seconds)
    plan.steps_measured, plan.calibration_seconds = 2, round(time.time() - started, 1)
    plan.hardware = describe_hardware(args.world_size)
    args.max_steps = plan.cap
    trainer.args.max_steps = plan.cap
    warmup = int(recipe.warmup_ratio * plan.planned_steps)
    attach_budget(trainer, plan, recipe.lr_scheduler_type, warmup, recipe.output_dir, args.process_index == 0)
    print(f"time budget     {recipe.time_budget:g} min of training: {seconds:.3f} s per step (measured over 2 steps) "
          f"-> {plan.planned_steps:,} steps, re-planned during training", flush=True)
    return plan


# ------------------------------------------------------------------------------------------------------------ run
def run(recipe):
    resume = prepare_output_dir(recipe)
    if recipe.ingredients:
        model, result = make_soup(recipe, resume)
    else:
        model, result = train(recipe, resume)
    return finish(recipe, model, result)


def train(recipe, resume, data=None, start=None):
    """Train one embedder as the recipe says and save it in its folder; (model, the result's record). `data`: its
    training_sets, `start`: the start model as build_embedder makes it (a copy is trained), when already loaded."""
    print(f"embedding run   recipe {recipe.recipe}{' (smoke)' if recipe.smoke_run else ''} -> {recipe.output_dir}", flush=True)
    sets, shapes, lines = data or training_sets(recipe)
    for line in lines:
        print(line, flush=True)
    model = (copy.deepcopy(start) if start is not None else
             build_embedder(recipe.model_name_or_path, recipe.max_seq_length, recipe.pooling, recipe.normalize))
    print(f"model           {recipe.model_name_or_path}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
          f"parameters, {embedding_dimension(model)} dimensions, {recipe.pooling} pooling"
          f"{', normalised' if recipe.normalize else ''}, {recipe.max_seq_length} tokens", flush=True)
    dropout = set_training_dropout(model, recipe.dropout)
    if recipe.raw_text_files and recipe.raw_pairs == "same" and dropout == 0:
        raise UserError("--raw_pairs same pairs each sentence with itself, and the two copies differ only by dropout: "
                        "this model trains with none; pass --dropout 0.1")
    losses = make_losses(recipe, model, shapes)
    print(loss_line(recipe, shapes) + (f"; dropout {dropout:g} while training" if dropout else ""), flush=True)
    args = training_arguments(recipe, shapes)
    print(f"precision       {'bf16 autocast (float32 weights)' if args.bf16 else 'float32'}", flush=True)
    from datasets import DatasetDict

    trainer = make_trainer_class()(model=model, args=args, train_dataset=DatasetDict(sets) if len(sets) > 1 else next(iter(sets.values())),
                                   loss=losses if len(sets) > 1 else next(iter(losses.values())))
    folder = RunFolder(recipe.output_dir)
    Path(recipe.output_dir).mkdir(parents=True, exist_ok=True)
    folder.write_recipe(recipe.to_dict())
    plan = None
    if recipe.time_budget is not None:
        recorded = folder.budget_plan() if resume else None
        if recorded:
            raise UserError("resuming a time-budgeted embedding run is not supported; start it again with "
                            "--overwrite_output_dir true, or resume with --max_steps N")
        plan = plan_budget(recipe, trainer, args)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started - trainer.save_seconds
    if trainer.state.global_step == 0:
        raise UserError("no training step was taken (every batch was empty); give more distinct pairs or a smaller "
                        "--per_device_train_batch_size")
    model.save(recipe.output_dir)
    folder.write_training_log(trainer.state.log_history)
    import shutil

    for checkpoint in Path(recipe.output_dir).glob("checkpoint-*"):  # the finished folder is the model
        shutil.rmtree(checkpoint, ignore_errors=True)
    result = {"recipe": recipe.recipe, "model_name_or_path": recipe.model_name_or_path, "steps": trainer.state.global_step,
              "train_seconds": round(seconds, 1), "hardware": describe_hardware(args.world_size),
              "training_sets": {name: {"rows": len(d), "shape": shapes[name]} for name, d in sets.items()},
              "saw_stsb_train": "stsb" in recipe.glue_pairs, "bf16": bool(args.bf16), "commit": source_commit(),
              "sentence_transformers": importlib.metadata.version("sentence-transformers"),
              "command": command_line(), "time_budget": plan.result() if plan is not None else None}
    print(f"trained         {trainer.state.global_step:,} steps in {seconds / 60:.1f} min -> {recipe.output_dir}", flush=True)
    return model, result


def command_line():
    return "python recipes/train_embeddings.py " + shlex.join(sys.argv[1:]) if sys.argv[1:] else None


def finish(recipe, model, result):
    """Measure the model against its start, write embedding_results.json and the card, and upload when asked."""
    if recipe.evaluate:
        from small_encoders.eval.embeddings import compare_with_start, summary_lines

        data_dir = recipe.eval_data_dir or recipe.glue_dir
        result["evaluation"] = compare_with_start(model, recipe.model_name_or_path, data_dir, recipe.max_eval_pairs,
                                                  recipe.max_seq_length)
        for line in summary_lines(result["evaluation"]):
            print(line, flush=True)
    write_result(recipe.output_dir, result)
    from small_encoders.model_cards.embedding_card import write_embedding_card

    write_embedding_card(recipe, result)
    if recipe.push_to_hub:
        from small_encoders.model_cards.publish import main as publish

        return publish(["--model_dir", recipe.output_dir, "--repo_id", recipe.hub_model_id or Path(recipe.output_dir).name]
                       + ([] if recipe.hub_private_repo else ["--public"]))
    return 0


# ----------------------------------------------------------------------------------------------------------- the soup
def make_soup(recipe, resume):
    """A model soup: each ingredient trained from the start in OUTPUT/ingredients/NAME (one already finished there is
    kept), then the float weights of all averaged into one model saved in OUTPUT; (model, the result's record)."""
    from small_encoders.recipes.embedding_recipe import ingredient_recipes, soup_weights

    made, weights = ingredient_recipes(recipe), soup_weights(recipe)
    print(f"model soup      {len(made)} ingredients trained apart from {recipe.model_name_or_path}, then averaged: "
          f"{', '.join(f'{name} ({weights[name]:.0%})' for name in made)}", flush=True)
    records = {}
    for name, ingredient in made.items():
        folder = RunFolder(ingredient.output_dir)
        finished = folder.embedding_results() if folder.recipe_file.exists() else None
        if finished and not changed_settings(folder, ingredient):
            print(f"ingredient      {name}: already trained ({finished['steps']:,} steps in {ingredient.output_dir})",
                  flush=True)
            records[name] = finished
    # Every ingredient's data is read, and the start loaded once, before anything is written or trained: a bad file
    # of the last ingredient is refused now, not after the first has trained.
    data = {name: training_sets(ingredient) for name, ingredient in made.items() if name not in records}
    start = build_embedder(recipe.model_name_or_path, recipe.max_seq_length, recipe.pooling, recipe.normalize) if data else None
    Path(recipe.output_dir).mkdir(parents=True, exist_ok=True)
    RunFolder(recipe.output_dir).write_recipe(recipe.to_dict())
    for name, ingredient in made.items():
        if name in records:
            continue
        last = None
        if resume and Path(ingredient.output_dir).is_dir():
            from transformers.trainer_utils import get_last_checkpoint

            last = get_last_checkpoint(ingredient.output_dir)
        _, records[name] = train(ingredient, last or prepare_output_dir(ingredient), data[name], start)
        write_result(ingredient.output_dir, records[name])  # marks it finished, for a soup resumed later
    records = {name: records[name] for name in made}  # in the recipe's order
    model = average_embedders([made[name].output_dir for name in made], [weights[name] for name in made])
    model.save(recipe.output_dir)
    first = next(iter(records.values()))
    result = {"recipe": recipe.recipe, "model_name_or_path": recipe.model_name_or_path,
              "steps": sum(r["steps"] for r in records.values()),
              "train_seconds": round(sum(r["train_seconds"] for r in records.values()), 1), "hardware": first["hardware"],
              "training_sets": {f"{name}/{set_name}": about for name, r in records.items()
                                for set_name, about in r["training_sets"].items()},
              "saw_stsb_train": any(r["saw_stsb_train"] for r in records.values()),
              "bf16": any(r["bf16"] for r in records.values()), "commit": source_commit(),
              "sentence_transformers": importlib.metadata.version("sentence-transformers"), "command": command_line(),
              "time_budget": None, "ingredients": {
                  name: {"weight": weights[name], **{key: r[key] for key in ("steps", "train_seconds", "training_sets",
                                                                             "saw_stsb_train", "time_budget")}}
                  for name, r in records.items()}}
    uniform = len(set(weights.values())) == 1
    print(f"soup            the weights of {len(records)} ingredients averaged{'' if uniform else ' (weighted)'} ({result['steps']:,} steps in "
          f"{result['train_seconds'] / 60:.1f} min in all) -> {recipe.output_dir}", flush=True)
    return model, result


def average_embedders(folders, weights=None):
    """The first folder's SentenceTransformer with every floating-point weight the mean of the folders' (a uniform
    soup), or their weighted mean with `weights` (one per folder, summing to 1); the folders are runs from one start,
    so their weights have the same names and shapes."""
    from sentence_transformers import SentenceTransformer

    import small_encoders.modeling  # noqa: F401

    models = [SentenceTransformer(str(folder), device="cpu", trust_remote_code=True) for folder in folders]
    states = [m.state_dict() for m in models]
    shares = weights or [1 / len(folders)] * len(folders)
    averaged = {}
    for key, value in states[0].items():
        if any(key not in state or state[key].shape != value.shape for state in states[1:]):
            raise UserError(f"the ingredients {', '.join(map(str, folders))} are not one architecture ({key} differs); "
                            f"a soup's ingredients must start from the same model")
        averaged[key] = (sum(w * state[key].float() for w, state in zip(shares, states)).to(value.dtype)
                         if value.is_floating_point() else value)
    models[0].load_state_dict(averaged)
    return models[0]


def write_result(folder, result):
    import json

    from small_encoders.core.files import write_atomic

    write_atomic(RunFolder(folder).embedding_results_file, json.dumps(result, indent=1))


@entry_point
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        named = argv[argv.index("--recipe") + 1] if "--recipe" in argv[:-1] else None
        shown = load_embedding_recipe(named, smoke="--smoke" in argv, check=False) if named else None
        print(__doc__ + "\n" + USAGE + "\nrecipes: " + ", ".join(available_embedding_recipes()) + "\n\n"
              + help_text(shown, EmbeddingRecipe.fields(), GROUPS))
        return 0
    if "--recipe" not in argv or argv.index("--recipe") + 1 >= len(argv):
        raise UserError(f"name a recipe with --recipe NAME ({', '.join(available_embedding_recipes())})")
    index = argv.index("--recipe")
    name, rest = argv[index + 1], argv[:index] + argv[index + 2 :]
    smoke = "--smoke" in rest
    recipe = load_embedding_recipe(name, parse_overrides([a for a in rest if a != "--smoke"]), smoke=smoke)
    from small_encoders.core.hub import check_source

    check_source(recipe.model_name_or_path, "--model_name_or_path")
    return run(recipe)


if __name__ == "__main__":
    sys.exit(main())
