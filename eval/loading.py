"""Loading a pretrained MLM folder under another head, with one line instead of transformers' load table.

Loading an MLM checkpoint as a bare encoder or a classifier always leaves the MLM head unused and
starts the new head (classifier, pooler) from random weights: transformers prints a table of those
on every load. Here that is expected, so the table is replaced by one summary line; an encoder
weight missing from the checkpoint is not expected and is named.
"""

from contextlib import contextmanager

NEW_HEAD_PREFIXES = ("classifier.", "score.", "pooler.")


@contextmanager
def quiet_load_reports():
    """Keep transformers' load report (and other warnings) out of the output inside the block."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def float32_weights():
    """from_pretrained/from_config keywords for float32 weights whatever dtype the folder was saved in.

    transformers 5 loads a checkpoint in the dtype it was saved in (and from_config builds in the config's dtype), so
    a model saved in bf16 (a GPU run's folder) would be fine-tuned and measured in bf16: no float32 master weights,
    and on a CPU without bf16 units every matmul is emulated (a 20M model's GLUE step went from about 0.5 s to 8 s
    on a 2-core AVX2 CPU). Mixed precision, where wanted, is autocast's job (the Trainer's --bf16)."""
    import torch

    return {"dtype": torch.float32}


def load_under_new_head(auto_class, path, **kwargs):
    """`auto_class.from_pretrained(path)` (remote code allowed, float32 weights) with a one-line load summary."""
    kwargs = {**float32_weights(), **kwargs}
    with quiet_load_reports():
        model, info = auto_class.from_pretrained(path, trust_remote_code=True, output_loading_info=True, **kwargs)
    new_head = [k for k in info["missing_keys"] if any(p in k for p in NEW_HEAD_PREFIXES)]
    missing_encoder = sorted(set(info["missing_keys"]) - set(new_head))
    print(f"loaded {path}: {len(new_head)} new head tensors, {len(info['unexpected_keys'])} unused pretraining-head tensors")
    if missing_encoder:
        print(f"warning: {len(missing_encoder)} encoder tensors were not in the checkpoint and start random: "
              f"{', '.join(missing_encoder[:5])}{' ...' if len(missing_encoder) > 5 else ''}")
    return model
