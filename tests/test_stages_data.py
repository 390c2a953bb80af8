"""The data stages as DVC runs them: each stage writes exactly its declared outputs, a
second `dvc repro` skips everything, bad data stops it. (Declared deps vs real imports:
tests/test_dvc_yaml.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import REPO_ROOT

DATA_STAGES = ("params", "synthesize", "validate", "prepare")
TINY_ROWS = {"train": 21, "val": 7, "test": 7}


def dvc_yaml() -> dict:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def test_prepare_runs_after_validate() -> None:
    stages = dvc_yaml()["stages"]
    validate_outputs = [
        o if isinstance(o, str) else next(iter(o)) for o in stages["validate"]["outs"]
    ]
    assert set(validate_outputs) & set(stages["prepare"]["deps"])


# ---------------------------------------------------------------------------------------
# End to end in a temporary copy of the repository (real DVC, real stage processes).
# ---------------------------------------------------------------------------------------


def make_repo_copy(dest: Path, raw: str | None = None) -> Path:
    """pipeline/, stages/, params.yaml, dvc.yaml in a fresh git + DVC repository."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, dest / name)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["synthesize"]["rows"] = TINY_ROWS
    if raw is not None:
        params["data"]["raw"] = raw
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    run(dest, "git", "init", "-q")
    run(dest, "dvc", "init", "-q")
    run(dest, "dvc", "config", "core.analytics", "false")
    return dest


def run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        # The copy's own `pipeline` package, not the checkout's (installed editable).
        "PYTHONPATH": str(repo),
        "DVC_NO_ANALYTICS": "1",
    }
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def files_under(repo: Path) -> set[str]:
    skip = {".git", ".dvc", "pipeline", "stages"}
    return {
        str(p.relative_to(repo))
        for p in repo.rglob("*")
        if p.is_file() and p.relative_to(repo).parts[0] not in skip
    }


def declared_outputs(repo: Path) -> dict[str, list[str]]:
    """Stage name -> its outs and metrics, resolved by DVC itself (interpolation included)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {
            stage.name: [str(Path(o.fs_path).relative_to(repo)) for o in stage.outs]
            for stage in dvc.index.stages
            if stage.name in DATA_STAGES
        }


def is_under(path: str, outputs: list[str]) -> bool:
    return any(path == out or path.startswith(out + "/") for out in outputs)


@pytest.mark.slow
def test_each_stage_writes_exactly_what_dvc_yaml_declares_and_repro_skips(
    tmp_path: Path,
) -> None:
    repo = make_repo_copy(tmp_path / "repo")
    outputs = declared_outputs(repo)
    # DVC's own bookkeeping, written next to any output: not the stage's doing.
    bookkeeping = {"dvc.lock"}
    before = files_under(repo)
    for stage in DATA_STAGES:
        run(repo, "dvc", "repro", "--single-item", stage)
        after = files_under(repo)
        written = {
            f for f in after - before if f not in bookkeeping and not f.endswith(".gitignore")
        }
        stray = sorted(f for f in written if not is_under(f, outputs[stage]))
        assert not stray, f"{stage} wrote undeclared files: {stray}"
        for out in outputs[stage]:
            assert (repo / out).exists(), f"{stage} did not write its declared {out}"
        before = after

    again = run(repo, "dvc", "repro", "prepare")
    for stage in DATA_STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in again.stdout
    assert "Running stage" not in again.stdout
    status = run(repo, "dvc", "status", "prepare", "--json")
    assert json.loads(status.stdout or "{}") == {}

    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert {s: m["rows"] for s, m in manifest["splits"].items()} == TINY_ROWS


@pytest.mark.slow
def test_dvc_repro_stops_on_bad_data_and_keeps_earlier_shards(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(small_fer_csv_bytes)
    repo = make_repo_copy(tmp_path / "repo", raw=str(good))
    run(repo, "dvc", "repro", "prepare")
    shards = {p: p.read_bytes() for p in (repo / "data/prepared").rglob("*") if p.is_file()}
    assert len(shards) == 7

    # The same file, now with a label 9 on row 4: pointed at by data.raw, it must stop
    # `validate`, so `prepare` never runs and the earlier shards stay.
    lines = small_fer_csv_bytes.split(b"\n")
    lines[4] = b"9" + lines[4][1:]
    good.write_bytes(b"\n".join(lines))
    result = run(repo, "dvc", "repro", "prepare", check=False)
    assert result.returncode != 0
    assert f"{good}: failed 1 of 9 checks" in result.stderr
    assert "row 4 (line 5): emotion is '9', expected an integer 0-6" in result.stderr
    assert {p: p.read_bytes() for p in (repo / "data/prepared").rglob("*") if p.is_file()} == shards


def snapshot(repo: Path, *folders: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for folder in folders
        for p in sorted((repo / folder).rglob("*"))
        if p.is_file() and p.name != ".gitignore"
    }


@pytest.mark.slow
def test_after_a_failed_stage_the_readmes_commands_restore_earlier_outputs(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    """DVC deletes a stage's outputs before it runs, so a failed stage leaves them missing
    or replaced by its own report of the failure: the README says how to get the last good
    ones back, and this runs exactly that."""
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "`dvc checkout --force STAGE` (its cached outputs;" in readme
    assert "`git checkout -- reports/validation`" in readme

    good = tmp_path / "good.csv"
    good.write_bytes(small_fer_csv_bytes)
    repo = make_repo_copy(tmp_path / "repo", raw=str(good))
    run(repo, "dvc", "repro", "prepare")
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "good run")
    before = snapshot(repo, "reports/validation", "data/prepared")

    lines = small_fer_csv_bytes.split(b"\n")
    lines[4] = b"9" + lines[4][1:]
    good.write_bytes(b"\n".join(lines))
    assert run(repo, "dvc", "repro", "prepare", check=False).returncode != 0
    assert snapshot(repo, "reports/validation", "data/prepared") != before

    run(repo, "dvc", "checkout", "--force", "validate")
    run(repo, "git", "checkout", "--", "reports/validation")

    assert snapshot(repo, "reports/validation", "data/prepared") == before
