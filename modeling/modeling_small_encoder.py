"""SmallEncoder: one BERT-style encoder family (RoPE or absolute positions, LayerNorm or RMSNorm,
pre- or post-norm, GELU MLP or SwiGLU, tied or untied MLM decoder), with masked-LM, replaced-token-detection
(ELECTRA's discriminator) and task heads.

This file is copied next to the weights by `save_pretrained`, so it imports only torch, the public
transformers API and its configuration file.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import ModelOutput

from .configuration_small_encoder import SmallEncoderConfig


def make_norm(config, size=None):
    size = size or config.hidden_size
    if config.norm_type == "rmsnorm":
        return nn.RMSNorm(size, eps=config.norm_eps)
    return nn.LayerNorm(size, eps=config.norm_eps)


def positions_within_documents(document_ids):
    """Position of each token counted from the start of its document (document ids are contiguous runs)."""
    batch, length = document_ids.shape
    index = torch.arange(length, device=document_ids.device).expand(batch, length)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - first


def build_attention_mask(attention_mask, document_ids, dtype_length):
    """Boolean mask (True = may attend) of shape [B, 1, 1 or L, L], or None when nothing is masked."""
    if document_ids is None:
        if attention_mask is None:
            return None
        # An all-ones mask is dropped so SDPA may use its fastest kernel; the check reads a value back
        # from the device, which torch.compile cannot trace, so a compiled model keeps the mask.
        if not torch.compiler.is_compiling() and bool(attention_mask.all()):
            return None
        return attention_mask.bool()[:, None, None, :]
    mask = document_ids[:, :, None] == document_ids[:, None, :]
    if attention_mask is not None:
        mask = mask & attention_mask.bool()[:, None, :]
    # Every query may see itself, so a padding row is never empty (an empty row gives NaN in SDPA).
    mask = mask | torch.eye(dtype_length, dtype=torch.bool, device=mask.device)
    return mask[:, None, :, :]


def build_flex_block_mask(attention_mask, document_ids, batch, length, device):
    """The same rule as `build_attention_mask` as a flex-attention BlockMask: blocks that are masked entirely (other
    documents, padding) are skipped, not computed and thrown away. None when nothing is masked."""
    from torch.nn.attention.flex_attention import create_block_mask

    if document_ids is None and (attention_mask is None or bool(attention_mask.all())):
        return None
    keep = attention_mask.bool() if attention_mask is not None else None

    def mask_mod(b, h, q, kv):
        allowed = keep[b, kv] if keep is not None else q >= 0
        if document_ids is not None:
            allowed = (allowed & (document_ids[b, q] == document_ids[b, kv])) | (q == kv)
        return allowed

    return create_block_mask(mask_mod, batch, None, length, length, device=device)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Attention in plain torch ops; returns ([B, L, H, D] output, [B, H, L, L] weights) as transformers' functions do.
    `attention_mask` is boolean (True = may attend) or additive."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(F.dropout(weights, p=dropout, training=module.training), value)
    return output.transpose(1, 2).contiguous(), weights


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class SmallEncoderRotary(nn.Module):
    """Rotary position embedding; frequencies are recomputed from the config, so nothing is stored."""

    def __init__(self, config):
        super().__init__()
        self.head_dim = config.head_dim
        self.theta = config.rope_theta

    def forward(self, position_ids, dtype):
        exponent = torch.arange(0, self.head_dim, 2, device=position_ids.device, dtype=torch.float32) / self.head_dim
        inv_freq = 1.0 / (self.theta**exponent)
        freqs = position_ids.float()[..., None] * inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)[:, None, :, :]  # [B, 1, L, D]
        return angles.cos().to(dtype), angles.sin().to(dtype)


class SmallEncoderEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.embedding_size)
            if config.position_embedding_type == "absolute"
            else None
        )
        # Post-norm (original BERT) normalises the embeddings; pre-norm leaves that to the first layer.
        self.norm = None if config.pre_norm else make_norm(config, config.embedding_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # Embeddings narrower or wider than the encoder (an ELECTRA generator sharing its discriminator's).
        self.project = (nn.Linear(config.embedding_size, config.hidden_size)
                        if config.embedding_size != config.hidden_size else None)

    def forward(self, input_ids, inputs_embeds, position_ids):
        hidden = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        if self.position_embeddings is not None:
            hidden = hidden + self.position_embeddings(position_ids)
        if self.norm is not None:
            hidden = self.norm(hidden)
        hidden = self.dropout(hidden)
        return self.project(hidden) if self.project is not None else hidden


class SmallEncoderAttention(nn.Module):
    """Multi-head self-attention through transformers' attention interface: `config._attn_implementation` picks
    eager, sdpa, flex_attention or flash_attention_2/3 (`from_pretrained(attn_implementation=...)`, or
    `model.set_attn_implementation(...)` at run time)."""

    is_causal = False

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.use_bias)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, hidden, masks, rotary, output_attentions=False):
        """`masks` maps each implementation to the mask it reads (see `_attention_masks`)."""
        batch, length, _ = hidden.shape
        qkv = self.qkv(hidden).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)  # each [B, H, L, D]
        if rotary is not None:
            cos, sin = rotary
            query = query * cos + rotate_half(query) * sin
            key = key * cos + rotate_half(key) * sin
        implementation = self.config._attn_implementation or "sdpa"
        attention = eager_attention_forward
        if implementation != "eager" and not output_attentions:  # only eager returns the weights
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        mask = masks["eager" if attention is eager_attention_forward else implementation]
        context, weights = attention(self, query, key, value, mask, scaling=self.head_dim**-0.5,
                                     dropout=self.dropout_p if self.training else 0.0, is_causal=False)
        context = context.reshape(batch, length, -1)
        return self.out(context), weights if output_attentions else None


class SmallEncoderMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        width = config.mlp_hidden_size
        self.gated = config.mlp_type == "swiglu"
        self.fc_in = nn.Linear(config.hidden_size, 2 * width if self.gated else width, bias=config.use_bias)
        self.fc_out = nn.Linear(width, config.hidden_size, bias=config.use_bias)
        self.act = ACT2FN[config.hidden_act]

    def forward(self, hidden):
        if self.gated:
            gate, up = self.fc_in(hidden).chunk(2, dim=-1)
            return self.fc_out(self.act(gate) * up)
        return self.fc_out(self.act(self.fc_in(hidden)))


class SmallEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config):
        super().__init__()
        self.pre_norm = config.pre_norm
        self.attention = SmallEncoderAttention(config)
        self.mlp = SmallEncoderMLP(config)
        self.attention_norm = make_norm(config)
        self.mlp_norm = make_norm(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden, mask=None, rotary=None, output_attentions=False):
        if self.pre_norm:
            attended, weights = self.attention(self.attention_norm(hidden), mask, rotary, output_attentions)
            hidden = hidden + self.dropout(attended)
            hidden = hidden + self.dropout(self.mlp(self.mlp_norm(hidden)))
        else:
            attended, weights = self.attention(hidden, mask, rotary, output_attentions)
            hidden = self.attention_norm(hidden + self.dropout(attended))
            hidden = self.mlp_norm(hidden + self.dropout(self.mlp(hidden)))
        return hidden, weights


class SmallEncoderPreTrainedModel(PreTrainedModel):
    config_class = SmallEncoderConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["SmallEncoderLayer"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def _output_flags(self, output_attentions, output_hidden_states, return_dict):
        """The call's flags, else the config's (`from_pretrained(..., output_hidden_states=True)`), as in
        transformers' own models."""
        config = self.config
        return (config.output_attentions if output_attentions is None else output_attentions,
                config.output_hidden_states if output_hidden_states is None else output_hidden_states,
                config.return_dict if return_dict is None else return_dict)

    def _attention_masks(self, attention_mask, document_ids, batch, length, device, output_attentions):
        """What each attention backend reads: a boolean [B, 1, 1 or L, L] mask for eager and sdpa, a BlockMask for
        flex attention, the [B, L] padding mask for FlashAttention (which cannot isolate documents). The dense mask
        is built only where it is read: by eager and sdpa, and by the eager path that returns attention weights."""
        implementation = self.config._attn_implementation or "sdpa"
        masks = {}
        if implementation in ("eager", "sdpa") or output_attentions:
            masks["eager"] = masks["sdpa"] = build_attention_mask(attention_mask, document_ids, length)
        if implementation == "flex_attention":
            masks["flex_attention"] = build_flex_block_mask(attention_mask, document_ids, batch, length, device)
        elif implementation.startswith("flash_attention"):
            if document_ids is not None:
                raise ValueError(f"document_ids (document-isolated attention) needs the eager, sdpa or flex_attention "
                                 f"implementation, not {implementation}")
            masks[implementation] = attention_mask
        return masks


