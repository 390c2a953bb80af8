"""FER+ labels for FER2013's faces: Microsoft's crowd votes (`fer2013new.csv`, MIT licence).

Row i of the votes file is row i of the FER2013 CSV (same `Usage`); each holds 10 votes over
neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown and NF (not
a face). FER+'s label set is its eight emotions, named as ferflow names FER2013's:

    neutral, happy, surprise, sad, angry, disgust, fear, contempt

Which faces are kept, as the FER+ paper and its reference code do: single votes are dropped
as outliers, then a face needs a clear majority (more than half of its remaining votes) for
an emotion; faces whose majority is "unknown" or "not a face", without one, or without an
image name (rows the FER+ authors left out) are dropped. Two modes (`data.ferplus_mode`):

- `majority`: the majority emotion is the label;
- `distribution`: the same faces, trained against their vote distribution over the eight
  emotions (soft targets, `targets.npy` in the shards), and scored against the majority.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import SPLITS
from pipeline.data.errors import DataError, preview
from pipeline.data.fer_csv import FerTable

#: The votes file's header, in order.
VOTE_COLUMNS: tuple[str, ...] = (
    "Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
    "fear", "contempt", "unknown", "NF",
)  # fmt: skip
#: FER+ emotion column -> ferflow's class name, in FER+'s order: the FER+ label set.
NAME_OF_COLUMN: dict[str, str] = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
FERPLUS_LABELS: tuple[str, ...] = tuple(NAME_OF_COLUMN.values())
MODES: tuple[str, ...] = ("majority", "distribution")
#: Why a face is left out, in the order the rules apply (summary.json counts each).
DROP_REASONS: tuple[str, ...] = ("no image name", "not a face", "unknown", "no clear majority")


@dataclass(frozen=True)
class FerPlusLabels:
    """The FER+ labels of a FER2013 table: majority label (-1 where dropped), why each
    dropped face was dropped (index into DROP_REASONS, -1 where kept), vote distribution."""

    path: Path
    sha256: str
    mode: str
    labels: np.ndarray
    dropped: np.ndarray
    distribution: np.ndarray
    #: How the reports name the file: params.yaml's value, the same on every clone.
    name: str = ""

    @property
    def kept(self) -> np.ndarray:
        return self.labels >= 0

    def split_arrays(self, table: FerTable) -> dict[str, tuple[np.ndarray, ...]]:
        """split -> (images, majority labels[, soft targets in distribution mode])."""
        table.split_arrays()  # refuses invalid rows and empty splits first
        out = {}
        for i, split in enumerate(SPLITS):
            rows = (table.split_index == i) & self.kept
            if not rows.any():
                raise DataError(f"{self.path}: no {split} face keeps a FER+ label")
            arrays = (table.images[rows], self.labels[rows])
            if self.mode == "distribution":
                arrays += (self.distribution[rows],)
            out[split] = arrays
        return out

    def profile(self, table: FerTable) -> dict[str, object]:
        """What summary.json records of the FER+ labels: kept faces per class and split,
        dropped faces per reason."""
        classes, dropped = {}, {}
        for i, split in enumerate(SPLITS):
            rows = table.split_index == i
            counts = np.bincount(self.labels[rows & self.kept], minlength=len(FERPLUS_LABELS))
            classes[split] = dict(zip(FERPLUS_LABELS, map(int, counts), strict=True))
            why = np.bincount(self.dropped[rows & ~self.kept], minlength=len(DROP_REASONS))
            dropped[split] = dict(zip(DROP_REASONS, map(int, why), strict=True))
        return {
            "file": self.name or str(self.path),
            "sha256": self.sha256,
            "mode": self.mode,
            "labels": list(FERPLUS_LABELS),
            "classes": classes,
            "dropped": dropped,
        }


def read_ferplus(
    path: str | Path, table: FerTable, mode: str = "majority", name: str | None = None
) -> FerPlusLabels:
    """Read the votes file for `table` (row i = row i) and derive its labels; `name` is how
    the reports name the file (default: its path).

    Raises DataError, naming the file and row, if the header, the row count or any `Usage`
    differs from the FER2013 CSV's, or a vote is not a whole number.
    """
    path = Path(path)
    if mode not in MODES:
        raise ValueError(f"data.ferplus_mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: FER+ votes file not found; put fer2013new.csv (Microsoft's FERPlus "
            "repository) there, beside the FER2013 CSV, or set data.ferplus: null"
        )
    raw = path.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    if not rows or tuple(c.strip() for c in rows[0]) != VOTE_COLUMNS:
        raise DataError(
            f"{path}: not a FER+ votes file: expected the header {','.join(VOTE_COLUMNS)}"
        )
    body = [r for r in rows[1:] if r]
    if len(body) != len(table):
        raise DataError(
            f"{path}: {len(body):,} rows but {table.path} has {len(table):,}; the votes "
            "file must have one row per FER2013 row, in the same order"
        )
    usage = np.array([r[0] if r else "" for r in body])
    csv_usage = np.array(table.usage.to_pylist(), dtype=object).astype(str)
    differs = np.flatnonzero(usage != csv_usage)
    if len(differs):
        i = int(differs[0])
        raise DataError(
            f"{path}: row {i + 1} has Usage {preview(str(usage[i]))} but {table.path} "
            f"{table.row_ref(i + 1)} has {preview(str(csv_usage[i]))} ({len(differs):,} "
            "row(s) differ); the votes file must be in the FER2013 CSV's row order"
        )
    try:
        votes = np.array([[int(v) for v in r[2:]] for r in body], np.int64).reshape(-1, 10)
    except ValueError:
        bad = next(i for i, r in enumerate(body) if not all(v.strip().isdigit() for v in r[2:]))
        raise DataError(
            f"{path}: row {bad + 1}: expected 10 whole vote counts, got "
            f"{preview(','.join(body[bad][2:]))}"
        ) from None
    named = np.array([bool(r[1].strip()) for r in body])
    labels, dropped, distribution = majority_labels(votes, named)
    return FerPlusLabels(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        mode=mode,
        labels=labels,
        dropped=dropped,
        distribution=distribution,
        name=name or str(path),
    )


def majority_labels(
    votes: np.ndarray, named: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, drop reasons, emotion distributions) from votes (N, 10); see the module
    docstring for the rules."""
    votes = np.where(votes <= 1, 0, votes)  # single votes are outliers (FER+ reference code)
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    clear = votes.max(axis=1) * 2 > total
    emotions = len(FERPLUS_LABELS)
    reasons = np.select(
        [~named, clear & (top == emotions + 1), clear & (top == emotions), ~clear],
        [0, 1, 2, 3],
        default=-1,
    )
    labels = np.where(reasons < 0, top, -1).astype(np.int64)
    emotion_votes = votes[:, :emotions].astype(np.float32)
    sums = emotion_votes.sum(axis=1, keepdims=True)
    distribution = np.divide(emotion_votes, sums, out=np.zeros_like(emotion_votes), where=sums > 0)
    return labels, reasons.astype(np.int8), distribution
