"""The typed recipe of a sentence-embedding run (`recipes/train_embeddings.py`): the `EmbeddingRecipe` fields below,
then `recipes/embeddings/NAME.yaml`, then `--key value` overrides, loaded in the same three steps as a pretraining
recipe (merge, resolve, validate; recipes/recipe.py) and shown the same way by `--help`.
"""

import dataclasses
from pathlib import Path
from typing import Any

from small_encoders.core import checks
from small_encoders.core.errors import UserError
from small_encoders.recipes.recipe import (
    RECIPES_DIR,
    TypedSettings,
    check_keys,
    read_recipe_file,
    recipe_path,
    resolve_report_to,
    setting,
)

EMBEDDING_RECIPES_DIR = RECIPES_DIR / "embeddings"
GROUPS = ("data", "model", "loss", "training", "time budget", "soup", "evaluation", "logging", "Hub", "recipe")
PAIR_KINDS = ("title", "spans", "next", "same")
GLUE_PAIR_TASKS = ("mrpc", "stsb", "rte")
LOSSES = ("mnrl", "cached_mnrl")


@dataclasses.dataclass
class EmbeddingRecipe(TypedSettings):
    """Every setting of an embedding run; read as `recipe.name` or `recipe["name"]`."""

    # data: any mix of the four sources; each becomes its own training set with its own loss
    train_files: str | None = setting(None, "data", "pair files (globs; .csv, .tsv, .jsonl, .parquet): columns anchor,positive[,negative] or sentence1,sentence2[,score]")
    dataset_name: str | None = setting(None, "data", "a Hub dataset of pairs, triplets or scored pairs (the same columns)")
    dataset_config: str | None = setting(None, "data", "the Hub dataset's configuration")
    dataset_split: str = setting("train", "data", "the Hub dataset's split")
    raw_text_files: str | None = setting(None, "data", "unlabelled text (globs, the files pretraining reads; embedded: the Python-docstring corpus): pairs are made from its documents")
    raw_text_sample_by: str = setting("paragraph", "data", "raw .txt files: one document per line, per blank-line paragraph, or per file", choices=("line", "paragraph", "document"))
    raw_pairs: str = setting("spans", "data", "pairs made from a raw document: title (its first line and the text after it), spans (two distinct passages of it), next (a sentence and the next) or same (a sentence and itself, told apart by dropout alone: unsupervised SimCSE; needs --dropout)", choices=PAIR_KINDS)
    max_raw_pairs: int = setting(50_000, "data", "raw-text pairs made at most (a seeded sample of the documents)", low=1, high=10**9, integer=True)
    glue_pairs: list = setting([], "data", "labelled pairs of GLUE train sets, as scored pairs (CoSENT): mrpc (1 a paraphrase, 0 not), stsb (0-5 scores), rte (1 entailed, 0 not); never a dev or test split")
    glue_dir: str | None = setting(None, "data", "local GLUE TSV folders (MRPC/train.tsv, ...); default: the Hub's nyu-mll/glue")
    max_score: float = setting(1.0, "data", "the top of a pair file's score scale (scores run from 0 to it; 5 for STS-B-style files)", kind="positive", low=1e-9, high=1e9)
    max_train_pairs: int | None = setting(None, "data", "use at most this many rows of each training set", low=1, high=10**10, integer=True)
    encoding_errors: str = setting("strict", "data", "bytes that are not UTF-8: strict (refused) or replace (U+FFFD)", choices=("strict", "replace"))
    # model
    model_name_or_path: str | None = setting(None, "model", "the encoder to train: a model folder or Hub id (ours, BERT, RoBERTa, ModernBERT, ...)")
    max_seq_length: int = setting(128, "model", "tokens per sentence (longer ones are cut)", low=4, high=1_048_576, integer=True)
    pooling: str = setting("mean", "model", "how token states become one vector: mean (attention-masked) or cls", choices=("mean", "cls"))
    normalize: bool = setting(True, "model", "unit-length embeddings (dot product = cosine)")
    # loss
    loss: str = setting("mnrl", "loss", "pairs and triplets: mnrl (in-batch negatives) or cached_mnrl (the same over a large batch in small pieces)", choices=LOSSES)
    mini_batch_size: int = setting(32, "loss", "cached_mnrl: sentences per forward piece (memory, not the result)", low=1, high=65_536, integer=True)
    scale: float = setting(20.0, "loss", "mnrl/cosent: the similarity scale (inverse temperature)", kind="positive", low=1e-3, high=1e4)
    matryoshka_dims: list | None = setting(None, "loss", "train the first N dimensions to work alone too (e.g. [384, 128, 64]); null: off")
    # training (SentenceTransformerTrainingArguments' names)
    output_dir: str | None = setting(None, "training", "the model folder (default: runs/RECIPE)")
    per_device_train_batch_size: int = setting(64, "training", "pairs per step (each pair's in-batch negatives are the others)", low=2, high=1_048_576, integer=True, trainer=True)
    learning_rate: float = setting(1e-4, "training", "peak learning rate", kind="positive", low=1e-9, high=10, trainer=True)
    weight_decay: float = setting(0.01, "training", "AdamW weight decay", kind="nonneg", low=0, high=100, trainer=True)
    warmup_ratio: float = setting(0.1, "training", "share of the steps spent warming up", kind="fraction0")
    lr_scheduler_type: str = setting("linear", "training", "the schedule after warm-up (a time budget needs linear or cosine)", trainer=True)
    num_train_epochs: float = setting(1.0, "training", "passes over the training sets (without --max_steps or --time_budget)", kind="positive", low=1e-6, high=100_000, trainer=True)
    max_steps: int = setting(-1, "training", "optimizer steps (-1: from the epochs or the time budget)", low=1, high=10**9, integer=True)
    dropout: float | None = setting(None, "training", "the encoder's dropout while training (every dropout layer and the attention's; the saved model keeps its own); null: the model's own", kind="fraction0")
    multi_dataset_batch_sampler: str = setting("proportional", "training", "several training sets: proportional (each batch from one set, sets in proportion to their size) or round_robin", choices=("proportional", "round_robin"))
    save_steps: int = setting(500, "training", "write a checkpoint every N steps (a multiple of --logging_steps)", low=1, high=10**9, integer=True, trainer=True)
    save_total_limit: int = setting(2, "training", "checkpoints kept", low=1, high=10**6, integer=True, trainer=True)
    seed: int = setting(42, "training", "seed of the data order and the pairs made from raw text", low=0, high=checks.MAX_SEED, integer=True, trainer=True)
    bf16: Any = setting("auto", "training", "bf16 autocast: auto (on where the GPU supports it, or the CPU computes bf16 natively: AMX or AVX-512 BF16), true or false", choices=("auto", True, False))
    resume_from_checkpoint: str | None = setting(None, "training", "a checkpoint folder, or latest")
    overwrite_output_dir: bool = setting(False, "training", "replace a different run in --output_dir")
    # time budget
    time_budget: float | None = setting(None, "time budget", "minutes of training: steps planned from the measured step time, the schedule ending with the budget", kind="minutes", low=1e-9, high=525_600)
    # soup
    ingredients: dict | None = setting(None, "soup", "several runs from the same start averaged into one model (a model soup): {name: {setting: value, ...}, ...}, each ingredient this recipe with its own data, loss and training settings over it, trained apart; `share: N` gives it N parts of the time budget and `weight: N` N parts of the averaged weights (default 1 each); null: one run")
    # evaluation
    evaluate: bool = setting(True, "evaluation", "measure the trained model and its start (mean-pooled) with eval/embeddings.py at the end")
    eval_data_dir: str | None = setting(None, "evaluation", "local GLUE TSV folders for that evaluation (STS-B, MRPC, QNLI); default: --glue_dir, else the Hub")
    max_eval_pairs: int | None = setting(None, "evaluation", "use at most this many pairs (and questions) of each evaluation task", low=1, high=10**9, integer=True)
    # logging
    logging_steps: int = setting(50, "logging", "log the training loss every N steps", low=1, high=10**9, integer=True, trainer=True)
    report_to: Any = setting("auto", "logging", "tensorboard, wandb, ..., none, or a list; auto: tensorboard when installed", trainer=True)
    # Hub
    push_to_hub: bool = setting(False, "Hub", "push the model to the Hub at the end", trainer=True)
    hub_model_id: str | None = setting(None, "Hub", "the Hub repository (user/name)", trainer=True)
    hub_private_repo: bool = setting(True, "Hub", "make the Hub repository private", trainer=True)
    # recipe
    description: str = setting("", "recipe", "what the recipe is for")
    base: str | None = setting(None, "recipe", "another embedding recipe this one starts from")
    smoke: dict = setting({}, "recipe", "settings --smoke applies (a run of seconds on a CPU)")
    recipe: str = setting("", "recipe", "the recipe's name (set by loading)", kind="internal")
    smoke_run: bool = setting(False, "recipe", "whether --smoke was given (set by loading)", kind="internal")

    def sources(self):
        """The training sources this recipe names, as short words for messages."""
        named = [("--train_files", self.train_files), ("--dataset_name", self.dataset_name),
                 ("--raw_text_files", self.raw_text_files), ("--glue_pairs", self.glue_pairs)]
        return [flag for flag, value in named if value]


