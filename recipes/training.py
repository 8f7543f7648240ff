"""Trainer pieces for pretraining: resumable dynamic masking, perplexity next to every eval loss, and a
stop on a non-finite loss."""

import hashlib
import math
from collections.abc import Mapping

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback


class NonFiniteLossError(RuntimeError):
    """Training loss became NaN or infinite."""


def derived_seed(*key):
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1


class ResumableMLMCollator(DataCollatorForLanguageModeling):
    """`DataCollatorForLanguageModeling` (dynamic 80/10/10 masking) whose masks are a function of
    (seed, process, batch number) instead of the global RNG.

    The global RNG cannot give the same masks after a resume: the dataloader collates one batch ahead,
    so the RNG state saved in a checkpoint already includes the next batch's draws. Numbered batches
    make a killed-and-resumed run see exactly the masks of an uninterrupted one. Evaluation batches
    use fixed masks (the same at every evaluation), so held-out losses are comparable across a run.

    Packed blocks (all one length) skip `tokenizer.pad`, which is most of the stock collator's time, and
    carry no attention mask (it would be all ones). With `dataloader_num_workers` > 0 each worker numbers
    its batches as the epoch's own, so the masks match those of a run without workers.
    """

    def __init__(self, tokenizer, mlm_probability, seed, process_index=0):
        super().__init__(tokenizer=tokenizer, mlm_probability=mlm_probability)
        self.base_seed, self.process_index = seed, process_index
        self.batches_done, self.eval_batches, self.evaluating = 0, 0, False
        self.worker_calls = {}
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    def batch_number(self, counter):
        worker = torch.utils.data.get_worker_info()
        if worker is None:
            number = getattr(self, counter)
            setattr(self, counter, number + 1)
            return number
        # A worker holds a copy of this collator taken when the epoch's iterator started, and the DataLoader
        # hands it every num_workers-th batch from its id on.
        calls = self.worker_calls.get(counter, 0)
        self.worker_calls[counter] = calls + 1
        return getattr(self, counter) + calls * worker.num_workers + worker.id

    def torch_call(self, examples):
        if self.evaluating:
            key = (self.base_seed, "eval", self.process_index, self.batch_number("eval_batches"))
        else:
            key = (self.base_seed, "train", self.process_index, self.batch_number("batches_done"))
        self.generator = torch.Generator().manual_seed(derived_seed(*key))
        if isinstance(examples[0], Mapping) and len({len(e["input_ids"]) for e in examples}) == 1:
            return self.stack_blocks(examples)
        return super().torch_call(examples)

    def stack_blocks(self, examples):
        """The parent's batch for rows that need no padding (the same masks), without the attention mask."""
        batch = {key: torch.from_numpy(np.array([e[key] for e in examples], dtype=np.int64)) for key in examples[0]}
        special = batch.pop("special_tokens_mask", None)
        if special is None:  # Trainer drops the column (not a forward argument); the parent recomputes it row by row
            special = torch.isin(batch["input_ids"], self.special_ids)
        batch["input_ids"], batch["labels"] = self.torch_mask_tokens(batch["input_ids"], special_tokens_mask=special)
        return batch


class SyncCollatorWithState(TrainerCallback):
    """At each epoch's start (a resumed one too, before its trained batches are skipped and before the
    DataLoader's workers take their copy of the collator), number the next training batch after the ones
    already trained on."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.batches_done = state.global_step * args.gradient_accumulation_steps


class MLMTrainer(Trainer):
    """`Trainer` that logs `eval_perplexity = exp(eval_loss)` and stops on a NaN/inf training loss.

    The loss check runs at logging steps, before any checkpoint of the same step is written (saving
    happens only on logging steps, see recipes/recipe.py), so the last checkpoint holds good weights.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.data_collator, ResumableMLMCollator):
            self.add_callback(SyncCollatorWithState(self.data_collator))

    def evaluate(self, *args, **kwargs):
        collator = self.data_collator if isinstance(self.data_collator, ResumableMLMCollator) else None
        if collator is None:
            return super().evaluate(*args, **kwargs)
        collator.evaluating, collator.eval_batches = True, 0
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            collator.evaluating = False

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
