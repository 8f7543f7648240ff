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


def load_under_new_head(auto_class, path, **kwargs):
    """`auto_class.from_pretrained(path)` (remote code allowed) with a one-line load summary."""
    with quiet_load_reports():
        model, info = auto_class.from_pretrained(path, trust_remote_code=True, output_loading_info=True, **kwargs)
    new_head = [k for k in info["missing_keys"] if any(p in k for p in NEW_HEAD_PREFIXES)]
    missing_encoder = sorted(set(info["missing_keys"]) - set(new_head))
    print(f"loaded {path}: {len(new_head)} new head tensors, {len(info['unexpected_keys'])} unused pretraining-head tensors")
    if missing_encoder:
        print(f"warning: {len(missing_encoder)} encoder tensors were not in the checkpoint and start random: "
              f"{', '.join(missing_encoder[:5])}{' ...' if len(missing_encoder) > 5 else ''}")
    return model
