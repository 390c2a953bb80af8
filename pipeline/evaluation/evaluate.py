"""The `evaluate` stage's work: score a model on the test split (PrivateTest).

The model is `paths.model`: the trained Keras network, or an ONNX file (the fer2013/
pipeline scores the shipped `emotion.onnx` this way). Outputs, each replaced atomically so
a failure leaves the previous ones intact:

- `metrics.json`, the headline numbers DVC shows and diffs: `{"test": {"accuracy",
  "macro_f1"}}`, plus `"test_tta"` with TTA on, and `"test_ensemble"` (`"test_ensemble_tta"`)
  when the `ensemble` stage trained members (accuracy only: `dvc metrics show` stays narrow),
  and `"machines"`: the machine that scored (pipeline.machine; a list, which DVC's tables
  skip, so they stay numeric while the file says where its numbers were made);
- in the eval folder: `confusion.json` (one `{"actual", "predicted", "actual_index",
  "predicted_index"}` record per image, for DVC's confusion plot), `confusion.png`,
  `per_class.json` (precision, recall, F1 and support per class, in label order),
  `per_class.png`, and `summary.json` (every evaluation's accuracy, macro F1, n).

This is the only place that reads the test split; model selection happened on `val`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.shards import label_names, load_split
from pipeline.errors import StageError
from pipeline.evaluation.metrics import classes_without_support, classification_metrics
from pipeline.evaluation.plots import plot_confusion, plot_per_class
from pipeline.evaluation.predictors import OnnxPredictor, Predictor, load_predictor
from pipeline.evaluation.tta import predict_tta
from pipeline.io import atomic_dir, write_json
from pipeline.machine import machines_entry

CONFUSION_JSON = "confusion.json"
CONFUSION_PNG = "confusion.png"
PER_CLASS_JSON = "per_class.json"
PER_CLASS_PNG = "per_class.png"
SUMMARY_JSON = "summary.json"

#: What metrics.json keeps of each evaluation: the plain one has both headline numbers,
#: the variants their accuracy (the full set is in the eval folder's summary.json).
HEADLINE_KEYS = {"test": ("accuracy", "macro_f1")}
VARIANT_KEYS = ("accuracy",)


def predict_views(predict: Predictor, images: np.ndarray, params: dict[str, Any]):
    """{"test": probabilities} and, if `params["tta"]`, the TTA mean under "test_tta"."""
    probs = {"test": predict(images)}
    if params.get("tta", False):
        probs["test_tta"] = predict_tta(
            predict,
            images,
            flip=bool(params.get("tta_flip", True)),
            shift=int(params.get("tta_shift", 0)),
        )
    return probs


def shared_classes(
    predict: Predictor, names: Sequence[str], images: np.ndarray, labels: np.ndarray
) -> tuple[Predictor, tuple[str, ...], np.ndarray, np.ndarray, str | None]:
    """Score a model on data whose label set may differ from the model's, by class name.

    A network trained on this data has its label set. An ONNX model has its own (its
    labels.json): the evaluation then keeps the classes both know, in the data's order,
    leaves out the test images of the others, and lets the model choose among the shared
    classes only (e.g. the FER2013 model on FER+ labels: seven classes, contempt left out).
    Returns (predictor, names, images, labels, note or None).
    """
    model_names = predict.spec.labels if isinstance(predict, OnnxPredictor) else tuple(names)
    if tuple(model_names) == tuple(names):
        return predict, tuple(names), images, labels, None
    shared = tuple(n for n in names if n in model_names)
    if len(shared) < 2:
        raise StageError(
            f"the model's classes ({', '.join(model_names)}) and the data's "
            f"({', '.join(names)}) share fewer than two names; nothing to score"
        )
    data_index = np.array([list(names).index(n) for n in shared])
    keep = np.isin(labels, data_index)
    remap = np.full(len(names), -1, np.int64)
    remap[data_index] = np.arange(len(shared))
    columns = [list(model_names).index(n) for n in shared]
    left = [n for n in names if n not in shared]
    note = (
        f"scoring the {len(shared)} classes the model and the data share; "
        f"{int((~keep).sum()):,} test images of {', '.join(left) or 'no other class'} left out"
    )
    return (
        lambda faces: predict(faces)[:, columns],
        shared,
        images[keep],
        remap[labels[keep]],
        note,
    )


def evaluate_model(
    predict: Predictor,
    images: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    params: dict[str, Any],
    members: Sequence[Predictor] = (),
) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """{"test": (metrics, predictions)}, "test_tta" too if `params["tta"]`.

    With `members` (other networks), also "test_ensemble" (and "test_ensemble_tta"): the
    mean of all the networks' probabilities, the model's included.
    """
    probs = predict_views(predict, images, params)
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
        results[name] = (classification_metrics(labels, predictions, names), predictions)
    return results


def headline(results: dict[str, tuple[dict[str, Any], np.ndarray]]) -> dict[str, Any]:
    """metrics.json's numbers: a few per evaluation, rounded (see HEADLINE_KEYS)."""
    return {
        name: {key: round(metrics[key], 6) for key in HEADLINE_KEYS.get(name, VARIANT_KEYS)}
        for name, (metrics, _) in results.items()
    }


