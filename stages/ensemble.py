"""DVC stage `ensemble`: train the extra networks of `ensemble.members` (none by default).

Each member is the `model` and `train` params with its own overrides; `evaluate` averages
their probabilities with the main network's and reports `test_ensemble`. Writes the folder
`paths.ensemble` (networks, their DVCLive logs, members.json), all at once at the end.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.stage import run_stage
from pipeline.training.ensemble import train_members


def ensemble(params: dict[str, Any]) -> str:
    paths = params["paths"]
    members = train_members(
        params,
        prepared_dir=repo_path(paths["prepared"]),
        out_dir=repo_path(paths["ensemble"]),
        resume_dir=repo_path(paths["ensemble_resume"]),
    )
    if not members:
        return "no members (ensemble.members is empty), nothing to train"
    return f"{len(members)} member(s) -> {paths['ensemble']}"


if __name__ == "__main__":
    run_stage(
        "ensemble",
        ensemble,
        on_interrupt="finished members are kept; run `dvc repro` again to go on",
    )
