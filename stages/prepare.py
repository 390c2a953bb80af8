"""DVC stage `prepare`: read `data.raw` (a CSV or an image folder) once into uint8 shards,
one folder per split, with the data's label set in the manifest.

Runs after `validate` and refuses a file whose validation summary failed or belongs to
another file (sha256). Writes `paths.prepared` atomically: on any error the previous shards
stay as they were.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.data.prepare import prepare_csv
from pipeline.stage import run_stage


def prepare(params: dict[str, Any]) -> str:
    raw, paths = params["data"]["raw"], params["paths"]
    print(f"prepare: parsing {raw} ...", flush=True)
    manifest = prepare_csv(
        repo_path(raw),
        repo_path(paths["validation"]),
        repo_path(paths["prepared"]),
        raw,
        data=params["data"],
    )
    counts = ", ".join(f"{split} {m['rows']:,}" for split, m in manifest["splits"].items())
    names = manifest["labels"]["names"]
    return f"{counts} rows, {len(names)} classes ({', '.join(names)}) -> {paths['prepared']}"


if __name__ == "__main__":
    run_stage("prepare", prepare)
