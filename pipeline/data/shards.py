"""Prepared shards: one folder per split under `data/prepared/`.

Layout (written by the `prepare` stage, read by training and evaluation)::

    data/prepared/
      manifest.json          the label set (names, in class-index order), row and
                             per-class counts and sha256 of every file
      train/images.npy       uint8 (N, 48, 48)
      train/labels.npy       int64 (N,)
      val/...  test/...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.config import IMAGE_SIZE, LABELS, SPLITS, USAGE_OF_SPLIT
from pipeline.io import atomic_dir

MANIFEST = "manifest.json"
SHARD_FILES: tuple[str, ...] = ("images.npy", "labels.npy")
#: Optional, beside them: float32 (N, classes) soft targets (FER+ `distribution` mode).
TARGETS_FILE = "targets.npy"


def split_dir(prepared_dir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Path(prepared_dir) / split


def label_names(prepared_dir: str | Path) -> tuple[str, ...]:
    """The label set of the prepared data, in class-index order, from its manifest.

    The set comes from the data (FER2013's seven for its CSV, folder names for an image
    folder, FER+'s eight): training sizes its output layer by it, evaluation and export
    name classes with it. A manifest written before it carried the names is FER2013's.
    """
    path = Path(prepared_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; run `dvc repro prepare` first")
    names = json.loads(path.read_text(encoding="utf-8")).get("labels", {}).get("names")
    if names is None:
        return LABELS
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{path}: 'labels.names' must list at least two class names; "
            "run `dvc repro prepare` again"
        )
    return tuple(names)


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
    classes = len(label_names(prepared_dir))
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{labels_file}: labels outside 0..{classes - 1}")
    return images, labels.astype(np.int64)


def load_targets(prepared_dir: str | Path, split: str) -> np.ndarray | None:
    """Soft targets float32 (N, classes) of one split (FER+ vote distributions), or None
    where the prepared data has hard labels only."""
    path = split_dir(prepared_dir, split) / TARGETS_FILE
    return np.load(path) if path.is_file() else None


def class_counts(labels: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    """{label name: count} for int labels 0..len(names)-1, every class listed (zeros too)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=len(names))[: len(names)]
    return {name: int(n) for name, n in zip(names, counts, strict=True)}


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
    splits: Mapping[str, tuple[np.ndarray, ...]],
    source: Mapping[str, Any],
    names: Sequence[str],
) -> dict[str, Any]:
    """Write every split and manifest.json into `prepared_dir`, replacing it atomically.

    `splits` maps each of SPLITS to (images uint8 (N, 48, 48), labels int (N,)), optionally
    with soft targets float (N, len(names)) third; `source` describes the raw data (path,
    sha256, ...) and is copied into the manifest; `names` is the label set, in class-index
    order. If anything fails, the previous `prepared_dir` is left as it was.
    """
    with atomic_dir(prepared_dir) as tmp:
        return write_shards_into(tmp, splits, source, names)


def write_shards_into(
    folder: Path,
    splits: Mapping[str, tuple[np.ndarray, ...]],
    source: Mapping[str, Any],
    names: Sequence[str],
) -> dict[str, Any]:
    """`write_shards` into an existing empty `folder`, not atomically (a staging folder)."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"write_shards needs every split {SPLITS}; missing {missing}")
    manifest: dict[str, Any] = {
        "format": "npy",
        "images": {"dtype": "uint8", "shape": ["N", IMAGE_SIZE, IMAGE_SIZE]},
        "labels": {"dtype": "int64", "names": list(names)},
        "source": dict(source),
        "splits": {},
    }
    for split in SPLITS:
        images, labels, *targets = splits[split]
        images = np.ascontiguousarray(images, dtype=np.uint8)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or labels.shape != (len(images),):
            raise ValueError(
                f"split {split}: expected images (N, {IMAGE_SIZE}, {IMAGE_SIZE}) and N labels, "
                f"got {images.shape} and {labels.shape}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"split {split}: labels outside 0..{len(names) - 1}")
        split_folder = Path(folder) / split
        split_folder.mkdir()
        files = {
            "images.npy": _save(split_folder / "images.npy", images),
            "labels.npy": _save(split_folder / "labels.npy", labels),
        }
        if targets:
            soft = np.ascontiguousarray(targets[0], dtype=np.float32)
            if soft.shape != (len(labels), len(names)):
                raise ValueError(
                    f"split {split}: expected soft targets ({len(labels)}, {len(names)}), "
                    f"got {soft.shape}"
                )
            files[TARGETS_FILE] = _save(split_folder / TARGETS_FILE, soft)
        manifest["splits"][split] = {
            "usage": USAGE_OF_SPLIT[split],
            "rows": len(labels),
            "classes": class_counts(labels, names),
            "files": files,
        }
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(prepared_dir: str | Path) -> dict[str, Any]:
    """The manifest written by `write_shards`."""
    path = Path(prepared_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; run `dvc repro prepare` first")
    return json.loads(path.read_text(encoding="utf-8"))
