"""DVC stage `synthesize`: draw the built-in synthetic FER2013 (the default `data.raw`).

Writes `paths.synthetic`, a FER2013-format CSV of `synthesize.rows` faces per split drawn
with `synthesize.seed` (see docs/data.md).
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.data.synthetic import write_synthetic_csv
from pipeline.errors import StageError
from pipeline.stage import run_stage


def synthesize(params: dict[str, Any]) -> str:
    settings = params["synthesize"]
    if settings is None:
        raise StageError("params: `synthesize` is null, so there is no synthetic data to draw")
    out = params["paths"]["synthetic"]
    write_synthetic_csv(repo_path(out), rows=settings["rows"], seed=settings["seed"])
    return f"{sum(settings['rows'].values()):,} faces -> {out}"


if __name__ == "__main__":
    run_stage("synthesize", synthesize)
