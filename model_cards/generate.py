"""Build a model card (README.md) and a loss-curve PNG for a trained model folder.

    python model_cards/generate.py --model_dir runs/miniroberta-wikitext2 \
        --results runs/glue/sst2.json runs/miniroberta-wikitext2/mmlu.json [--output_dir model_cards/miniroberta]

The card is read from the folder (config.json, recipe.yaml, results.json, training_log.json) and from
evaluation JSON files written by eval/ (run_glue, perplexity, mmlu_probe, embeddings): YAML front
matter with a `model-index`, the architecture with its exact parameter count, the data, the training
settings, every result with the command that produced it, a usage snippet and the limitations.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import yaml

from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import RunFolder

GLUE_NAMES = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP", "mnli": "MNLI",
              "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI"}


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8 text at all
        raise UserError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


def loss_curve(log_history, path, title):
    """Training and evaluation loss against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=100)
    if train:
        axis.plot(*zip(*train), label="training loss")
    if evals:
        axis.plot(*zip(*evals), marker="o", label="held-out MLM loss")
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png")
    plt.close(figure)
    write_atomic(path, image.getvalue())


def architecture_rows(config, parameters):
    rows = [("class", config.get("architectures", ["?"])[0]), ("parameters", f"{parameters:,}" if parameters else "?"),
            ("layers x hidden", f"{config.get('num_hidden_layers')} x {config.get('hidden_size')}"),
            ("attention heads", config.get("num_attention_heads")), ("vocabulary", f"{config.get('vocab_size'):,}")]
    if config.get("model_type") == "small_encoder":
        rows += [("positions", f"{config.get('position_embedding_type')} (max {config.get('max_position_embeddings')})"),
                 ("normalisation", f"{'pre' if config.get('pre_norm') else 'post'}-{config.get('norm_type')}"),
                 ("MLP", f"{config.get('mlp_type')}, intermediate {config.get('intermediate_size')}"),
                 ("decoder", "tied to the token embeddings" if config.get("tie_word_embeddings") else "untied"),
                 ("classifier pooling", "mean of the non-padding tokens" if config.get("classifier_pooling") == "mean"
                  else "first token ([CLS])")]
    else:
        rows += [("positions", f"learned table, {config.get('max_position_embeddings')} rows"),
                 ("MLP", f"GELU, intermediate {config.get('intermediate_size')}")]
    return rows


def glue_command(result):
    """The run_glue.py flags that set this result's training (model and data paths left out)."""
    hp = dict(result.get("hyperparameters", {}), lora_r=result.get("lora_r"))
    flags = [f"--task_name {result['task']}"]
    for key in ("seeds", "learning_rate", "num_train_epochs", "max_train_samples", "lora_r"):
        if hp.get(key):
            value = hp[key]
            flags.append(f"--{key} {value:g}" if isinstance(value, float) else f"--{key} {value}")
    if result.get("random_init"):
        flags.append("--random_init")
    return "eval/run_glue.py " + " ".join(flags)


def seeds_wording(result):
    seeds = sorted(map(str, result["per_seed"]))
    return f"median of seeds {','.join(seeds)}" if len(seeds) > 1 else f"seed {seeds[0]}"


