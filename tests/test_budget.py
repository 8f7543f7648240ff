"""--time_budget: steps planned from a measured step time, the schedule ending with the budget, the plan kept on resume."""

import json
import math
import re

import pytest
import torch
from conftest import assert_ends_by_its_plan
from test_reliability import SMOKE, error_line, run

from small_encoders.core.errors import UserError
from small_encoders.recipes.budget import BudgetPlan
from small_encoders.recipes.recipe import load_recipe

# Checkpoints every 4 steps, evaluation rarely: a budget run plans dozens to hundreds of tiny steps.
BUDGET = SMOKE[:3] + ["--save_steps", "4", "--logging_steps", "2", "--eval_steps", "1000", "--time_budget"]


@pytest.mark.parametrize("value", [0, -3, "abc", "nan", "inf", True])
def test_bad_budgets_are_refused(value):
    with pytest.raises(UserError, match="--time_budget must be a positive number of minutes"):
        load_recipe("quickstart", {"time_budget": value})


def test_budget_strings_that_are_numbers_are_taken():
    assert load_recipe("quickstart", {"time_budget": "1e-1"})["time_budget"] == pytest.approx(0.1)
    assert load_recipe("tuned-5m")["time_budget"] == 60 and load_recipe("tuned-20m")["time_budget"] == 10


def test_few_planned_steps_suggest_a_smaller_batch():
    from small_encoders.recipes.budget import FEW_STEPS, few_steps_hint

    # bertmini's 60 CPU minutes: 177 steps of 128 blocks -> 16 blocks gives about 1,400 steps at the same step-seconds.
    assert few_steps_hint(177, 128).endswith("--per_device_train_batch_size 16")
    assert "177 optimizer steps of 128 blocks" in few_steps_hint(177, 128)
    assert few_steps_hint(300, 64).endswith("--per_device_train_batch_size 16")
    assert few_steps_hint(3, 4096).endswith("--per_device_train_batch_size 8")  # never below 8
    assert few_steps_hint(FEW_STEPS, 128) is None and few_steps_hint(177, 8) is None


