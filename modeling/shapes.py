"""Print each named SmallEncoder shape with its exact parameter count:  python -m modeling.shapes"""

import torch

from . import PRESETS, SmallEncoderForMaskedLM, small_encoder_config
from .build import count_parameters


def main():
    print(f"{'preset':<14} {'layers x hidden':>15} {'heads':>5} {'MLP':>14} {'norm':>9} {'positions':>9} {'decoder':>7} {'parameters':>13}")
    for name in PRESETS:
        config = small_encoder_config(name)
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = SmallEncoderForMaskedLM(config)
        mlp = f"{config.mlp_type} {config.mlp_hidden_size}"
        print(f"{name:<14} {config.num_hidden_layers:>6} x {config.hidden_size:<6} {config.num_attention_heads:>5} {mlp:>14} "
              f"{config.norm_type:>9} {config.max_position_embeddings:>9} {'tied' if config.tie_word_embeddings else 'untied':>7} "
              f"{count_parameters(model):>13,}")


if __name__ == "__main__":
    main()
