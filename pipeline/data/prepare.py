"""Turn validated raw data (a FER2013 CSV, FER+ votes, an image folder) into the prepared
shards (`pipeline.data.shards`), with the data's label set in the manifest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.data.fer_csv import FerTable
from pipeline.data.profile import require_validated
from pipeline.data.shards import write_shards, write_shards_into
from pipeline.data.source import Dataset, read_dataset
from pipeline.io import atomic_dir


def shards_from_table(
    table: FerTable | Dataset, prepared_dir: str | Path, source_name: str | None = None
) -> dict[str, Any]:
    """Write the splits of `table` (a FER2013 table or a Dataset) to `prepared_dir`
    (atomically); returns the manifest."""
    dataset = table if isinstance(table, Dataset) else Dataset(table)
    return write_shards(
        prepared_dir, dataset.split_arrays(), dataset.source(source_name), dataset.names
    )


def prepare_csv(
    raw: str | Path,
    report_dir: str | Path,
    prepared_dir: str | Path,
    source_name: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the prepare stage does: read `raw` once (a CSV or an image folder; `data`:
    params.yaml's data section) and shard it, if validation passed.

    Refuses (DataError) data whose validation summary in `report_dir` failed or describes
    other data; `prepared_dir` is then left as it was.
    """
    dataset = read_dataset(raw, data)
    require_validated(report_dir, dataset.table, dataset.ferplus)
    return shards_from_table(dataset, prepared_dir, source_name)


def validate_and_prepare(
    raw: str | Path,
    report_dir: str | Path,
    prepared_dir: str | Path,
    duplicates: str = "warn",
    source_name: str | None = None,
    missing_class: str = "warn",
    data: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both stages in one process, reading the data once: (validation summary, manifest).

    The shards are written into a staging folder while the suite runs, and moved into
    place only if validation passes; otherwise the DataError propagates and
    `prepared_dir` is left as it was.
    """
    # Imported here, not at the top: the prepare stage itself needs neither pandas nor GX.
    from pipeline.data.validation import start_loading_gx, validate_table

    start_loading_gx()
    dataset = read_dataset(raw, data)
    with atomic_dir(prepared_dir) as staging, ThreadPoolExecutor(1) as pool:
        # Only a table that passes validation has every row valid; an invalid one makes
        # split_arrays raise in the thread, and validation's own error wins below.
        writing = pool.submit(
            lambda: write_shards_into(
                staging, dataset.split_arrays(), dataset.source(source_name), dataset.names
            )
        )
        summary = validate_table(
            dataset.table,
            report_dir,
            duplicates=duplicates,
            source_name=source_name,
            missing_class=missing_class,
            ferplus=dataset.ferplus,
        )
        manifest = writing.result()
    return summary, manifest
