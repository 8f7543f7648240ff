"""Recipes are data over typed settings: the `Recipe` fields below (each with its type, default, range and help,
grouped as a user thinks of them), then `recipes/NAME.yaml`, then `--key value` overrides.

A YAML may hold a `smoke:` mapping of overrides that `--smoke` applies (a run of seconds on a CPU), and a `base:`
naming another recipe whose settings it starts from (so a variant lists only what it changes). Every key must be a
`Recipe` field; values on the command line are parsed as YAML (`--mlm_probability 0.2`, `--train_files
'a.txt,b.txt'`, `--cosmopedia_filter '{max_samples: 100}'`).

Loading is three steps, each with one job: merge (defaults, file, smoke block, continued-pretraining settings,
overrides), `resolve` (numbers YAML left as text become numbers, `auto` trackers become names, a continued model's
tokenizer is its own), and `validate` (every check, one `error:` line; it changes nothing).
"""

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from small_encoders.core import checks
from small_encoders.core.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent

# The groups of settings, in the order --help shows them.
GROUPS = ("data", "tokenizer", "model", "objective", "training", "time budget", "continued pretraining", "logging",
          "Hub", "recipe")


def setting(default, group, help, low=None, high=None, integer=False, choices=None, trainer=False, kind=None):
    """A recipe field: its default, the group --help lists it in, its help, its range (`low`-`high`, whole numbers with
    `integer`) or its `choices`, and whether TrainingArguments takes it under the same name (`trainer`)."""
    metadata = {"group": group, "help": help, "limits": None if low is None else (low, high, integer),
                "choices": choices, "trainer": trainer, "kind": kind}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class TypedSettings(Mapping):
    """A dataclass of settings, read as `settings.name` or `settings["name"]`: also a read-only mapping, so
    `dict(settings, key=value)` gives a changed copy. `fields()` lists the user's settings (name -> dataclasses.Field,
    each with its group, help and range in its metadata), in the order of the class."""

    @classmethod
    def names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def __getitem__(self, key):
        if key not in self.names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self.names())

    @classmethod
    def fields(cls):
        return {f.name: f for f in dataclasses.fields(cls) if f.metadata["kind"] != "internal"}

    def to_dict(self):
        return {name: getattr(self, name) for name in self.names()}


