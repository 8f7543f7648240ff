"""Trainer pieces for pretraining: resumable dynamic masking, perplexity next to every eval loss, and a
stop on a non-finite loss."""

import hashlib
import math
import time
from collections.abc import Mapping

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from small_encoders.core.errors import UserError


class NonFiniteLossError(UserError):
    """Training loss became NaN or infinite (the fix: a lower learning rate or a longer warmup, then resume)."""

    after_progress_bar = True


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
    its batches as the epoch's own, so the masks match those of a run without workers: the DataLoader hands batches
    to its workers in turn, starting at worker `first_worker` (0, except for a stream resumed from its saved state,
    which goes on with the worker after the last one that yielded).
    """

    def __init__(self, tokenizer, mlm_probability, seed, process_index=0, sampling_seed=False):
        super().__init__(tokenizer=tokenizer, mlm_probability=mlm_probability)
        self.base_seed, self.process_index = seed, process_index
        # Replaced-token detection: each batch also carries the seed of its generator samples (one per batch).
        self.sampling_seed = sampling_seed
        self.batches_done, self.eval_batches, self.evaluating, self.first_worker = 0, 0, False, 0
        self.worker_calls = {}
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    def batch_number(self, counter):
        worker = torch.utils.data.get_worker_info()
        if worker is None:
            number = getattr(self, counter)
            setattr(self, counter, number + 1)
            return number
        # A worker holds a copy of this collator taken when the epoch's iterator started, and the DataLoader
        # hands it every num_workers-th batch, the first one `turn` batches after the epoch's first.
        calls = self.worker_calls.get(counter, 0)
        self.worker_calls[counter] = calls + 1
        first = self.first_worker if counter == "batches_done" else 0
        turn = (worker.id - first) % worker.num_workers
        return getattr(self, counter) + calls * worker.num_workers + turn

    def torch_call(self, examples):
        if self.evaluating:
            key = (self.base_seed, "eval", self.process_index, self.batch_number("eval_batches"))
        else:
            key = (self.base_seed, "train", self.process_index, self.batch_number("batches_done"))
        self.generator = torch.Generator().manual_seed(derived_seed(*key))
        if isinstance(examples[0], Mapping) and len({len(e["input_ids"]) for e in examples}) == 1:
            batch = self.stack_blocks(examples)
        else:
            batch = super().torch_call(examples)
        if self.sampling_seed:
            batch["sampling_seed"] = torch.tensor([derived_seed(*key, "samples")])
        return batch

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
    already trained on. A stream resumed from its saved state goes on at its next batch, which comes from the worker
    after the last one that yielded; a stream replayed from its start (a checkpoint without a saved stream state)
    passes the skipped batches through the collator too: there the numbering starts again at 0, so the first batch
    trained after the resume gets its own number, as in an uninterrupted run."""

    def __init__(self, collator, trainer):
        self.collator, self.trainer = collator, trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        done = state.global_step * args.gradient_accumulation_steps
        replayed = self.trainer.stream_resume == "replay"
        self.collator.batches_done = 0 if replayed else done
        workers = args.dataloader_num_workers
        self.collator.first_worker = done % workers if workers and self.trainer.stream_resume == "state" else 0


class SegmentClock(TrainerCallback, ExportableState):
    """Marks where and when this process's segment of training starts (after a resume: at the checkpoint's step),
    and saves the segments trained so far in each checkpoint's trainer_state.json (Trainer's stateful callbacks),
    so a resumed run's time and rate cover the whole run."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.segment_started, self.trainer.segment_start_step = time.perf_counter(), state.global_step

    def state(self):
        return {"args": {}, "attributes": {"segments": self.trainer.segments(until=self.trainer.save_started)}}


def earlier_segments(checkpoint):
    """The training segments a checkpoint's run had trained before it ([] for none, or a checkpoint from before)."""
    import json
    from pathlib import Path

    path = Path(checkpoint) / "trainer_state.json" if checkpoint else None
    if path is None or not path.is_file():
        return []
    saved = json.loads(path.read_text()).get("stateful_callbacks", {}).get(SegmentClock.__name__) or {}
    return saved.get("attributes", {}).get("segments", [])


def budget_scheduler(trainer, default, num_training_steps, optimizer=None):
    """A Trainer's scheduler: a time budget's schedule (`trainer.lr_lambda`, whose length a re-plan may change), else
    the Trainer's own (`default`)."""
    if trainer.lr_lambda is None or trainer.lr_scheduler is not None:
        return default(num_training_steps, optimizer)
    trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or trainer.optimizer, trainer.lr_lambda)
    return trainer.lr_scheduler


def check_finite_loss(trainer, logs):
    """Stop, in one error line, on a NaN or infinite training loss (checked at logging steps, before a checkpoint of
    the same step is written: the last checkpoint holds good weights)."""
    if "loss" in logs and not math.isfinite(logs["loss"]):
        raise NonFiniteLossError(
            f"training loss became {logs['loss']} at step {trainer.state.global_step}; the last checkpoint in "
            f"{trainer.args.output_dir} holds the last good weights. Lower --learning_rate or raise --warmup_ratio, "
            f"then --resume_from_checkpoint it"
        )


