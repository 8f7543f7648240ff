"""The SmallEncoder family, registered with the Auto classes, plus sparse prediction for stock models."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_small_encoder import PRESETS, SmallEncoderConfig
from .modeling_small_encoder import (
    SmallEncoderForMaskedLM,
    SmallEncoderForMultipleChoice,
    SmallEncoderForPreTraining,
    SmallEncoderForSequenceClassification,
    SmallEncoderForTokenClassification,
    SmallEncoderModel,
    SmallEncoderPreTrainedModel,
)
from .sparse_mlm import enable_sparse_prediction

AUTO_CLASSES = {
    "AutoModel": (AutoModel, SmallEncoderModel),
    "AutoModelForMaskedLM": (AutoModelForMaskedLM, SmallEncoderForMaskedLM),
    "AutoModelForSequenceClassification": (AutoModelForSequenceClassification, SmallEncoderForSequenceClassification),
    "AutoModelForTokenClassification": (AutoModelForTokenClassification, SmallEncoderForTokenClassification),
    "AutoModelForMultipleChoice": (AutoModelForMultipleChoice, SmallEncoderForMultipleChoice),
    "AutoModelForPreTraining": (AutoModelForPreTraining, SmallEncoderForPreTraining),
}

AutoConfig.register(SmallEncoderConfig.model_type, SmallEncoderConfig, exist_ok=True)
# register_for_auto_class makes save_pretrained write `auto_map` and copy the two source files.
SmallEncoderConfig.register_for_auto_class()
for auto_name, (auto_class, model_class) in AUTO_CLASSES.items():
    auto_class.register(SmallEncoderConfig, model_class, exist_ok=True)
    model_class.register_for_auto_class(auto_name)


def small_encoder_config(preset, **overrides):
    """A SmallEncoderConfig from a named shape in PRESETS, with field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown SmallEncoder preset {preset!r}; choose one of {sorted(PRESETS)}")
    return SmallEncoderConfig(**{**PRESETS[preset], **overrides})


__all__ = [
    "PRESETS",
    "SmallEncoderConfig",
    "SmallEncoderForMaskedLM",
    "SmallEncoderForMultipleChoice",
    "SmallEncoderForPreTraining",
    "SmallEncoderForSequenceClassification",
    "SmallEncoderForTokenClassification",
    "SmallEncoderModel",
    "SmallEncoderPreTrainedModel",
    "enable_sparse_prediction",
    "small_encoder_config",
]