@dataclasses.dataclass
class Recipe(TypedSettings):
    """Every setting of a pretraining run. Read as `recipe.name` or `recipe["name"]` (a recipe is also a read-only
    mapping, so `dict(recipe, key=value)` gives a changed copy); `Recipe.fields()` lists them with their help."""

    # data
    dataset_name: str | None = setting(None, "data", "Hub dataset, or `embedded` for the Python-docstring corpus")
    dataset_config: str | None = setting(None, "data", "the Hub dataset's configuration")
    train_files: str | None = setting(None, "data", "comma-separated globs of .txt, .txt.gz, .jsonl, .csv, .parquet files; replace the Hub source")
    streaming: bool = setting(False, "data", "read the training corpus as a stream, tokenized and packed on the fly (needs --time_budget or --max_steps)")
    validation_files: str | None = setting(None, "data", "held-out files (globs); default: --validation_split_percentage of the documents")
    text_column: str = setting("text", "data", "the column that holds the text")
    validation_split_percentage: float = setting(5, "data", "held-out share of the documents when no --validation_files", low=1e-3, high=99)
    max_train_samples: int | None = setting(None, "data", "use at most this many training documents", low=1, high=10**10, integer=True)
    max_validation_samples: int | None = setting(None, "data", "use at most this many held-out documents", low=1, high=10**10, integer=True)
    encoding_errors: str = setting("strict", "data", "bytes that are not UTF-8: strict (refused) or replace (U+FFFD)", choices=("strict", "replace"))
    text_sample_by: str = setting("line", "data", ".txt files: one document per line, per blank-line paragraph, or per file", choices=("line", "paragraph", "document"))
    cosmopedia_filter: dict | None = setting(None, "data", "keyword arguments of data_prep.cosmopedia.filter_cosmopedia (a mapping)")
    preprocessing_num_workers: int | None = setting(None, "data", "tokenize in N worker processes (default: this process, the tokenizer on every core)", low=1, high=1024, integer=True)
    # tokenizer
    tokenizer_name: str | None = setting(None, "tokenizer", "Hub name, local folder or vocab.txt, or train-bpe / train-wordpiece to train one")
    vocab_size: int | None = setting(None, "tokenizer", "size of a trained tokenizer", low=16, high=4_194_304, integer=True)
    tokenizer_train_samples: int | None = setting(100_000, "tokenizer", "a trained tokenizer learns from this many documents (a seeded sample); null: all", low=1, high=10**10, integer=True)
    # model
    block_size: int = setting(128, "model", "tokens per packed block (the model's input length)", low=8, high=1_048_576, integer=True)
    document_isolation: bool = setting(False, "model", "SmallEncoder only: attention stays inside each packed document")
    model_family: str = setting("roberta", "model", "roberta (stock RobertaForMaskedLM) or small_encoder", choices=("roberta", "small_encoder"))
    model_preset: str | None = setting(None, "model", "SmallEncoder preset: bertmini, tuned, neobert, neobert-mini")
    model_config: dict = setting({}, "model", "config fields over the preset / RoBERTa defaults (a mapping, merged into the recipe's)")
    model_vocab_size: int | None = setting(None, "model", "embedding rows (default: the tokenizer's size)", low=16, high=4_194_304, integer=True)
    # objective
    objective: str = setting("mlm", "objective", "mlm (masked LM) or rtd (ELECTRA's replaced-token detection)", choices=("mlm", "rtd"))
    mlm_probability: float = setting(0.15, "objective", "share of tokens masked (80% [MASK], 10% random, 10% kept)", kind="fraction")
    sparse_prediction: bool = setting(True, "objective", "compute the MLM head on masked positions only")
    generator_size: float = setting(0.25, "objective", "rtd: the generator's width as a fraction of the discriminator's (ELECTRA: 1/4 to 1/2)", kind="positive")
    generator_temperature: float = setting(1.0, "objective", "rtd: sampling temperature of the generator", kind="positive", low=1e-3, high=100)
    discriminator_weight: float = setting(50.0, "objective", "rtd: loss = generator MLM loss + weight x discriminator loss", kind="positive", low=1e-3, high=10_000)
    # training (TrainingArguments' names)
    output_dir: str | None = setting(None, "training", "the run folder (default: runs/RECIPE)")
    per_device_train_batch_size: int = setting(32, "training", "blocks per device per step", low=1, high=65_536, integer=True, trainer=True)
    per_device_eval_batch_size: int = setting(64, "training", "blocks per device per evaluation batch", low=1, high=65_536, integer=True, trainer=True)
    gradient_accumulation_steps: int = setting(1, "training", "batches per optimizer step", low=1, high=65_536, integer=True, trainer=True)
    learning_rate: float = setting(5e-4, "training", "peak learning rate", kind="positive", low=1e-9, high=10, trainer=True)
    weight_decay: float = setting(0.01, "training", "AdamW weight decay", kind="nonneg", low=0, high=100, trainer=True)
    adam_beta1: float = setting(0.9, "training", "AdamW beta1", kind="fraction0", trainer=True)
    adam_beta2: float = setting(0.999, "training", "AdamW beta2", kind="fraction0", trainer=True)
    adam_epsilon: float = setting(1e-8, "training", "AdamW epsilon", kind="nonneg", low=0, high=1, trainer=True)
    max_grad_norm: float = setting(1.0, "training", "gradient clipping (0: none)", kind="nonneg", low=0, high=1e6, trainer=True)
    lr_scheduler_type: str = setting("linear", "training", "learning-rate schedule after warmup (a time budget needs linear or cosine)", trainer=True)
    warmup_ratio: float = setting(0.06, "training", "share of the steps spent warming up", kind="fraction0")
    num_train_epochs: float = setting(1.0, "training", "passes over the corpus (without --max_steps or --time_budget)", kind="positive", low=1e-6, high=100_000, trainer=True)
    max_steps: int = setting(-1, "training", "optimizer steps (-1: from the epochs or the time budget)", low=1, high=10**9, integer=True)
    eval_steps: int = setting(500, "training", "evaluate on the held-out blocks every N steps", low=1, high=10**9, integer=True, trainer=True)
    save_steps: int = setting(500, "training", "write a checkpoint every N steps (a multiple of --logging_steps)", low=1, high=10**9, integer=True, trainer=True)
    save_total_limit: int = setting(2, "training", "checkpoints kept", low=1, high=10**6, integer=True, trainer=True)
    seed: int = setting(42, "training", "seed of the model, the data order and the masks", low=0, high=checks.MAX_SEED, integer=True, trainer=True)
    bf16: Any = setting("auto", "training", "auto (on where the GPU supports it), true or false", choices=("auto", True, False))
    torch_compile: Any = setting("auto", "training", "auto (on a GPU), true or false", choices=("auto", True, False))
    gradient_checkpointing: bool = setting(False, "training", "recompute activations in the backward pass (less memory, slower)")
    dataloader_num_workers: Any = setting("auto", "training", "auto (4 collation workers per GPU process, 8 streaming; 0 on a CPU) or N", low=0, high=1024, integer=True)
    resume_from_checkpoint: str | None = setting(None, "training", "a checkpoint folder, or latest")
    overwrite_output_dir: bool = setting(False, "training", "replace a different run in --output_dir")
    # time budget
    time_budget: float | None = setting(None, "time budget", "minutes of training: steps planned from the measured step time, re-planned as it goes, the schedule ending with the budget", kind="minutes", low=1e-9, high=525_600)
    # continued pretraining
    init_from: str | None = setting(None, "continued pretraining", "a model folder or Hub id whose weights, config and tokenizer the run continues from")
    continued: dict = setting({}, "continued pretraining", "settings that apply with --init_from, over the continued-pretraining defaults (a mapping)")
    keep_best: bool = setting(False, "continued pretraining", "evaluate --evaluations times during the run and save the weights with the lowest validation loss (with --init_from, the start's included); on by default with --init_from")
    evaluations: int = setting(8, "continued pretraining", "with --keep_best: evaluations spread over the planned steps (each on every validation block)", low=1, high=10_000, integer=True)
    early_stopping_patience: int = setting(2, "continued pretraining", "with --keep_best: stop after this many evaluations in a row without a new lowest validation loss (0: never)", low=0, high=10_000, integer=True)
    fail_if_worse: bool = setting(False, "continued pretraining", "exit with code 1 when no step beat the start model (the start's weights are saved either way)")
    replay_files: str | None = setting(None, "continued pretraining", "general text (globs, one document per line) mixed into the training documents against forgetting; its held-out share is never drawn from")
    replay_fraction: float = setting(0.0, "continued pretraining", "with --replay_files: the share of the training characters that is general text", kind="fraction0", low=0, high=0.95)
    max_passes: float | None = setting(None, "continued pretraining", "a time budget plans at most this many passes over the training blocks (null: no cap); 3 with --init_from (docs/recipes.md#continued-pretraining)", kind="positive", low=1e-3, high=1e6)
    # logging
    logging_steps: int = setting(50, "logging", "log the training loss every N steps", low=1, high=10**9, integer=True, trainer=True)
    report_to: Any = setting("auto", "logging", "tensorboard, wandb, ..., none, or a list; auto: tensorboard when installed", trainer=True)
    fill_mask_example: str = setting("The meaning of the word is {mask} to everyone.", "logging", "the sentence whose masked word the run guesses before and after training")
    # Hub
    push_to_hub: bool = setting(False, "Hub", "push the model to the Hub at the end", trainer=True)
    hub_model_id: str | None = setting(None, "Hub", "the Hub repository (user/name)", trainer=True)
    hub_private_repo: bool = setting(True, "Hub", "make the Hub repository private", trainer=True)
    # recipe
    description: str = setting("", "recipe", "what the recipe is for")
    base: str | None = setting(None, "recipe", "another recipe this one starts from (its YAML first, this one's keys over it)")
    smoke: dict = setting({}, "recipe", "settings --smoke applies (a run of seconds on a CPU)")
    # set by loading, not by the user
    recipe: str = setting("", "recipe", "the recipe's name (set by loading)", kind="internal")
    smoke_run: bool = setting(False, "recipe", "whether --smoke was given (set by loading)", kind="internal")

    def training_arguments(self, **machine):
        """The Trainer's arguments: every field TrainingArguments takes under its own name, then what this run decides
        for the machine (`machine`: bf16, torch_compile, dataloader_num_workers, use_cpu, ...)."""
        from transformers import TrainingArguments

        same = {name: getattr(self, name) for name, f in Recipe.fields().items() if f.metadata["trainer"]}
        return TrainingArguments(
            output_dir=str(self.output_dir), **same, max_steps=self.max_steps if self.max_steps else -1,
            data_seed=self.seed, logging_nan_inf_filter=False, eval_strategy="steps", save_strategy="steps",
            **({"gradient_checkpointing": True} if self.gradient_checkpointing else {}), **machine)


FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))
DEFAULTS = {name: getattr(Recipe(), name) for name in Recipe.fields()}  # the settings a user gives
# Every numeric setting's range (low, high, whole numbers only), checked after the messages of the checks below: a
# negative count or an absurd size is refused before anything is read or allocated, not after the work started.
LIMITS = {name: f.metadata["limits"] for name, f in Recipe.fields().items() if f.metadata["limits"]}

# What every `--smoke` run sets (a run of seconds on a CPU, on the embedded corpus); a recipe's own `smoke:` block adds
# to it (its tiny model shape, at least) and replaces what it names.
SMOKE_DEFAULTS = {
    "dataset_name": "embedded", "train_files": None, "validation_files": None, "text_column": "text",
    "text_sample_by": "line", "cosmopedia_filter": None, "vocab_size": 1000, "block_size": 64,
    "max_train_samples": 300, "max_validation_samples": 60, "time_budget": None, "max_steps": 6,
    "logging_steps": 2, "eval_steps": 4, "save_steps": 4, "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8, "gradient_accumulation_steps": 1,
}

# What continuing a trained model's pretraining (`init_from`) changes from starting one: a lower peak learning rate, a
# short warm-up, the best weights kept (the start's among them) and a time budget planned for at most 3 passes over the
# data (docs/recipes.md#continued-pretraining says why); a recipe's own `continued:` block replaces these, and the
# command line replaces both.
CONTINUED_DEFAULTS = {"learning_rate": 1e-4, "warmup_ratio": 0.01, "keep_best": True, "max_passes": 3}

