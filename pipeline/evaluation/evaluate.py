"""The `evaluate` stage's work: score the trained network on the test split (PrivateTest).

Outputs (all replaced atomically, so a failure leaves the previous ones intact):

- `metrics.json`: `{"test": {"accuracy", "macro_f1", "n"}}`, plus `"test_tta"` with TTA on;
- in the eval folder: `confusion.json` (one `{"actual", "predicted"}` record per image, for
  DVC's confusion template), `confusion.png`, `per_class.json` (precision, recall, F1 and
  support per class) and `per_class.png`.

This is the only place that reads the test split; model selection happened on `val`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import LABELS
from pipeline.data.shards import load_split
from pipeline.evaluation.metrics import classification_metrics
from pipeline.evaluation.plots import plot_confusion, plot_per_class
from pipeline.evaluation.tta import predict_tta
from pipeline.io import atomic_dir, write_json

CONFUSION_JSON = "confusion.json"
CONFUSION_PNG = "confusion.png"
PER_CLASS_JSON = "per_class.json"
PER_CLASS_PNG = "per_class.png"

#: Keys of `metrics.json` entries; the per-class figures go to the eval folder instead, so
#: `dvc exp show` stays readable.
SUMMARY_KEYS = ("accuracy", "macro_f1", "n")


def predict_proba(net: Any, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, classes) for uint8 faces (N, 48, 48)."""
    from pipeline.training.recipe import as_model_input

    return net.predict(as_model_input(images), batch_size=batch_size, verbose=0)


def evaluate_net(
    net: Any, images: np.ndarray, labels: np.ndarray, params: dict[str, Any]
) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """{"test": (metrics, predictions)} and, if `params["tta"]`, the same under "test_tta"."""
    from pipeline.training.recipe import as_model_input

    batch_size = int(params.get("batch_size", 512))
    results = {}
    predictions = predict_proba(net, images, batch_size).argmax(axis=1)
    results["test"] = (classification_metrics(labels, predictions), predictions)
    if params.get("tta", False):
        probs = predict_tta(
            net,
            as_model_input(images),
            flip=bool(params.get("tta_flip", True)),
            shift=int(params.get("tta_shift", 0)),
            batch_size=batch_size,
        )
        predictions = probs.argmax(axis=1)
        results["test_tta"] = (classification_metrics(labels, predictions), predictions)
    return results


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The `metrics.json` entry of one evaluation: accuracy, macro F1 (rounded), n."""
    return {
        key: round(metrics[key], 6) if isinstance(metrics[key], float) else metrics[key]
        for key in SUMMARY_KEYS
    }


def write_reports(
    results: dict[str, tuple[dict[str, Any], np.ndarray]],
    labels: np.ndarray,
    metrics_path: str | Path,
    eval_dir: str | Path,
) -> None:
    """Write metrics.json and the eval folder (see the module docstring)."""
    metrics, predictions = results["test"]
    with atomic_dir(eval_dir) as tmp:
        records = [
            {"actual": LABELS[a], "predicted": LABELS[p]}
            for a, p in zip(labels.tolist(), predictions.tolist(), strict=True)
        ]
        write_json(tmp / CONFUSION_JSON, records)
        per_class = [{"class": name, **scores} for name, scores in metrics["per_class"].items()]
        write_json(tmp / PER_CLASS_JSON, per_class)
        accuracy, macro_f1 = metrics["accuracy"], metrics["macro_f1"]
        title = f"test split: accuracy {accuracy:.1%}, macro F1 {macro_f1:.3f}"
        plot_confusion(np.array(metrics["confusion"]), LABELS, tmp / CONFUSION_PNG, title=title)
        plot_per_class(metrics["per_class"], tmp / PER_CLASS_PNG, title=f"Per-class, {title}")
    write_json(metrics_path, {name: summary(m) for name, (m, _) in results.items()})


def run_evaluation(
    params: dict[str, Any],
    prepared_dir: str | Path,
    model_path: str | Path,
    metrics_path: str | Path,
    eval_dir: str | Path,
) -> dict[str, Any]:
    """Load the network and the test split, score, write reports; returns metrics.json's dict."""
    from pipeline.training.saving import load_net

    images, labels = load_split(prepared_dir, "test")
    if len(labels) == 0:
        raise ValueError(f"{prepared_dir}: the test split is empty; nothing to evaluate")
    net = load_net(model_path)
    results = evaluate_net(net, images, labels, params.get("evaluate", {}))
    write_reports(results, labels, metrics_path, eval_dir)
    for name, (metrics, _) in results.items():
        print(
            f"{name}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
            f"on {metrics['n']} images"
        )
    return {name: summary(m) for name, (m, _) in results.items()}
