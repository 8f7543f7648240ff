"""Recipes are data: `recipes/NAME.yaml` over the defaults below, then `--key value` overrides.

A YAML may hold a `smoke:` mapping of overrides that `--smoke` applies (a run of seconds on a CPU), and a `base:`
naming another recipe whose settings it starts from (so a variant lists only what it changes).
Every key must be one of DEFAULTS; values on the command line are parsed as YAML (`--mlm_probability
0.2`, `--train_files 'a.txt,b.txt'`, `--cosmopedia_filter '{max_samples: 100}'`).
"""

from pathlib import Path

import yaml

from small_encoders.core import checks
from small_encoders.core.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent

DEFAULTS = {
    "description": "",
    "base": None,  # another recipe this one starts from (its YAML is read first, this one's keys replace its keys)
    # data
    "dataset_name": None,  # Hub dataset, or "embedded" for the Python-docstring corpus
    "dataset_config": None,
    "train_files": None,  # comma-separated globs; replace the Hub source
    "streaming": False,  # read the training corpus as a stream, tokenized and packed on the fly (needs a step count or budget)
    "validation_files": None,
    "text_column": "text",
    "validation_split_percentage": 5,
    "max_train_samples": None,
    "max_validation_samples": None,
    "encoding_errors": "strict",  # or "replace" (bad bytes become U+FFFD)
    "text_sample_by": "line",  # .txt files: one document per line, per blank-line paragraph, or per file (datasets' sample_by)
    "cosmopedia_filter": None,  # keyword arguments of data_prep.cosmopedia.filter_cosmopedia
    "preprocessing_num_workers": None,  # None: this process, the tokenizer on every core; N > 1: N worker processes
    # continued pretraining
    "init_from": None,  # a model folder or Hub id whose weights, config and tokenizer the run continues from
    "continued": {},  # settings that apply with init_from, over CONTINUED_DEFAULTS (command-line values still win)
    # tokenizer
    "tokenizer_name": None,  # Hub name, local folder or vocab.txt, or train-bpe / train-wordpiece
    "vocab_size": None,  # size of a trained tokenizer
    "tokenizer_train_samples": 100_000,  # a trained tokenizer learns from this many documents (a seeded sample); null: all
    # packing
    "block_size": 128,
    "document_isolation": False,  # SmallEncoder only: attention stays inside each packed document
    # model
    "model_family": "roberta",  # roberta (stock RobertaForMaskedLM) or small_encoder
    "model_preset": None,  # small_encoder preset (modeling/configuration_small_encoder.py): bertmini, tuned, neobert, neobert-mini
    "model_config": {},  # config fields over the preset / RoBERTa defaults
    "model_vocab_size": None,  # embedding rows; None: the tokenizer's size
    # objective
    "objective": "mlm",  # mlm, or rtd: ELECTRA's replaced-token detection (a small generator, the discriminator kept)
    "mlm_probability": 0.15,
    "sparse_prediction": True,
    "generator_size": 0.25,  # rtd: the generator's width as a fraction of the discriminator's (ELECTRA: 1/4 to 1/2)
    "generator_temperature": 1.0,  # rtd: sampling temperature of the generator
    "discriminator_weight": 50.0,  # rtd: loss = generator MLM loss + weight x discriminator loss (ELECTRA's 50)
    # training (TrainingArguments names)
    "output_dir": None,  # default runs/<recipe>
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-4,
    "weight_decay": 0.01,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "max_grad_norm": 1.0,
    "lr_scheduler_type": "linear",
    "warmup_ratio": 0.06,
    "num_train_epochs": 1.0,
    "max_steps": -1,
    "time_budget": None,  # minutes of training: steps planned from the measured step time, schedule ends with the budget
    "logging_steps": 50,
    "report_to": "auto",  # Trainer's report_to (tensorboard, wandb, ..., none, or a list); auto: tensorboard when installed
    "eval_steps": 500,
    "save_steps": 500,
    "save_total_limit": 2,
    "seed": 42,
    "bf16": "auto",  # auto: on when the GPU supports it; on a CPU only by hand (true): docs/recipes.md#training
    "torch_compile": "auto",  # auto: on a GPU (static batch shapes, compiled once), off on a CPU where it did not pay
    "gradient_checkpointing": False,
    "dataloader_num_workers": "auto",  # auto: collation in 4 worker processes per GPU process (8 streaming), 0 on a CPU
    "resume_from_checkpoint": None,  # a checkpoint folder, or "latest"
    "overwrite_output_dir": False,
    "push_to_hub": False,
    "hub_model_id": None,
    "hub_private_repo": True,
    "fill_mask_example": "The meaning of the word is {mask} to everyone.",
    "smoke": {},
}

