"""What a pretraining run folder holds, in one place.

A finished `recipes/pretrain_mlm.py` folder holds the model (weights, config, tokenizer), `recipe.yaml` (the resolved
recipe), `training_log.json` (Trainer's log history), `budget_plan.json` (a time budget's plan, kept so a resumed run
keeps it), the sentence-transformers files, and `results.json`: the `PretrainingResult` below. `RunFolder` is the one
owner of those names: pretraining writes through it, and the suite, the model card, publishing, the reference run and
the GPU-run import read through it. Also here: the cache root every part shares, and the hardware description results
record.
"""

import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from small_encoders.core.errors import UserError
from small_encoders.core.files import write_atomic

RECIPE_FILE = "recipe.yaml"
RESULTS_FILE = "results.json"
TRAINING_LOG = "training_log.json"
BUDGET_PLAN = "budget_plan.json"
EMBEDDING_RESULTS = "embedding_results.json"  # an embedding run's (recipes/train_embeddings.py)


def cache_root():
    """Where tokenizers trained by recipes, the embedded corpus and the suite's random-init floors are cached
    (`SMALL_ENCODERS_CACHE`, default ~/.cache/small-encoders)."""
    return Path(os.environ.get("SMALL_ENCODERS_CACHE", Path.home() / ".cache" / "small-encoders"))


def describe_hardware(world_size=1):
    """What a run trained or measured on: '<N> x <GPU name>', or the CPU's model, cores, architecture and the vector
    instructions torch uses (machines of one kind differed 2.6x in tokens/s: docs/results.md, run 7)."""
    import torch

    if torch.cuda.is_available():
        return f"{world_size} x {torch.cuda.get_device_name()}"
    details = [cpu_model_name(), f"{os.cpu_count()} cores", platform.machine(), torch.backends.cpu.get_cpu_capability()]
    return f"CPU ({', '.join(d for d in details if d)}), {world_size} process(es)"