class SmallEncoderModel(SmallEncoderPreTrainedModel):
    """The bare encoder: final hidden states, for embeddings and for the task heads."""

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = SmallEncoderEmbeddings(config)
        self.rotary = SmallEncoderRotary(config) if config.position_embedding_type == "rope" else None
        self.layers = nn.ModuleList(SmallEncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.final_norm = make_norm(config) if config.pre_norm else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.tok_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.tok_embeddings = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        document_ids=None,
        token_type_ids=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        r"""
        document_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Per-token document index inside a packed block. When given, attention is block-diagonal (a token
            sees only tokens of its own document) and positions restart at 0 for each document.
        token_type_ids: accepted for tokenizer compatibility and ignored (the family has no segment embeddings).
        """
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if position_ids is None:
            if document_ids is not None:
                position_ids = positions_within_documents(document_ids)
            else:
                position_ids = torch.arange(shape[1], device=device).expand(shape)
        hidden = self.embeddings(input_ids, inputs_embeds, position_ids)
        mask = self._attention_masks(attention_mask, document_ids, shape[0], shape[1], device, output_attentions)
        rotary = self.rotary(position_ids, hidden.dtype) if self.rotary is not None else None

        all_hidden = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden += (hidden,)
            hidden, weights = layer(hidden, mask, rotary, bool(output_attentions))
            if output_attentions:
                all_attentions += (weights,)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        if output_hidden_states:
            all_hidden += (hidden,)
        output = BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)
        return output if return_dict else output.to_tuple()


