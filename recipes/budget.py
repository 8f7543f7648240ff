"""The time budget (`--time_budget MINUTES`): a plan of steps from a measured step time, re-planned from the
Trainer's own step times as training goes, a learning-rate schedule that ends with the plan, and the callback that
ends training there.

    plan = calibrate(recipe, model, collator, blocks, args, resume, is_main)   # BudgetPlan: measured, or recorded
    args.max_steps = plan.cap                                                  # an upper bound for the Trainer
    timer = TimeBudget(plan, trainer, on_replan)                               # re-plans, stops at plan.total
    trainer.lr_lambda = budget_lr_lambda(kind, warmup_steps, lambda: timer.total)

The plan is one typed object (`BudgetPlan`, its re-plans `Replan`), written to the run folder's budget_plan.json so a
resumed run keeps it, and into results.json's `time_budget`. The callback uses Trainer's public callback interface
only; it also sets the progress bar's total (transformers' ProgressCallback has no hook for a changed step count).
"""

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from small_encoders.core.errors import UserError
from small_encoders.core.files import write_atomic
from small_encoders.core.run_folder import RunFolder, describe_hardware


@dataclasses.dataclass
class Replan:
    """One re-plan: at which step, the mean step time it measured (over how many steps), the seconds left then, and the
    step count it set."""

    at_step: int
    step_seconds: float
    measured_steps: int
    seconds_left: float
    steps: int


