"""Read one split of the real FER2013 CSV for the benchmarks (stdlib csv, no pandas).

The CSV is never in the repository: unpack it outside, e.g.
`xz -dc ../shared/data/fer2013/fer2013.csv.xz > /tmp/fer2013.csv`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipeline.config import CSV_COLUMNS, IMAGE_SIZE, PIXELS_PER_IMAGE


def load_usage(csv_path: str | Path, usage: str = "PrivateTest") -> tuple[np.ndarray, np.ndarray]:
    """Faces uint8 (N, 48, 48) and labels int64 (N,) of the rows whose Usage is `usage`."""
    path = Path(csv_path)
    if not path.is_file():
        raise SystemExit(
            f"{path}: FER2013 CSV not found; unpack it outside the repository, e.g. "
            "xz -dc ../shared/data/fer2013/fer2013.csv.xz > /tmp/fer2013.csv"
        )
    images, labels = [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if tuple(header) != CSV_COLUMNS:
            raise SystemExit(f"{path}: expected header {','.join(CSV_COLUMNS)}, got {header}")
        for emotion, pixels, row_usage in reader:
            if row_usage != usage:
                continue
            values = np.array(pixels.split(), dtype=np.uint8)
            if values.size != PIXELS_PER_IMAGE:
                raise SystemExit(f"{path}: a {usage} row has {values.size} pixels, not 2304")
            images.append(values.reshape(IMAGE_SIZE, IMAGE_SIZE))
            labels.append(int(emotion))
    if not images:
        raise SystemExit(f"{path}: no rows with Usage={usage}")
    return np.stack(images), np.array(labels, dtype=np.int64)
