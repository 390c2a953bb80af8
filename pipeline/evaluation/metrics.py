"""Classification metrics from labels and predictions, in plain numpy.

Conventions follow scikit-learn (`zero_division=0`): a class never predicted has precision
0, a class absent from the labels recall 0; macro F1 is the unweighted mean over all classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.config import LABELS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = actual class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"expected two 1-D arrays of the same length, got {y_true.shape} and {y_pred.shape}"
        )
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str] = LABELS
) -> dict[str, Any]:
    """Accuracy, macro F1, n and per-class precision/recall/F1/support, plus the matrix.

    Returns `{"accuracy", "macro_f1", "n", "per_class": {label: {...}}, "confusion": [[...]]}`.
    """
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, actual)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    n = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "n": n,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(actual[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": cm.tolist(),
    }


def classes_without_support(metrics: dict[str, Any]) -> list[str]:
    """Classes with no labelled example: their F1 is 0 by definition, which caps macro F1."""
    return [name for name, scores in metrics["per_class"].items() if scores["support"] == 0]