def suite_results(suite):
    """(model-index results, markdown rows) from eval/suite.py's results.json."""
    model, protocol = suite["pretrained"], suite["protocol"]
    index = []
    for task, result in model["glue"].items():
        index.append({"task": {"type": "text-classification", "name": "GLUE"},
                      "dataset": {"type": "nyu-mll/glue", "name": f"GLUE {GLUE_NAMES.get(task, task)}", "config": task, "split": "validation"},
                      "metrics": [{"type": metric, "value": round(values["median"], 4), "name": f"{metric} ({seeds_wording(result)}, {'imported, ' if suite.get('provenance') else ''}suite protocol {protocol})"}
                                  for metric, values in result["summary"].items()]})
    if "stsb_zero_shot" in model:
        index.append({"task": {"type": "sentence-similarity", "name": "STS-B zero-shot"},
                      "dataset": {"type": "nyu-mll/glue", "name": "STS-B", "config": "stsb", "split": "validation"},
                      "metrics": [{"type": "spearmanr", "value": round(model["stsb_zero_shot"]["spearman"], 2), "name": "Spearman x100 (cosine, mean pooling)"}]})
    if "accuracy" in model.get("mmlu", {}):  # a discriminator's says "not_applicable" instead
        index.append({"task": {"type": "multiple-choice", "name": "MMLU (masked-LM option scoring)"},
                      "dataset": {"type": "cais/mmlu", "name": "MMLU", "split": "validation"},
                      "metrics": [{"type": "accuracy", "value": round(model["mmlu"]["accuracy"], 4), "name": f"0-shot accuracy ({model['mmlu']['total']} questions)"}]})
    command = f"eval/suite.py --protocol {protocol} (suite v{suite['suite_version']})"
    if suite.get("provenance"):  # imported from a hand run (benchmarks/import_gpu_run.py), not a suite run
        command = (f"imported: eval/run_glue.py started by hand under protocol {protocol}'s settings, commit "
                   f"{suite.get('commit') or 'unknown'}")
    reference = suite.get("reference") or {}
    # --baseline_model: the other side is the model it started from, not the random-init floor
    other = f"start model `{reference['model']}`" if reference.get("kind") == "baseline" else "random-init floor"
    rows = [(row["what"], "not applicable (a replaced-token-detection discriminator has no masked-LM head)"
             if row["pretrained"] is None else
             f"{row['pretrained']:.2f} ({other} {row['floor']:.2f}, difference {row['difference']:+.2f})", command)
            for row in suite["table"]]
    return index, rows


def collect_results(model_dir, extra_files):
    """(model-index results, markdown rows) from results.json and evaluation JSONs."""
    index, rows = [], []
    run = RunFolder(model_dir).result()
    if run and run.objective == "rtd":
        rows.append(("held-out replaced-token detection", f"discriminator accuracy {run.discriminator_accuracy:.2%} "
                     f"({run.replaced_fraction:.1%} of the scored tokens replaced); generator MLM perplexity "
                     f"{run.generator_perplexity:.2f} ({run.mlm_probability:.0%} masking, {run.eval_blocks:,} blocks "
                     f"of {run.block_size})", "recipes/pretrain_mlm.py (end of training)"))
    elif run:
        index.append({"task": {"type": "fill-mask", "name": "Masked language modeling"},
                      "dataset": {"type": "text", "name": run.validation_data or f"held-out split of {run.data}"},
                      "metrics": [{"type": "perplexity", "value": round(run.eval_perplexity, 3),
                                   "name": f"MLM perplexity ({run.mlm_probability:.0%} masking)"}]})
        rows.append(("held-out MLM perplexity", f"{run.eval_perplexity:.2f} ({run.mlm_probability:.0%} masking, "
                     f"{run.eval_blocks:,} blocks of {run.block_size})", "recipes/pretrain_mlm.py (end of training)"))
    for path in extra_files:
        result = read_json(path)
        if "suite_version" in result:  # eval/suite.py: every measurement against the floor (or the start model)
            suite_index, suite_rows = suite_results(result)
            index += suite_index
            rows += suite_rows
        elif "summary" in result and "task" in result:  # run_glue
            name = GLUE_NAMES.get(result["task"], result["task"])
            metrics = [{"type": metric, "value": round(values["median"], 4), "name": f"{metric} (median of seeds)"}
                       for metric, values in result["summary"].items()]
            index.append({"task": {"type": "text-classification", "name": "GLUE"},
                          "dataset": {"type": "nyu-mll/glue", "name": f"GLUE {name}", "config": result["task"], "split": "validation"},
                          "metrics": metrics})
            described = ", ".join(f"{m} {v['median']:.4f} (spread {v['spread']:.4f})" for m, v in result["summary"].items())
            rows.append((f"GLUE {name} dev", f"{described}; seeds {result['hyperparameters']['seeds']}, "
                         f"{result['train_examples']:,} training examples", glue_command(result)))
        elif "ci95" in result:  # mmlu_probe
            index.append({"task": {"type": "multiple-choice", "name": "MMLU (masked-LM option scoring)"},
                          "dataset": {"type": "cais/mmlu", "name": "MMLU", "split": result["split"]},
                          "metrics": [{"type": "accuracy", "value": round(result["accuracy"], 4), "name": f"{result['k_shot']}-shot accuracy"}]})
            rows.append((f"MMLU {result['split']} ({result['k_shot']}-shot)", f"{result['accuracy']:.4f} "
                         f"(95% CI {result['ci95'][0]:.4f}-{result['ci95'][1]:.4f}; chance 0.25; {result['total']:,} questions)",
                         f"eval/mmlu_probe.py --split {result['split']} --k_shot {result['k_shot']}"))
        elif result.get("task") == "stsb-zero-shot":
            index.append({"task": {"type": "sentence-similarity", "name": "STS-B zero-shot"},
                          "dataset": {"type": "nyu-mll/glue", "name": "STS-B", "config": "stsb", "split": "validation"},
                          "metrics": [{"type": "spearmanr", "value": round(result["spearman"], 2), "name": "Spearman x100 (cosine, mean pooling)"}]})
            rows.append(("STS-B dev zero-shot", f"Spearman x100 {result['spearman']:.2f} over {result['pairs']:,} pairs", "eval/embeddings.py"))
        elif "tokens_scored" in result:  # perplexity
            rows.append((result["kind"], f"{result['perplexity']:.3f} over {result['tokens_scored']:,} tokens of {result['data']}",
                         "eval/perplexity.py"))
        else:
            raise UserError(f"{path}: not a results file written by eval/ (suite, run_glue, perplexity, mmlu_probe, embeddings)")
    return index, rows


