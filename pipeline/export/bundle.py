"""The `export` stage's work: everything a consumer of the trained model needs.

From the trained network (no augmentation inside) it writes the ONNX model, `labels.json`,
the tutorial's JSON + weights formats and `MODEL_CARD.md`. Files are staged in a temporary
folder and moved into place only after ONNX Runtime has matched Keras on test images, so a
failed parity check writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from pipeline.data.shards import load_split
from pipeline.export.keras_formats import write_keras_formats
from pipeline.export.model_card import read_json, render_model_card
from pipeline.export.onnx_export import export_onnx
from pipeline.export.parity import check_parity
from pipeline.io import temp_dir
from pipeline.model_spec import ModelSpec, write_spec


def export_bundle(
    params: dict[str, Any],
    *,
    model_path: str | Path,
    prepared_dir: str | Path,
    metrics_path: str | Path,
    train_log: str | Path,
    eval_dir: str | Path,
    outputs: dict[str, str | Path],
) -> dict[str, Any]:
    """Write `outputs["onnx"|"labels"|"model_card"|"model_json"|"model_weights"]`.

    `params["export"]`: `float16` (bool), `parity_images` (how many test images the parity
    check uses), `parity_atol` (largest allowed probability difference; `float16_atol` for a
    float16 model). Returns the parity report as a dict.
    """
    from pipeline.training.saving import load_net

    settings = params.get("export", {})
    float16 = bool(settings.get("float16", False))
    # float16 arithmetic moves probabilities by ~1e-3: a separate, documented tolerance.
    atol = float(
        settings.get("float16_atol" if float16 else "parity_atol", 1e-2 if float16 else 1e-4)
    )
    count = int(settings.get("parity_images", 300))
    if count < 1:
        raise ValueError(f"export.parity_images must be >= 1, got {count}")

    net = load_net(model_path)
    images, _ = load_split(prepared_dir, "test")
    images = images[:count]
    spec = ModelSpec()
    targets = {key: Path(outputs[key]) for key in _OUTPUT_KEYS}
    folder = targets["onnx"].parent
    folder.mkdir(parents=True, exist_ok=True)

    # A run killed here leaves this folder; the next export removes it (pipeline.io).
    with temp_dir(folder / "export") as tmp:
        staged = {key: Path(tmp) / target.name for key, target in targets.items()}
        export_onnx(net, staged["onnx"], float16=float16)
        parity = check_parity(net, staged["onnx"], images, atol=atol, spec=spec).to_dict()
        parity["float16"] = float16
        print(
            f"parity: {parity['images']} test images, every class agrees, "
            f"max probability difference {parity['max_abs_diff']:.1e} (allowed {atol:.0e})"
        )
        write_spec(staged["labels"], spec)
        write_keras_formats(net, staged["model_json"], staged["model_weights"])
        card = render_model_card(
            params=params,
            net_name=net.name,
            parameter_count=net.count_params(),
            manifest_path=Path(prepared_dir) / "manifest.json",
            metrics=read_json(metrics_path),
            train_summary=read_json(Path(train_log) / "metrics.json"),
            per_class=read_json(Path(eval_dir) / "per_class.json"),
            onnx_path=staged["onnx"],
            parity=parity,
            backend=keras.backend.backend(),
            keras_version=keras.__version__,
        )
        staged["model_card"].write_text(card, encoding="utf-8")
        for key, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged[key], target)
    return parity


_OUTPUT_KEYS = ("onnx", "labels", "model_card", "model_json", "model_weights")
