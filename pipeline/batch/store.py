"""The output folder of `ferflow batch`: a Parquet dataset written unit by unit, whole files only.

    OUT/ferflow-batch.json       the model (name, file, sha256, labels) and detector settings
    OUT/faces/<unit>.parquet     one row per face (schema: `faces_schema`)
    OUT/failures/<unit>.parquet  sources that could not be read, with the reason

A unit's faces file is written last, under a temporary name renamed into place: it exists
only when the unit is complete, and a unit whose failures file exists is tried again by the
next run. Results of one model never mix with another's: a folder made with another model
or other detector settings is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.app.errors import AppError
from pipeline.io import atomic_path, is_temp_name, remove_stale_temp, write_json

MANIFEST = "ferflow-batch.json"
FACES, FAILURES = "faces", "failures"
#: Parquet key-value metadata of a unit file: what it covers and how many frames it read.
UNIT_METADATA = b"ferflow.unit"
#: Probability columns are the model's labels with this prefix (a label may be any word,
#: `label` or `source` included, and must not collide with a fixed column).
PROBABILITY_PREFIX = "p_"


def faces_schema(labels: Sequence[str]) -> pa.Schema:
    """One row per face; `time` and `detector_score` are null where they do not apply
    (still images; the Haar detector, which has no score)."""
    fixed = [
        ("source", pa.string()),
        ("frame", pa.int64()),
        ("time", pa.float64()),
        ("face", pa.int32()),
        ("x", pa.int32()),
        ("y", pa.int32()),
        ("w", pa.int32()),
        ("h", pa.int32()),
        ("detector_score", pa.float32()),
        ("label", pa.string()),
        ("score", pa.float32()),
    ]
    probabilities = [(PROBABILITY_PREFIX + label, pa.float32()) for label in labels]
    model = [("model", pa.string()), ("model_sha256", pa.string())]
    return pa.schema(fixed + probabilities + model)


FAILURES_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("frame_start", pa.int64()),
        ("frame_stop", pa.int64()),
        ("reason", pa.string()),
        ("model_sha256", pa.string()),
    ]
)


def parquet_bytes(table: pa.Table, metadata: dict[str, Any] | None = None) -> bytes:
    """A table as the bytes of a Parquet file (workers send these; the driver writes them)."""
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[UNIT_METADATA] = json.dumps(metadata).encode()
        table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def check_out(out: Path, manifest: dict[str, Any]) -> None:
    """Refuse an --out that is not a folder, holds something else, or another model's results
    (nothing is written here)."""
    if out.exists() and not out.is_dir():
        raise AppError(f"{out}: is a file; --out takes a folder (it is created if missing)")
    path = out / MANIFEST
    if not path.is_file():
        others = [p.name for p in out.iterdir() if not is_temp_name(p.name)] if out.exists() else []
        if others:
            raise AppError(
                f"{out}: not empty and not a ferflow batch folder (no {MANIFEST}); "
                "choose an empty or new folder for --out"
            )
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AppError(
            f"{path}: unreadable ({e}); remove the folder or choose another --out"
        ) from None
    if (
        old.get("model_sha256") != manifest["model_sha256"]
        or old.get("labels") != manifest["labels"]
    ):
        raise AppError(
            f"{out}: holds results of another model, {_model_text(old)}; this run's is "
            f"{_model_text(manifest)}; choose another --out, or pass that model to resume"
        )
    changed = _differences(old.get("settings", {}), manifest["settings"])
    if changed:
        raise AppError(
            f"{out}: holds results made with other settings ({', '.join(changed)}); rerun "
            "with that folder's settings to resume, or choose another --out"
        )


def _model_text(manifest: dict[str, Any]) -> str:
    sha = str(manifest.get("model_sha256"))[:12]
    return f"{manifest.get('model')} ({manifest.get('model_file')}, sha256 {sha}...)"


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'key: A there, B here' for each setting that differs."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a} there, {b} here")
    return changed


def open_out(out: Path, manifest: dict[str, Any]) -> None:
    """Create the folder layout and the manifest (after `check_out` passed)."""
    for sub in (FACES, FAILURES):
        (out / sub).mkdir(parents=True, exist_ok=True)
        remove_stale_temp(out / sub)  # left by a killed run: never a complete file
    if not (out / MANIFEST).is_file():
        write_json(out / MANIFEST, manifest)


def unit_files(out: Path, sub: str) -> dict[str, Path]:
    folder = out / sub
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.glob("*.parquet") if not is_temp_name(p.name) and p.is_file()}


def done_keys(out: Path) -> set[str]:
    """Units complete in `out`: a faces file and no failures file."""
    return set(unit_files(out, FACES)) - set(unit_files(out, FAILURES))


def remove_outdated(out: Path, planned: set[str], sources: set[str]) -> list[Path]:
    """Remove unit files of these sources that this run's plan no longer has (the file changed
    since, or was cut into other ranges), so no face is counted twice; returns them."""
    removed = []
    for sub in (FACES, FAILURES):
        for key, path in unit_files(out, sub).items():
            if key in planned:
                continue
            covered = {item[0] for item in read_unit_metadata(path).get("items", [])}
            if covered & sources:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def read_unit_metadata(path: Path) -> dict[str, Any]:
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta.get(UNIT_METADATA, b"{}"))
    except (OSError, ValueError, pa.ArrowInvalid):
        return {}


def write_unit(out: Path, key: str, faces: bytes, failures: bytes | None) -> None:
    """A finished unit: its failures (if any), then its faces file, each renamed into place."""
    failed = out / FAILURES / f"{key}.parquet"
    if failures is not None:
        _write(failed, failures)
    _write(out / FACES / f"{key}.parquet", faces)
    if failures is None:
        failed.unlink(missing_ok=True)


def _write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_failures(out: Path) -> Iterable[dict[str, Any]]:
    for path in sorted(unit_files(out, FAILURES).values()):
        yield from pq.read_table(path).to_pylist()
