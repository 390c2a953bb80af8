"""The `export` stage's work: everything a consumer of the model needs, checked first.

From a trained Keras network (`paths.model` ending in `.keras`; no augmentation inside) it
writes the float ONNX model, the tutorial's JSON + weights formats and a static int8 copy;
from a float ONNX file (`paths.model` ending in `.onnx`, as in the fer2013/ pipeline, whose
weights were trained elsewhere) only the int8 copy. Either way it writes `labels.json`,
`MODEL_CARD.md` (from the pipeline's records) and the export record
(`paths.export_record`, a DVC metric: the int8 accuracy and agreement). Files are staged
in a temporary folder and moved into place only after every check passed (ONNX Runtime
matches Keras; int8 is close to float), so a failure writes nothing.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import repo_path
from pipeline.data.shards import label_names, load_split, read_manifest
from pipeline.errors import StageError
from pipeline.evaluation.predictors import OnnxPredictor, onnx_spec
from pipeline.export.model_card import CardInputs, ModelFile, read_json, render_model_card
from pipeline.export.quantize import accept_int8, quantize_int8
from pipeline.io import temp_dir, write_json
from pipeline.machine import machines_entry
from pipeline.model_spec import ModelSpec, write_spec
from pipeline.training.provenance import RUN_FILE

#: The files export writes, as keys of params.yaml `paths`.
OUTPUT_KEYS = (
    "onnx",
    "int8",
    "labels",
    "model_card",
    "model_json",
    "model_weights",
    "export_record",
)


def export_bundle(
    params: dict[str, Any],
    *,
    model_path: str | Path,
    prepared_dir: str | Path,
    train_log: str | Path,
    eval_dir: str | Path,
    outputs: dict[str, str | Path],
    pipeline_file: str = "dvc.yaml",
) -> dict[str, Any]:
    """Write `outputs` (keys: onnx, int8, labels, model_card, model_json, model_weights,
    export_record; the last three unused for an ONNX input). Returns the export record."""
    settings = params["export"]
    model_path = Path(model_path)
    adopt = model_path.suffix == ".onnx"
    if adopt and Path(outputs["onnx"]).resolve() != model_path.resolve():
        raise StageError(
            f"paths.model is an ONNX file ({model_path}), so paths.onnx must name the same file"
        )
    if adopt and not settings["trained_by"]:
        raise StageError(
            f"paths.model is an ONNX file ({model_path}) trained elsewhere: set "
            "export.trained_by to the record of the run that trained it"
        )
    weights = "float16" if settings["float16"] else "float32"
    if adopt:
        # Fed, calibrated and described as its own labels.json says (scale, layout, labels).
        own = onnx_spec(model_path, label_names(prepared_dir))
        spec = ModelSpec(own.labels, own.input, {**own.extra, "model": settings["model_name"]})
    else:
        # A network trained here: the pipeline's own input contract, the data's label set.
        spec = ModelSpec(
            labels=label_names(prepared_dir),
            extra={"model": settings["model_name"], "weights": weights},
        )
    test_images, test_labels = load_split(prepared_dir, "test")
    folder = Path(outputs["onnx"]).parent
    folder.mkdir(parents=True, exist_ok=True)

    # A run killed here leaves this folder; the next export removes it (pipeline.io).
    with temp_dir(folder / "export") as tmp:
        staged = {key: Path(tmp) / Path(target).name for key, target in outputs.items()}
        if adopt:
            run = read_json(repo_path(settings["trained_by"])) or {}
            float_onnx, parity, count = model_path, None, 0
            network = run.get("params", {}).get("model", params["model"])["name"]
        else:
            run = read_json(Path(train_log) / RUN_FILE)
            float_onnx = staged["onnx"]
            parity, network, count = _export_keras(
                model_path, float_onnx, staged, test_images, settings, spec
            )
        int8 = _export_int8(
            float_onnx, staged["int8"], prepared_dir, test_images, test_labels, settings, spec
        )
        eval_dir = Path(eval_dir)
        summary = read_json(eval_dir / "summary.json")
        test = (summary or {}).get("test")
        write_spec(staged["labels"], _with_accuracy(spec, params, test, int8))
        record = {
            "int8": {k: int8[k] for k in ("accuracy", "agreement")},
            "machines": machines_entry("export"),
        }
        write_json(staged["export_record"], record)

        files = [ModelFile(model_path if adopt else staged["onnx"], _float_what(settings, adopt))]
        files.append(ModelFile(staged["int8"], "static int8 ONNX (default of the app)"))
        files.append(ModelFile(staged["labels"], "input contract and label order"))
        card = CardInputs(
            params=params,
            network=network,
            parameter_count=count,
            files=files,
            manifest=read_manifest(prepared_dir),
            summary=summary,
            per_class=read_json(eval_dir / "per_class.json"),
            run=run,
            trained_by=settings["trained_by"] if adopt else None,
            parity=parity,
            int8=int8,
            pipeline_file=pipeline_file,
            machines=[
                *(run or {}).get("machines", []),
                *(summary or {}).get("machines", []),
                *record["machines"],
            ],
            labels=spec.labels,
        )
        staged["model_card"].write_text(render_model_card(card), encoding="utf-8")

        written = ("labels", "model_card", "export_record", "int8") if adopt else tuple(outputs)
        for key in written:
            os.replace(staged[key], outputs[key])
    return record


def _with_accuracy(
    spec: ModelSpec, params: dict[str, Any], test: dict[str, Any] | None, int8: dict[str, Any]
) -> ModelSpec:
    """`spec` with each model file's recorded test accuracy, for whoever runs the files."""
    paths = params["paths"]
    accuracy = {
        Path(paths["int8"]).name: {
            "value": int8["accuracy"],
            "split": "test",
            "images": int8["test_images"],
            "source": paths["export_record"],
        }
    }
    if test:
        accuracy[Path(paths["onnx"]).name] = {
            "value": test["accuracy"],
            "split": "test",
            "images": test["n"],
            "source": paths["metrics"],
        }
    return ModelSpec(spec.labels, spec.input, {**spec.extra, "accuracy": accuracy})