class MLMTrainer(Trainer):
    """`Trainer` that logs `eval_perplexity = exp(eval_loss)` and stops on a NaN/inf training loss.

    The loss check runs at logging steps, before any checkpoint of the same step is written (saving
    happens only on logging steps, see recipes/recipe.py), so the last checkpoint holds good weights.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # How a resumed stream gets to its next batch: "state" (a saved stream state), "replay" (read from the start).
        self.stream_resume, self.stream_loader = None, None
        if isinstance(self.data_collator, ResumableMLMCollator):
            self.add_callback(SyncCollatorWithState(self.data_collator, self))
        # Wall time spent evaluating and saving inside train(), reported apart from the training time.
        self.eval_seconds, self.save_seconds = 0.0, 0.0
        self.lr_lambda = None  # a time budget's schedule, whose length may be re-planned during training
        self.reports_perplexity = True  # eval_perplexity = exp(eval_loss): true of the MLM loss only
        # Training time across a kill and a resume: each checkpoint records the segments trained up to it.
        self.earlier_segments, self.segment_started, self.segment_start_step, self.save_started = [], None, 0, None
        self.add_callback(SegmentClock(self))

    def segments(self, until=None):
        """Every training segment up to now (or `until`, a perf_counter time): earlier ones from the checkpoint resumed,
        then this one, each {"from_step", "to_step", "seconds"} with evaluation and saving left out."""
        if self.segment_started is None:  # nothing trained in this process (a resumed run whose plan was complete)
            return list(self.earlier_segments)
        until = time.perf_counter() if until is None else until
        seconds = until - self.segment_started - self.eval_seconds - self.save_seconds
        return self.earlier_segments + [{"from_step": self.segment_start_step, "to_step": self.state.global_step,
                                         "seconds": round(seconds, 2)}]

    def get_train_dataloader(self):
        """The training batches all of one shape: the last partial batch of an epoch is dropped (at most a batch less
        than a block count's multiple), so a compiled model never meets a new shape and compiles again (it did on an
        H200: 28 s for the 10-block last batch of an epoch). Evaluation keeps every block (it runs uncompiled)."""
        from small_encoders.data_prep.streaming import BlockStream

        if isinstance(self.train_dataset, BlockStream):
            self.stream_loader = self.stream_dataloader()
            return self.stream_loader
        drop_last = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = True
        try:
            return super().get_train_dataloader()
        finally:
            self.args.dataloader_drop_last = drop_last

    def stream_dataloader(self):
        """A streamed corpus's batches through torchdata's `StatefulDataLoader`, whose state (every worker's place in
        its files) is saved in each checkpoint. Not passed through accelerate: the stream is already this process's
        part (`data_prep.streaming.process_part`), which accelerate would split again."""
        from torchdata.stateful_dataloader import StatefulDataLoader

        args = self.args
        workers = args.dataloader_num_workers
        return StatefulDataLoader(
            self.train_dataset, batch_size=self._train_batch_size,
            collate_fn=self._get_collator_with_removed_columns(self.data_collator, description="Training"),
            num_workers=workers, pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers and workers > 0,
            prefetch_factor=args.dataloader_prefetch_factor if workers else None,
            multiprocessing_context=args.dataloader_multiprocessing_context if workers else None,
        )

    def stream_state_file(self, checkpoint):
        from pathlib import Path

        return Path(checkpoint) / f"stream_state_{self.args.process_index}.pt"

    def train(self, resume_from_checkpoint=None, **kwargs):
        from small_encoders.data_prep.streaming import BlockStream

        if resume_from_checkpoint and isinstance(self.train_dataset, BlockStream):
            saved = self.stream_state_file(resume_from_checkpoint)
            self.stream_resume = "state" if saved.is_file() else "replay"
            if self.stream_resume == "state":
                state = torch.load(saved, weights_only=True)
                if state["processes"] != self.args.world_size or state["workers"] != self.args.dataloader_num_workers:
                    raise UserError(
                        f"{resume_from_checkpoint} was saved by {state['processes']} process(es) with "
                        f"{state['workers']} collation worker(s) each; resume it with the same (--dataloader_num_workers "
                        f"{state['workers']}, accelerate launch --num_processes {state['processes']})")
                self.stream_state = state["loader"]
            else:
                print(f"note: {resume_from_checkpoint} holds no saved stream state (saved by an older version): the "
                      f"stream is read again from its start to the step resumed", flush=True)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def get_resumed_dataloader(self, dataloader, num_batches):
        """A stream resumed from its saved state goes on at its next batch; anything else skips the batches trained."""
        if self.stream_resume == "state" and dataloader is self.stream_loader:
            dataloader.load_state_dict(self.stream_state)
            return dataloader
        return super().get_resumed_dataloader(dataloader, num_batches)

    def _issue_warnings_after_load(self, load_result):
        """A tied decoder is the embedding matrix and is not in a checkpoint: not a missing key (transformers warned
        "There were missing keys in the checkpoint model loaded: ['lm_head.decoder.weight']" on every resume).
        (Private: the warning is issued inside Trainer's checkpoint loading, where no callback or argument reaches.)"""
        config = getattr(self.model, "config", None)
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ()) if getattr(config, "tie_word_embeddings", False) else set()
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(type(load_result)(missing, load_result.unexpected_keys))

    def create_scheduler(self, num_training_steps, optimizer=None):
        return budget_scheduler(self, super().create_scheduler, num_training_steps, optimizer)

    def evaluate(self, *args, **kwargs):
        started = time.perf_counter()
        collator = self.data_collator if isinstance(self.data_collator, ResumableMLMCollator) else None
        if collator is not None:
            collator.evaluating, collator.eval_batches = True, 0
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            if collator is not None:
                collator.evaluating = False
            self.eval_seconds += time.perf_counter() - started

    def _save_checkpoint(self, *args, **kwargs):
        # Private: the stream's state must be written into the checkpoint folder before trainer_state.json (the file
        # that makes a checkpoint whole) and the save timed apart from training; on_save runs after the folder is
        # complete, too late for the first and without the start time for the second.
        started = self.save_started = time.perf_counter()  # SegmentClock.state() counts training time up to here
        self.state.stateful_callbacks.setdefault(SegmentClock.__name__, {})  # a state resumed from an older checkpoint
        if self.stream_loader is not None:
            # Each process its own file, written before trainer_state.json (the last file of a whole checkpoint).
            from pathlib import Path

            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=None)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            state = {"processes": self.args.world_size, "workers": self.args.dataloader_num_workers,
                     "loader": self.stream_loader.state_dict()}
            torch.save(state, self.stream_state_file(folder))
        try:
            return super()._save_checkpoint(*args, **kwargs)
        finally:
            self.save_seconds += time.perf_counter() - started

    def log(self, logs, *args, **kwargs):
        check_finite_loss(self, logs)
        if "eval_loss" in logs and self.reports_perplexity:
            logs["eval_perplexity"] = perplexity(logs["eval_loss"])
        super().log(logs, *args, **kwargs)


