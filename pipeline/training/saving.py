"""Save and load the trained network (`paths.model`, a `.keras` file)."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from pipeline.io import temp_dir


def save_keras(model: keras.Model, path: str | Path) -> Path:
    """`model.save` atomically (Keras insists on the `.keras` suffix, so no plain temp file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir(path) as tmp:
        staged = Path(tmp) / path.name
        model.save(staged)
        os.replace(staged, path)
    return path


def load_net(path: str | Path) -> keras.Model:
    """Load the network the `train` stage saved; the error says how to make one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained model not found; run `dvc repro train` first")
    # Registers ferflow's custom layers (if a network uses any) before deserializing.
    import pipeline.models  # noqa: F401

    return keras.models.load_model(path, compile=False)
