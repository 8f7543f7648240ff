"""The model card of a sentence embedder (recipes/train_embeddings.py's folder): the sentence-similarity pipeline tag,
what it was trained on and how, the measured table against its start (eval/embeddings.py), and a usage snippet."""

import json
from pathlib import Path

import yaml

from small_encoders.core.errors import UserError
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import RunFolder

SHAPE_LOSS = {"pairs": "in-batch negatives", "triplets": "in-batch negatives and a hard negative", "scored": "CoSENT"}


def model_index(name, evaluation):
    """model-index results for the Hub's widget: the three tasks' lead metrics."""
    from small_encoders.eval.embeddings import METRICS

    names = {"stsb": ("STS-B", "glue", "stsb", "spearman_cosine"), "mrpc": ("MRPC", "glue", "mrpc", "cosine_ap"),
             "qnli": ("QNLI retrieval", "glue", "qnli", "ndcg_at_10")}
    results = []
    for task, (title, dataset, config, metric) in names.items():
        measured = evaluation["model"][task]
        results.append({"task": {"type": "sentence-similarity" if task == "stsb" else
                                 ("pair-classification" if task == "mrpc" else "retrieval")},
                        "dataset": {"name": f"{title} ({measured['split']})", "type": f"nyu-mll/{dataset}", "config": config,
                                    "split": "validation" if measured["split"] == "dev" else measured["split"]},
                        "metrics": [{"type": metric, "value": round(measured[METRICS[task][0]], 2)}]})
    return [{"name": name.split("/")[-1], "results": results}]


def build_embedding_card(folder, model_name=None):
    """(card text, front matter) of an embedding run's folder."""
    folder = Path(folder)
    run = RunFolder(folder)
    result, recipe = run.embedding_results(), run.recipe()
    if result is None:
        raise UserError(f"{folder} holds no embedding_results.json; is it a recipes/train_embeddings.py folder?")
    name = model_name or recipe.get("hub_model_id") or f"small-encoders/{recipe.get('recipe', folder.name)}"
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    custom = config.get("model_type") == "small_encoder"
    front = {"license": "apache-2.0", "language": ["en"], "library_name": "sentence-transformers",
             "pipeline_tag": "sentence-similarity",
             "tags": ["sentence-transformers", "sentence-similarity", "feature-extraction", "small-encoders",
                      recipe.get("recipe", "embed")] + (["custom_code"] if custom else []),
             "base_model": result["model_name_or_path"] if "/" in result["model_name_or_path"] and not
             Path(result["model_name_or_path"]).exists() else None}
    front = {k: v for k, v in front.items() if v is not None}
    if result.get("evaluation"):
        front["model-index"] = model_index(name, result["evaluation"])
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name.split('/')[-1]}", ""]
    if recipe.get("smoke_run"):
        lines += ["> **Smoke-sized run.** A few steps on a few pairs to check the pipeline end to end; its numbers say",
                  "> nothing about the recipe's quality.", ""]
    dims = f"{config.get('hidden_size', '?')}-dimensional" if config else "fixed-size"
    lines += [f"A sentence embedder: {dims} {'unit-length ' if recipe.get('normalize', True) else ''}vectors "
              f"({recipe.get('pooling', 'mean')} pooling over at most {recipe.get('max_seq_length', 128)} tokens) for semantic "
              f"search, deduplication, clustering and retrieval, trained from `{result['model_name_or_path']}` with "
              f"sentence-transformers' trainer by recipes/train_embeddings.py of small-encoders.", "",
              (recipe.get("description") or "").strip(), "", "## Training", "", "| set | rows | kind | loss |", "|---|---|---|---|"]
    for set_name, about in result["training_sets"].items():
        loss = SHAPE_LOSS[about["shape"]]
        lines.append(f"| {set_name} | {about['rows']:,} | {about['shape']} | {loss} |")
    if result.get("ingredients"):
        lines += ["", f"A model soup: {len(result['ingredients'])} runs (ingredients) trained apart from the same start, "
                  "each on its own sets, and the model the (weighted) mean of their weights (each keeps most of what it "
                  "learned):", "", "| ingredient | sets | steps | minutes | share of the weights |", "|---|---|---|---|---|"]
        for name, about in result["ingredients"].items():
            share = about.get("weight", 1 / len(result["ingredients"]))
            lines.append(f"| {name} | {', '.join(about['training_sets'])} | {about['steps']:,} | "
                         f"{about['train_seconds'] / 60:.1f} | {share:.0%} |")
    lines += ["", f"{result['steps']:,} steps of {recipe.get('per_device_train_batch_size')} pairs at a peak learning rate of "
              f"{recipe.get('learning_rate')} in {result['train_seconds'] / 60:.1f} minutes on {result['hardware']}"
              + (f" (a {recipe['time_budget']:g}-minute budget)" if recipe.get("time_budget") else "") + ". "
              + ("STS-B train was in the data." if result.get("saw_stsb_train") else "STS-B train was not in the data: its "
                 "STS-B figure is zero-shot."), ""]
    if result.get("command"):
        lines += [f"Reproduce: `{result['command']}` at commit {result.get('commit')} (the resolved settings are in "
                  f"`recipe.yaml` beside the weights).", ""]
    lines += ["## Results", ""]
    if result.get("evaluation"):
        from small_encoders.eval.embeddings import summary_markdown

        table = summary_markdown({"model": name, **result}).split("\n\n")
        lines += [next(part for part in table if part.startswith("| task")), "",
                  "Measured by `eval/embeddings.py` (cosine similarity; the start is the base model mean-pooled, an "
                  "embedder's floor)."]
    else:
        lines.append("Not evaluated (the run had `--evaluate false`); run `python eval/embeddings.py --model_name_or_path "
                     "THIS_FOLDER --data_dir GLUE_DIR --output_dir OUT`.")
    trust = ", trust_remote_code=True" if custom else ""
    lines += ["", "## Usage", "", "```python", "from sentence_transformers import SentenceTransformer", "",
              f'model = SentenceTransformer("{name}"{trust})',
              'embeddings = model.encode(["A man is playing a guitar.", "Someone plays an instrument.", "The stock fell."])',
              "print(model.similarity(embeddings, embeddings))  # cosine similarities", "```", "",
              f"Saved by sentence-transformers {result.get('sentence_transformers', '')}: load it with that version or "
              f"a later one.", ""]
    if custom:
        lines += ["The encoder is this repository's SmallEncoder family: loading runs the `configuration_small_encoder.py` "
                  "and `modeling_small_encoder.py` shipped with the weights (`trust_remote_code=True`); read them first.", ""]
    lines += ["## Limitations", "", "- English only, short texts (longer ones are cut); it inherits the biases of its "
              "training text.", "- Scores of the three tasks above are a small check, not a benchmark: measure on your "
              "own queries before relying on it.", ""]
    return "\n".join(lines), front


def write_embedding_card(recipe, result=None, output_dir=None, model_name=None):
    """Write README.md for the embedding folder `recipe.output_dir` (or the folder named by `recipe`)."""
    folder = Path(recipe["output_dir"] if not isinstance(recipe, (str, Path)) else recipe)
    card, _ = build_embedding_card(folder, model_name)
    write_atomic(Path(output_dir or folder) / "README.md", card)
    return Path(output_dir or folder) / "README.md"
