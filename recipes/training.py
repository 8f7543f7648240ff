"""Trainer pieces for pretraining: perplexity next to every eval loss, and a stop on a non-finite loss."""

import math

from transformers import Trainer


class NonFiniteLossError(RuntimeError):
    """Training loss became NaN or infinite."""


class MLMTrainer(Trainer):
    """`Trainer` that logs `eval_perplexity = exp(eval_loss)` and stops on a NaN/inf training loss.

    The loss check runs at logging steps, before any checkpoint of the same step is written (saving
    happens only on logging steps, see recipes/recipe.py), so the last checkpoint holds good weights.
    """

    def log(self, logs, *args, **kwargs):
        if "loss" in logs and not math.isfinite(logs["loss"]):
            raise NonFiniteLossError(
                f"training loss became {logs['loss']} at step {self.state.global_step}; the last checkpoint in "
                f"{self.args.output_dir} holds the last good weights. Lower --learning_rate or raise --warmup_ratio, "
                f"then --resume_from_checkpoint it"
            )
        if "eval_loss" in logs:
            logs["eval_perplexity"] = perplexity(logs["eval_loss"])
        super().log(logs, *args, **kwargs)


def perplexity(loss):
    return math.exp(loss) if loss < 50 else float("inf")
