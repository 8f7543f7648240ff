"""A stand-in for eval/glue_jobs.run_job in the worker pool's tests: imported by spawned workers, so a module of its own."""

import os
import signal


def fake_fine_tuning(model_path, data_dir, settings, job, scratch):
    """rte at rate 2e-5: the worker dies as the system's out-of-memory killer ends it; mrpc at 3e-5 (its last rate):
    the fine-tuning raises; the rest score by their rate."""
    if job.task == "rte" and job.rate == 2e-5:
        os.kill(os.getpid(), signal.SIGKILL)
    if job.task == "mrpc" and job.rate == 3e-5:
        raise ValueError("CUDA out of memory (simulated)")
    metrics = {"accuracy": 0.5 + job.rate * 1000 + job.seed / 1000}
    return job, {"per_seed": {str(job.seed): metrics}, "seconds": 0.0, "hyperparameters": {"learning_rate": job.rate}}
