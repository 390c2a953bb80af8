"""Read a folder of labelled face images, laid out `<split>/<class>/<image>`.

    data/faces/
      train/angry/0001.jpg  train/happy/...      (FER2013's Kaggle layout, RAF-DB, your own)
      val/...                                    optional: else a seeded, stratified share
      test/angry/...                             of train (data.val_fraction)

Split folders are `train`, `val`, `test`, or FER2013's `Training`, `PublicTest`,
`PrivateTest`. The class names are the class folders of `train`, sorted: that is the label
set, in class-index order. Images are PNG, JPEG, BMP or WebP of any size, grey or colour;
each becomes the pipeline's 48x48 grey face (`pipeline.imaging`'s grey conversion and resize,
the app's own: area-averaging when shrinking; a non-square image is stretched, so crop
faces square first). Files whose names start with "." (.DS_Store) are skipped.

What is wrong with the layout itself (an unknown or missing split folder, an empty class
folder, a file that is not an image, a class in val/test that train lacks) stops the read
with one line naming the path. An image file that does not decode is kept, flagged
unreadable, for the Great Expectations suite to report with the rest (`validation.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import imaging
from pipeline.config import IMAGE_SIZE, SPLIT_OF_USAGE, SPLITS
from pipeline.data.errors import DataError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: Split folder name -> split; FER2013's Usage names are accepted too.
SPLIT_OF_FOLDER: dict[str, str] = {**{s: s for s in SPLITS}, **SPLIT_OF_USAGE}


@dataclass(frozen=True)
class FolderTable:
    """Every image of a folder dataset, decoded; unreadable files kept (flagged).

    Row i is `files[i]` (relative to `path`); `labels` index `names`; `split_index` indexes
    SPLITS; `from_train` marks the rows drawn from train into val (no `val` folder).
    """

    path: Path
    sha256: str
    size_bytes: int
    names: tuple[str, ...]
    files: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    split_index: np.ndarray
    usable: np.ndarray
    from_train: np.ndarray
    #: Folder datasets never end mid-row: validation's "cut off" hint does not apply.
    ends_with_newline: bool = True

    def __len__(self) -> int:
        return len(self.labels)

    def row_ref(self, row: int) -> str:
        """How messages name the 1-based row `row`: its file."""
        return f"file {self.files[row - 1]}"

    @property
    def valid(self) -> np.ndarray:
        return self.usable & (self.labels >= 0) & (self.split_index >= 0)

    def split_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """split -> (images uint8 (N, 48, 48), labels int64 (N,)), in file order."""
        bad = np.flatnonzero(~self.valid)
        if len(bad):
            raise DataError(
                f"{self.path}: {len(bad):,} image(s) could not be read, the first is "
                f"{self.files[bad[0]]}; run the validate stage for the reasons"
            )
        out = {}
        for i, split in enumerate(SPLITS):
            rows = self.split_index == i
            if not rows.any():
                raise DataError(f"{self.path}: the {split} split has no images")
            out[split] = (self.images[rows], self.labels[rows])
        return out


def decode_face(data: bytes) -> np.ndarray | None:
    """Image file bytes -> uint8 (48, 48) grey face, or None if they do not decode."""
    try:
        image = imaging.decode(data, gray=True)
    except imaging.DecodeError:
        return None
    if image.size == 0:
        return None
    return imaging.resize(image, (IMAGE_SIZE, IMAGE_SIZE))


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in _visible(root):
        split = SPLIT_OF_FOLDER.get(entry.name)
        if split is None or not entry.is_dir():
            raise DataError(
                f"{entry}: not a split folder; a folder dataset holds train/, test/ and "
                "optionally val/ (or Training/, PrivateTest/, PublicTest/), each with one "
                "folder per class"
            )
        if split in found:
            raise DataError(f"{entry}: a second {split} folder beside {found[split]}; keep one")
        found[split] = entry
    for split in ("train", "test"):
        if split not in found:
            raise DataError(
                f"{root / split}: split folder missing; a folder dataset needs train/ and "
                "test/ (val/ is optional: without it, data.val_fraction of train is used)"
            )
    return found


def _class_files(split_folder: Path) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for entry in _visible(split_folder):
        if not entry.is_dir():
            raise DataError(
                f"{entry}: a file directly in a split folder; put each image in its class "
                f"folder ({split_folder}/<class>/<image>)"
            )
        files = _visible(entry)
        if not files:
            raise DataError(f"{entry}: empty class folder; add its images or remove it")
        for f in files:
            if f.is_dir() or f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"{f}: not an image file (expected {', '.join(IMAGE_SUFFIXES)}); "
                    "move it out of the dataset folder"
                )
        classes[entry.name] = files
    if not classes:
        raise DataError(f"{split_folder}: no class folders; add {split_folder}/<class>/<image>")
    return classes


def carve_val(labels: np.ndarray, fraction: float, seed: int, classes: int) -> np.ndarray:
    """A seeded, stratified share of rows (bool mask): `fraction` of each class, rounded,
    at least one where a class has two or more rows, never a class's last row."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for c in range(classes):
        rows = np.flatnonzero(labels == c)
        take = min(max(round(len(rows) * fraction), 1 if len(rows) > 1 else 0), len(rows) - 1)
        mask[rng.permutation(rows)[:take]] = True
    return mask


def read_image_folder(path: str | Path, val_fraction: float = 0.1, seed: int = 0) -> FolderTable:
    """Read and decode the folder dataset at `path` (see the module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    folders = _split_folders(root)
    splits = {split: _class_files(folder) for split, folder in folders.items()}
    names = tuple(sorted(splits["train"]))
    for split, classes in splits.items():
        unknown = sorted(set(classes) - set(names))
        if unknown:
            raise DataError(
                f"{folders[split] / unknown[0]}: class {unknown[0]!r} is in {split} but not "
                "in train; the model cannot learn it: add train images of it or remove the "
                "folder"
            )
    files, labels, split_index = [], [], []
    for split in SPLITS:
        for name, paths in sorted(splits.get(split, {}).items()):
            files += paths
            labels += [names.index(name)] * len(paths)
            split_index += [SPLITS.index(split)] * len(paths)
    digest, size = hashlib.sha256(), 0
    images = np.zeros((len(files), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    usable = np.zeros(len(files), bool)
    for i, f in enumerate(files):
        data = f.read_bytes()
        relative = f.relative_to(root).as_posix()
        # The tree's hash covers names (a file moved to another class is another dataset)
        # and contents, in a fixed order.
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
        size += len(data)
        face = decode_face(data)
        if face is not None:
            images[i], usable[i] = face, True
    labels_array = np.array(labels, np.int64)
    split_array = np.array(split_index, np.int8)
    from_train = np.zeros(len(files), bool)
    if "val" not in splits:
        in_train = np.flatnonzero(split_array == SPLITS.index("train"))
        carved = in_train[carve_val(labels_array[in_train], val_fraction, seed, len(names))]
        split_array[carved], from_train[carved] = SPLITS.index("val"), True
    return FolderTable(
        path=root,
        sha256=digest.hexdigest(),
        size_bytes=size,
        names=names,
        files=tuple(f.relative_to(root).as_posix() for f in files),
        images=images,
        labels=labels_array,
        split_index=split_array,
        usable=usable,
        from_train=from_train,
    )
