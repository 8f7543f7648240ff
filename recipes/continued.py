"""Continued pretraining (`--init_from`): a trained masked LM's weights, config and tokenizer instead of random ones.

Any model with an `AutoModelForMaskedLM` head works: BERT, RoBERTa, ELECTRA's generator, ModernBERT, this repository's
SmallEncoder (registered here, so its folders need no remote code; a Hub copy's code is trusted as everywhere else in
the repository). What the model cannot continue is refused in one line before any data is read: a replaced-token
detection discriminator (no masked-LM head), a block longer than the model's positions.
"""

from small_encoders.core.errors import UserError

FLAG = "--init_from"
# ELECTRA-style discriminators: their head scores replaced tokens; a masked LM cannot be continued from them.
DISCRIMINATORS = ("ElectraForPreTraining", "SmallEncoderForPreTraining")
def continued_config(recipe):
    """The starting model's config, checked against the run before the corpus is read: a discriminator is refused (with
    the way to its generator), and so is a block longer than the model reads."""
    from transformers import AutoConfig

    import small_encoders.modeling  # noqa: F401  registers the SmallEncoder family
    from small_encoders.modeling.build import readable_positions

    source = recipe["init_from"]
    try:
        config = AutoConfig.from_pretrained(str(source), trust_remote_code=True)
    except (OSError, ValueError) as error:
        raise UserError(f"{FLAG} {source}: cannot read its config ({str(error).strip().splitlines()[0]})") from None
    if set(getattr(config, "architectures", None) or ()) & set(DISCRIMINATORS):
        raise UserError(f"{FLAG} {source} is a replaced-token-detection discriminator: it has no masked-LM head to "
                        f"continue; continue from its generator (the generator/ folder of this repository's RTD runs) "
                        f"or fine-tune the discriminator directly")
    limit = readable_positions(config)
    if limit is not None and recipe["block_size"] > limit:
        raise UserError(f"--block_size {recipe['block_size']} is longer than {source} reads ({limit} positions); "
                        f"pass --block_size {min(limit, 512)} or less")
    if recipe["document_isolation"] and config.model_type != "small_encoder":
        raise UserError(f"document_isolation needs a SmallEncoder; {source} is a {config.model_type} model")
    return config


def load_continued_model(recipe, config, tokenizer):
    """(masked LM in float32 with the model's weights, one-line description of where it came from). The tokenizer must
    fit the embedding table; MLM-head weights missing from the folder (a classifier's or a bare encoder's) start random
    and are named."""
    import torch
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    source = recipe["init_from"]
    if len(tokenizer) > config.vocab_size:
        raise UserError(f"{FLAG} {source}: its tokenizer has {len(tokenizer):,} entries, more than the model's "
                        f"{config.vocab_size:,} embedding rows")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the missing tensors are named below, in one line, instead of the load table
    try:
        # float32 master weights whatever the folder was saved in (a GPU run's folder holds bf16)
        model, info = AutoModelForMaskedLM.from_pretrained(str(source), config=config, trust_remote_code=True,
                                                           output_loading_info=True, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    tied = getattr(model, "_tied_weights_keys", None) or ()
    missing = [key for key in info["missing_keys"] if key not in tied]
    note = None
    if missing:
        note = (f"{len(missing)} weight tensor(s) were not in {source} and start random "
                f"({', '.join(sorted(missing)[:3])}{' ...' if len(missing) > 3 else ''}): a folder saved without its "
                f"masked-LM head")
    return model, note
