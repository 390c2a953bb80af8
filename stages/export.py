"""DVC stage `export`: the trained network as ONNX, plus labels.json, a model card and the
tutorial's model.json + model.weights.h5.

Fails, writing nothing, unless ONNX Runtime and Keras agree on test images (every predicted
class, probabilities within `export.parity_atol`).
"""

from __future__ import annotations

from pipeline.config import load_params, repo_path
from pipeline.export.bundle import export_bundle


def main() -> None:
    params = load_params()
    paths = params["paths"]
    export_bundle(
        params,
        model_path=repo_path(paths["model"]),
        prepared_dir=repo_path(paths["prepared"]),
        metrics_path=repo_path(paths["metrics"]),
        train_log=repo_path(paths["train_log"]),
        eval_dir=repo_path(paths["eval"]),
        outputs={
            key: repo_path(paths[key])
            for key in ("onnx", "labels", "model_card", "model_json", "model_weights")
        },
    )


if __name__ == "__main__":
    main()
