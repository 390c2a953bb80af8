"""Classification metrics from labels and predictions, by scikit-learn.

Every class of `labels` is scored, present or not (`zero_division=0`: a class never
predicted has precision 0, a class absent from the labels recall 0), so macro F1 is the
unweighted mean over every class of the label set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _check(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> None:
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"expected two 1-D arrays of the same length, got {y_true.shape} and {y_pred.shape}"
        )
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = actual class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check(y_true, y_pred, num_classes)
    return skm.confusion_matrix(y_true, y_pred, labels=range(num_classes))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro F1, n and per-class precision/recall/F1/support, plus the matrix.

    Returns `{"accuracy", "macro_f1", "n", "per_class": {label: {...}}, "confusion": [[...]]}`.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    classes = list(range(len(labels)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1.mean()),
        "n": len(y_true),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": cm.tolist(),
    }


def classes_without_support(metrics: dict[str, Any]) -> list[str]:
    """Classes with no labelled example: their F1 is 0 by definition, which caps macro F1."""
    return [name for name, scores in metrics["per_class"].items() if scores["support"] == 0]
