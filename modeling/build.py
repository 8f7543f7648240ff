"""Build a fresh masked-LM for a recipe: stock RobertaForMaskedLM or the SmallEncoder family."""

from transformers import RobertaConfig, RobertaForMaskedLM

from .configuration_small_encoder import PRESETS, SmallEncoderConfig
from .modeling_small_encoder import SmallEncoderForMaskedLM


def config_fields(config_class):
    """(the fields a config class takes as its own arguments, the fields every transformers config has)."""
    import inspect

    from transformers import PretrainedConfig

    own = {name for name in inspect.signature(config_class.__init__).parameters if name not in ("self", "kwargs")}
    return own, set(PretrainedConfig().to_dict())


def build_mlm_config(family, tokenizer, block_size, preset=None, fields=None, vocab_size=None):
    """A config sized for `tokenizer` and `block_size`; `fields` override the preset or RoBERTa defaults. A field the
    config class does not know is refused (transformers would keep it as a stray attribute and change nothing)."""
    fields = dict(fields or {})
    config_class = RobertaConfig if family == "roberta" else SmallEncoderConfig
    own, common = config_fields(config_class)
    if family == "roberta":  # objective: rtd builds ELECTRA from these fields (embedding_size and the rest)
        from transformers import ElectraConfig

        own |= config_fields(ElectraConfig)[0]
    unknown = sorted(set(fields) - own - common)
    if unknown:
        raise ValueError(f"unknown model_config field(s) {unknown} (YAML needs a space after each colon); "
                         f"{config_class.__name__} takes {', '.join(sorted(own))}")
    vocab_size = vocab_size or len(tokenizer)
    special = dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id,
    )
    if family == "roberta":
        # RoBERTa offsets positions by padding_idx + 1, so the table needs block_size + 2 rows.
        positions = fields.pop("max_position_embeddings", block_size + 2)
        if positions < block_size + 2:
            raise ValueError(f"--block_size {block_size} needs {block_size + 2} learned positions (RoBERTa numbers them "
                             f"from 2) and model_config gives {positions}; lower --block_size or raise max_position_embeddings")
        return RobertaConfig(vocab_size=vocab_size, max_position_embeddings=positions, type_vocab_size=1, **special, **fields)
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown model_preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = dict(PRESETS[preset]) if preset else {}
    base.update(vocab_size=vocab_size, **special)
    base.update(fields)
    positions = base.get("max_position_embeddings", 512)
    if block_size > positions:
        if base.get("position_embedding_type", SmallEncoderConfig().position_embedding_type) != "rope":
            # A learned position table of another size is another architecture: not changed behind the user's back.
            raise ValueError(f"--block_size {block_size} is longer than the model's {positions} learned positions; lower "
                             f"--block_size, or give the table more rows with --model_config "
                             f"'{{max_position_embeddings: {block_size}}}' (a larger model)")
        base["max_position_embeddings"] = block_size  # RoPE: a limit, not a table; nothing learned changes
    return SmallEncoderConfig(**base)


MAX_PARAMETERS = 20_000_000_000  # far beyond a small encoder; an absurd --model_config stops here, not in the allocator


def check_model_settings(family, block_size, preset=None, fields=None, vocab_size=None):
    """The config a recipe's model settings give, built before any data is read (a stand-in vocabulary): a mistake in
    --model_config, --model_preset or --block_size then fails in the first second instead of after the corpus. The
    model is also built on the meta device (no memory) and counted: more than MAX_PARAMETERS is refused."""

    class StandIn:
        pad_token_id, cls_token_id, sep_token_id, bos_token_id, eos_token_id = 0, 2, 3, None, None

        def __len__(self):
            return vocab_size or 1000

    config = build_mlm_config(family, StandIn(), block_size, preset=preset, fields=fields, vocab_size=vocab_size)
    check_size(config)
    return config


def check_size(config):
    """Refuse (ValueError) a config whose model would hold more than MAX_PARAMETERS, counted on the meta device."""
    import torch

    with torch.device("meta"):
        parameters = count_parameters(build_mlm_model(config))
    if parameters > MAX_PARAMETERS:
        raise ValueError(f"these settings make a model of {parameters:,} parameters, more than this repository trains "
                         f"({MAX_PARAMETERS:,}); check hidden_size, num_hidden_layers, intermediate_size and the vocabulary")
    return parameters


# Stock families whose position table starts after the padding index (RoBERTa's offset of 2).
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer")


def readable_positions(config):
    """How many tokens one input of this model may hold (None: no limit recorded)."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    return positions - (2 if config.model_type in OFFSET_POSITIONS else 0)


def build_mlm_model(config):
    if isinstance(config, SmallEncoderConfig):
        return SmallEncoderForMaskedLM(config)
    return RobertaForMaskedLM(config)


def count_parameters(model):
    """Unique parameters (tied matrices counted once)."""
    return sum(p.numel() for p in model.parameters())
