"""DVC stage `evaluate`: score the trained network on the test split (PrivateTest) only.

Writes `paths.metrics` (accuracy, macro F1, n; `test_tta` too with `evaluate.tta`) and, in
`paths.eval`, the confusion matrix (DVC plot data + PNG) and per-class scores (JSON + PNG).
With members in `paths.ensemble`, also their ensemble with the network (`test_ensemble`).
"""

from __future__ import annotations

from pipeline.config import load_params, repo_path
from pipeline.evaluation.evaluate import run_evaluation


def main() -> None:
    params = load_params()
    paths = params["paths"]
    run_evaluation(
        params,
        prepared_dir=repo_path(paths["prepared"]),
        model_path=repo_path(paths["model"]),
        metrics_path=repo_path(paths["metrics"]),
        eval_dir=repo_path(paths["eval"]),
        ensemble_dir=repo_path(paths["ensemble"]),
    )


if __name__ == "__main__":
    main()
