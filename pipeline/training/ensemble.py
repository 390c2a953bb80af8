"""Extra networks for an evaluate-time ensemble: the `ensemble` stage's work.

Each member is the `model` and `train` sections of params.yaml with the member's own
overrides (`ensemble.members`), so members differ by seed, recipe or architecture:

    ensemble:
      members:
        - {train: {seed: 1}}
        - {model: {widths: [32, 64, 128, 256]}, train: {seed: 2}}

The stage writes one folder: `member-<i>.keras`, each member's DVCLive log under `logs/`,
and `members.json` (what each member is and its best validation accuracy). `evaluate`
averages the members' probabilities with the main network's (`test_ensemble`).

The folder appears only when every member is trained, all at once. A finished member is
kept in the resume folder under a fingerprint of its params and data, so a stage killed
at member 3 of 4 trains only members 3 and 4 again (member 3 from its last epoch).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import merge_params
from pipeline.data.shards import load_split
from pipeline.io import atomic_dir, write_json
from pipeline.models.ensemble import MEMBERS_FILE

SECTIONS = ("model", "train")


def member_params(params: dict[str, Any], index: int) -> dict[str, Any]:
    """params.yaml with member `index` (from 1)'s overrides applied to `model` and `train`."""
    overrides = params["ensemble"]["members"][index - 1]
    if not isinstance(overrides, dict) or set(overrides) - set(SECTIONS):
        raise ValueError(
            f"ensemble.members[{index - 1}] = {overrides!r}: each member must be a mapping "
            f"with only {' and/or '.join(SECTIONS)} overrides, e.g. {{train: {{seed: {index}}}}}"
        )
    if "name" in overrides.get("model", {}):
        # Another architecture: its parameters replace the main network's, not merge into them.
        model = dict(overrides["model"])
    else:
        model = merge_params(params["model"], overrides.get("model", {}))
    return {
        **params,
        "model": model,
        "train": merge_params(params["train"], overrides.get("train", {})),
    }


def train_members(
    params: dict[str, Any],
    prepared_dir: str | Path,
    out_dir: str | Path,
    resume_dir: str | Path,
    verbose: str | int | None = None,
) -> list[dict[str, Any]]:
    """Train every member of `params["ensemble"]["members"]` and publish them in `out_dir`."""
    members = (params.get("ensemble") or {}).get("members") or []
    for index in range(1, len(members) + 1):
        member_params(params, index)  # a typo in member 4 should not wait for 1-3 to train
    resume_dir = Path(resume_dir)
    finished = [
        _train_member(params, index, prepared_dir, resume_dir, verbose)
        for index in range(1, len(members) + 1)
    ]

    summary = []
    with atomic_dir(out_dir) as tmp:
        for index, (done, record) in enumerate(finished, 1):
            shutil.copy(done / "model.keras", tmp / f"member-{index}.keras")
            shutil.copytree(done / "log", tmp / "logs" / f"member-{index}")
            summary.append({"member": index, "file": f"member-{index}.keras", **record})
        write_json(tmp / MEMBERS_FILE, summary)
    shutil.rmtree(resume_dir, ignore_errors=True)
    return summary


def _train_member(
    params: dict[str, Any],
    index: int,
    prepared_dir: str | Path,
    resume_dir: Path,
    verbose: str | int | None,
) -> tuple[Path, dict[str, Any]]:
    """(folder with model.keras + log, record) of member `index`, trained unless already done."""
    import keras

    from pipeline.training.resume import fingerprint
    from pipeline.training.run import data_hash, train_and_save

    run = member_params(params, index)
    data = data_hash(*load_split(prepared_dir, "train"), *load_split(prepared_dir, "val"))
    key = fingerprint(
        model=run["model"], train=run["train"], data=data, backend=keras.backend.backend()
    )
    done = resume_dir / "done" / key[:16]
    record_file = done / "record.json"
    if record_file.is_file():
        print(f"Ensemble member {index}: already trained ({done})")
        return done, json.loads(record_file.read_text(encoding="utf-8"))

    count = len(params["ensemble"]["members"])
    print(f"Ensemble member {index}/{count}: {params['ensemble']['members'][index - 1]}")
    with atomic_dir(done) as tmp:
        train_and_save(
            run,
            prepared_dir,
            tmp / "model.keras",
            tmp / "log",
            resume_dir / f"member-{index}",
            verbose=verbose,
        )
        summary = json.loads((tmp / "log" / "metrics.json").read_text(encoding="utf-8"))
        record = {
            "overrides": params["ensemble"]["members"][index - 1],
            "best_epoch": summary.get("best_epoch"),
            "best_val_accuracy": summary.get("best_val_accuracy"),
        }
        write_json(tmp / "record.json", record)
    return done, record