class SmallEncoderLMHead(nn.Module):
    """BERT's MLM head: dense (to the embedding width), activation, norm, then the (optionally tied) decoder."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.act = ACT2FN["gelu"]
        self.norm = make_norm(config, config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)

    def forward(self, hidden):
        return self.decoder(self.norm(self.act(self.dense(hidden))))


class SmallEncoderForMaskedLM(SmallEncoderPreTrainedModel):
    _tied_weights_keys = {"lm_head.decoder.weight": "model.embeddings.tok_embeddings.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.model = SmallEncoderModel(config)
        self.lm_head = SmallEncoderLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        document_ids=None,
        token_type_ids=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            MLM targets; -100 marks positions that are not scored.

        With `labels` and `config.sparse_prediction` (the default), logits are computed only where the label is
        not -100: `logits` then has shape `(num_labelled_tokens, vocab_size)`, its rows in row-major order of the
        labelled positions (`labels[labels != -100]` gives their targets). Without labels, or with
        `sparse_prediction=False`, `logits` has shape `(batch_size, sequence_length, vocab_size)`.
        """
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.model(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            document_ids=document_ids, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        hidden = outputs.last_hidden_state
        loss = None
        if labels is not None and self.config.sparse_prediction:
            scored = labels != -100
            logits = self.lm_head(hidden[scored])
            targets = labels[scored]
            # Sum / count is the mean, and stays finite (0) when a batch has no masked token.
            loss = F.cross_entropy(logits.float(), targets, reduction="sum") / max(targets.numel(), 1)
        else:
            logits = self.lm_head(hidden)
            if labels is not None:
                loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return output if return_dict else output.to_tuple()


def mean_pool(hidden, attention_mask):
    """Mean of the final states of the tokens the attention mask keeps (all tokens without a mask)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


@dataclass
class SmallEncoderForPreTrainingOutput(ModelOutput):
    """Output of [`SmallEncoderForPreTraining`]: one replaced-or-original logit per token."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class SmallEncoderDiscriminatorHead(nn.Module):
    """ELECTRA's discriminator head: dense, activation, then one logit per token (replaced > 0 > original)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN["gelu"]
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden):
        return self.dense_prediction(self.act(self.dense(hidden))).squeeze(-1)


def replaced_token_detection_loss(logits, labels):
    """Binary cross-entropy over the tokens whose label is 0 (original) or 1 (replaced); -100 is not scored."""
    scored = labels != -100
    return F.binary_cross_entropy_with_logits(logits[scored].float(), labels[scored].float(), reduction="sum") / max(
        int(scored.sum()), 1)


class SmallEncoderForPreTraining(SmallEncoderPreTrainedModel):
    """The encoder with ELECTRA's replaced-token-detection head: what an RTD pretraining run saves and a Hub user
    fine-tunes (load it with any of the task heads; the detection head is then dropped)."""

    def __init__(self, config):
        super().__init__(config)
        self.model = SmallEncoderModel(config)
        self.discriminator_predictions = SmallEncoderDiscriminatorHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        document_ids=None,
        token_type_ids=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 where the input token was replaced, 0 where it is the original, -100 where it is not scored
            (special tokens, padding).
        """
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.model(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            document_ids=document_ids, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.discriminator_predictions(outputs.last_hidden_state)
        loss = replaced_token_detection_loss(logits, labels) if labels is not None else None
        output = SmallEncoderForPreTrainingOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return output if return_dict else output.to_tuple()


class SmallEncoderClassificationHead(nn.Module):
    """Pools the first token ([CLS] / <s>), as BERT and RoBERTa do, or the mean of the non-padding tokens
    (`config.classifier_pooling`), then dense + tanh and the output layer."""

    def __init__(self, config, num_outputs):
        super().__init__()
        self.pooling = config.classifier_pooling
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, num_outputs)

    def forward(self, hidden, attention_mask=None):
        pooled = mean_pool(hidden, attention_mask) if self.pooling == "mean" else hidden[:, 0]
        pooled = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(pooled))


