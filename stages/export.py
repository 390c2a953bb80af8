"""DVC stage `export`: the model as ONNX (float and int8), labels.json, a model card from
the pipeline's records, and the tutorial's model.json + model.weights.h5.

Fails, writing nothing, unless ONNX Runtime matches Keras on test faces and the int8 copy
stays close to the float model (`export` params).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import repo_path
from pipeline.export.bundle import OUTPUT_KEYS, export_bundle
from pipeline.stage import run_stage


def export(params: dict[str, Any], params_file: str) -> str:
    paths = params["paths"]
    record = export_bundle(
        params,
        model_path=repo_path(paths["model"]),
        prepared_dir=repo_path(paths["prepared"]),
        train_log=repo_path(paths["train_log"]),
        eval_dir=repo_path(paths["eval"]),
        outputs={key: repo_path(paths[key]) for key in OUTPUT_KEYS},
        pipeline_file=str(Path(params_file).parent / "dvc.yaml"),
    )
    int8 = record.get("int8")
    extra = f", int8 accuracy {int8['accuracy']:.4f}" if int8 else ""
    return f"model files, labels.json and card -> {paths['onnx'].rsplit('/', 1)[0]}/{extra}"


if __name__ == "__main__":
    run_stage("export", export)
