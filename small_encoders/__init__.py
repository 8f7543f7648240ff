"""small-encoders: recipes for pretraining, evaluating, publishing and serving small encoder language models.

The one name this distribution installs. The repository keeps its folders at the top, where a newcomer looks for them,
and each installs as a subpackage of this one (pyproject.toml maps them):

    small_encoders.recipes      recipes/      the training script, the recipes (YAML) and what training needs
    small_encoders.modeling     modeling/     the SmallEncoder architecture and model building
    small_encoders.data_prep    data_prep/    corpora, tokenizers, packing and streaming
    small_encoders.eval         eval/         GLUE, the suite, perplexity, MMLU, embeddings
    small_encoders.model_cards  model_cards/  model cards and publishing to the Hub
    small_encoders.deploy       deploy/       ONNX export and the CPU inference benchmark
    small_encoders.demo         demo/         the Gradio page (and a Space's app)
    small_encoders.benchmarks   benchmarks/   speed and reference runs that print figures
    small_encoders.core         core/         what all of them share: user errors, argument checks, files written
                                              whole, Hub sources, the run folder

Install the clone with `pip install -e .` (the README's install does): every script runs as a file (`python
recipes/pretrain_mlm.py`), as a module (`python -m small_encoders.recipes.pretrain_mlm`) or as a command
(`small-encoders-pretrain`), all importing this package.
"""