FIELDS = tuple(f.name for f in dataclasses.fields(EmbeddingRecipe))
DEFAULTS = {name: getattr(EmbeddingRecipe(), name) for name in EmbeddingRecipe.fields()}

# What every --smoke run sets: a few steps of small batches on a few pairs, a small evaluation; a recipe's own smoke
# block adds to it.
SMOKE_DEFAULTS = {"max_train_pairs": 64, "max_raw_pairs": 64, "per_device_train_batch_size": 8, "max_steps": 4,
                  "time_budget": None, "logging_steps": 2, "save_steps": 2, "max_eval_pairs": 40, "mini_batch_size": 4}


def available_embedding_recipes():
    return sorted(p.stem for p in EMBEDDING_RECIPES_DIR.glob("*.yaml"))


def load_embedding_recipe(name, overrides=None, smoke=False, check=True):
    """The resolved, checked EmbeddingRecipe: defaults, recipes/embeddings/NAME.yaml, its smoke block (with smoke),
    then the overrides (`check=False`: resolved only, as --help shows a recipe)."""
    path = recipe_path(name, EMBEDDING_RECIPES_DIR)
    settable = EmbeddingRecipe.fields()
    from_file = read_recipe_file(path, settable=settable, directory=EMBEDDING_RECIPES_DIR)
    overrides = dict(overrides or {})
    check_keys(overrides, "the command line", settable)
    settings = {**DEFAULTS, **from_file}
    if smoke:
        check_keys(settings["smoke"], f"{path} (smoke)", settable)
        settings.update({**SMOKE_DEFAULTS, **settings["smoke"]})
    settings.update(overrides)
    fixed_steps(settings, overrides, check)
    settings["recipe"], settings["smoke_run"] = path.stem, bool(smoke)
    recipe = EmbeddingRecipe(**resolve(settings))
    if check:
        validate(recipe)
    return recipe


