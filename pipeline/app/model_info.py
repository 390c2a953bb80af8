"""What `GET /api/model` says about the loaded model: name, labels, input contract, accuracy.

The accuracy is never typed in here: the export stage records each model file's test
accuracy in labels.json (`accuracy: {file name: {value, split, images, source}}`), so an
installed copy knows it too. A file without a record (a model exported elsewhere): null.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pipeline.app.emotion import INT8_MODEL_FILE, EmotionModel


def model_info(model: EmotionModel) -> dict[str, Any]:
    folder = model.model_path.parent
    extra = model.spec.extra
    name = extra.get("model") if isinstance(extra.get("model"), str) else None
    return {
        "name": name or folder.name or model.model_path.stem,
        "file": model.model_path.name,
        "labels": list(model.labels),
        "input": asdict(model.spec.input),
        "weights": served_weights(model),
        "accuracy": recorded_accuracy(model),
    }


def served_weights(model: EmotionModel) -> str | None:
    """The number format of the weights in the file served: labels.json's `weights` describes
    the float model (emotion.onnx); the quantized copy holds int8 weights."""
    if model.model_path.name == INT8_MODEL_FILE:
        return "int8"
    weights = model.spec.extra.get("weights")
    return weights if isinstance(weights, str) else None


def recorded_accuracy(model: EmotionModel) -> dict[str, Any] | None:
    """{"value", "split", "images", "source"} the export stage recorded for this model file."""
    given = model.spec.extra.get("accuracy")
    entry = given.get(model.model_path.name) if isinstance(given, dict) else None
    if not isinstance(entry, dict):
        return None
    value = entry.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return {
        "value": float(value),
        "split": entry.get("split"),
        "images": entry.get("images"),
        "source": entry.get("source"),
    }