# What every `--smoke` run sets (a run of seconds on a CPU, on the embedded corpus); a recipe's own `smoke:` block adds
# to it (its tiny model shape, at least) and replaces what it names.
SMOKE_DEFAULTS = {
    "dataset_name": "embedded", "train_files": None, "validation_files": None, "text_column": "text",
    "text_sample_by": "line", "cosmopedia_filter": None, "vocab_size": 1000, "block_size": 64,
    "max_train_samples": 300, "max_validation_samples": 60, "time_budget": None, "max_steps": 6,
    "logging_steps": 2, "eval_steps": 4, "save_steps": 4, "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8, "gradient_accumulation_steps": 1,
}

# What continuing a trained model's pretraining (`init_from`) changes from starting one: a lower peak learning rate and
# a short warm-up (docs/recipes.md#continued-pretraining says why); a recipe's own `continued:` block replaces these, and
# the command line replaces both.
CONTINUED_DEFAULTS = {"learning_rate": 1e-4, "warmup_ratio": 0.01}

# Mappings that a command-line override (and a smoke block) merges into (a key of its own replaces the recipe's; the others stay).
MAPPING_KEYS = ("model_config", "cosmopedia_filter")

# Keys that may change between a run and its resumption without making it a different run.
RUN_NEUTRAL_KEYS = {"resume_from_checkpoint", "overwrite_output_dir", "push_to_hub", "hub_model_id", "hub_private_repo",
                    "logging_steps", "report_to", "dataloader_num_workers", "torch_compile", "preprocessing_num_workers", "fill_mask_example", "description"}


def available_recipes():
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


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


def check_keys(mapping, where):
    unknown = sorted(set(mapping) - set(DEFAULTS))
    if unknown:
        raise UserError(f"unknown setting(s) {unknown} in {where}; valid keys are: {', '.join(sorted(DEFAULTS))}")


def recipe_path(name):
    path = Path(name) if name.endswith((".yaml", ".yml")) else RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown recipe {name!r}; choose one of {', '.join(available_recipes())} or give a .yaml path")
    return path


def read_recipe_file(path, seen=()):
    """The YAML's settings over those of its `base:` recipe, if it names one (smoke blocks merge the same way)."""
    try:
        from_file = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        reason = " ".join(str(error).split())  # one line: YAML's messages point at the place over several
        raise UserError(f"{path} is not a readable YAML recipe ({reason})") from None
    if not isinstance(from_file, dict):
        raise UserError(f"{path} holds a {type(from_file).__name__}, not a recipe's mapping of settings (key: value lines)")
    check_keys(from_file, str(path))
    base = from_file.get("base")
    if not base:
        return from_file
    base_path = recipe_path(base).resolve()
    if base_path in (*seen, path.resolve()):
        raise UserError(f"{path}: base: {base} leads back to itself")
    inherited = read_recipe_file(base_path, (*seen, path.resolve()))
    smoke = {**(inherited.get("smoke") or {}), **(from_file.get("smoke") or {})}
    return {**inherited, **from_file, "smoke": smoke}


def load_recipe(name, overrides=None, smoke=False, check_sources=False):
    """The resolved recipe: defaults, then recipes/NAME.yaml, then (with smoke) its smoke block, then (with init_from)
    the continued-pretraining settings, then overrides.
    `check_sources`: also refuse, at once, a tokenizer that is neither a local path nor a Hub id this machine can read
    (the training script's check, before its heavy imports and the corpus)."""
    path = recipe_path(name)
    from_file = read_recipe_file(path)
    overrides = dict(overrides or {})
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
    if not recipe["output_dir"]:
        recipe["output_dir"] = str(Path("runs") / (path.stem + ("-smoke" if smoke else "")))
    validate(recipe, check_sources)
    return recipe