def fixed_steps(settings, overrides, say):
    """--max_steps N on the command line trains N steps: the recipe's time budget is set aside (with a note). Both on
    the command line is one error line, since one of them would be ignored."""
    steps = overrides.get("max_steps")
    if steps is None or steps == -1:
        return
    if overrides.get("time_budget") is not None:
        raise UserError(f"--max_steps {steps} and --time_budget {overrides['time_budget']} both given: a run trains "
                        f"fixed steps or for a time, not both; drop one")
    if settings.get("time_budget") is not None and "time_budget" not in overrides:
        if say:
            print(f"note: --max_steps {steps}: fixed steps; the recipe's {settings['time_budget']:g}-minute time budget "
                  f"is set aside", flush=True)
        settings["time_budget"] = None


NUMBER_KINDS = {"fraction0": lambda v, flag: checks.fraction(v, flag, low_open=False),
                "positive": lambda v, flag: checks.positive_number(v, flag),
                "nonneg": lambda v, flag: checks.non_negative_number(v, flag),
                "minutes": lambda v, flag: checks.positive_number(v, flag, unit="minutes")}


def resolve(settings):
    """Numbers YAML left as text become numbers; lists given as 'a,b' become lists; the output folder and the trackers
    get their defaults."""
    settings = dict(settings)
    for name, field in EmbeddingRecipe.fields().items():
        value, kind = settings[name], field.metadata["kind"]
        if value is None or (name == "max_steps" and value == -1):
            continue
        if kind in NUMBER_KINDS:
            settings[name] = NUMBER_KINDS[kind](value, f"--{name}")
    for name in ("glue_pairs", "matryoshka_dims"):
        if isinstance(settings[name], str):
            settings[name] = [part.strip() for part in settings[name].split(",") if part.strip()]
        if isinstance(settings[name], (int, float)) and not isinstance(settings[name], bool):
            settings[name] = [settings[name]]
    if settings["glue_pairs"] is None:
        settings["glue_pairs"] = []
    if settings["max_steps"] is None:
        settings["max_steps"] = -1
    if not settings["output_dir"]:
        settings["output_dir"] = str(Path("runs") / (settings["recipe"] + ("-smoke" if settings["smoke_run"] else "")))
    settings["report_to"] = resolve_report_to(settings["report_to"])
    return settings


