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

from pipeline.data.shards import load_split
from pipeline.io import atomic_dir, write_json
from pipeline.params import member_sections
from pipeline.training.saving import MEMBERS_FILE

SECTIONS = ("model", "train")


def member_params(params: dict[str, Any], index: int) -> dict[str, Any]:
    """params with member `index` (from 1)'s overrides applied to `model` and `train`."""
    overrides = params["ensemble"]["members"][index - 1]
    if not isinstance(overrides, dict) or set(overrides) - set(SECTIONS):
        raise ValueError(
            f"ensemble.members[{index - 1}] = {overrides!r}: each member must be a mapping "
            f"with only {' and/or '.join(SECTIONS)} overrides, e.g. {{train: {{seed: {index}}}}}"
        )
    return {**params, **member_sections(params, overrides)}


def train_members(
    params: dict[str, Any],
    prepared_dir: str | Path,
    out_dir: str | Path,
    resume_dir: str | Path,
    verbose: str | int | None = None,
) -> list[dict[str, Any]]:
    """Train every member of `params["ensemble"]["members"]` and publish them in `out_dir`."""
    members = (params.get("ensemble") or {}).get("members") or []
    # All of them first: a typo in member 4 should not wait for members 1-3 to train.
    runs = [member_params(params, index) for index in range(1, len(members) + 1)]
    resume_dir = Path(resume_dir)
    finished = []
    if runs:
        from pipeline.training.provenance import data_hash

        data = data_hash(*load_split(prepared_dir, "train"), *load_split(prepared_dir, "val"))
        for index, (run, overrides) in enumerate(zip(runs, members, strict=True), 1):
            print(f"Ensemble member {index}/{len(runs)}: {overrides}")
            done, record = _train_member(run, data, prepared_dir, resume_dir, index, verbose)
            finished.append((done, {"overrides": overrides, **record}))

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
    run: dict[str, Any],
    data: str,
    prepared_dir: str | Path,
    resume_dir: Path,
    index: int,
    verbose: str | int | None,
) -> tuple[Path, dict[str, Any]]:
    """(folder with model.keras + log, best epoch and score) of one member, trained unless
    a finished one with the same params and `data` hash is in `resume_dir` already."""
    from pipeline.training.run import run_fingerprint, train_and_save

    done = resume_dir / "done" / run_fingerprint(run["model"], run["train"], data)[:16]
    record_file = done / "record.json"
    if record_file.is_file():
        print(f"Ensemble member {index}: already trained ({done})")
        return done, json.loads(record_file.read_text(encoding="utf-8"))

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
        record = {key: summary.get(key) for key in ("best_epoch", "best_val_accuracy")}
        write_json(tmp / "record.json", record)
    return done, record
