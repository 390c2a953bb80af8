"""The tutorial's formats: architecture as JSON (`model.to_json()`) plus an .h5 of weights.

For users coming from the tutorial; ferflow itself uses `model.keras` and the ONNX file.
"""

from __future__ import annotations

from pathlib import Path

import keras


def write_keras_formats(net: keras.Model, json_path: str | Path, weights_path: str | Path) -> None:
    """Write `net.to_json()` to `json_path` and its weights to `weights_path` (`.weights.h5`)."""
    if not str(weights_path).endswith(".weights.h5"):
        raise ValueError(f"{weights_path}: Keras 3 weight files must end in '.weights.h5'")
    Path(json_path).write_text(net.to_json(indent=1) + "\n", encoding="utf-8")
    net.save_weights(str(weights_path))


def load_keras_formats(json_path: str | Path, weights_path: str | Path) -> keras.Model:
    """`keras.models.model_from_json` + `load_weights`: the way the tutorial loads its model."""
    import pipeline.models  # noqa: F401  (registers custom layers, if a network has any)

    net = keras.models.model_from_json(Path(json_path).read_text(encoding="utf-8"))
    net.load_weights(str(weights_path))
    return net