@dataclasses.dataclass
class BudgetPlan:
    """What a time budget plans: `planned_steps` from the calibration's measured `step_seconds`, then `steps` as the
    re-plans set it (None until the first). `total` is the step count in force; `cap` the most a re-plan may set."""

    minutes: float
    step_seconds: float
    planned_steps: int
    steps_measured: int = 0
    cap_factor: int = 4  # the cap's multiple of the plan; calibrate() doubles it when compiled (it times an eager step)
    planned_tokens: int = 0
    calibration_seconds: float = 0.0
    hardware: str | None = None
    replans: list = dataclasses.field(default_factory=list)  # of Replan
    steps: int | None = None  # the last re-plan's count
    capped: bool | None = None  # whether the last re-plan wanted more than the cap
    replanned_at_step: int | None = None  # the first re-plan's step, step time and measured steps
    measured_step_seconds: float | None = None
    measured_steps: int | None = None
    budget_steps: int | None = None  # what the budget afforded, where --max_passes planned fewer (then planned_steps)
    max_passes: float | None = None  # that cap, in passes over the training blocks
    resumed: bool = False  # read back from the run folder by a resumed run (not written)

    @property
    def total(self):
        return self.planned_steps if self.steps is None else self.steps

    @property
    def cap(self):
        """The most steps a budgeted run may re-plan to: four times the calibration's plan, eight times when the model
        is compiled (the calibration times an eager step; a compiled one was 1.5 times faster on an H200, and more with
        the other levers), so that a re-plan is never capped below what the budget affords; the plan itself where the
        passes over the data capped it (a re-plan never adds passes). Twice the plan was too little: a quickstart
        calibrated while another process briefly shared the 2-core CPU planned 723 steps, then ran three times faster,
        was capped at 1,446 and stopped after 3.6 of its 5 minutes (alone it trains about 2,200)."""
        return self.planned_steps if self.budget_steps is not None else self.cap_factor * self.planned_steps

    def cap_passes(self, max_passes, blocks, blocks_per_step):
        """Plan at most `max_passes` passes over `blocks` training blocks; returns whether that cut the plan."""
        most = max(1, int(max_passes * blocks // blocks_per_step))
        if self.budget_steps is not None or self.planned_steps <= most:
            return False
        self.budget_steps, self.max_passes, self.planned_steps = self.planned_steps, max_passes, most
        self.planned_tokens = self.planned_tokens * most // self.budget_steps
        return True

    def as_json(self):
        """The plan as budget_plan.json holds it: the fields that are set (a calibration's plan has no re-plans yet)."""
        return {key: value for key, value in dataclasses.asdict(self).items()
                if value is not None and key != "resumed" and not (key == "replans" and not value)}

    def result(self):
        """What results.json records: the plan with the step count in force (`steps`) even where no re-plan was due."""
        return dict(self.as_json(), steps=self.total, **({"resumed": True} if self.resumed else {}))

    @classmethod
    def from_json(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        plan = cls(**{key: value for key, value in data.items() if key in names})
        plan.replans = [Replan(**replan) for replan in plan.replans]
        return plan

    def write(self, folder):
        write_atomic(RunFolder(folder).plan_file, json.dumps(self.as_json(), indent=1))


def calibrate(recipe, model, collator, train_blocks, args, resume, is_main):
    """The plan of steps that fit `time_budget` minutes of training, from a measured step time; recorded in the run
    folder so a resumed run keeps the plan (and so its schedule) of the first start."""
    recorded = RunFolder(recipe["output_dir"]).budget_plan() if resume else None
    if recorded is not None:
        plan = BudgetPlan.from_json(recorded)
        plan.resumed = True
        return plan
    started = time.time()
    seconds, measured, rows = measure_step_seconds(model, collator, train_blocks, args)
    plan = plan_for(recipe["time_budget"], seconds)
    plan.steps_measured = measured
    if args.torch_compile:
        plan.cap_factor *= 2
    plan.planned_tokens = plan.planned_steps * rows * args.world_size * recipe["block_size"]
    plan.calibration_seconds, plan.hardware = round(time.time() - started, 1), describe_hardware(args.world_size)
    if is_main:
        Path(recipe["output_dir"]).mkdir(parents=True, exist_ok=True)
        plan.write(recipe["output_dir"])
    return plan


def plan_for(minutes, step_seconds):
    """The steps of `step_seconds` each that fit `minutes`; a budget shorter than one step is one error line."""
    steps = int(minutes * 60 // step_seconds)
    if steps < 1:
        raise UserError(f"--time_budget {minutes:g} minutes is shorter than one training step "
                        f"({step_seconds:.3g} s on this hardware); give a longer budget or a smaller batch")
    return BudgetPlan(minutes=minutes, step_seconds=step_seconds, planned_steps=steps)


FEW_STEPS, SUGGESTED_STEPS = 500, 1000


def few_steps_hint(steps, batch_size):
    """A warning when a time budget affords fewer than FEW_STEPS optimizer steps, with the largest per-device batch
    (a power of two, at least 8) that gives SUGGESTED_STEPS or more at the same tokens per second; None when the plan
    has enough steps or the batch is already 8 or less. (Measured: bertmini's batch 128 trained 177 steps in 60 CPU minutes and
    stayed at the unigram stage, perplexity 1,566; tuned-5m at batch 16 trained 4.4 times the steps of batch 64 at
    equal time and reached a lower perplexity.)"""
    if steps >= FEW_STEPS or batch_size <= 8:
        return None
    suggested = max(8, 2 ** max(0, int(math.log2(batch_size * steps / SUGGESTED_STEPS))))
    return (f"warning: this budget affords only {steps:,} optimizer steps of {batch_size} blocks per device; "
            f"short budgets learn more from more, smaller steps (docs/recipes.md#time-budgets): "
            f"try --per_device_train_batch_size {suggested}")


def budget_line(plan):
    """The run header's line for the plan."""
    source = ("recorded plan, resumed" if plan.resumed else
              f"measured over {plan.steps_measured} steps in {plan.calibration_seconds:.0f} s")
    capped = (f" ({plan.budget_steps:,} afforded; at most {plan.max_passes:g} passes over the training blocks)"
              if plan.budget_steps is not None else "")
    return (f"time budget       {plan.minutes:g} min of training: {plan.step_seconds:.3f} s per step ({source}) "
            f"-> {plan.planned_steps:,} steps{capped}" + (f", re-planned to {plan.steps:,}" if plan.steps is not None else
                                                         ", re-planned during training from the Trainer's own step times"))


def measure_step_seconds(model, collator, dataset, args, min_steps=5, min_seconds=3.0, max_steps=50, warmup=2):
    """Seconds one optimizer step takes (forward, backward, clipping, AdamW; collation included) on `args.device`.

    Runs on the model itself and puts its starting weights back afterwards, so the run that follows starts from
    the same weights as without calibration; the optimizer is a throwaway. Under several processes every process
    measures and the slowest figure is used, so all of them plan the same number of steps."""
    import copy

    device = args.device
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training, model = model.training, model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-12)
    collator = copy.deepcopy(collator)
    rows_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(args.bf16))

    def step(index):
        for micro in range(args.gradient_accumulation_steps):
            start = ((index * args.gradient_accumulation_steps + micro) * args.per_device_train_batch_size) % max(1, len(dataset) - args.per_device_train_batch_size)
            rows = dataset.select(range(start, min(len(dataset), start + args.per_device_train_batch_size)))
            batch = collator([{k: row[k] for k in ("input_ids", "document_ids") if k in row} for row in rows])
            with autocast:
                loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            loss.backward()
        if args.max_grad_norm and args.max_grad_norm > 0:  # as Trainer: 0 or None means no clipping
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for index in range(warmup):
        step(index)
    sync()
    started, done = time.perf_counter(), 0
    while done < max_steps and (done < min_steps or time.perf_counter() - started < min_seconds):
        step(warmup + done)
        done += 1
    sync()
    seconds = (time.perf_counter() - started) / done
    model.load_state_dict(snapshot)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return slowest_across_processes(seconds, device), done, rows_per_step


def slowest_across_processes(seconds, device):
    """The largest of every process's figure (or of each figure of a list), so that all processes plan the same
    number of steps."""
    figures = list(seconds) if isinstance(seconds, (list, tuple)) else [seconds]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # float64: the same figures on every process, bit for bit, whatever the device
        slowest = torch.tensor(figures, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        figures = slowest.tolist()
    return figures if isinstance(seconds, (list, tuple)) else figures[0]


def budget_lr_lambda(kind, warmup_steps, total_steps):
    """Linear warmup, then linear or cosine decay to zero at `total_steps()`, read at every step (it may be re-planned)."""

    def factor(step):
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps() - warmup_steps))
        return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


TAIL_FRACTION = 0.02




class PlanComplete(Exception):
    """Raised by TimeBudget when training resumes from a checkpoint that has already reached the plan's last step: the
    checkpoint's weights and state are loaded and there is nothing left to train."""


class TimeBudget(TrainerCallback):
    """Ends training after the budget's steps. At a tenth, three tenths, half, seven tenths and nine tenths of the
    plan it re-plans the step count from the Trainer's own step times (evaluation and saving left out): the training
    time spent so far, and the time left divided by the mean step time since the previous re-plan. The calibration
    before training can only estimate step time, and step time drifts during a run (on the 2-core CPU a one-off
    re-plan after a tenth still missed a 5-minute budget by 16%); the learning-rate schedule follows the new count,
    so it still ends exactly at the last step.

    After the first re-plan there is also one at least every tenth of the budget's time, counted in steps at the last
    measured rate (a step count, so every process re-plans at the same step): a burst of fast steps that stretched the
    plan is caught before the steps slow down again for long. (Beside the full test suite, the fractions alone let a
    5-minute quickstart plan 1,322 steps at 0.196 s, run at 0.68 s and train 7.4 minutes.)"""

    FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
    EVERY = 0.1  # of the budget's time, at most between two re-plans after the first
    MIN_MEASURED = 5  # steps timed since the previous re-plan

    def __init__(self, plan, trainer, on_replan):
        self.plan, self.trainer, self.on_replan = plan, trainer, on_replan
        self.total = plan.total
        self.upper_bound = plan.cap  # the Trainer's max_steps
        # A resumed run keeps its recorded plan; a plan too short to measure is not re-planned.
        self.active = plan.steps is None and plan.planned_steps >= 20
        self.fractions = list(self.FRACTIONS) if self.active else []
        self.step_times, self.last, self.since, self.next_due, self.tail_end = [], None, 0, None, None

    def first_due_by_time(self, step, args):
        """The first re-plan is also due once a tenth of the budget's time is spent, when that comes before a tenth of
        the planned steps (a calibration far faster than the real steps: under DDP it times no gradient all-reduce and
        no checkpoint writing, and on the 2-core CPU two processes planned 2,041 steps at 0.012 s that took 0.14 s, so
        the first re-plan came after the budget). Checked every tenth step from the time spent by the slowest process,
        so every process decides alike."""
        if not self.active or self.plan.replans or step < 10 or step % 10:
            return False
        spent = slowest_across_processes(sum(self.step_times), args.device)
        return spent >= self.FRACTIONS[0] * self.plan.minutes * 60

    def replan_due(self, step):
        if not self.active:
            return False
        due = [int(self.fractions[0] * self.total)] if self.fractions else []
        due += [self.next_due] if self.next_due is not None else []
        return bool(due) and step >= max(10, min(due))

    def on_step_end(self, args, state, control, **kwargs):
        now, spent = time.perf_counter(), self.trainer.eval_seconds + self.trainer.save_seconds
        if self.last is not None:
            self.step_times.append(now - self.last[0] - (spent - self.last[1]))
        self.last = (now, spent)
        # A re-plan measures at least MIN_MEASURED steps since the last one (two due at neighbouring steps, one by time
        # and one by fraction, measured one fast step and re-planned five times the steps); the same on every process.
        measured = len(self.step_times) - self.since >= self.MIN_MEASURED
        if measured and (self.replan_due(state.global_step) or self.first_due_by_time(state.global_step, args)):
            self.replan(args, state)
        if state.global_step >= self.total:
            control.should_training_stop = True

    def replan(self, args, state):
        first = not self.plan.replans
        by_fraction = bool(self.fractions) and state.global_step >= max(10, int(self.fractions[0] * self.total))
        # The first steps warm caches and allocators: the first re-plan leaves out a quarter of its steps.
        recent = self.step_times[len(self.step_times) // 4:] if first else self.step_times[self.since:]
        # Each process has timed its own steps (the first process's leave out its checkpoint writing, which the others
        # wait for inside theirs): all of them plan from the slowest rate and the longest time spent, so that every
        # process stops at the same step (one that stopped early would leave the others waiting in an all-reduce).
        seconds, timed = slowest_across_processes([sum(recent) / len(recent), sum(self.step_times)], args.device)
        # Steps done before the first timed one count at the measured rate.
        elapsed = timed + (state.global_step - len(self.step_times)) * seconds
        left = self.plan.minutes * 60 - elapsed
        wanted = state.global_step + max(0, int(left // seconds))
        # Even when the time is already spent (a machine slowed down by other work), the schedule gets a short tail
        # to decay in instead of stopping at a high learning rate: at most 2% of the plan over the budget, granted
        # once (a later re-plan inside the tail keeps its end; re-granted at every re-plan, it never ended).
        tail = state.global_step + max(1, math.ceil(TAIL_FRACTION * self.plan.planned_steps))
        if self.tail_end is not None:
            tail = min(tail, self.tail_end)
        if wanted < tail:
            self.tail_end = tail
        self.total = min(self.upper_bound, max(tail, min(wanted, self.upper_bound)))
        self.since = len(self.step_times)
        if by_fraction:
            self.fractions.pop(0)  # this re-plan's fraction (one due by time leaves it for later)
        while self.fractions and state.global_step >= int(self.fractions[0] * self.total):  # any the new length passed
            self.fractions.pop(0)
        self.next_due = state.global_step + max(1, int(self.EVERY * self.plan.minutes * 60 / seconds))
        self.plan.replans.append(Replan(at_step=state.global_step, step_seconds=round(seconds, 6),
                                        measured_steps=len(recent), seconds_left=round(left, 3), steps=self.total))
        if first:
            self.plan.replanned_at_step = state.global_step
            self.plan.measured_step_seconds, self.plan.measured_steps = round(seconds, 5), len(recent)
        self.plan.steps, self.plan.capped = self.total, wanted > self.upper_bound
        self.show_total(state)
        self.on_replan(self.plan)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step >= self.total:
            # A checkpoint at the plan's last step (a run killed while it evaluated or saved at the end): the Trainer's
            # loop would train one step more before it looks at any stop signal, so the run ends here instead.
            raise PlanComplete(state.global_step)
        # The first step is timed from here: under torch.compile it holds the compilation (a minute and more on a
        # CPU), which is training time the budget pays; counted as one step at the mean rate, it overran the budget.
        self.last = (time.perf_counter(), self.trainer.eval_seconds + self.trainer.save_seconds)
        # The Trainer's max_steps is the upper bound (a multiple of the plan); its progress bar counts toward the plan.
        self.show_total(state)

    def show_total(self, state):
        state.max_steps = self.total
        for callback in self.trainer.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.total = self.total
                bar.refresh()


def replan_line(plan):
    """What a re-plan prints."""
    last = plan.replans[-1]
    return (f"time budget: {last.step_seconds:.3f} s per step over the {last.measured_steps} steps before step "
            f"{last.at_step:,}, {max(0, last.seconds_left) / 60:.2f} min left -> {plan.steps:,} steps in all"
            + (" (capped at the upper bound)" if plan.capped else ""))


def attach_budget(trainer, plan, schedule, warmup_steps, folder, is_main):
    """Make `trainer` train to the plan: its learning rate warms up over `warmup_steps` and decays (`schedule`: linear
    or cosine) to zero at the plan's last step, read again at every step since a re-plan moves it; each re-plan is
    written to the run folder and printed. Returns the TimeBudget callback."""

    def record(plan):
        if is_main:
            plan.write(folder)
            print("\n" + replan_line(plan), flush=True)

    timer = TimeBudget(plan, trainer, record)
    trainer.lr_lambda = budget_lr_lambda(schedule, warmup_steps, lambda: timer.total)
    # First in line: its on_train_begin makes the plan the Trainer's step count before the progress bar is drawn.
    trainer.callback_handler.callbacks.insert(0, timer)
    return timer
