"""The default DVC remote: no account needed, and push -> fresh clone -> pull is lossless."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from configobj import ConfigObj

from pipeline.config import REPO_ROOT


def test_default_remote_is_a_folder_beside_the_checkout() -> None:
    config = ConfigObj(str(REPO_ROOT / ".dvc" / "config"))
    name = config["core"]["remote"]
    url = config[f'remote "{name}"']["url"]
    # DVC resolves a relative url against .dvc/, so this is ../ferflow-dvc-storage from the
    # checkout: outside the repository, writable without any account or credentials.
    assert (REPO_ROOT / ".dvc" / url).resolve() == REPO_ROOT.parent / "ferflow-dvc-storage"


def _digests(root: Path, relative: list[str]) -> dict[str, str]:
    """sha256 of every file under the given paths (files or folders), by relative path."""
    digests = {}
    for rel in relative:
        target = root / rel
        files = (
            [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        )
        for path in files:
            digests[path.relative_to(root).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return digests


@pytest.mark.slow
def test_push_then_pull_in_a_fresh_clone_restores_data_and_model(tiny_project) -> None:
    root = tiny_project.root
    storage = root.parent / "ferflow-dvc-storage"
    cached = ["data/prepared", "data/synthetic", "models/model.keras", "models/emotion.onnx"]
    original = _digests(root, cached)
    assert any(k.startswith("data/prepared/train/") for k in original), original.keys()

    tiny_project.dvc("push")
    assert any(p.is_file() for p in storage.rglob("*")), "dvc push wrote nothing"
    assert "in sync" in tiny_project.dvc("status", "--cloud")

    # A fresh clone has the code and dvc.lock but none of the DVC-tracked data.
    clone = root.parent / "clone"
    tiny_project.git("clone", "-q", str(root), str(clone))
    assert (
        not (clone / "data" / "prepared").exists()
        and not (clone / "models" / "model.keras").exists()
    )

    # No remote configuration in the clone: the default (a sibling folder) is the same one.
    tiny_project.dvc("pull", cwd=clone)
    assert _digests(clone, cached) == original
    assert "up to date" in tiny_project.dvc("status", cwd=clone)
