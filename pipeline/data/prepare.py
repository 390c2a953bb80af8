"""Turn a validated FER2013 CSV into the prepared shards (`pipeline.data.shards`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.data.fer_csv import FerTable, read_fer_csv
from pipeline.data.profile import require_validated
from pipeline.data.shards import write_shards, write_shards_into
from pipeline.io import atomic_dir


def _source(table: FerTable, source_name: str | None) -> dict[str, Any]:
    return {
        "file": source_name or str(table.path),
        "sha256": table.sha256,
        "bytes": table.size_bytes,
        "rows": len(table),
    }


def shards_from_table(
    table: FerTable, prepared_dir: str | Path, source_name: str | None = None
) -> dict[str, Any]:
    """Write `table`'s splits to `prepared_dir` (atomically); returns the manifest."""
    return write_shards(prepared_dir, table.split_arrays(), _source(table, source_name))


def prepare_csv(
    raw: str | Path,
    report_dir: str | Path,
    prepared_dir: str | Path,
    source_name: str | None = None,
) -> dict[str, Any]:
    """What the prepare stage does: parse `raw` once and shard it, if validation passed.

    Refuses (DataError) a file whose validation summary in `report_dir` failed or
    describes another file; `prepared_dir` is then left as it was.
    """
    table = read_fer_csv(raw)
    require_validated(report_dir, table)
    return shards_from_table(table, prepared_dir, source_name)


def validate_and_prepare(
    raw: str | Path,
    report_dir: str | Path,
    prepared_dir: str | Path,
    duplicates: str = "warn",
    source_name: str | None = None,
    missing_class: str = "warn",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both stages in one process, parsing the file once: (validation summary, manifest).

    The shards are written into a staging folder while the suite runs, and moved into
    place only if validation passes; otherwise the DataError propagates and
    `prepared_dir` is left as it was.
    """
    # Imported here, not at the top: the prepare stage itself needs neither pandas nor GX.
    from pipeline.data.validation import start_loading_gx, validate_table

    start_loading_gx()
    table = read_fer_csv(raw)
    with atomic_dir(prepared_dir) as staging, ThreadPoolExecutor(1) as pool:
        # Only a table that passes validation has every row valid; an invalid one makes
        # split_arrays raise in the thread, and validation's own error wins below.
        writing = pool.submit(
            lambda: write_shards_into(staging, table.split_arrays(), _source(table, source_name))
        )
        summary = validate_table(
            table,
            report_dir,
            duplicates=duplicates,
            source_name=source_name,
            missing_class=missing_class,
        )
        manifest = writing.result()
    return summary, manifest
