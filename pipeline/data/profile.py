"""What a FER2013 table (or a folder dataset) holds: rows and classes per split, duplicate images.

These figures go into the validation summary (`summary.json`, a DVC metric, so
`dvc metrics diff` shows when the data changed) and the prepared manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import SPLITS
from pipeline.data.errors import DataError
from pipeline.data.fer_csv import FerTable
from pipeline.data.ferplus import FerPlusLabels
from pipeline.data.image_folder import FolderTable
from pipeline.data.shards import class_counts

#: File names inside the validation report folder (`paths.validation`).
SUMMARY_JSON = "summary.json"


def split_profile(
    table: FerTable | FolderTable,
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Rows per split and classes per split (rows with an unknown Usage are left out)."""
    rows = {"total": len(table)}
    classes = {}
    for i, split in enumerate(SPLITS):
        in_split = table.split_index == i
        rows[split] = int(in_split.sum())
        classes[split] = class_counts(table.labels[in_split], table.names)
    return rows, classes


def image_fingerprints(images: np.ndarray) -> np.ndarray:
    """A 63-bit content hash per image (int64, >= 0): equal images, equal fingerprints."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    out = np.empty(len(flat), np.int64)
    for i, row in enumerate(flat):
        out[i] = int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "little") >> 1
    return out


def find_duplicates(
    fingerprints: np.ndarray, split_index: np.ndarray, usable: np.ndarray, examples: int = 5
) -> dict[str, Any]:
    """Groups of rows holding the same image, among the `usable` rows.

    Returns counts (groups, rows that repeat an earlier row, groups spanning two splits:
    a face in both train and test inflates the test score) and the first few groups as
    1-based row numbers.
    """
    rows = np.flatnonzero(usable)
    fp = fingerprints[rows]
    order = np.argsort(fp, kind="stable")
    fp_sorted = fp[order]
    starts = np.flatnonzero(np.r_[True, fp_sorted[1:] != fp_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(fp_sorted)])
    group_starts = starts[sizes > 1]
    group_sizes = sizes[sizes > 1]
    groups = [
        np.sort(rows[order[s : s + k]]) for s, k in zip(group_starts, group_sizes, strict=True)
    ]
    groups.sort(key=lambda g: g[0])
    across = sum(len(np.unique(split_index[g])) > 1 for g in groups)
    return {
        "groups": len(groups),
        "repeated_rows": int(sum(len(g) - 1 for g in groups)),
        "groups_across_splits": int(across),
        "examples": [[int(r) + 1 for r in g[:4]] for g in groups[:examples]],
    }


def read_summary(report_dir: str | Path) -> dict[str, Any]:
    path = Path(report_dir) / SUMMARY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no validation summary; run `dvc repro validate` first")
    return json.loads(path.read_text(encoding="utf-8"))


def require_validated(
    report_dir: str | Path, table: FerTable | FolderTable, ferplus: FerPlusLabels | None = None
) -> dict[str, Any]:
    """The validation summary of this very data (same sha256, same FER+ votes) that
    passed; else DataError."""
    summary = read_summary(report_dir)
    path = Path(report_dir) / SUMMARY_JSON
    validated = str(summary.get("source", {}).get("sha256", "?"))
    votes = (summary.get("ferplus") or {}).get("sha256")
    if (ferplus.sha256 if ferplus is not None else None) != votes:
        raise DataError(
            f"{path} was written for other FER+ labels (data.ferplus); run `dvc repro "
            "validate` first"
        )
    if validated != table.sha256:
        raise DataError(
            f"{path} describes another file (sha256 {validated[:12]}...), not {table.path} "
            f"(sha256 {table.sha256[:12]}...); run `dvc repro validate` first"
        )
    if not summary.get("success"):
        raise DataError(
            f"{table.path} failed validation (see {path}); fix the file and run `dvc repro` again"
        )
    return summary