def onnx_usage(name, record):
    """The card's section for the files of deploy/export.py (its export.json record), uploaded under onnx/: what they
    are, and the snippet that serves them with deploy/serving.py's copy (onnx/serving.py), no torch needed."""
    files = record.get("files", {})
    check = record.get("check", {})
    serving = record.get("serving") or {}
    written = [f"`onnx/{file}` ({what})" for file, what in (
        ("model_int8.onnx", "dynamic int8: weights int8, activations quantised on the fly"),
        ("model_int8_static.onnx", "static int8, calibrated"), ("openvino/model.xml", "OpenVINO IR"),
        ("openvino/model_int8.xml", "OpenVINO int8, NNCF")) if file in files]
    picked = ""
    if serving.get("default"):
        row = serving["measured"][serving["default"]]
        features = ", ".join(k for k, v in (serving.get("cpu_features") or {}).items() if v and k != "avx2")
        picked = (f" On the CPU it was exported on ({features or 'no AVX-512'}), the fastest that kept {serving['min_agreement']} "
                  f"agreement with PyTorch was `{serving['default']}` ({row['sentences_per_second']:,.0f} sentences/s at "
                  f"batch {serving['batch_size']}); `serving.py` loads it when its runtime is installed, the next one "
                  f"in that order when not.")
    lines = ["## ONNX Runtime / OpenVINO (CPU, no PyTorch)", "",
             f"`onnx/model.onnx` is this model exported for {record.get('task')} by `deploy/export.py` of small-encoders "
             f"({record.get('exporter')}, opset {record.get('opset')}, dynamic batch and sequence length; the largest "
             f"difference from PyTorch on its check sentences was {check.get('max_abs_difference', float('nan')):.1e})"
             + (f"; beside it {', '.join(written)}" if written else "") + "." + picked
             + " It needs `onnxruntime` (or `openvino`), `tokenizers` and `numpy` only:", "",
             "```python", "import importlib.util", "from huggingface_hub import snapshot_download", "",
             f'folder = snapshot_download("{name}", allow_patterns=["onnx/*", "*.json"])',
             'spec = importlib.util.spec_from_file_location("serving", f"{folder}/onnx/serving.py")  # the loader',
             "serving = importlib.util.module_from_spec(spec)", "spec.loader.exec_module(serving)", "",
             'model = serving.ExportedModel(f"{folder}/onnx")  # or backend="onnxruntime", "openvino-int8", ...',
             f"{record.get('output', 'logits')} = model([\"A small encoder, served on a CPU.\"])", "```", ""]
    return lines


