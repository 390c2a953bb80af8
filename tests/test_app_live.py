"""`ferflow live` on a video file standing in for a camera."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline.app import live
from pipeline.app.cli import main
from pipeline.app.detector import make_detector
from pipeline.app.emotion import load_model
from pipeline.app.recognizer import Recognizer
from pipeline.config import REPO_ROOT


def run(capfd, *args: object) -> tuple[int, list[dict], str]:
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_no_skip_analyses_every_frame_in_order(capfd, app_model_dir, face_video):
    code, records, err = run(
        capfd, "live", face_video, "--no-window", "--no-skip", "--model-dir", app_model_dir
    )

    assert code == 0
    assert sorted({r["frame"] for r in records}) == list(range(12))
    assert all(r["file"] == str(face_video) for r in records)
    assert all(r["track"] is not None for r in records if r["faces"])
    times = [r["time"] for r in records]
    assert times == sorted(times)  # seconds since the start, as frames arrived
    summary = err.strip().splitlines()[-1]
    assert summary.startswith(f"ferflow live {face_video}: 12 frames in ")
    assert "fps), 0 skipped" in summary


def test_paced_run_keeps_only_the_newest_frames(capfd, app_model_dir, face_video):
    """Read at the file's 15 fps like a camera; whatever was analysed is in order, no repeats."""
    code, records, err = run(capfd, "live", face_video, "--no-window", "--model-dir", app_model_dir)

    assert code == 0
    frames = sorted({r["frame"] for r in records})
    assert frames and set(frames) <= set(range(12))
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
    summary = err.strip().splitlines()[-1]
    assert f"{len(frames)} frames in" in summary and f"{12 - len(frames)} skipped" in summary


def test_max_frames_stops_early_and_output_file_is_complete(
    capfd, app_model_dir, face_video, tmp_path
):
    output = tmp_path / "live.jsonl"
    code, stdout_records, _ = run(
        capfd, "live", face_video, "--no-window", "--no-skip", "--max-frames", 5,
        "--model-dir", app_model_dir, "-o", output,
    )  # fmt: skip

    assert code == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted({r["frame"] for r in records}) == [0, 1, 2, 3, 4]
    assert stdout_records == []  # --output takes them instead of stdout


class QuitAfter:
    """Stands in for the OpenCV window (headless here): the user presses q at frame `n`."""

    def __init__(self, n: int) -> None:
        self.n, self.shown, self.closed = n, [], False

    def show(self, frame: np.ndarray) -> bool:
        self.shown.append(frame)
        return len(self.shown) < self.n

    def close(self) -> None:
        self.closed = True


def test_quitting_in_the_window_stops_and_releases_the_source(
    app_model_dir, face_video, monkeypatch
):
    window = QuitAfter(3)
    opened = []

    def open_and_remember(source):
        video, is_camera = live_open_source(source)
        opened.append(video)
        return video, is_camera

    live_open_source = live.open_source
    monkeypatch.setattr(live, "open_source", open_and_remember)
    monkeypatch.setattr(live, "Window", lambda: window)
    recognizer = Recognizer(load_model(app_model_dir), make_detector(max_size=320))

    summary = live.run_live(
        str(face_video), recognizer, live.LiveOptions(window=True, skip=False, status_every=0)
    )

    assert summary.frames == 3
    assert len(window.shown) == 3 and window.shown[0].shape == (240, 320, 3)
    assert window.closed
    assert not opened[0].capture.isOpened()  # the device is released


def test_ctrl_c_quits_cleanly(app_model_dir, long_face_video):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.app.cli", "live", str(long_face_video),
         "--model-dir", str(app_model_dir)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = process.stdout.readline()  # the first frame was analysed: the loop is running
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        # Read on from the same buffered pipe: communicate() would skip what readline()
        # already buffered.
        rest = process.stdout.read()
        err = process.stderr.read()
        process.wait(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, err
    assert "Traceback" not in err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith(f"ferflow live {long_face_video}: ")
    analysed = int(summary.split(": ")[1].split(" frames")[0])
    assert 1 <= analysed < 300  # stopped before the end of the video
    records = [json.loads(line) for line in (first + rest).splitlines()]
    assert len({r["frame"] for r in records}) == analysed  # every analysed frame was written


@pytest.mark.parametrize("source", ["0", "rtsp://127.0.0.1:9/none"])
def test_sources_that_are_not_files_are_cameras_or_streams(source, app_model_dir, capfd):
    code = main(["live", source, "--no-window", "--model-dir", str(app_model_dir)])
    err = capfd.readouterr().err
    assert code == 1
    expected = "camera 0: cannot open it" if source == "0" else "cannot open this stream"
    assert expected in err


def test_fps_meter_follows_the_frame_rate(monkeypatch):
    clock = iter(np.arange(0, 10, 0.05))  # a frame every 50 ms
    monkeypatch.setattr(live.time, "perf_counter", lambda: float(next(clock)))
    meter = live.FpsMeter()
    rates = [meter.tick() for _ in range(50)]
    assert rates[0] == 0.0
    assert rates[-1] == pytest.approx(20.0)


def test_window_is_used_only_with_a_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not live.display_available()
    monkeypatch.setenv("DISPLAY", ":0")
    assert live.display_available()
