"""What `GET /api/model` says about the loaded model: name, labels, input contract, accuracy.

The accuracy is never typed in here: the export stage records each model file's test
accuracy in labels.json (`accuracy: {file name: {value, split, images, source}}`), so an
installed copy knows it too. A file without a record (a model exported elsewhere): null.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pipeline.app.emotion import EmotionModel


def model_info(model: EmotionModel) -> dict[str, Any]:
    folder = model.model_path.parent
    extra = model.spec.extra
    name = extra.get("model") if isinstance(extra.get("model"), str) else None
    return {
        "name": name or folder.name or model.model_path.stem,
        "file": model.model_path.name,
        "labels": list(model.labels),
        "input": asdict(model.spec.input),
        "weights": extra.get("weights") if isinstance(extra.get("weights"), str) else None,
        "accuracy": recorded_accuracy(model),
    }


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