def _float_what(settings: dict[str, Any], adopt: bool) -> str:
    weights = "float16 weights, float32 input/output" if settings["float16"] else "float32"
    return f"ONNX model ({weights}{'; trained elsewhere, scored here' if adopt else ''})"


def _export_keras(
    model_path: Path,
    onnx_out: Path,
    staged: dict[str, Path],
    test_images: np.ndarray,
    settings: dict[str, Any],
    spec: ModelSpec,
) -> tuple[dict[str, Any], str, int]:
    """Float ONNX + parity check + the tutorial's formats; (parity, name, parameter count)."""
    from pipeline.export.keras_formats import write_keras_formats
    from pipeline.export.onnx_export import export_onnx
    from pipeline.export.parity import check_parity
    from pipeline.training.saving import load_net

    float16 = bool(settings["float16"])
    # float16 arithmetic moves probabilities by ~1e-3: a separate, documented tolerance.
    atol = float(settings["float16_atol" if float16 else "parity_atol"])
    net = load_net(model_path)
    export_onnx(net, onnx_out, float16=float16)
    images = test_images[: int(settings["parity_images"])]
    parity = check_parity(net, onnx_out, images, atol=atol, spec=spec).to_dict()
    print(
        f"export: parity on {parity['images']} test faces, every class agrees, max "
        f"probability difference {parity['max_abs_diff']:.1e} (allowed {atol:.0e})"
    )
    write_keras_formats(net, staged["model_json"], staged["model_weights"])
    return parity, net.name, net.count_params()


def _timed(predict: OnnxPredictor, faces: np.ndarray) -> tuple[np.ndarray, float]:
    """Probabilities, and faces per second of the whole call."""
    start = time.perf_counter()
    probs = predict(faces)
    return probs, len(faces) / max(time.perf_counter() - start, 1e-9)


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _export_int8(
    float_onnx: Path,
    out: Path,
    prepared_dir: str | Path,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    settings: dict[str, Any],
    spec: ModelSpec,
) -> dict[str, Any]:
    """Quantize, then check against the float model on the whole test split."""
    train_images, _ = load_split(prepared_dir, "train")
    count = min(int(settings["calibration_images"]), len(train_images))
    # Evenly spread over the training split: deterministic, and every part of it represented.
    calibration = train_images[np.linspace(0, len(train_images) - 1, count).astype(int)]
    quantize_int8(float_onnx, calibration, out, spec)
    float_probs, float_rate = _timed(OnnxPredictor(float_onnx, spec), test_images)
    int8_probs, int8_rate = _timed(OnnxPredictor(out, spec), test_images)
    report = accept_int8(
        float_probs,
        int8_probs,
        test_labels,
        max_drop=float(settings["int8_max_drop"]),
        min_agreement=float(settings["int8_min_agreement"]),
        calibration_images=count,
    ).to_dict()
    # Not a metric (it moves with the machine): the card says where it was measured.
    report["speed"] = {
        "float_faces_per_s": round(float_rate),
        "int8_faces_per_s": round(int8_rate),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, ONNX Runtime "
        f"{ort_version()}, batches of {OnnxPredictor.batch_size_default}",
    }
    print(
        f"export: int8 {report['accuracy']:.2%} vs float {report['float_accuracy']:.2%} on "
        f"{report['test_images']} test faces, same class on {report['agreement']:.2%}"
    )
    return report