def kept_line(run):
    """The card's line on which weights a keep-best run saved and why (recipes/keep_best.py)."""
    kept = run.kept
    start = f"the start's {kept['start_perplexity']:.2f}" if kept.get("start_perplexity") else None
    stopped = (f"; stopped early at step {kept['stopped_early_at']:,} when the validation loss no longer fell"
               if kept.get("stopped_early_at") else "")
    if kept["kept_step"] == 0:
        return (f"- weights kept: the start's, unchanged: no step beat the start model's validation perplexity "
                f"({kept['start_perplexity']:.2f}) in {kept['evaluations']} evaluations{stopped}")
    return (f"- weights kept: step {kept['kept_step']:,} of {run.train_steps:,}, the lowest validation perplexity of "
            f"{kept['evaluations']} evaluations ({kept['kept_perplexity']:.2f}" + (f"; {start}" if start else "")
            + f"){stopped}")


def build_card(model_dir, result_files=(), model_name=None, notes=(), onnx=None):
    """(card text, front matter dict); `onnx`: the export.json record of ONNX files uploaded with the model."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise UserError(f"{model_dir} has no config.json; point --model_dir at a saved model folder")
    from small_encoders.core.hub import check_weights

    check_weights(model_dir, "--model_dir")  # no card for a damaged model
    config = read_json(model_dir / "config.json")
    folder = RunFolder(model_dir)
    recipe, run = folder.recipe(), folder.result()
    name = model_name or recipe.get("hub_model_id") or f"small-encoders/{recipe.get('recipe', model_dir.name)}"
    custom = config.get("model_type") == "small_encoder"
    index, rows = collect_results(model_dir, result_files)
    rtd = recipe.get("objective") == "rtd"  # the folder holds ELECTRA's discriminator: no fill-mask
    front = front_matter(recipe, name, index, custom, rtd)
    smoke = bool(recipe.get("smoke_run") or (run and run.smoke))
    trust = ", trust_remote_code=True" if custom else ""
    from small_encoders.data_prep.tokenizer import load_tokenizer

    mask = load_tokenizer(str(model_dir), "--model_dir").mask_token
    parameters = run.parameters if run else None
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name.split('/')[-1]}", ""]
    if smoke:
        lines += ["> **Smoke-sized run.** This card comes from the recipe's `--smoke` run: a tiny model trained for a few",
                  "> steps on the embedded corpus to check the pipeline end to end. Its numbers say nothing about the",
                  "> recipe's quality.", ""]
    lines += [recipe.get("description", "").strip() or "A small masked-language encoder.", "",
              "## Architecture", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in architecture_rows(config, parameters)]
    lines += ["", "## Data", "", *data_lines(run, recipe, config), "", "## Training", "", *training_rows(run, recipe, rtd)]
    command = (run and run.command) or f"python recipes/pretrain_mlm.py --recipe {recipe.get('recipe', '?')}" + (" --smoke" if smoke else "")
    at = f" at commit {run.commit}" if run and run.commit else ""
    lines += ["", f"Reproduce: `{command}`{at} (the exact resolved settings are in `recipe.yaml` beside the weights).", ""]
    if folder.log_file.exists():
        lines += ["![loss curve](loss_curve.png)", ""]
    lines += ["## Results", ""]
    if rows:
        lines += ["| evaluation | result | command |", "|---|---|---|"] + [f"| {a} | {b} | `{c}` |" for a, b, c in rows]
    else:
        lines.append("No evaluation has been run for this model yet.")
    lines += usage_lines(name, rtd, trust, mask)
    if onnx:
        lines += onnx_usage(name, onnx)
    if custom:
        lines += ["The architecture is this repository's SmallEncoder family, so loading runs the `configuration_small_encoder.py` "
                  "and `modeling_small_encoder.py` files shipped with the weights (`trust_remote_code=True`); read them first.", ""]
    lines += ["## Limitations", "",
              f"- A small encoder ({parameters:,} parameters) trained on {run.train_tokens if run else 0:,} tokens: it is a base for "
              "fine-tuning and a subject for study, not a general-purpose language model." if parameters else
              "- A small encoder: a base for fine-tuning, not a general-purpose language model.",
              "- English only; it inherits the biases and errors of its training text.",
              "- Perplexities depend on the masking rate and tokenizer: compare only runs with the same ones."]
    lines += [f"- {note}" for note in notes] + [""]
    return "\n".join(lines), front


def front_matter(recipe, name, index, custom, rtd):
    """The card's YAML header: license, pipeline tag, tags, the Hub dataset trained on, the model-index results."""
    front = {
        "license": "apache-2.0", "language": ["en"], "library_name": "transformers",
        "pipeline_tag": "feature-extraction" if rtd else "fill-mask",
        "tags": (["electra", "replaced-token-detection"] if rtd else ["masked-lm"]) + ["small-encoders", recipe.get("recipe", "custom")]
        + (["custom_code"] if custom else []),
    }
    if recipe.get("dataset_name") and "/" in str(recipe.get("dataset_name")) and not recipe.get("train_files"):
        front["datasets"] = [recipe["dataset_name"]]
    if index:
        front["model-index"] = [{"name": name.split("/")[-1], "results": index}]
    return front


