"""Configuration of the SmallEncoder family: BERT-style encoders whose variants are config fields.

This file is copied next to the weights by `save_pretrained`, so it imports only the public
transformers API.
"""

from transformers import PreTrainedConfig

NORM_TYPES = ("layernorm", "rmsnorm")
MLP_TYPES = ("gelu", "swiglu")
POSITION_EMBEDDING_TYPES = ("rope", "absolute")

# Written into every saved config, so one folder loads through each Auto class with trust_remote_code.
AUTO_MAP = {
    "AutoConfig": "configuration_small_encoder.SmallEncoderConfig",
    "AutoModel": "modeling_small_encoder.SmallEncoderModel",
    "AutoModelForMaskedLM": "modeling_small_encoder.SmallEncoderForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_small_encoder.SmallEncoderForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_small_encoder.SmallEncoderForTokenClassification",
    "AutoModelForMultipleChoice": "modeling_small_encoder.SmallEncoderForMultipleChoice",
}


class SmallEncoderConfig(PreTrainedConfig):
    r"""Configuration of a [`SmallEncoderModel`].

    Variants are fields, not subclasses:

    - `position_embedding_type`: `"rope"` (rotary, base `rope_theta`, no position table) or
      `"absolute"` (a learned table of `max_position_embeddings` rows).
    - `norm_type`: `"layernorm"` or `"rmsnorm"`, with epsilon `norm_eps`.
    - `pre_norm`: normalise before each sub-layer and once more after the last layer
      (`True`), or after each residual sum as in the original BERT (`False`).
    - `mlp_type`: `"gelu"` (two linear layers of width `intermediate_size`, activation
      `hidden_act`) or `"swiglu"` (SiLU-gated, width `2/3 * intermediate_size` rounded up to a
      multiple of 8, NeoBERT's rule that keeps parameters and FLOPs equal to the GELU MLP).
    - `tie_word_embeddings`: MLM decoder shares the token embedding matrix.
    - `use_bias`: biases in the attention and MLP projections (NeoBERT has none).
    - `sparse_prediction`: with MLM labels, compute logits only at labelled positions.
    """

    model_type = "small_encoder"

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        mlp_type="gelu",
        hidden_act=None,
        norm_type="layernorm",
        norm_eps=1e-12,
        pre_norm=True,
        position_embedding_type="rope",
        rope_theta=10000.0,
        max_position_embeddings=512,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        classifier_dropout=None,
        initializer_range=0.02,
        use_bias=True,
        sparse_prediction=True,
        tie_word_embeddings=True,
        pad_token_id=0,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.mlp_type = mlp_type
        self.hidden_act = hidden_act if hidden_act is not None else ("silu" if mlp_type == "swiglu" else "gelu")
        self.norm_type = norm_type
        self.norm_eps = norm_eps
        self.pre_norm = pre_norm
        self.position_embedding_type = position_embedding_type
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        self.use_bias = use_bias
        self.sparse_prediction = sparse_prediction
        self._validate()
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)

    def _validate(self):
        def fail(message):
            raise ValueError(f"SmallEncoderConfig: {message}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                fail(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.norm_type not in NORM_TYPES:
            fail(f"norm_type must be one of {NORM_TYPES}, got {self.norm_type!r}")
        if self.mlp_type not in MLP_TYPES:
            fail(f"mlp_type must be one of {MLP_TYPES}, got {self.mlp_type!r}")
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            fail(f"position_embedding_type must be one of {POSITION_EMBEDDING_TYPES}, got {self.position_embedding_type!r}")
        if self.hidden_size % self.num_attention_heads:
            fail(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})")
        if self.position_embedding_type == "rope":
            if (self.hidden_size // self.num_attention_heads) % 2:
                fail("rotary embeddings need an even head dimension (hidden_size / num_attention_heads)")
            if self.rope_theta <= 0:
                fail(f"rope_theta must be positive, got {self.rope_theta}")
        if self.mlp_type == "swiglu" and self.hidden_act not in ("silu", "swish"):
            fail(f"mlp_type='swiglu' gates with SiLU; hidden_act must be 'silu', got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                fail(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.classifier_dropout is not None and not 0.0 <= self.classifier_dropout < 1.0:
            fail(f"classifier_dropout must be in [0, 1) or None, got {self.classifier_dropout}")
        if self.norm_eps <= 0:
            fail(f"norm_eps must be positive, got {self.norm_eps}")

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def mlp_hidden_size(self):
        """Width of the MLP's hidden layer (NeoBERT's 2/3 rule, rounded up to 8, for SwiGLU)."""
        if self.mlp_type == "swiglu":
            width = int(2 * self.intermediate_size / 3)
            return 8 * ((width + 7) // 8)
        return self.intermediate_size


# Named shapes used by the recipes; each one's exact parameter count is in README.md.
PRESETS = {
    # BERTmini: RoPE, pre-LayerNorm with a final norm, tied decoder, BERT uncased vocabulary.
    "bertmini": dict(
        vocab_size=30522, hidden_size=384, num_hidden_layers=5, num_attention_heads=6, intermediate_size=1536,
        mlp_type="gelu", norm_type="layernorm", pre_norm=True, position_embedding_type="rope",
        max_position_embeddings=512, tie_word_embeddings=True, use_bias=True,
    ),
    # NeoBERT: 28 x 768, SwiGLU, RoPE, pre-RMSNorm, 4,096 positions, no biases, untied decoder.
    "neobert": dict(
        vocab_size=30522, hidden_size=768, num_hidden_layers=28, num_attention_heads=12, intermediate_size=3072,
        mlp_type="swiglu", norm_type="rmsnorm", norm_eps=1e-5, pre_norm=True, position_embedding_type="rope",
        max_position_embeddings=4096, tie_word_embeddings=False, use_bias=False,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ),
    # NeoBERT's shape family at one-machine size (tied decoder so the budget goes to the encoder).
    "neobert-mini": dict(
        vocab_size=30522, hidden_size=320, num_hidden_layers=8, num_attention_heads=5, intermediate_size=1280,
        mlp_type="swiglu", norm_type="rmsnorm", norm_eps=1e-5, pre_norm=True, position_embedding_type="rope",
        max_position_embeddings=4096, tie_word_embeddings=True, use_bias=False,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ),
}