RTD_PARTS = ("generator_loss", "discriminator_loss", "discriminator_accuracy", "replaced_fraction")


class RTDTrainer(MLMTrainer):
    """`MLMTrainer` for `modeling.rtd.ReplacedTokenDetection`: logs the generator's MLM loss (and its perplexity at
    evaluation), the discriminator's loss and accuracy, the fraction of replaced tokens and the discriminator's chance
    loss (`chance_loss`) next to the summed loss;
    saves the discriminator where a Hub user looks for the model and the generator in `generator/`, and resumes both.
    Single-process and DDP (`accelerate launch`); FSDP and DeepSpeed shard the model, which these methods do not."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reports_perplexity = False
        self.part_sums = {"train": {}, "eval": {}}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        sums = self.part_sums["train" if model.training else "eval"]
        for name in RTD_PARTS:  # summed as tensors: a float() per step would wait for the GPU at every step
            total, count = sums.get(name, (0.0, 0))
            sums[name] = (total + getattr(outputs, name).detach(), count + 1)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        phase, prefix = ("eval", "eval_") if "eval_loss" in logs else ("train", "") if "loss" in logs else (None, "")
        if phase is not None:
            sums = self.part_sums[phase]
            for name, (total, count) in sums.items():
                logs[prefix + name] = float(total) / max(count, 1)
            if phase == "eval" and "generator_loss" in sums:
                logs["eval_generator_perplexity"] = perplexity(logs["eval_generator_loss"])
            if "replaced_fraction" in sums:
                logs[prefix + "discriminator_chance_loss"] = chance_loss(logs[prefix + "replaced_fraction"])
            sums.clear()
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir=None, state_dict=None):
        # Private: the RTD model saves its discriminator and generator/ through its own save_pretrained; Trainer's
        # save_model has no hook for a model that is two models, and would write one state dict of both.
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        self.accelerator.unwrap_model(self.model).save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # Private: the counterpart of _save above (the two folders back into the one model); resuming offers no hook.
        self.accelerator.unwrap_model(model if model is not None else self.model).load_saved_weights(resume_from_checkpoint)


def chance_loss(replaced_fraction):
    """The loss of a discriminator that ignores its input and always predicts the replaced fraction (the binary
    entropy of that fraction): a discriminator loss at this value has learned nothing from the tokens."""
    p = min(max(float(replaced_fraction), 1e-12), 1 - 1e-12)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def perplexity(loss):
    return math.exp(loss) if loss < 50 else float("inf")