# Mappings that a command-line override (and a smoke block) merges into (a key of its own replaces the recipe's; the others stay).
MAPPING_KEYS = ("model_config", "cosmopedia_filter")

# Keys that may change between a run and its resumption without making it a different run.
RUN_NEUTRAL_KEYS = {"resume_from_checkpoint", "overwrite_output_dir", "push_to_hub", "hub_model_id", "hub_private_repo",
                    "logging_steps", "report_to", "dataloader_num_workers", "torch_compile", "preprocessing_num_workers", "fill_mask_example", "description"}


def type_name(field):
    """How --help names a field's type."""
    if field.metadata["choices"]:
        return "|".join(str(c).lower() for c in field.metadata["choices"])
    special = {"dataloader_num_workers": "auto|int", "report_to": "auto|names"}
    if field.name in special:
        return special[field.name]
    kinds = typing.get_args(field.type) or (field.type,)
    base = next(kind for kind in kinds if kind is not type(None))
    name = {str: "text", bool: "bool", int: "int", float: "float", dict: "mapping", list: "list"}.get(base, "value")
    return name + (" or null" if type(None) in kinds else "")


def shown_value(value):
    """A value as it would be written in a recipe's YAML (null, true, {a: 1}, text)."""
    if isinstance(value, str):
        return value if value else "''"
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def help_text(recipe=None, fields=None, groups=GROUPS):
    """Every setting by group, with its type, its help, its range and its value: the default, or `recipe`'s values
    (`--recipe NAME --help`). `fields` (name -> dataclasses.Field, default the pretraining Recipe's) and `groups` let
    another typed recipe (recipes/embedding_recipe.py) show its own."""
    fields = Recipe.fields() if fields is None else fields
    values = recipe.to_dict() if recipe is not None else {name: field_default(f) for name, f in fields.items()}
    source = f"{recipe['recipe']}" if recipe is not None else "default"
    lines = [f"settings (--key value, values read as YAML), each with its {'value in recipe ' + source if recipe is not None else 'default'}:"]
    for group in groups:
        lines.append(f"\n{group}:")
        for name, field in fields.items():
            if field.metadata["group"] == group:
                limits = field.metadata["limits"]
                ranged = f", {checks.shown(limits[0])} to {checks.shown(limits[1])}" if limits else ""
                lines.append(f"  --{name} ({type_name(field)}{ranged}; {source}: {shown_value(values[name])})")
                lines.append(f"      {field.metadata['help']}")
    return "\n".join(lines)


