"""Trained networks on disk: the `train` stage's `.keras` file (`paths.model`), and the
`ensemble` stage's folder (`paths.ensemble`: member networks listed in members.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from pipeline.io import temp_dir

#: The ensemble folder's index: one entry per member, its file and what it is.
MEMBERS_FILE = "members.json"


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


def member_files(folder: str | Path) -> list[Path]:
    """The member networks' files listed in `folder`'s members.json (none: an empty list)."""
    folder = Path(folder)
    index = folder / MEMBERS_FILE
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} not found: run the `ensemble` stage first (`dvc repro ensemble`)"
        )
    return [folder / m["file"] for m in json.loads(index.read_text(encoding="utf-8"))]