# Every numeric setting's range (low, high, whole numbers only), checked after the messages of the checks below: a
# negative count or an absurd size is refused before anything is read or allocated, not after the work started.
LIMITS = {
    "validation_split_percentage": (1e-3, 99, False), "max_train_samples": (1, 10**10, True),
    "max_validation_samples": (1, 10**10, True), "preprocessing_num_workers": (1, 1024, True),
    "vocab_size": (16, 4_194_304, True), "tokenizer_train_samples": (1, 10**10, True), "block_size": (8, 1_048_576, True),
    "model_vocab_size": (16, 4_194_304, True), "generator_temperature": (1e-3, 100, False),
    "discriminator_weight": (1e-3, 10_000, False), "per_device_train_batch_size": (1, 65_536, True),
    "per_device_eval_batch_size": (1, 65_536, True), "gradient_accumulation_steps": (1, 65_536, True),
    "learning_rate": (1e-9, 10, False), "weight_decay": (0, 100, False), "adam_epsilon": (0, 1, False),
    "max_grad_norm": (0, 1e6, False), "num_train_epochs": (1e-6, 100_000, False), "max_steps": (1, 10**9, True),
    "time_budget": (1e-9, 525_600, False), "logging_steps": (1, 10**9, True), "eval_steps": (1, 10**9, True),
    "save_steps": (1, 10**9, True), "save_total_limit": (1, 10**6, True), "seed": (0, checks.MAX_SEED, True),
    "dataloader_num_workers": (0, 1024, True),
}
# Values that mean "not set" rather than a number.
UNSET = {"max_steps": (None, -1), "dataloader_num_workers": ("auto",)}


def check_limits(recipe):
    for key, (low, high, integer) in LIMITS.items():
        value = recipe.get(key)
        if value is None or value in UNSET.get(key, ()):
            continue
        checks.in_range(value, f"--{key}", low, high, integer=integer)