def sequence_classification_loss(config, logits, labels):
    """Hugging Face's rule: regression for one label, single-label for integer labels, else multi-label."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.squeeze().float(), labels.squeeze().float())
        return F.mse_loss(logits.float(), labels.float())
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.float().view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


class SmallEncoderForSequenceClassification(SmallEncoderPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = SmallEncoderModel(config)
        self.classifier = SmallEncoderClassificationHead(config, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        token_type_ids=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.model(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(outputs.last_hidden_state, attention_mask)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class SmallEncoderForTokenClassification(SmallEncoderPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = SmallEncoderModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        token_type_ids=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict)
        outputs = self.model(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, self.num_labels), labels.view(-1), ignore_index=-100)
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class SmallEncoderForMultipleChoice(SmallEncoderPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = SmallEncoderModel(config)
        self.classifier = SmallEncoderClassificationHead(config, 1)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        token_type_ids=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        r"""Inputs have shape `(batch_size, num_choices, sequence_length)`; logits `(batch_size, num_choices)`."""
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict)
        num_choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]

        def flat(x):
            return None if x is None else x.reshape(-1, *x.shape[2:])

        outputs = self.model(
            flat(input_ids), attention_mask=flat(attention_mask), position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds), output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(outputs.last_hidden_state, flat(attention_mask)).view(-1, num_choices)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        output = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()
