"""DVC stage `prepare`: parse `data.raw` once into uint8 shards, one folder per split.

Runs after `validate` and refuses a file whose validation summary failed or belongs to
another file (sha256). Writes `paths.prepared` atomically: on any error the previous shards
stay as they were.
"""

from __future__ import annotations

import sys
import time

from pipeline.config import load_params, repo_path
from pipeline.data.errors import DataError
from pipeline.data.prepare import prepare_csv


def main() -> int:
    params = load_params()
    raw = params["data"]["raw"]
    prepared = repo_path(params["paths"]["prepared"])
    start = time.perf_counter()
    print(f"prepare: parsing {raw} ...", flush=True)
    try:
        manifest = prepare_csv(
            repo_path(raw), repo_path(params["paths"]["validation"]), prepared, source_name=raw
        )
    except (DataError, FileNotFoundError) as e:
        print(f"prepare: error: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{split} {m['rows']:,}" for split, m in manifest["splits"].items())
    print(f"prepare: {counts} rows -> {prepared} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
