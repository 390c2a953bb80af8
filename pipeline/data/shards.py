"""Prepared shards: one folder per split under `data/prepared/`.

Layout (written by the `prepare` stage, read by training and evaluation)::

    data/prepared/
      manifest.json          row and per-class counts and sha256 of every file
      train/images.npy       uint8 (N, 48, 48)
      train/labels.npy       int64 (N,)
      val/...  test/...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.config import IMAGE_SIZE, LABELS, NUM_CLASSES, SPLIT_OF_USAGE, SPLITS
from pipeline.io import atomic_dir

MANIFEST = "manifest.json"
SHARD_FILES: tuple[str, ...] = ("images.npy", "labels.npy")


def split_dir(prepared_dir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Path(prepared_dir) / split


def load_split(prepared_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 48, 48) and labels int64 (N,) of one split."""
    d = split_dir(prepared_dir, split)
    images_file, labels_file = d / "images.npy", d / "labels.npy"
    for f in (images_file, labels_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: shard not found; run `dvc repro prepare` first")
    images = np.load(images_file)
    labels = np.load(labels_file)
    if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{images_file}: expected uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),):
        raise ValueError(f"{labels_file}: expected {len(images)} labels, got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{labels_file}: labels outside 0..{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64)


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """{label name: count} for int labels 0-6, every class listed (zeros included)."""
    counts = np.bincount(np.asarray(labels)[np.asarray(labels) >= 0], minlength=NUM_CLASSES)
    return {name: int(n) for name, n in zip(LABELS, counts, strict=True)}


class _HashingWriter:
    """A file wrapper that hashes what `np.save` writes, so no file is read back."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha256, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(memoryview(data).cast("B"))
        return self.f.write(data)


def _save(path: Path, array: np.ndarray) -> dict[str, Any]:
    with path.open("wb") as f:
        writer = _HashingWriter(f)
        np.save(writer, array, allow_pickle=False)
    return {"bytes": writer.size, "sha256": writer.sha256.hexdigest()}


def write_shards(
    prepared_dir: str | Path,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    source: Mapping[str, Any],
) -> dict[str, Any]:
    """Write every split and manifest.json into `prepared_dir`, replacing it atomically.

    `splits` maps each of SPLITS to (images uint8 (N, 48, 48), labels int (N,)); `source`
    describes the raw file (path, sha256, ...) and is copied into the manifest. If anything
    fails, the previous `prepared_dir` is left as it was.
    """
    with atomic_dir(prepared_dir) as tmp:
        return write_shards_into(tmp, splits, source)


def write_shards_into(
    folder: Path, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], source: Mapping[str, Any]
) -> dict[str, Any]:
    """`write_shards` into an existing empty `folder`, not atomically (a staging folder)."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"write_shards needs every split {SPLITS}; missing {missing}")
    usage_of = {split: usage for usage, split in SPLIT_OF_USAGE.items()}
    manifest: dict[str, Any] = {
        "format": "npy",
        "images": {"dtype": "uint8", "shape": ["N", IMAGE_SIZE, IMAGE_SIZE]},
        "labels": {"dtype": "int64", "names": list(LABELS)},
        "source": dict(source),
        "splits": {},
    }
    for split in SPLITS:
        images, labels = splits[split]
        images = np.ascontiguousarray(images, dtype=np.uint8)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or labels.shape != (len(images),):
            raise ValueError(
                f"split {split}: expected images (N, {IMAGE_SIZE}, {IMAGE_SIZE}) and N labels, "
                f"got {images.shape} and {labels.shape}"
            )
        split_folder = Path(folder) / split
        split_folder.mkdir()
        manifest["splits"][split] = {
            "usage": usage_of[split],
            "rows": len(labels),
            "classes": class_counts(labels),
            "files": {
                "images.npy": _save(split_folder / "images.npy", images),
                "labels.npy": _save(split_folder / "labels.npy", labels),
            },
        }
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(prepared_dir: str | Path) -> dict[str, Any]:
    """The manifest written by `write_shards`."""
    path = Path(prepared_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; run `dvc repro prepare` first")
    return json.loads(path.read_text(encoding="utf-8"))
