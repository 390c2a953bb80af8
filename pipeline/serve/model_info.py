"""What `GET /api/model` says about the loaded model: name, labels, input contract, accuracy.

The accuracy is never typed in here: it is read from the first record that exists for the
model folder, in this order:

1. `accuracy` in its labels.json (a number, or {"value": ..., ...});
2. `metrics.json` inside the model folder (the evaluate stage's format: `test.accuracy`);
3. the repository's reports, which mirror the models folder: `models/` (the export stage's
   folder, `paths.export`) has `reports/metrics.json` (`paths.metrics`), and `models/NAME/`
   has `reports/NAME/metrics.json` (the shipped `models/fer2013/`: `reports/fer2013/`).

No record: the accuracy is null.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.app.emotion import EmotionModel
from pipeline.config import REPO_ROOT, load_params, repo_path


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
        "accuracy": recorded_accuracy(folder, extra, model.labels_path.name),
    }


def recorded_accuracy(
    folder: Path, extra: dict[str, Any], labels_name: str = "labels.json"
) -> dict[str, Any] | None:
    """{"value", "split", "images", "source"} from the model's records, or None."""
    given = extra.get("accuracy")
    if isinstance(given, int | float) and not isinstance(given, bool):
        return {"value": float(given), "split": None, "images": None, "source": labels_name}
    if isinstance(given, dict) and isinstance(given.get("value"), int | float):
        return {
            "value": float(given["value"]),
            "split": given.get("split"),
            "images": given.get("images"),
            "source": labels_name,
        }
    for path in _metrics_files(folder):
        found = _test_accuracy(path)
        if found is not None:
            return found
    return None


def _metrics_files(folder: Path) -> list[Path]:
    files = [folder / "metrics.json"]
    try:
        paths = load_params()["paths"]
        export_dir, metrics = repo_path(paths["export"]).resolve(), repo_path(paths["metrics"])
    except (OSError, ValueError, KeyError, TypeError):
        return files  # an installed copy without params.yaml has no reports either
    try:
        inside = folder.resolve().relative_to(export_dir)
    except ValueError:
        return files
    files.append(metrics.parent / inside / metrics.name)
    return files


def _test_accuracy(path: Path) -> dict[str, Any] | None:
    try:
        test = json.loads(path.read_text(encoding="utf-8")).get("test", {})
    except (OSError, ValueError, AttributeError):
        return None
    value = test.get("accuracy") if isinstance(test, dict) else None
    if not isinstance(value, int | float):
        return None
    try:
        source = path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        source = str(path)
    return {"value": float(value), "split": "test", "images": test.get("n"), "source": source}