def data_lines(run, recipe, config):
    """The Data section: where a continued model started and which weights it kept, the source, the tokenizer."""
    lines = []
    if run and run.init_from:
        minutes = f", {run.train_seconds / 60:,.0f} minutes" if run.train_seconds else ""
        lines.append(f"- continued pretraining: started from `{run.init_from}` (its weights, config and tokenizer), "
                     f"then trained on the source below for {run.train_steps:,} steps, {run.train_tokens:,} tokens{minutes}")
    if run and run.kept:
        lines.append(kept_line(run))
    lines.append(f"- source: {run.data if run else recipe.get('dataset_name', 'see recipe.yaml')}")
    if recipe.get("cosmopedia_filter"):
        lines.append(f"- Cosmopedia filter settings: `{json.dumps(recipe['cosmopedia_filter'])}` (criteria in data_prep/cosmopedia.py)")
    return lines + [f"- tokenizer: {recipe.get('tokenizer_name')}, vocabulary {config.get('vocab_size'):,}",
                    f"- packed into {recipe.get('block_size')}-token blocks with no padding"]


def training_rows(run, recipe, rtd):
    """The Training section's table: the settings, then what the run did (steps, tokens, time, budget, hardware)."""
    lines = ["| setting | value |", "|---|---|"]
    for key in (("objective", "generator_size", "generator_temperature", "discriminator_weight") if rtd else ()) + (
            "mlm_probability", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay",
                "adam_beta1", "adam_beta2", "adam_epsilon", "lr_scheduler_type", "warmup_ratio", "num_train_epochs", "max_steps", "seed"):
        if key in ("num_train_epochs", "max_steps") and recipe.get("time_budget"):
            continue  # a budget run's length is its time budget (row below), not these
        if key in recipe:
            lines.append(f"| {key} | {recipe[key]} |")
    if run:
        lines += [f"| steps trained | {run.train_steps:,} |", f"| tokens seen | {run.train_tokens:,} |",
                  f"| training time | {run.train_seconds:,.0f} s |"]
        if run.tokens_per_second:
            lines.append(f"| throughput | {run.tokens_per_second:,} tokens/s |")
        if run.time_budget:
            budget = run.time_budget
            replanned = f", re-planned to {budget['steps']:,} from the training's own step times" if "steps" in budget else ""
            lines.append(f"| time budget | {budget['minutes']:g} min of training: {budget['planned_steps']:,} steps planned from a "
                         f"measured {budget['step_seconds']:.3f} s per step{replanned} |")
        if run.hardware:
            lines.append(f"| hardware | {run.hardware} |")
    return lines


def usage_lines(name, rtd, trust, mask):
    """The Usage section: fill-mask, or fine-tuning for an RTD discriminator."""
    if rtd:
        return ["", "## Usage", "",
                "The weights are ELECTRA's discriminator (replaced-token detection), the part to fine-tune; the generator it "
                "trained with is in `generator/`.", "", "```python",
                "from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
                f'tokenizer = AutoTokenizer.from_pretrained("{name}"{trust})',
                f'model = AutoModelForSequenceClassification.from_pretrained("{name}", num_labels=2{trust})',
                "```", ""]
    return ["", "## Usage", "", "```python", "from transformers import pipeline", "",
            f'fill = pipeline("fill-mask", model="{name}"{trust})',
            f'print(fill("The capital of France is {mask}."))',
            "```", ""]


