"""ELECTRA-style replaced-token detection (Clark et al., 2020): a small masked-LM generator fills the masked
positions with its own samples, and the discriminator, the model that is kept, labels every token original or
replaced. Every real token teaches the discriminator, not only the 15-30% that MLM scores.

`build_rtd_model` makes the pair for either family: stock `ElectraForPreTraining` / `ElectraForMaskedLM` for the
RoBERTa/BERT-style recipes (a Hub user loads the discriminator with no custom code), and SmallEncoderForPreTraining /
SmallEncoderForMaskedLM for the SmallEncoder family. Generator and discriminator share the token embeddings (and the
position embeddings and embedding norm where the family has them), as in ELECTRA.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    RobertaConfig,
)
from transformers.utils import ModelOutput

from .configuration_small_encoder import SmallEncoderConfig
from .modeling_small_encoder import (
    SmallEncoderForMaskedLM,
    SmallEncoderForPreTraining,
    replaced_token_detection_loss,
)

GENERATOR_FOLDER = "generator"


def generator_shape(hidden_size, num_heads, intermediate_size, fraction):
    """(hidden, heads, intermediate) of a generator `fraction` as wide as the discriminator: whole heads of the
    discriminator's head width (ELECTRA-Small's 1/4: 256 wide with 4 heads -> 64 wide with 1 head)."""
    head_dim = hidden_size // num_heads
    heads = max(1, round(num_heads * fraction))
    hidden = heads * head_dim
    return hidden, heads, max(1, round(intermediate_size * hidden / hidden_size))


def electra_configs(config, fraction):
    """(discriminator, generator) ElectraConfigs for a RobertaConfig-style `config` (RoBERTa's fields, and an
    optional `embedding_size` as ELECTRA-Small's 128)."""
    hidden = config.hidden_size
    fields = dict(
        vocab_size=config.vocab_size, embedding_size=getattr(config, "embedding_size", None) or hidden,
        num_hidden_layers=config.num_hidden_layers, hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob, attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        # ELECTRA counts positions from 0; RoBERTa's table has two extra rows for its padding offset.
        max_position_embeddings=config.max_position_embeddings - (2 if isinstance(config, RobertaConfig) else 0),
        type_vocab_size=config.type_vocab_size, initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )
    discriminator = ElectraConfig(hidden_size=hidden, num_attention_heads=config.num_attention_heads,
                                  intermediate_size=config.intermediate_size, **fields)
    g_hidden, g_heads, g_intermediate = generator_shape(hidden, config.num_attention_heads, config.intermediate_size,
                                                        fraction)
    generator = ElectraConfig(hidden_size=g_hidden, num_attention_heads=g_heads, intermediate_size=g_intermediate,
                              **fields)
    return discriminator, generator


def small_encoder_configs(config, fraction):
    """(discriminator, generator) SmallEncoderConfigs; the generator reads the discriminator's embeddings through a
    projection (`embedding_size`)."""
    g_hidden, g_heads, g_intermediate = generator_shape(config.hidden_size, config.num_attention_heads,
                                                        config.intermediate_size, fraction)
    fields = {k: v for k, v in config.to_dict().items() if k not in ("architectures", "auto_map", "transformers_version")}
    generator = SmallEncoderConfig(**{**fields, "hidden_size": g_hidden, "num_attention_heads": g_heads,
                                      "intermediate_size": g_intermediate, "embedding_size": config.embedding_size})
    return config, generator


def build_rtd_model(config, fraction=0.25, discriminator_weight=50.0, temperature=1.0, special_token_ids=()):
    """The generator + discriminator pair for a masked-LM `config` of either family (see the module docstring)."""
    if isinstance(config, SmallEncoderConfig):
        d_config, g_config = small_encoder_configs(config, fraction)
        discriminator, generator = SmallEncoderForPreTraining(d_config), SmallEncoderForMaskedLM(g_config)
    else:
        d_config, g_config = electra_configs(config, fraction)
        discriminator, generator = ElectraForPreTraining(d_config), ElectraForMaskedLM(g_config)
    return ReplacedTokenDetection(generator, discriminator, special_token_ids, discriminator_weight, temperature)


@dataclass
class ReplacedTokenDetectionOutput(ModelOutput):
    """The loss to train on (generator MLM loss + weight x discriminator loss) and its parts, detached."""

    loss: torch.FloatTensor | None = None
    generator_loss: torch.FloatTensor | None = None
    discriminator_loss: torch.FloatTensor | None = None
    discriminator_accuracy: torch.FloatTensor | None = None
    replaced_fraction: torch.FloatTensor | None = None


class ReplacedTokenDetection(nn.Module):
    """Generator and discriminator trained together on one loss, under `Trainer` like any model.

    `forward(input_ids, labels, ...)` takes the masked batch of `DataCollatorForLanguageModeling` (labels are the
    original tokens at the chosen positions, -100 elsewhere): the generator predicts the chosen positions (sparse
    prediction), its samples at temperature `temperature` replace them, and the discriminator labels every position
    that is neither a special token nor padding: 1 where the token differs from the original, 0 where it is the
    original (a sample that equals the original counts as original). `sampling_seed` (from the collator) makes the
    samples a function of the batch, so a resumed run draws what an uninterrupted one drew.
    """

    def __init__(self, generator, discriminator, special_token_ids=(), discriminator_weight=50.0, temperature=1.0):
        super().__init__()
        if generator.config.hidden_size > discriminator.config.hidden_size:
            raise ValueError(f"the generator ({generator.config.hidden_size} wide) must not be wider than the "
                             f"discriminator ({discriminator.config.hidden_size})")
        if not discriminator_weight > 0 or not temperature > 0:
            raise ValueError("discriminator_weight and temperature must be positive")
        self.generator, self.discriminator = generator, discriminator
        self.discriminator_weight, self.temperature = float(discriminator_weight), float(temperature)
        # Made once and moved with the model (not saved: it is the tokenizer's, not a weight).
        self.register_buffer("special_token_ids", torch.tensor(sorted({int(i) for i in special_token_ids}), dtype=torch.long),
                             persistent=False)
        self.config = discriminator.config  # what Trainer reads (e.g. keys to ignore at inference)
        self.tie_embeddings()

    def tie_embeddings(self):
        """The generator reads and predicts with the discriminator's embeddings (ELECTRA's sharing)."""
        if isinstance(self.discriminator, ElectraForPreTraining):
            self.generator.electra.embeddings = self.discriminator.electra.embeddings
        else:
            shared, own = self.discriminator.model.embeddings, self.generator.model.embeddings
            own.tok_embeddings, own.position_embeddings, own.norm = shared.tok_embeddings, shared.position_embeddings, shared.norm
        if self.generator.config.tie_word_embeddings:
            self.generator.get_output_embeddings().weight = self.discriminator.get_input_embeddings().weight

    def replace_tokens(self, input_ids, labels, generator_logits, attention_mask=None, sampling_seed=None):
        """(corrupted input, discriminator targets): generator samples at the labelled positions; targets are 1 where
        the corrupted token differs from the original, 0 where it equals it, -100 at special tokens and padding."""
        scored = labels != -100
        noise = None
        if sampling_seed is not None:
            noise = torch.Generator(device=generator_logits.device).manual_seed(int(sampling_seed.reshape(-1)[0]))
        probabilities = torch.softmax(generator_logits.float() / self.temperature, dim=-1)
        sampled = torch.multinomial(probabilities, 1, generator=noise).squeeze(-1)
        original = torch.where(scored, labels, input_ids)
        corrupted = original.clone()
        corrupted[scored] = sampled
        targets = (corrupted != original).long()
        unscored = torch.isin(original, self.special_token_ids)
        if attention_mask is not None:
            unscored |= attention_mask == 0
        targets[unscored] = -100
        return corrupted, targets

    def forward(self, input_ids, labels, attention_mask=None, document_ids=None, sampling_seed=None):
        extra = {} if document_ids is None else {"document_ids": document_ids}
        generated = self.generator(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)
        logits = generated.logits
        if logits.dim() == 3:  # sparse prediction off: keep the scored rows, in the same row-major order
            logits = logits[labels != -100]
        with torch.no_grad():
            corrupted, targets = self.replace_tokens(input_ids, labels, logits, attention_mask, sampling_seed)
        detected = self.discriminator(input_ids=corrupted, attention_mask=attention_mask, **extra).logits
        discriminator_loss = replaced_token_detection_loss(detected, targets)
        with torch.no_grad():
            kept = targets != -100
            correct = ((detected[kept] > 0).long() == targets[kept]).float()
            accuracy = correct.mean() if correct.numel() else correct.sum()
            replaced = targets[kept].float().mean() if correct.numel() else correct.sum()
        return ReplacedTokenDetectionOutput(
            loss=generated.loss + self.discriminator_weight * discriminator_loss,
            generator_loss=generated.loss.detach(), discriminator_loss=discriminator_loss.detach(),
            discriminator_accuracy=accuracy, replaced_fraction=replaced,
        )

    def save_pretrained(self, folder, **kwargs):
        """The discriminator in `folder` (what a Hub user fine-tunes), the generator in `folder/generator`."""
        self.discriminator.save_pretrained(folder, **kwargs)
        self.generator.save_pretrained(Path(folder) / GENERATOR_FOLDER, **kwargs)

    def load_saved_weights(self, folder):
        """Weights from a folder `save_pretrained` wrote (a checkpoint to resume), embeddings tied again."""
        from safetensors.torch import load_file

        for part, path in ((self.discriminator, Path(folder)), (self.generator, Path(folder) / GENERATOR_FOLDER)):
            file = path / "model.safetensors"
            if not file.is_file():
                raise FileNotFoundError(f"{file} is missing: {folder} is not a replaced-token-detection checkpoint")
            missing, unexpected = part.load_state_dict(load_file(str(file)), strict=False)
            tied = {"lm_head.decoder.weight", "generator_lm_head.weight"}
            if unexpected or set(missing) - tied:
                raise ValueError(f"{file} does not match the model: missing {sorted(set(missing) - tied)}, "
                                 f"unexpected {sorted(unexpected)}")
        self.tie_embeddings()