def field_default(field):
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def available_recipes(directory=RECIPES_DIR):
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def parse_overrides(tokens):
    """['--key', 'value', '--flag', ...] -> {key: parsed value}; a bare flag means true."""
    overrides, index = {}, 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            raise UserError(f"unexpected argument {token!r}; overrides look like --key value")
        key, _, inline = token[2:].partition("=")
        if inline:
            value, index = inline, index + 1
        elif index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
            value, index = tokens[index + 1], index + 2
        else:
            value, index = "true", index + 1
        try:
            overrides[key] = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError:
            overrides[key] = value
    return overrides


def check_keys(mapping, where, settable=None):
    """An unknown key is one error line naming the nearest field (a typo) or, failing that, pointing at --help.
    `settable`: the field names (default: the pretraining Recipe's)."""
    settable = Recipe.fields() if settable is None else settable
    unknown = sorted(set(mapping) - set(settable))
    if unknown:
        near = difflib.get_close_matches(unknown[0], settable, n=1, cutoff=0.6)
        hint = f"did you mean --{near[0]}?" if near else "see every setting with --help"
        raise UserError(f"unknown setting {', '.join('--' + key for key in unknown)} in {where}; {hint}")


def recipe_path(name, directory=RECIPES_DIR):
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path(directory) / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown recipe {name!r}; choose one of {', '.join(available_recipes(directory))} or give a .yaml path")
    return path


def read_recipe_file(path, seen=(), settable=None, directory=RECIPES_DIR):
    """The YAML's settings over those of its `base:` recipe, if it names one (smoke blocks merge the same way).
    `settable` and `directory`: another typed recipe's field names and folder (default: pretraining's)."""
    try:
        from_file = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        reason = " ".join(str(error).split())  # one line: YAML's messages point at the place over several
        raise UserError(f"{path} is not a readable YAML recipe ({reason})") from None
    if not isinstance(from_file, dict):
        raise UserError(f"{path} holds a {type(from_file).__name__}, not a recipe's mapping of settings (key: value lines)")
    check_keys(from_file, str(path), settable)
    base = from_file.get("base")
    if not base:
        return from_file
    base_path = recipe_path(base, directory).resolve()
    if base_path in (*seen, path.resolve()):
        raise UserError(f"{path}: base: {base} leads back to itself")
    inherited = read_recipe_file(base_path, (*seen, path.resolve()), settable, directory)
    smoke = {**(inherited.get("smoke") or {}), **(from_file.get("smoke") or {})}
    return {**inherited, **from_file, "smoke": smoke}


def load_recipe(name, overrides=None, smoke=False, check_sources=False):
    """The resolved, checked Recipe: defaults, then recipes/NAME.yaml, then (with smoke) its smoke block, then (with
    init_from) the continued-pretraining settings, then overrides; then `resolve`, then `validate`.
    `check_sources`: also refuse, at once, a tokenizer or start model that is neither a local path nor a Hub id this
    machine can read (the training script's check, before its heavy imports and the corpus)."""
    path = recipe_path(name)
    settings = merge(path, read_recipe_file(path), dict(overrides or {}), smoke)
    recipe = Recipe(**resolve(settings))
    validate(recipe, check_sources)
    return recipe


