"""`data.raw` as a labelled dataset: a FER2013 CSV (optionally relabelled by FER+ votes) or
an image folder; the label set comes with it.

    dataset = read_dataset(params["data"]["raw"], params["data"])
    dataset.names           # ("angry", ..., "neutral") for FER2013; folder names; FER+'s eight
    dataset.split_arrays()  # split -> (images, labels[, soft targets])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import repo_path
from pipeline.data.errors import DataError
from pipeline.data.fer_csv import FerTable, read_fer_csv
from pipeline.data.ferplus import FERPLUS_LABELS, FerPlusLabels, read_ferplus
from pipeline.data.image_folder import FolderTable, read_image_folder

Table = FerTable | FolderTable


@dataclass(frozen=True)
class Dataset:
    """The raw data as read (`table`, every row), and its FER+ labels if any."""

    table: Table
    ferplus: FerPlusLabels | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The label set, in class-index order."""
        return FERPLUS_LABELS if self.ferplus is not None else self.table.names

    def split_arrays(self) -> dict[str, tuple[np.ndarray, ...]]:
        if self.ferplus is not None:
            return self.ferplus.split_arrays(self.table)
        return self.table.split_arrays()

    def source(self, source_name: str | None) -> dict[str, Any]:
        """What the manifest records of the raw data."""
        table = self.table
        out: dict[str, Any] = {
            "file": source_name or str(table.path),
            "sha256": table.sha256,
            "bytes": table.size_bytes,
            "rows": len(table),
        }
        if self.ferplus is not None:
            out["ferplus"] = {"sha256": self.ferplus.sha256, "mode": self.ferplus.mode}
        return out


def read_dataset(raw: str | Path, data: dict[str, Any] | None = None) -> Dataset:
    """Read `raw` (a folder: an image-folder dataset; else a FER2013 CSV) with the options
    of params.yaml's `data` section (val_fraction, split_seed, ferplus, ferplus_mode)."""
    data = data or {}
    raw = Path(raw)
    votes = data.get("ferplus")
    if raw.is_dir():
        if votes:
            raise DataError(
                f"{raw}: data.ferplus relabels a FER2013 CSV row by row, not a folder dataset; "
                "point data.raw at fer2013.csv or set data.ferplus: null"
            )
        fraction, seed = float(data.get("val_fraction", 0.1)), int(data.get("split_seed", 0))
        return Dataset(read_image_folder(raw, fraction, seed))
    table = read_fer_csv(raw)
    if not votes:
        return Dataset(table)
    mode = data.get("ferplus_mode", "majority")
    return Dataset(table, read_ferplus(repo_path(votes), table, mode, name=str(votes)))
