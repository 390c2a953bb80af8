"""Shared pytest fixtures. Each section belongs to the part of ferflow that added it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# OpenCV's FFmpeg backend reads its log level once, when a test first touches a video (a
# fixture writing one, before any `ferflow` command ran quiet_opencv): keep FFmpeg's own
# console lines out of the one-line errors the tests check, whatever the test order.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

# ---------------------------------------------------------------------------------------
# Training, evaluation and export: tiny learnable data and tiny settings (fast on 2 CPUs).
# ---------------------------------------------------------------------------------------

#: Rows per split of the tiny prepared data set.
TINY_SPLIT_SIZES = {"train": 140, "val": 70, "test": 70}


def write_tiny_prepared(root: Path, sizes: dict[str, int] = TINY_SPLIT_SIZES, seed: int = 0):
    """Prepared shards in the `prepare` stage's layout; class k = a bright bar at row 4+6k.

    Learnable in a few epochs by a tiny network, so tests can check real learning.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in sizes.items():
        labels = rng.integers(0, 7, count).astype(np.int64)
        images = rng.integers(0, 60, (count, 48, 48)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 4 + 6 * k : 8 + 6 * k, :] = 220
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "images.npy", images)
        np.save(folder / "labels.npy", labels)
    manifest = {"splits": {split: {"rows": count} for split, count in sizes.items()}}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


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


def write_moving_face_video(
    path: Path, astronaut: np.ndarray, frames: int = 12, fps: float = 15.0
) -> Path:
    """A 320x240 video: the astronaut photo (240 px high) sliding 4 px per frame, right for
    20 frames, then back left, and so on."""
    import cv2

    photo = cv2.resize(astronaut, (240, 240), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
    assert writer.isOpened(), "OpenCV cannot write mp4v videos here"
    for i in range(frames):
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = 4 * abs((i + 20) % 40 - 20)
        frame[:, x : x + 240] = photo
        writer.write(frame)
    writer.release()
    return path


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


def camera_frame(astronaut: np.ndarray, width: int = 640) -> np.ndarray:
    """A 4:3 frame of two real faces (the astronaut, once mirrored) over a photo of coffee."""
    import cv2
    from skimage import data

    frame = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    head = astronaut[20:230, 125:325]  # her head, hair and collar
    frame[120:393, 40:300] = cv2.resize(head, (260, 273), interpolation=cv2.INTER_AREA)
    mirrored = cv2.flip(cv2.resize(head, (220, 231), interpolation=cv2.INTER_AREA), 1)
    frame[150:381, 380:600] = mirrored
    if width == 640:
        return frame
    return cv2.resize(frame, (width, width * 3 // 4), interpolation=cv2.INTER_AREA)


class ServerProcess:
    """`ferflow serve` in a subprocess: its URL (from the line it prints once listening) and
    everything it wrote to stderr since. A server that prints no URL within `start_s`
    seconds (hung, or stuck loading) is killed and the test fails with its log."""

    def __init__(self, *args: str, start_s: float = 120.0) -> None:
        import re
        import subprocess
        import sys
        import threading

        from pipeline.config import REPO_ROOT

        command = [sys.executable, "-m", "pipeline.cli", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.log: list[str] = []
        self._url_pattern = re.compile(r"http://\S+:\d+")
        self._listening = threading.Event()
        self.url = ""
        # One thread reads stderr from the start, so waiting for the URL line is bounded in
        # time (a blocking readline here could wait forever on a server that hangs).
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._listening.wait(timeout=start_s)
        if not self.url:
            self.process.kill()
            self._reader.join(timeout=5)
            raise AssertionError(
                f"ferflow serve printed no URL within {start_s:g} s:\n" + "".join(self.log)
            )

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            found = None if self.url else self._url_pattern.search(line)
            if found:  # model loading may print first; the URL line means listening
                self.url = found.group(0)
                self._listening.set()
        self._listening.set()  # the process ended (without a URL, if none was seen)

    def stop(self) -> int:
        self.process.terminate()
        try:
            code = self.process.wait(timeout=15)
        except Exception:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        return code


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

#: Where Chromium lives on Debian (.ci/run installs it), Ubuntu and GitHub's runners (Chrome);
#: FERFLOW_CHROMIUM names another build.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: Headless as root, no GPU, and none of the background traffic a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The Chromium executable the browser tests drive; fails (never skips) without one."""
    for path in (os.environ.get("FERFLOW_CHROMIUM"), *CHROMIUM_PATHS):
        if path and Path(path).is_file():
            return path
    pytest.fail(
        "no Chromium found for the browser tests: `apt-get install chromium` (Debian/Ubuntu; "
        ".ci/run does it) or set FERFLOW_CHROMIUM to a Chromium or Chrome executable"
    )


# ---------------------------------------------------------------------------------------
# Leftovers of killed runs (pipeline/io.py names temporary files after their process).
# ---------------------------------------------------------------------------------------


def ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)
