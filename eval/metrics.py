"""GLUE metrics through `evaluate` (`evaluate.load("glue", task)`), with the same sklearn/scipy
functions that metric calls as the offline fallback (its script lives on the Hub)."""

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef


def offline_glue_metric(task, predictions, references):
    """What evaluate's `glue` metric computes, for machines that cannot fetch its script."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    if task == "cola":
        return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
    if task == "stsb":
        return {"pearson": float(pearsonr(references, predictions)[0]), "spearmanr": float(spearmanr(references, predictions)[0])}
    accuracy = float((predictions == references).mean())
    if task in ("mrpc", "qqp"):
        return {"accuracy": accuracy, "f1": float(f1_score(y_true=references, y_pred=predictions))}
    return {"accuracy": accuracy}


def glue_metric(task):
    """A function (predictions, references) -> metrics dict, and where it came from."""
    try:
        import evaluate

        metric = evaluate.load("glue", "mnli" if task.startswith("mnli") else task)
        return (lambda p, r: {k: float(v) for k, v in metric.compute(predictions=p, references=r).items()}), "evaluate"
    except Exception:
        return (lambda p, r: offline_glue_metric(task, p, r)), "sklearn/scipy (evaluate's glue metric offline)"