def validate(recipe, check_sources=False):
    if recipe["model_family"] not in ("roberta", "small_encoder"):
        raise UserError(f"model_family must be roberta or small_encoder, got {recipe['model_family']!r}")
    recipe["mlm_probability"] = checks.fraction(recipe["mlm_probability"], "--mlm_probability")
    if recipe["objective"] not in ("mlm", "rtd"):
        raise UserError(f"--objective must be mlm (masked LM) or rtd (replaced-token detection), got {recipe['objective']!r}")
    recipe["generator_size"] = checks.positive_number(recipe["generator_size"], "--generator_size")
    if recipe["generator_size"] > 1:
        raise UserError(f"--generator_size {recipe['generator_size']:g} would make the generator wider than the "
                        f"discriminator; give a fraction of its width, e.g. 0.25 (ELECTRA uses 1/4 to 1/2)")
    for key in ("generator_temperature", "discriminator_weight"):
        recipe[key] = checks.positive_number(recipe[key], f"--{key}")
    for key in ("learning_rate", "num_train_epochs"):
        recipe[key] = checks.positive_number(recipe[key], f"--{key}")
    for key in ("weight_decay", "max_grad_norm", "adam_epsilon"):
        recipe[key] = checks.non_negative_number(recipe[key], f"--{key}")
    for key in ("adam_beta1", "adam_beta2"):
        recipe[key] = checks.fraction(recipe[key], f"--{key}", low_open=False)
    recipe["warmup_ratio"] = checks.fraction(recipe["warmup_ratio"], "--warmup_ratio", low_open=False)
    checks.non_negative_int(recipe["seed"], "--seed")
    for key in ("per_device_eval_batch_size", "gradient_accumulation_steps", "save_total_limit"):
        checks.positive_int(recipe[key], f"--{key}")
    for key in ("vocab_size", "model_vocab_size", "max_train_samples", "max_validation_samples", "tokenizer_train_samples"):
        checks.positive_int(recipe[key], f"--{key}", allow_none=True)
    if recipe["max_steps"] is not None and recipe["max_steps"] != -1:
        checks.positive_int(recipe["max_steps"], "--max_steps")
    if recipe["init_from"]:
        # The model's own tokenizer: its vocabulary is what the weights were trained on.
        if recipe["objective"] != "mlm":
            raise UserError("--init_from continues masked-LM pretraining; --objective rtd starts its generator and "
                            "discriminator from random weights (drop one of the two)")
        recipe["tokenizer_name"] = str(recipe["init_from"])
    if not recipe["tokenizer_name"]:
        raise UserError("the recipe sets no tokenizer_name; pass --tokenizer_name NAME_OR_PATH")
    if recipe["document_isolation"] and recipe["model_family"] != "small_encoder":
        raise UserError("document_isolation needs model_family small_encoder (stock RoBERTa has no document ids)")
    if recipe["text_sample_by"] not in ("line", "paragraph", "document"):
        raise UserError(f"text_sample_by must be line, paragraph or document, got {recipe['text_sample_by']!r}")
    for key in MAPPING_KEYS:
        if recipe[key] is not None and not isinstance(recipe[key], dict):
            raise UserError(f"--{key} must be a mapping such as '{{name: value}}', got {recipe[key]!r}")
    checks.output_folder(recipe["output_dir"])
    for key in ("torch_compile", "bf16"):
        if recipe[key] not in ("auto", True, False):
            raise UserError(f"--{key} must be auto, true or false, got {recipe[key]!r}")
    if recipe["dataloader_num_workers"] != "auto":
        checks.non_negative_int(recipe["dataloader_num_workers"], "--dataloader_num_workers (or auto)")
    if recipe["streaming"] not in (True, False):
        raise UserError(f"--streaming must be true or false, got {recipe['streaming']!r}")
    if recipe["streaming"]:
        if recipe["time_budget"] is None and not (recipe["max_steps"] and recipe["max_steps"] > 0):
            raise UserError("--streaming true needs --time_budget MINUTES or --max_steps N: a stream has no length to "
                            "count epochs in")
        if recipe["cosmopedia_filter"] is not None:
            raise UserError("cosmopedia_filter deduplicates over the whole corpus, which a stream never holds; pass "
                            "--streaming false (or --cosmopedia_filter null)")
        if recipe["tokenizer_name"] in ("train-bpe", "train-wordpiece") and not recipe["tokenizer_train_samples"]:
            raise UserError("--streaming true trains the tokenizer on the stream's first --tokenizer_train_samples "
                            "documents; give a number (the default is 100000)")
    budget = recipe["time_budget"]
    if budget is not None:
        recipe["time_budget"] = checks.positive_number(budget, "--time_budget", unit="minutes")
        if recipe["lr_scheduler_type"] not in ("linear", "cosine"):
            raise UserError(f"--time_budget needs lr_scheduler_type linear or cosine (a schedule it can end with the "
                            f"budget), got {recipe['lr_scheduler_type']!r}")
    if check_sources and recipe["init_from"]:
        from small_encoders.core.hub import check_source

        check_source(recipe["init_from"], "--init_from")  # a local folder checked whole: config, tokenizer, weights
    elif check_sources and recipe["tokenizer_name"] not in ("train-bpe", "train-wordpiece"):
        from small_encoders.core.hub import check_source

        # A mistyped path, or a Hub id without network, fails here: before the heavy imports and the corpus.
        check_source(recipe["tokenizer_name"], "--tokenizer_name", filename="tokenizer_config.json")
    recipe["report_to"] = resolve_report_to(recipe["report_to"])
    for key in ("logging_steps", "eval_steps", "save_steps", "block_size", "per_device_train_batch_size"):
        if not isinstance(recipe[key], int) or recipe[key] <= 0:
            raise UserError(f"--{key} must be a positive integer, got {recipe[key]!r}")
    check_limits(recipe)
    if recipe["save_steps"] % recipe["logging_steps"]:
        # The non-finite-loss check runs at logging steps; saving only on them keeps bad weights out of checkpoints.
        raise UserError(f"save_steps ({recipe['save_steps']}) must be a multiple of logging_steps ({recipe['logging_steps']})")


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
