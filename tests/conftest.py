"""Shared pytest fixtures. Each section belongs to the part of ferflow that added it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import ServerProcess, write_moving_face_video, write_tiny_prepared

# OpenCV's FFmpeg backend reads its log level once, when a test first touches a video (a
# fixture writing one, before any `ferflow` command ran quiet_opencv): keep FFmpeg's own
# console lines out of the one-line errors the tests check, whatever the test order.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

# ---------------------------------------------------------------------------------------
# Training, evaluation and export: tiny learnable data and tiny settings (fast on 2 CPUs).
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny prepared data folder (read-only by convention: copy it to change it)."""
    return write_tiny_prepared(tmp_path_factory.mktemp("tiny") / "prepared")


@pytest.fixture
def tiny_params() -> dict[str, Any]:
    """The default params (as `load_params` returns them: lr/epochs/batch_size inside
    `train`), with a ~19k-parameter network that trains in about a second.

    A fresh dict per test: change it freely.
    """
    from pipeline.config import REPO_ROOT, merge_params
    from pipeline.params import load_params

    params = merge_params(
        load_params(REPO_ROOT / "params.yaml"),
        {
            "train": {
                "seed": 0,
                "epochs": 3,
                "batch_size": 32,
                "optimizer": "adam",
                "lr": 0.01,
                "schedule": "constant",
                "augment": {"flip": True, "rotation": 0.0, "zoom": 0.0, "shift": 0.0},
            },
            "evaluate": {"batch_size": 256, "tta": False, "tta_flip": True, "tta_shift": 2},
            "export": {"float16": False, "parity_images": 50, "parity_atol": 1e-4},
        },
    )
    # Replaced, not merged: its keys are the network builder's arguments.
    params["model"] = {"name": "vgg", "widths": [4, 8], "convs_per_block": 1, "dense": [16]}
    return params


# ---------------------------------------------------------------------------------------
# The app (`ferflow predict/live`): a small exported model, a real photo, a short video.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """emotion.onnx + labels.json exported by the pipeline's own code, from a tiny untrained VGG.

    Untrained weights still make the output depend on the input, which is what the app's
    tests need (preprocessing, batching, smoothing). Built once per test session.
    """
    from pipeline.export.onnx_export import export_onnx
    from pipeline.model_spec import write_spec
    from pipeline.models import build_model

    folder = tmp_path_factory.mktemp("app_model")
    net = build_model("vgg", widths=[4, 8], convs_per_block=1, dense=[16])
    export_onnx(net, folder / "emotion.onnx")
    write_spec(folder / "labels.json")
    return folder


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """A real photograph with one frontal face, shipped inside scikit-image (512x512 BGR)."""
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray) -> Path:
    """A short mp4 of a moving face (12 frames, 15 fps), written by OpenCV."""
    return write_moving_face_video(tmp_path_factory.mktemp("video") / "face.mp4", astronaut_bgr)


# ---------------------------------------------------------------------------------------
# Data stages (synthesize, validate, prepare): small FER2013-format CSVs.
# ---------------------------------------------------------------------------------------

#: Faces per split of the small synthetic CSV: every class present in every split.
SMALL_CSV_ROWS = {"train": 14, "val": 7, "test": 7}


@pytest.fixture(scope="session")
def small_fer_csv_bytes() -> bytes:
    """A valid FER2013 CSV (28 synthetic faces, LF line ends) as bytes; tests derive bad
    variants from it by editing the text."""
    from pipeline.data.fer_csv import encode_fer_csv
    from pipeline.data.synthetic import make_synthetic_arrays

    arrays = make_synthetic_arrays(SMALL_CSV_ROWS, seed=7)
    usage_of = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    images = np.concatenate([arrays[s][0] for s in SMALL_CSV_ROWS])
    labels = np.concatenate([arrays[s][1] for s in SMALL_CSV_ROWS])
    usages = [usage_of[s] for s in SMALL_CSV_ROWS for _ in range(SMALL_CSV_ROWS[s])]
    return encode_fer_csv(images, labels, usages)


@pytest.fixture
def small_fer_csv(tmp_path: Path, small_fer_csv_bytes: bytes) -> Path:
    """`small_fer_csv_bytes` written to a fresh file in tmp_path."""
    path = tmp_path / "fer2013.csv"
    path.write_bytes(small_fer_csv_bytes)
    return path


@pytest.fixture(scope="session")
def long_face_video(tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray) -> Path:
    """The same moving face for 10 s (300 frames at 30 fps): long enough to interrupt."""
    path = tmp_path_factory.mktemp("video") / "long.mp4"
    return write_moving_face_video(path, astronaut_bgr, frames=300, fps=30.0)


# ---------------------------------------------------------------------------------------
# Remote storage and sweeps: the real pipeline in a throwaway repository, tiny settings.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory):
    """A git + DVC copy of this repository on tiny params, `dvc repro`-ed and committed.

    Shared by the remote and sweep tests (~1 min to build); see tests/tiny_project.py.
    """
    from tiny_project import build_tiny_project

    return build_tiny_project(tmp_path_factory.mktemp("tiny-project") / "workspace")


# ---------------------------------------------------------------------------------------
# `ferflow serve`: a camera frame with real faces, and the real server in a subprocess.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shipped_model_server():
    """`ferflow serve` with the shipped FER2013 model (models/fer2013), shared by the tests
    that need a real server; stopped at the end of the session."""
    server = ServerProcess("--model-dir", "models/fer2013")
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------
# Browser tests (offline plots page, `ferflow serve`): Debian's Chromium, driven by
# Playwright, which never downloads a browser of its own.
# ---------------------------------------------------------------------------------------