def merge(path, from_file, overrides, smoke):
    """The settings from their sources, later ones over earlier ones (mappings merged key by key)."""
    check_keys(overrides, "the command line")
    recipe = {**DEFAULTS, **from_file}
    if smoke:
        check_keys(recipe["smoke"], f"{path} (smoke)")
        settings = {**SMOKE_DEFAULTS, **recipe["smoke"]}
        for key in MAPPING_KEYS:  # the smoke block's tiny shape over the recipe's model_config (its other fields stay)
            if isinstance(settings.get(key), dict) and isinstance(recipe.get(key), dict):
                settings[key] = {**recipe[key], **settings[key]}
        recipe.update(settings)
    if overrides.get("init_from") or (recipe["init_from"] and "init_from" not in overrides):
        if not isinstance(recipe["continued"], dict):
            raise UserError(f"{path}: continued: must be a mapping of settings (key: value lines)")
        check_keys(recipe["continued"], f"{path} (continued)")
        recipe.update({**CONTINUED_DEFAULTS, **recipe["continued"]})
    for key in MAPPING_KEYS:
        # `--model_config '{hidden_size: 128}'` changes one field of the recipe's model_config, not all of it; to
        # replace a mapping whole, write a recipe file with `base: NAME` and the new mapping (a file's replaces its base's).
        if isinstance(overrides.get(key), dict) and isinstance(recipe.get(key), dict):
            overrides[key] = {**recipe[key], **overrides[key]}
    recipe.update(overrides)
    recipe["recipe"] = path.stem
    recipe["smoke_run"] = bool(smoke)
    return recipe


# How a number-valued field is read, and what its message says when the value is no number (YAML leaves '1e-3' as
# text): by its kind, else by its range.
NUMBER_KINDS = {"fraction": lambda v, flag: checks.fraction(v, flag),
                "fraction0": lambda v, flag: checks.fraction(v, flag, low_open=False),
                "positive": lambda v, flag: checks.positive_number(v, flag),
                "nonneg": lambda v, flag: checks.non_negative_number(v, flag),
                "minutes": lambda v, flag: checks.positive_number(v, flag, unit="minutes")}
# Values that mean "not set" rather than a number.
UNSET = {"max_steps": (None, -1), "dataloader_num_workers": ("auto",)}


def resolve(settings):
    """Values as the run uses them: numbers YAML left as text ('1e-3') become numbers (a value that is no number is
    one error line), `report_to: auto` becomes the trackers installed, the output folder gets its default, and a
    continued model's tokenizer is its own (its vocabulary is what the weights were trained on)."""
    settings = dict(settings)
    for name, field in Recipe.fields().items():
        value, kind, limits = settings[name], field.metadata["kind"], field.metadata["limits"]
        if value is None or value in UNSET.get(name, ()):
            continue
        if kind in NUMBER_KINDS:
            settings[name] = NUMBER_KINDS[kind](value, f"--{name}")
        elif limits and not limits[2]:  # a float within its range
            settings[name] = checks.in_range(value, f"--{name}", limits[0], limits[1])
    if not settings["output_dir"]:
        settings["output_dir"] = str(Path("runs") / (settings["recipe"] + ("-smoke" if settings["smoke_run"] else "")))
    if settings["init_from"] and settings["objective"] == "mlm":
        settings["tokenizer_name"] = str(settings["init_from"])
    settings["report_to"] = resolve_report_to(settings["report_to"])
    return settings


def check_limits(recipe):
    for key, (low, high, integer) in LIMITS.items():
        value = recipe[key]
        if value is None or value in UNSET.get(key, ()):
            continue
        checks.in_range(value, f"--{key}", low, high, integer=integer)


