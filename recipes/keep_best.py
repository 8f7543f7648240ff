"""Keep the best weights of a run (a continued run's start among them) and stop once they stop improving.

With `keep_best` (on by default with --init_from):

- the start is measured: a continued run evaluates its start model on the validation blocks before the first step,
  logged at step 0 like every evaluation (the log, TensorBoard, training_log.json) and recorded in results.json;
- the run evaluates `evaluations` times over its planned steps and saves a checkpoint at each; Trainer's own
  `load_best_model_at_end` with `metric_for_best_model` eval_loss loads the checkpoint with the lowest validation loss
  at the end, with the start's loss as the figure to beat (`TrainerState.best_metric` from step 0);
- Trainer's `EarlyStoppingCallback` ends the run after `early_stopping_patience` evaluations in a row without a new best;
- when no evaluation beat the start, the start's weights (kept in memory from the start) are put back before the model
  is saved, and the run says so in one line (`--fail_if_worse`: and exits with code 1).

docs/recipes.md#continued-pretraining shows why: one novel, 15 minutes, 17 passes, and the model twice as bad on the
very text it was adapted to, with nothing in the output to say so.
"""

import math
from dataclasses import asdict, dataclass

from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from small_encoders.recipes.training import perplexity


def evaluation_interval(planned_steps, evaluations, logging_steps):
    """(steps between two evaluations and checkpoints, the logging interval): `evaluations` spread over the plan. The
    interval is a multiple of the logging interval (checkpoints are written on logging steps only: recipes/training.py's
    non-finite-loss check); where the plan is too short for that, the run logs at each evaluation instead."""
    interval = max(1, planned_steps // max(1, evaluations))
    if interval < logging_steps:
        return interval, interval
    return interval // logging_steps * logging_steps, logging_steps


def keep_best_arguments(args, planned_steps, recipe):
    """Set the TrainingArguments that keep the best checkpoint: evaluation and saving every interval, the best loaded at
    the end. Returns the interval."""
    interval, args.logging_steps = evaluation_interval(planned_steps, recipe.evaluations, recipe.logging_steps)
    args.eval_strategy, args.save_strategy = IntervalStrategy.STEPS, SaveStrategy.STEPS
    args.eval_steps = args.save_steps = interval
    args.load_best_model_at_end, args.metric_for_best_model, args.greater_is_better = True, "eval_loss", False
    return interval


class StartAsBaseline(TrainerCallback):
    """At the start of a fresh continued run: the start model's validation loss, measured before the first step, is
    the best so far (`TrainerState.best_metric` at step 0), so a checkpoint is kept only where it beats the start. A
    resumed run's state already holds it."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            return
        metrics = self.trainer.evaluate()
        state.best_metric, state.best_global_step = metrics["eval_loss"], 0


def attach_keep_best(trainer, recipe, continued):
    """Measure the start (continued runs), keep the best, stop early (a patience of 0: never)."""
    if continued:
        trainer.add_callback(StartAsBaseline(trainer))
    if recipe.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))


@dataclass
class Kept:
    """Which weights a keep-best run saved, and why."""

    kept_step: int  # 0: the start's weights
    kept_loss: float
    start_loss: float | None  # a continued run's start, measured before the first step
    evaluations: int  # during training (the start's left out)
    stopped_early_at: int | None  # the step early stopping ended the run at

    @property
    def kept_start(self):
        return self.kept_step == 0

    def as_json(self):
        record = asdict(self)
        if self.start_loss is not None:
            record["start_perplexity"] = perplexity(self.start_loss)
        record["kept_perplexity"] = perplexity(self.kept_loss)
        return record

    def line(self, last_step):
        """The summary's plain line on what was saved."""
        stopped = (f"; stopped early at step {self.stopped_early_at:,} (the validation loss no longer fell)"
                   if self.stopped_early_at else "")
        if self.kept_start:
            return (f"no step beat the start model on the validation set (perplexity {perplexity(self.start_loss):.2f} "
                    f"at the start, {self.evaluations} evaluations after it): the saved model is the start's weights"
                    f"{stopped}")
        start = f"start {perplexity(self.start_loss):.2f} -> " if self.start_loss is not None else ""
        which = "the last step" if self.kept_step == last_step else f"step {self.kept_step:,} of {last_step:,}"
        return (f"kept {which}: validation perplexity {start}{perplexity(self.kept_loss):.2f}, the lowest of "
                f"{self.evaluations} evaluation(s){stopped}")


def kept_weights(trainer, continued):
    """What the run keeps, from the Trainer's state after train() (the best checkpoint already loaded by the Trainer)."""
    state = trainer.state
    evaluated = [row for row in state.log_history if "eval_loss" in row]
    start = next((row["eval_loss"] for row in evaluated if row.get("step") == 0), None) if continued else None
    during = [row for row in evaluated if row.get("step", 0) > 0]
    step = state.best_global_step
    if step is None:  # no evaluation (a plan shorter than one interval and no start): the last step's weights
        step, loss = state.global_step, during[-1]["eval_loss"] if during else math.nan
    else:
        loss = state.best_metric
    stopper = next((c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)), None)
    stopped = (stopper is not None and stopper.early_stopping_patience_counter >= stopper.early_stopping_patience)
    return Kept(kept_step=step, kept_loss=loss, start_loss=start, evaluations=len(during),
                stopped_early_at=state.global_step if stopped else None)
