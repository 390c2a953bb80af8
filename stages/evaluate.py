"""DVC stage `evaluate`: score the model on the test split (PrivateTest) only.

Writes `paths.metrics` (accuracy and macro F1; `test_tta` too with `evaluate.tta`) and, in
`paths.eval`, the confusion matrix (DVC plot data + PNG), per-class scores (JSON + PNG) and
summary.json. The model is `paths.model`: a trained `.keras` network or an `.onnx` file.
With members in `paths.ensemble`, also their ensemble with the model (`test_ensemble`).
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.evaluation.evaluate import run_evaluation
from pipeline.stage import run_stage


def evaluate(params: dict[str, Any]) -> str:
    paths = params["paths"]
    ensemble = repo_path(paths["ensemble"])
    metrics = run_evaluation(
        params,
        prepared_dir=repo_path(paths["prepared"]),
        model_path=repo_path(paths["model"]),
        metrics_path=repo_path(paths["metrics"]),
        eval_dir=repo_path(paths["eval"]),
        ensemble_dir=ensemble if ensemble.exists() else None,
    )
    return (
        ", ".join(f"{name} accuracy {entry['accuracy']:.4f}" for name, entry in metrics.items())
        + f" -> {paths['metrics']}"
    )


if __name__ == "__main__":
    run_stage("evaluate", evaluate)