def validate(recipe, check_sources=False):
    """Every check of a resolved recipe, each one `error:` line naming the flag; nothing is changed."""
    for name, field in Recipe.fields().items():
        choices = field.metadata["choices"]
        if choices and recipe[name] not in choices:
            named = [str(c).lower() for c in choices]
            raise UserError(f"--{name} must be {', '.join(named[:-1])} or {named[-1]}, got {recipe[name]!r}")
    if recipe.generator_size > 1:
        raise UserError(f"--generator_size {recipe.generator_size:g} would make the generator wider than the "
                        f"discriminator; give a fraction of its width, e.g. 0.25 (ELECTRA uses 1/4 to 1/2)")
    if recipe.init_from and recipe.objective != "mlm":
        raise UserError("--init_from continues masked-LM pretraining; --objective rtd starts its generator and "
                        "discriminator from random weights (drop one of the two)")
    if not recipe.tokenizer_name:
        raise UserError("the recipe sets no tokenizer_name; pass --tokenizer_name NAME_OR_PATH")
    if recipe.document_isolation and recipe.model_family != "small_encoder":
        raise UserError("document_isolation needs model_family small_encoder (stock RoBERTa has no document ids)")
    for key in MAPPING_KEYS:
        if recipe[key] is not None and not isinstance(recipe[key], dict):
            raise UserError(f"--{key} must be a mapping such as '{{name: value}}', got {recipe[key]!r}")
    checks.output_folder(recipe.output_dir)
    if recipe.streaming not in (True, False):
        raise UserError(f"--streaming must be true or false, got {recipe.streaming!r}")
    if recipe.streaming:
        check_streaming(recipe)
    if bool(recipe.replay_files) != bool(recipe.replay_fraction):
        raise UserError("--replay_files and --replay_fraction go together: name the general text and its share "
                        "(e.g. --replay_fraction 0.2), or neither")
    if recipe.replay_files and recipe.streaming:
        raise UserError("--replay_files mixes general text into a corpus held in memory; pass --streaming false")
    if recipe.time_budget is not None and recipe.lr_scheduler_type not in ("linear", "cosine"):
        raise UserError(f"--time_budget needs lr_scheduler_type linear or cosine (a schedule it can end with the "
                        f"budget), got {recipe.lr_scheduler_type!r}")
    for key in ("logging_steps", "eval_steps", "save_steps", "block_size", "per_device_train_batch_size"):
        if isinstance(recipe[key], bool) or not isinstance(recipe[key], int) or recipe[key] <= 0:
            raise UserError(f"--{key} must be a positive integer, got {recipe[key]!r}")
    check_limits(recipe)
    if recipe.save_steps % recipe.logging_steps:
        # The non-finite-loss check runs at logging steps; saving only on them keeps bad weights out of checkpoints.
        raise UserError(f"save_steps ({recipe.save_steps}) must be a multiple of logging_steps ({recipe.logging_steps})")
    if check_sources:
        check_recipe_sources(recipe)


def check_streaming(recipe):
    if recipe.time_budget is None and not (recipe.max_steps and recipe.max_steps > 0):
        raise UserError("--streaming true needs --time_budget MINUTES or --max_steps N: a stream has no length to "
                        "count epochs in")
    if recipe.cosmopedia_filter is not None:
        raise UserError("cosmopedia_filter deduplicates over the whole corpus, which a stream never holds; pass "
                        "--streaming false (or --cosmopedia_filter null)")
    if recipe.tokenizer_name in ("train-bpe", "train-wordpiece") and not recipe.tokenizer_train_samples:
        raise UserError("--streaming true trains the tokenizer on the stream's first --tokenizer_train_samples "
                        "documents; give a number (the default is 100000)")


def check_recipe_sources(recipe):
    """A mistyped path, or a Hub id without network, fails here: before the heavy imports and the corpus."""
    from small_encoders.core.hub import check_source

    if recipe.init_from:
        check_source(recipe.init_from, "--init_from")  # a local folder checked whole: config, tokenizer, weights
    elif recipe.tokenizer_name not in ("train-bpe", "train-wordpiece"):
        check_source(recipe.tokenizer_name, "--tokenizer_name", filename="tokenizer_config.json")
    if recipe.replay_files:
        from small_encoders.data_prep.corpus import expand_files

        expand_files(recipe.replay_files, "--replay_files")


def resolve_report_to(value):
    """Trainer's `report_to` from the recipe's: `auto` is tensorboard when the package is installed, else none.
    Unknown names are refused with the valid ones; a known tracker that is not installed is named with its package."""
    import importlib.util

    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    if value is None or value is False:
        return ["none"]
    if value == "auto":
        installed = importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
        return ["tensorboard"] if installed else ["none"]
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"report_to must be a tracker name or a list of them, got {value!r}")
    valid = sorted(INTEGRATION_TO_CALLBACK) + ["all", "none"]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UserError(f"--report_to: unknown tracker(s) {unknown}; choose from {', '.join(valid)} (or auto)")
    packages = {"tensorboard": ("tensorboard", "tensorboardX")}
    for name in names:
        if name in packages and not any(importlib.util.find_spec(p) for p in packages[name]):
            raise UserError(f"--report_to {name} needs the {name} package: pip install {name}")
    return names


def run_identity(recipe):
    """The settings that define a run (for refusing to mix two runs in one output folder); a key that a run from before
    the key existed did not record counts as its default."""
    return {k: v for k, v in {**DEFAULTS, **recipe}.items() if k not in RUN_NEUTRAL_KEYS}
