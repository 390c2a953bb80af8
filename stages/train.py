"""DVC stage `train`: fit the network `model.name` on the prepared train split.

Model selection (best epoch) uses the validation split only. Writes `paths.model` (the
network without augmentation) and a DVCLive log in `paths.train_log` with `run.json`.
Interrupt it and run `dvc repro` again: training resumes from the last completed epoch.

`--check`: train nothing; check that outputs brought back from another machine (the GPU
one, which has no DVC) match the local prepared data and params, before `dvc commit train`.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.data.shards import load_split
from pipeline.stage import run_stage
from pipeline.training.provenance import check_outputs, data_hash
from pipeline.training.run import best_epoch, train_and_save


def train(params: dict[str, Any], check: bool = False) -> str:
    paths = params["paths"]
    prepared, model, log = (repo_path(paths[k]) for k in ("prepared", "model", "train_log"))
    if check:
        data = data_hash(*load_split(prepared, "train"), *load_split(prepared, "val"))
        record = check_outputs(params["model"], params["train"], data, model, log)
        return (
            f"{paths['model']} and {paths['train_log']}/ match the local data and params "
            f"(trained on {record['device']}); record them with `dvc commit train`"
        )
    train_and_save(params, prepared, model, log, repo_path(paths["train_resume"]))
    epoch, accuracy = best_epoch(log) or (-1, float("nan"))
    return (
        f"best epoch {epoch + 1}/{params['train']['epochs']} (val accuracy {accuracy:.4f}) "
        f"-> {paths['model']}"
    )


if __name__ == "__main__":
    run_stage(
        "train",
        train,
        on_interrupt="the last finished epoch is kept; run `dvc repro` again to resume from it",
        flags={"check": "check brought-back outputs against the local data and params"},
    )
