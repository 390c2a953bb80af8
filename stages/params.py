"""DVC stage `params`, the first of the DAG: check the whole parameter file.

Every other stage depends on its own file written here (`paths.params/<stage>.json`, the
values it reads), so a bad value stops `dvc repro` / `dvc exp run` here, before DVC deletes
any other stage's outputs. Needs no TensorFlow: it takes a second.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.io import atomic_dir, write_json
from pipeline.params import STAGE_PARAMS, stage_view
from pipeline.stage import run_stage


def write_views(params: dict[str, Any]) -> str:
    folder = repo_path(params["paths"]["params"])
    with atomic_dir(folder) as tmp:
        for stage in STAGE_PARAMS:
            write_json(tmp / f"{stage}.json", stage_view(params, stage))
    return f"every key valid; each stage's values -> {params['paths']['params']}/"


if __name__ == "__main__":
    run_stage("params", write_views)