def write_reports(
    results: dict[str, tuple[dict[str, Any], np.ndarray]],
    labels: np.ndarray,
    metrics_path: str | Path,
    eval_dir: str | Path,
    names: Sequence[str],
) -> None:
    """Write metrics.json and the eval folder (see the module docstring); `names` is the
    label set, in class-index order."""
    metrics, predictions = results["test"]
    machines = machines_entry("evaluate")
    with atomic_dir(eval_dir) as tmp:
        # The class indices ride along so DVC's confusion template (.dvc/plots/
        # confusion_fer.json) draws any label set in its own order.
        records = [
            {"actual": names[a], "predicted": names[p], "actual_index": a, "predicted_index": p}
            for a, p in zip(labels.tolist(), predictions.tolist(), strict=True)
        ]
        write_json(tmp / CONFUSION_JSON, records)
        per_class = [{"class": name, **scores} for name, scores in metrics["per_class"].items()]
        write_json(tmp / PER_CLASS_JSON, per_class)
        write_json(
            tmp / SUMMARY_JSON,
            {
                name: {
                    k: round(m[k], 6) if isinstance(m[k], float) else m[k]
                    for k in ("accuracy", "macro_f1", "n")
                }
                for name, (m, _) in results.items()
            }
            | {"machines": machines},
        )
        accuracy, macro_f1 = metrics["accuracy"], metrics["macro_f1"]
        title = f"test split: accuracy {accuracy:.1%}, macro F1 {macro_f1:.3f}"
        plot_confusion(np.array(metrics["confusion"]), names, tmp / CONFUSION_PNG, title=title)
        absent = classes_without_support(metrics)
        note = f"\nno test images of {', '.join(absent)} (F1 0)" if absent else ""
        plot_per_class(metrics["per_class"], tmp / PER_CLASS_PNG, title=f"Per-class, {title}{note}")
    write_json(metrics_path, {**headline(results), "machines": machines})


def run_evaluation(
    params: dict[str, Any],
    prepared_dir: str | Path,
    model_path: str | Path,
    metrics_path: str | Path,
    eval_dir: str | Path,
    ensemble_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Load the model and the test split, score, write reports; returns metrics.json's dict.

    `ensemble_dir`: the `ensemble` stage's folder; its members (if any) are scored together
    with the model as "test_ensemble".
    """
    from pipeline.training.saving import member_files

    images, labels = load_split(prepared_dir, "test")
    if len(labels) == 0:
        raise StageError(f"{prepared_dir}: the test split is empty; nothing to evaluate")
    settings = params.get("evaluate", {})
    batch_size = int(settings.get("batch_size", 512))
    predict, names, images, labels, note = shared_classes(
        load_predictor(model_path, batch_size), label_names(prepared_dir), images, labels
    )
    if note:
        print(f"evaluate: {note}")
    members = (
        [load_predictor(f, batch_size) for f in member_files(ensemble_dir)] if ensemble_dir else []
    )
    results = evaluate_model(predict, images, labels, names, settings, members)
    write_reports(results, labels, metrics_path, eval_dir, names)
    absent = classes_without_support(results["test"][0])
    if absent:
        print(
            f"evaluate: warning: the test split has no images of {', '.join(absent)}: "
            f"{'its' if len(absent) == 1 else 'their'} F1 is 0 by definition, so macro F1 "
            f"cannot exceed {len(names) - len(absent)}/{len(names)}"
        )
    return headline(results)
