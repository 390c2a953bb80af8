"""`pip install ferflow` (a built wheel, not the editable dev install) carries the real model
and runs `ferflow predict` on a photo from any folder, with no repository around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import pytest

from pipeline.config import REPO_ROOT

#: The issue's ceiling for an app-only install (site-packages of a fresh venv).
MAX_INSTALL_MB = 800


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject.toml lists packages by hand (to map models/fer2013 in): none may be missing."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "pipeline").rglob("__init__.py")
    }
    assert found | {"pipeline.shipped_model"} == listed
    mapped = project["tool"]["setuptools"]["package-dir"]["pipeline.shipped_model"]
    assert (REPO_ROOT / mapped / "labels.json").is_file()


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


@pytest.mark.slow
def test_wheel_installed_alone_predicts_from_an_empty_folder(tmp_path, astronaut_bgr):
    wheels, venv, empty = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_QUIET": "1"}
    pip_env.pop("PYTHONPATH", None)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(REPO_ROOT)],
        check=True,
        env=pip_env,
        timeout=300,
    )
    (wheel,) = wheels.glob("ferflow-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", str(wheel)],
        check=True,
        env=pip_env,
        timeout=600,
    )
    photo = empty / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)

    done = subprocess.run(
        [venv / "bin" / "ferflow", "predict", photo.name, "-q"],
        cwd=empty,
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["faces"] == 1 and record["label"] == "happy"
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "pipeline" / "shipped_model" / "labels.json").is_file()
    assert not (site / "tensorflow").exists() and not (site / "keras").exists()
    size = folder_mb(site)
    print(f"app-only install: {size:.0f} MB in {site}")
    assert size < MAX_INSTALL_MB
