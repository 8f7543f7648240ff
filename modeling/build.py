"""Build a fresh masked-LM for a recipe: stock RobertaForMaskedLM or the SmallEncoder family."""

from transformers import RobertaConfig, RobertaForMaskedLM

from .configuration_small_encoder import PRESETS, SmallEncoderConfig
from .modeling_small_encoder import SmallEncoderForMaskedLM


def build_mlm_config(family, tokenizer, block_size, preset=None, fields=None, vocab_size=None):
    """A config sized for `tokenizer` and `block_size`; `fields` override the preset or RoBERTa defaults."""
    fields = dict(fields or {})
    vocab_size = vocab_size or len(tokenizer)
    special = dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id,
    )
    if family == "roberta":
        # RoBERTa offsets positions by padding_idx + 1, so the table needs block_size + 2 rows.
        return RobertaConfig(
            vocab_size=vocab_size, max_position_embeddings=block_size + 2, type_vocab_size=1, **special, **fields
        )
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown model_preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = dict(PRESETS[preset]) if preset else {}
    base.update(vocab_size=vocab_size, **special)
    base.update(fields)
    base["max_position_embeddings"] = max(base.get("max_position_embeddings", 512), block_size)
    return SmallEncoderConfig(**base)


def build_mlm_model(config):
    if isinstance(config, SmallEncoderConfig):
        return SmallEncoderForMaskedLM(config)
    return RobertaForMaskedLM(config)


def count_parameters(model):
    """Unique parameters (tied matrices counted once)."""
    return sum(p.numel() for p in model.parameters())