def validate(recipe):
    """Every check, one `error:` line naming the flag; nothing is changed."""
    for name, field in EmbeddingRecipe.fields().items():
        choices = field.metadata["choices"]
        if choices and recipe[name] not in choices:
            named = [str(c).lower() for c in choices]
            raise UserError(f"--{name} must be {', '.join(named[:-1])} or {named[-1]}, got {recipe[name]!r}")
        limits, value = field.metadata["limits"], recipe[name]
        if limits and value is not None and not (name == "max_steps" and value == -1):
            checks.in_range(value, f"--{name}", limits[0], limits[1], integer=limits[2])
    if not recipe.model_name_or_path:
        raise UserError("no model to train: pass --model_name_or_path FOLDER_OR_HUB_ID")
    if recipe.ingredients is not None:
        check_ingredients(recipe)
        ingredient_recipes(recipe)  # each ingredient names its own data; it is validated as a recipe of its own
    elif not recipe.sources():
        raise UserError("no training data: pass --train_files, --dataset_name, --raw_text_files or --glue_pairs")
    if not isinstance(recipe.glue_pairs, list) or any(task not in GLUE_PAIR_TASKS for task in recipe.glue_pairs):
        raise UserError(f"--glue_pairs takes {', '.join(GLUE_PAIR_TASKS)} (their train sets), got {recipe.glue_pairs!r}")
    dims = recipe.matryoshka_dims
    if dims is not None and (not isinstance(dims, list) or not dims
                             or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
        raise UserError(f"--matryoshka_dims must be a list of positive whole numbers such as [384,128,64], got {dims!r}")
    if recipe.time_budget is not None and recipe.lr_scheduler_type not in ("linear", "cosine"):
        raise UserError(f"--time_budget needs lr_scheduler_type linear or cosine, got {recipe.lr_scheduler_type!r}")
    if recipe.save_steps % recipe.logging_steps:
        raise UserError(f"save_steps ({recipe.save_steps}) must be a multiple of logging_steps ({recipe.logging_steps})")
    checks.output_folder(recipe.output_dir)


# What an ingredient of a soup may set: what it learns from and how (its data, loss and training), never what makes
# the ingredients one model (the start, the tokens, the pooling) or where the soup goes.
INGREDIENT_GROUPS = ("data", "loss", "training")
NOT_PER_INGREDIENT = {"output_dir", "resume_from_checkpoint", "overwrite_output_dir"}
SHARE = "share"  # an ingredient's parts of the soup's time budget
WEIGHT = "weight"  # an ingredient's parts of the soup's weights
SOUP_KEYS = (SHARE, WEIGHT)


def check_ingredients(recipe):
    """A soup's ingredients: two or more named mappings of settings an ingredient may change."""
    ingredients = recipe.ingredients
    if not isinstance(ingredients, dict) or len(ingredients) < 2:
        raise UserError(f"--ingredients must name two or more runs to average, such as "
                        f"{{retrieval: {{glue_pairs: []}}, similarity: {{raw_text_files: null}}}}, got {ingredients!r}")
    allowed = {name for name, f in EmbeddingRecipe.fields().items()
               if f.metadata["group"] in INGREDIENT_GROUPS and name not in NOT_PER_INGREDIENT} | set(SOUP_KEYS)
    for name, settings in ingredients.items():
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise UserError(f"--ingredients: {name!r} is not a usable name (letters, digits, - and _; it names a folder)")
        if not isinstance(settings, dict):
            raise UserError(f"--ingredients: {name} must be a mapping of settings, got {settings!r}")
        refused = sorted(set(settings) - allowed)
        if refused:
            raise UserError(f"--ingredients: {name} sets {', '.join(refused)}, which an ingredient cannot change (it "
                            f"may set its data, loss and training, its share of the time budget and its weight: "
                            f"{', '.join(sorted(allowed))})")
        for key, what in ((SHARE, "its parts of the time budget"), (WEIGHT, "its parts of the averaged weights")):
            value = settings.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise UserError(f"--ingredients: {name}'s {key} must be a positive number ({what}), got {value!r}")


def soup_weights(recipe):
    """{name: its share of the averaged weights}, summing to 1 (equal unless the ingredients say `weight`)."""
    weights = {name: settings.get(WEIGHT, 1) for name, settings in recipe.ingredients.items()}
    return {name: weight / sum(weights.values()) for name, weight in weights.items()}


def ingredient_recipes(recipe):
    """{name: the resolved, checked recipe of each ingredient}: this recipe with the ingredient's settings over it, its
    folder OUTPUT/ingredients/NAME, its share of the time budget (equal unless the ingredients say `share`; none where
    it names its own max_steps), no evaluation or upload of its own (the soup has them)."""
    shares = {name: settings.get(SHARE, 1) for name, settings in recipe.ingredients.items()}
    made = {}
    for name, settings in recipe.ingredients.items():
        budget = recipe.time_budget * shares[name] / sum(shares.values()) if recipe.time_budget is not None else None
        own = {key: value for key, value in settings.items() if key not in SOUP_KEYS}
        values = {**recipe.to_dict(), "ingredients": None, "evaluate": False, "push_to_hub": False,
                  "resume_from_checkpoint": None, "output_dir": str(Path(recipe.output_dir) / "ingredients" / name),
                  "time_budget": budget, **own}
        try:
            fixed_steps(values, own, say=False)  # an ingredient that names its steps trains them, no budget
            made[name] = EmbeddingRecipe(**resolve(values))
            validate(made[name])
        except UserError as error:
            raise UserError(f"--ingredients: {name}: {error}") from None
    return made