def cpu_model_name():
    """The CPU's model name as the system reports it ('' where it does not)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


RTD_FIELDS = ("generator_parameters", "generator_loss", "generator_perplexity", "discriminator_loss",
              "discriminator_accuracy", "replaced_fraction", "discriminator_chance_loss")


@dataclass
class PretrainingResult:
    """`results.json` of a finished pretraining run."""

    recipe: str
    parameters: int  # with objective rtd: the discriminator's (what is saved)
    data: str  # the training data as the header named it
    block_size: int
    mlm_probability: float
    train_steps: int
    train_tokens: int
    train_seconds: float  # training only: evaluation and saving inside the run are left out
    eval_loss: float
    eval_blocks: int
    hardware: str | None = None  # written by every run since 2026-11-22; older folders lack it
    command: str | None = None
    commit: str | None = None  # of this repository (core.run_folder.source_commit); older folders lack it
    tokens_per_second: int | None = None
    smoke: bool = False
    validation_data: str | None = None
    bf16: bool = False
    segments: list = field(default_factory=list)  # [{"from_step", "to_step", "seconds"}]: one per start, resumes included
    eval_seconds_during_training: float = 0.0
    save_seconds: float = 0.0
    time_budget: dict | None = None  # the plan in force at the end (budget_plan.json's, with its final "steps")
    objective: str = "mlm"
    eval_perplexity: float | None = None  # None with rtd: its loss is a sum, whose exponential is no perplexity
    fill_mask_example: dict | None = None  # {"text", "top5", "untrained_top5"} (with init_from: the start's top 5)
    init_from: str | None = None  # continued pretraining: the model the run started from
    validation_tokens: int | None = None  # what the held-out figure is measured on
    passes: float | None = None  # over the training blocks (None for a stream)
    # keep_best: {kept_step (0: the start), kept_loss, kept_perplexity, start_loss, start_perplexity, evaluations,
    # stopped_early_at}: recipes/keep_best.py
    kept: dict | None = None
    # objective rtd only (left out of the file otherwise)
    generator_parameters: int | None = None
    generator_loss: float | None = None
    generator_perplexity: float | None = None
    discriminator_loss: float | None = None
    discriminator_accuracy: float | None = None
    replaced_fraction: float | None = None
    discriminator_chance_loss: float | None = None

    def as_json(self):
        record = asdict(self)
        return {key: value for key, value in record.items() if not (key in RTD_FIELDS and value is None)}

    def write(self, folder):
        write_atomic(Path(folder) / RESULTS_FILE, json.dumps(self.as_json(), indent=1))

    @classmethod
    def read(cls, folder):
        """The folder's result, or None when it has no results.json (a run not finished); an older file's missing
        optional fields take their defaults, and fields this code does not know are left out."""
        path = Path(folder) / RESULTS_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not a readable JSON file ({error})") from None
        names = {item.name for item in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in names})
        except TypeError as error:
            raise UserError(f"{path} was not written by recipes/pretrain_mlm.py ({error})") from None


class RunFolder:
    """A pretraining run folder (or any model folder: a file it lacks reads as empty). Reading never changes it; a
    file that is there but unreadable is one `UserError` naming it."""

    # What a published model repository carries of the run, beside the model's own files (model_cards/publish.py).
    PUBLISHED = (RECIPE_FILE, RESULTS_FILE, TRAINING_LOG)

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunFolder({str(self.path)!r})"

    @property
    def recipe_file(self):
        return self.path / RECIPE_FILE

    @property
    def log_file(self):
        return self.path / TRAINING_LOG

    @property
    def plan_file(self):
        return self.path / BUDGET_PLAN

    @property
    def embedding_results_file(self):
        return self.path / EMBEDDING_RESULTS

    def embedding_results(self):
        """An embedding run's results (recipes/train_embeddings.py), or None."""
        return self._json(self.embedding_results_file)

    def is_finished(self):
        """Whether pretraining finished here (it writes results.json last)."""
        return (self.path / RESULTS_FILE).is_file()

    def recipe(self):
        """The resolved recipe the run trained with, as a dict ({} for a folder with no recipe.yaml)."""
        import yaml

        if not self.recipe_file.is_file():
            return {}
        try:
            recipe = yaml.safe_load(self.recipe_file.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise UserError(f"{self.recipe_file} is not a readable YAML file ({error})") from None
        return recipe if isinstance(recipe, dict) else {}

    def result(self):
        """The `PretrainingResult`, or None for a run not finished (or no run)."""
        return PretrainingResult.read(self.path)

    def training_log(self):
        """Trainer's log history as the run saved it, or None."""
        return self._json(self.log_file)

    def budget_plan(self):
        """budget_plan.json's mapping (a time budget's plan), or None."""
        return self._json(self.plan_file)

    def start_model(self):
        """The model this run's model was continued from (`--init_from`, as results.json records it), or None: not a
        run folder of this repository, a run from random weights."""
        result = self.result() if self.path.is_dir() else None
        return result.init_from if result is not None else None

    def write_recipe(self, recipe):
        import yaml

        write_atomic(self.recipe_file, yaml.safe_dump(dict(recipe), sort_keys=True))

    def write_training_log(self, log_history):
        write_atomic(self.log_file, json.dumps(log_history, indent=1))

    def write_result(self, result):
        result.write(self.path)

    @staticmethod
    def _json(path):
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not a readable JSON file ({error})") from None


def source_commit():
    """The commit of this repository the code runs at, with " (with uncommitted changes)" when the working tree differs
    from it; None outside a git clone (an installed copy). Every result records it."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                                 text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + (" (with uncommitted changes)" if changed else "")


def add_sentence_transformers_files(folder, max_seq_length):
    """Make a saved model folder load with sentence_transformers.SentenceTransformer(folder) as a mean-pooling embedder:
    sentence-transformers writes modules.json, sentence_bert_config.json and 1_Pooling/ (the STS-B zero-shot evaluation
    embeds the same way)."""
    import inspect
    import shutil
    import tempfile

    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import (
            Pooling,
            Transformer,
        )
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    remote = {"trust_remote_code": True}
    renamed = "model_kwargs" in inspect.signature(Transformer.__init__).parameters
    kwargs = {"model_kwargs": remote, "config_kwargs": remote} if renamed else {"model_args": remote, "config_args": remote}
    # Loading the MLM folder as a bare encoder reports the MLM head as unused and a missing pooler: expected here, so
    # the load report is kept out of the run's output.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        transformer = Transformer(str(folder), max_seq_length=max_seq_length, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = Pooling(dimension(), pooling_mode="mean")
    with tempfile.TemporaryDirectory() as scratch:
        SentenceTransformer(modules=[transformer, pooling], device="cpu").save(scratch)
        for name in ("modules.json", "sentence_bert_config.json"):
            shutil.copy(Path(scratch) / name, Path(folder) / name)
        for pooling_dir in Path(scratch).glob("1_*"):
            shutil.copytree(pooling_dir, Path(folder) / pooling_dir.name, dirs_exist_ok=True)