@pytest.mark.slow
def test_a_budget_too_short_for_one_step_is_one_error_line(tmp_path):
    result = run(BUDGET + ["1e-7", "--output_dir", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is shorter than one training step" in error_line(result.stderr)
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.slow
def test_budget_run_trains_its_planned_steps_and_the_schedule_ends_there(tmp_path):
    """A real run, in real time: every assertion is a relation between the figures the run measured and what it did,
    so it holds on a machine of any speed and load (re-planning's arithmetic on a simulated clock: the tests below)."""
    out = tmp_path / "out"
    result = run(BUDGET + ["0.1", "--output_dir", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads((out / "budget_plan.json").read_text())
    results = json.loads((out / "results.json").read_text())
    # results.json names the steps of the plan in force even where no re-plan was due (then the calibration's)
    assert results["time_budget"] == dict(plan, steps=plan.get("steps", plan["planned_steps"])) and plan["minutes"] == 0.1
    # The plan is the budget over the measured step time, not the smoke's max_steps 8 (which gives way to a budget).
    assert plan["planned_steps"] == int(0.1 * 60 // plan["step_seconds"]) >= 1
    assert plan["planned_tokens"] == plan["planned_steps"] * 8 * 64
    # Re-planned from the Trainer's own step times when the plan is long enough to measure (20 steps); a shorter
    # plan (a slow or busy machine) keeps the calibration's.
    replans = plan.get("replans", [])
    assert bool(replans) == (plan["planned_steps"] >= 20), (plan["planned_steps"], replans)
    if replans:  # first after a tenth of the first plan (or at a multiple of 10 steps, when a tenth of the time came first)
        assert plan["replanned_at_step"] == replans[0]["at_step"] <= max(10, plan["planned_steps"] // 10)
        assert plan["steps"] == replans[-1]["steps"]
    assert [r["at_step"] for r in replans] == sorted({r["at_step"] for r in replans})  # how many depends on the timing
    for r in replans:  # each re-plan spends the time left at the recent step time, with a decay tail when none is left
        wanted = r["at_step"] + max(0, int(r["seconds_left"] // r["step_seconds"]))
        tail = r["at_step"] + max(1, math.ceil(0.02 * plan["planned_steps"]))
        cap = plan["cap_factor"] * plan["planned_steps"]  # the Trainer's upper bound: four times the plan (eager)
        assert abs(r["steps"] - min(cap, max(tail, min(wanted, cap)))) <= 1
    steps = plan.get("steps", plan["planned_steps"])
    assert results["train_steps"] == steps and results["train_tokens"] == steps * 8 * 64
    assert_ends_by_its_plan(results)
    if replans:
        assert f"-> {steps:,} steps in all" in result.stdout
    assert results["tokens_per_second"] > 0 and "eval_seconds_during_training" in results and "save_seconds" in results
    # Tokens/s compare only on like CPUs: the hardware names the vector instructions torch used (AVX2, AVX512, ...).
    assert results["hardware"].startswith("CPU (") and torch.backends.cpu.get_cpu_capability() in results["hardware"]
    assert f"-> {plan['planned_steps']:,} steps" in result.stdout
    # The progress bar counts toward the plan from the first step, not toward the Trainer's upper bound (4 times it).
    assert f"/{plan['planned_steps']} [" in result.stderr
    # (the training bar alone, the one without a label: a data bar over as many examples as 4 times the plan, or the
    # "Loading weights" bar of a model with that many tensors, would also read "/N [")
    unlabelled = rf"(?:^|[\r\n])\s*\d+%\|[^|\r\n]*\|\s*\d+/{plan['cap_factor'] * plan['planned_steps']} \[[^\]]*(it/s|s/it)\]"
    assert plan.get("capped") or not re.search(unlabelled, result.stderr)
    # The schedule ends with the run, however many steps this machine planned: the rates logged after the last re-plan
    # are the final plan's schedule (the rate a step trained at was set when the step before it ended, so the step just
    # after a re-plan still has the old one), and the last checkpoint's scheduler stands at the last step at zero.
    schedule = budget_schedule(out, steps)
    since = replans[-1]["at_step"] + 1 if replans else 0
    logged = [(e["step"], e["learning_rate"]) for e in json.loads((out / "training_log.json").read_text())
              if "learning_rate" in e and e["step"] > since]
    assert all(rate == pytest.approx(schedule(step - 1), rel=1e-4, abs=1e-9) for step, rate in logged), logged
    scheduler = torch.load(out / f"checkpoint-{steps}" / "scheduler.pt", weights_only=True)
    assert scheduler["last_epoch"] == steps and set(scheduler["_last_lr"]) == {0.0} and (steps == 1 or schedule(steps - 1) > 0)


def budget_schedule(out, steps):
    """The learning rate a budget run's final plan gives at each step, from its run folder (recipe and plan)."""
    import yaml

    from small_encoders.recipes.budget import budget_lr_lambda

    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    plan = json.loads((out / "budget_plan.json").read_text())
    warmup = math.ceil(float(recipe["warmup_ratio"]) * plan["planned_steps"])
    factor = budget_lr_lambda(recipe["lr_scheduler_type"], warmup, lambda: steps)
    return lambda step: float(recipe["learning_rate"]) * factor(step)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["first", "last"])
def test_killed_budget_run_resumes_with_the_recorded_plan(tmp_path, when):
    """Killed after its first checkpoint (step 20, or the last step where a slow machine planned fewer), or after the
    checkpoint of the plan's last step (while it evaluated or saved at the end): the resumed run keeps the recorded
    plan and ends at its last step. (Resumed at the last step, the Trainer trained one step more before it looked at
    any stop signal: the run reported one step more than its plan.)"""
    out = tmp_path / "out"
    budget = [*BUDGET[:BUDGET.index("--save_steps") + 1], "20", *BUDGET[BUDGET.index("--save_steps") + 2:], "0.1"]
    killed = run(budget + ["--output_dir", str(out)], tmp_path, wrapper=["kill", when])
    assert killed.returncode == -9
    plan = json.loads((out / "budget_plan.json").read_text())
    resumed = run(budget + ["--output_dir", str(out), "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "recorded plan, resumed" in resumed.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["train_steps"] == results["time_budget"]["steps"] == plan.get("steps", results["train_steps"])
    assert results["time_budget"]["step_seconds"] == plan["step_seconds"] and results["time_budget"]["resumed"] is True
    assert results["time_budget"]["planned_steps"] == plan["planned_steps"]
    assert results["segments"][-1]["to_step"] == results["train_steps"]
    first_is_last = results["train_steps"] <= 20  # a slow machine's short plan: its first checkpoint is its last
    assert (f"resumed at step {results['train_steps']:,}, the plan's last: nothing left to train" in resumed.stdout) == (
        when == "last" or first_is_last)


def simulated_budget(monkeypatch, plan, step_seconds):
    """Run TimeBudget alone on a simulated clock: `step_seconds(step)` is how long step `step` (from 0) takes.
    Returns (steps trained, seconds spent)."""
    from types import SimpleNamespace

    from small_encoders.recipes import budget as timing

    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    trainer = SimpleNamespace(eval_seconds=0.0, save_seconds=0.0, callback_handler=SimpleNamespace(callbacks=[]))
    budget = timing.TimeBudget(plan, trainer, on_replan=lambda plan: None)
    state = SimpleNamespace(global_step=0, max_steps=plan.cap)
    control, args = SimpleNamespace(should_training_stop=False), SimpleNamespace(device="cpu")
    budget.on_train_begin(args, state, control)
    while not control.should_training_stop:
        clock[0] += step_seconds(state.global_step)
        state.global_step += 1
        budget.on_step_end(args, state, control)
    return state.global_step, clock[0]


def test_a_slow_first_step_is_paid_from_the_budget(monkeypatch):
    """torch.compile compiles in the first step: that time counts toward the budget, so the run still ends in time."""
    plan = BudgetPlan(minutes=1.0, planned_steps=100, step_seconds=0.6)
    # a 30-second first step (compilation), then 0.5 s each
    steps, seconds = simulated_budget(monkeypatch, plan, lambda step: 30.0 if step == 0 else 0.5)
    # 30 s of the 60 went to the first step: about 60 half-second steps are left, not the 120 a minute would hold.
    assert 55 <= steps <= 65 and seconds <= 60.5, (steps, seconds)
    assert plan.steps == steps


def test_a_burst_of_fast_steps_does_not_let_the_run_overrun(monkeypatch):
    """Fast steps around a re-plan stretch the plan; when the steps slow down again, a re-plan within a tenth of the
    budget's time (counted in steps) catches it, so the run still ends near its budget."""
    plan = BudgetPlan(minutes=5.0, planned_steps=660, step_seconds=0.45)
    # the quickstart beside the test suite: 0.87 s steps, a fast window of 0.2 s, then 0.68 s to the end
    steps, seconds = simulated_budget(monkeypatch, plan, lambda step: 0.87 if step < 66 else 0.2 if step < 105 else 0.68)
    assert seconds <= 1.08 * 300, (seconds, plan.replans)  # the fractions alone trained 7.4 minutes here
    assert plan.steps == steps


def test_a_calibration_far_too_fast_is_caught_after_a_tenth_of_the_time(monkeypatch):
    """Two processes planned 2,041 steps at 0.012 s (the calibration times no all-reduce and no checkpoint writing);
    the steps took 0.14 s. The first re-plan, due at a tenth of the plan (step 204), came after the whole budget; it is
    now due at a tenth of the budget's time, and the run ends within it."""
    plan = BudgetPlan(minutes=0.4, planned_steps=2041, step_seconds=0.0118)
    steps, seconds = simulated_budget(monkeypatch, plan, lambda step: 0.137)
    assert plan.replans[0].at_step == 20 and seconds <= 24 * 1.05, (seconds, plan.replans)


def test_a_calibration_three_times_too_slow_still_trains_the_whole_budget(monkeypatch):
    """A quickstart calibrated while a test run briefly shared the 2-core CPU: 723 steps planned at 0.415 s, then steps
    of 0.135 s. With the Trainer's step limit at twice the plan the run was capped at 1,446 steps and stopped after 3.6
    of its 5 minutes; at four times the plan it re-plans to the whole budget."""
    plan = BudgetPlan(minutes=5.0, planned_steps=723, step_seconds=0.415)
    steps, seconds = simulated_budget(monkeypatch, plan, lambda step: 0.135)
    assert not plan.capped and 0.97 * 300 <= seconds <= 1.02 * 300, (steps, seconds, plan.replans)
    assert steps > 2 * 723 and plan.steps == steps


def test_steps_far_slower_than_planned_end_after_one_short_tail(monkeypatch):
    """Steps 6 times slower than the calibration's (a machine loaded by other work, or a process waiting for another's
    checkpoint writing): the time runs out, the schedule gets its tail of 2% of the plan once, and the run ends.
    (Re-planned every tenth of the budget in steps, the tail was granted again at each re-plan: the run never ended.)"""
    plan = BudgetPlan(minutes=0.4, planned_steps=1000, step_seconds=0.024)
    steps, seconds = simulated_budget(monkeypatch, plan, lambda step: 0.144)
    assert steps <= 24 / 0.144 + 0.02 * 1000 + 1, (steps, plan.replans)
    assert plan.steps == steps


def test_the_plan_is_the_budget_over_the_measured_step_time_and_survives_its_file(monkeypatch):
    from small_encoders.recipes.budget import plan_for

    assert plan_for(1.0, 0.25).planned_steps == 240 and plan_for(0.1, 0.337).planned_steps == 17
    with pytest.raises(UserError, match="shorter than one training step"):
        plan_for(0.001, 0.1)
    plan = BudgetPlan(minutes=0.5, planned_steps=300, step_seconds=0.1)
    assert plan.total == 300 and plan.cap == 1200 and "replans" not in plan.as_json() and "steps" not in plan.as_json()
    simulated_budget(monkeypatch, plan, lambda step: 0.12)  # slower than calibrated: re-planned to fewer steps
    assert plan.replans and plan.total == plan.steps < 300
    read = BudgetPlan.from_json(json.loads(json.dumps(plan.as_json())))  # budget_plan.json and back (a resumed run)
    assert read == plan and read.result()["steps"] == plan.steps == read.total


def test_a_resume_at_the_plans_last_step_trains_nothing_more(monkeypatch):
    from types import SimpleNamespace

    from small_encoders.recipes.budget import PlanComplete, TimeBudget

    plan = BudgetPlan(minutes=0.5, planned_steps=30, step_seconds=0.1, steps=28)
    trainer = SimpleNamespace(eval_seconds=0.0, save_seconds=0.0, callback_handler=SimpleNamespace(callbacks=[]))
    with pytest.raises(PlanComplete):
        TimeBudget(plan, trainer, lambda plan: None).on_train_begin(None, SimpleNamespace(global_step=28), None)
    state = SimpleNamespace(global_step=27, max_steps=60)
    TimeBudget(plan, trainer, lambda plan: None).on_train_begin(None, state, None)  # one step left: trains it
    assert state.max_steps == 28
