"""DVC stage `synthesize`: draw the built-in synthetic FER2013 (the default `data.raw`).

Writes `paths.synthetic`, a FER2013-format CSV of `synthesize.rows` faces per split drawn
with `synthesize.seed` (see docs/data.md).
"""

from __future__ import annotations

import time

from pipeline.config import load_params, repo_path
from pipeline.data.synthetic import write_synthetic_csv


def main() -> None:
    params = load_params()
    settings = params["synthesize"]
    out = repo_path(params["paths"]["synthetic"])
    start = time.perf_counter()
    write_synthetic_csv(out, rows=settings["rows"], seed=settings["seed"])
    total = sum(settings["rows"].values())
    print(f"synthesize: {total:,} faces -> {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
