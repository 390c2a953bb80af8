"""The `evaluate` stage's work: score the trained network on the test split (PrivateTest).

Outputs (all replaced atomically, so a failure leaves the previous ones intact):

- `metrics.json`: `{"test": {"accuracy", "macro_f1", "n"}}`, plus `"test_tta"` with TTA on,
  and `"test_ensemble"` (`"test_ensemble_tta"`) when the `ensemble` stage trained members;
- in the eval folder: `confusion.json` (one `{"actual", "predicted"}` record per image, for
  DVC's confusion template), `confusion.png`, `per_class.json` (precision, recall, F1 and
  support per class) and `per_class.png`.

This is the only place that reads the test split; model selection happened on `val`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import LABELS
from pipeline.data.shards import load_split
from pipeline.evaluation.metrics import classes_without_support, classification_metrics
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
    from pipeline.models import as_model_input

    return net.predict(as_model_input(images), batch_size=batch_size, verbose=0)


def predict_views(net: Any, images: np.ndarray, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """{"test": probabilities} and, if `params["tta"]`, the TTA mean under "test_tta"."""
    from pipeline.models import as_model_input

    batch_size = int(params.get("batch_size", 512))
    probs = {"test": predict_proba(net, images, batch_size)}
    if params.get("tta", False):
        probs["test_tta"] = predict_tta(
            net,
            as_model_input(images),
            flip=bool(params.get("tta_flip", True)),
            shift=int(params.get("tta_shift", 0)),
            batch_size=batch_size,
        )
    return probs


def evaluate_net(
    net: Any,
    images: np.ndarray,
    labels: np.ndarray,
    params: dict[str, Any],
    members: Sequence[Any] = (),
) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """{"test": (metrics, predictions)}, "test_tta" too if `params["tta"]`.

    With `members` (other networks), also "test_ensemble" (and "test_ensemble_tta"): the
    mean of all the networks' probabilities, `net`'s included.
    """
    probs = predict_views(net, images, params)
    if members:
        total = {name: p.copy() for name, p in probs.items()}
        for member in members:
            for name, p in predict_views(member, images, params).items():
                total[name] += p
        probs |= {
            name.replace("test", "test_ensemble"): p / (len(members) + 1)
            for name, p in total.items()
        }
    results = {}
    for name, p in probs.items():
        predictions = p.argmax(axis=1)
        results[name] = (classification_metrics(labels, predictions), predictions)
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
        absent = classes_without_support(metrics)
        note = f"\nno test images of {', '.join(absent)} (F1 0)" if absent else ""
        plot_per_class(metrics["per_class"], tmp / PER_CLASS_PNG, title=f"Per-class, {title}{note}")
    write_json(metrics_path, {name: summary(m) for name, (m, _) in results.items()})


def run_evaluation(
    params: dict[str, Any],
    prepared_dir: str | Path,
    model_path: str | Path,
    metrics_path: str | Path,
    eval_dir: str | Path,
    ensemble_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Load the network and the test split, score, write reports; returns metrics.json's dict.

    `ensemble_dir`: the `ensemble` stage's folder; its members (if any) are scored together
    with the network as "test_ensemble".
    """
    from pipeline.models.ensemble import member_files
    from pipeline.training.saving import load_net

    images, labels = load_split(prepared_dir, "test")
    if len(labels) == 0:
        raise ValueError(f"{prepared_dir}: the test split is empty; nothing to evaluate")
    net = load_net(model_path)
    members = [load_net(f) for f in member_files(ensemble_dir)] if ensemble_dir else []
    results = evaluate_net(net, images, labels, params.get("evaluate", {}), members)
    write_reports(results, labels, metrics_path, eval_dir)
    for name, (metrics, _) in results.items():
        print(
            f"{name}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
            f"on {metrics['n']} images"
        )
    absent = classes_without_support(results["test"][0])
    if absent:
        print(
            f"evaluate: warning: the test split has no images of {', '.join(absent)}: "
            f"{'its' if len(absent) == 1 else 'their'} F1 is 0 by definition, so macro F1 "
            f"cannot exceed {len(LABELS) - len(absent)}/{len(LABELS)}"
        )
    return {name: summary(m) for name, (m, _) in results.items()}