def reference_run(run_dir, recipe=None):
    """(model folder, result files, notes) of a benchmarks/reference_run.py output folder (OUT/results.json): the
    recipe's saved model, its suite results, and where and how it was measured."""
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json")
    if "reference_run" not in results:
        raise UserError(f"{run_dir / 'results.json'} was not written by benchmarks/reference_run.py")
    names = list(results["recipes"])
    if recipe is None and len(names) > 1:
        raise UserError(f"{run_dir} holds {', '.join(names)}: choose one with --recipe")
    name = recipe or names[0]
    if name not in results["recipes"]:
        raise UserError(f"{run_dir} holds no recipe {name!r} (it has {', '.join(names)})")
    record = results["recipes"][name]
    model_dir = Path(record["model_dir"])
    if not model_dir.is_absolute() and not model_dir.exists():
        model_dir = run_dir / name / "model"
    suite = run_dir / name / "suite" / "results.json"
    if results.get("imported_from"):
        notes = [f"Imported, not measured by eval/suite.py: measured on {results['hardware']}, {results['date'][:10]} "
                 f"(commit {(results.get('commit') or 'unknown')[:7]}), by processes started by hand before "
                 f"benchmarks/reference_run.py existed; their raw outputs ({results['imported_from']}) were read in with "
                 f"`{results['command']}`"]
    else:
        notes = [f"Measured by `benchmarks/reference_run.py` on {results['hardware']}, {results['date'][:10]} (commit "
                 f"{(results.get('commit') or 'unknown')[:7]}): {results['command']}"]
    if record.get("gpu_shared_with"):
        notes.append(f"The GPU was shared during pretraining with {', '.join(record['gpu_shared_with'])} (an ablation "
                     f"run side by side): its tokens/s are lower than the recipe's alone.")
    return model_dir, [suite] if suite.is_file() else [], notes


def generate(model_dir, result_files=(), output_dir=None, model_name=None, notes=(), onnx=None):
    """Write README.md and loss_curve.png into output_dir (default: the model folder); returns the card path."""
    output_dir = Path(output_dir or model_dir)
    if RunFolder(model_dir).embedding_results() is not None:  # a sentence embedder (recipes/train_embeddings.py)
        from small_encoders.model_cards.embedding_card import write_embedding_card

        return write_embedding_card(model_dir, output_dir=output_dir, model_name=model_name)
    card, _ = build_card(model_dir, result_files, model_name, notes, onnx)  # every input read before anything is written
    output_dir.mkdir(parents=True, exist_ok=True)
    log = RunFolder(model_dir).training_log()
    if log is not None:
        loss_curve(log, output_dir / "loss_curve.png", f"{Path(model_dir).name}: loss")
    write_atomic(output_dir / "README.md", card)
    return output_dir / "README.md"


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", default=None, help="the saved model folder (default with --run_dir: the run's own)")
    parser.add_argument("--run_dir", default=None,
                        help="an output folder of benchmarks/reference_run.py: the model, its suite results and the run's notes")
    parser.add_argument("--recipe", default=None, help="with --run_dir of several recipes: which one")
    parser.add_argument("--results", nargs="*", default=[], help="evaluation JSON files from eval/")
    parser.add_argument("--output_dir", default=None, help="where to write README.md and loss_curve.png (default: model_dir)")
    parser.add_argument("--model_name", default=None, help="Hub repo id shown in the card")
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence added to the card's limitations (repeatable), e.g. what a short run could not show")
    args = parser.parse_args(argv)
    model_dir, results, notes = args.model_dir, list(args.results), list(args.note)
    if args.run_dir:
        run_model, run_results, run_notes = reference_run(args.run_dir, args.recipe)
        model_dir, results, notes = model_dir or run_model, run_results + results, notes + run_notes
    if model_dir is None:
        raise UserError("give --model_dir (a saved model folder) or --run_dir (a reference_run output folder)")
    print(f"wrote {generate(model_dir, results, args.output_dir, args.model_name, notes)}")


if __name__ == "__main__":
    sys.exit(main())
