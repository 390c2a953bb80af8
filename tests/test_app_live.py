"""`ferflow live` on a video file standing in for a camera."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from pipeline.app import live
from pipeline.app.detector import make_detector
from pipeline.app.emotion import load_model
from pipeline.app.media import Video
from pipeline.app.recognizer import Recognizer
from pipeline.cli import main
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


class GatedCamera:
    """Stands in for a camera's cv2.VideoCapture: frame i is a 2x2 image of value i, and
    `read` delivers a frame only once the test lets it through (`let_through`)."""

    def __init__(self, total: int) -> None:
        self.total, self.allowed, self.calls = total, 0, 0
        self._changed = threading.Condition()

    def read(self) -> tuple[bool, np.ndarray | None]:
        with self._changed:
            self.calls += 1
            self._changed.notify_all()
            index = self.calls - 1
            if not self._changed.wait_for(lambda: index < self.allowed, timeout=10):
                raise TimeoutError("the test never let this frame through")
            if index >= self.total:
                return False, None
            return True, np.full((2, 2, 3), index, np.uint8)

    def let_through(self, count: int) -> None:
        """Deliver `count` more reads, and return once the reader has stored the last of them
        (it is back in `read`, waiting for the next one) or has ended."""
        with self._changed:
            self.allowed += count
            self._changed.notify_all()
            target = min(self.allowed, self.total) + 1
            assert self._changed.wait_for(lambda: self.calls >= target, timeout=10)


def test_reader_hands_out_only_the_newest_frame():
    camera = GatedCamera(total=8)
    video = Video(camera, "camera 0", 30.0, None, (2, 2))  # type: ignore[arg-type]
    reader = live.LatestFrameReader(video, pace=False).start()

    def next_index() -> int | None:
        item = reader.next()
        if item is None:
            return None
        index, frame = item
        assert (frame == index).all()  # the frame that goes with the index
        return index

    try:
        camera.let_through(5)  # frames 0-4 arrive while nothing is analysed
        assert next_index() == 4  # 0-3 are dropped
        camera.let_through(2)
        assert next_index() == 6  # 5 is dropped
        camera.let_through(2)  # frame 7, then the end of the source
        assert next_index() == 7
        assert next_index() is None
        assert reader.read_count == 8
    finally:
        camera.let_through(10)  # never leave the thread waiting in `read`
        assert reader.stop()


def test_paced_run_analyses_frames_in_order_and_counts_the_skipped(
    capfd, app_model_dir, face_video
):
    """Read at the file's 15 fps like a camera: analysed frames in order, no repeats."""
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


class FakeHighGui:
    """OpenCV's window calls (no display here), replaced one by one; ferflow's Window class
    runs as it is. `keys[i]` is what cv2.waitKey returns after the i-th frame (-1: none)."""

    def __init__(self, keys: list[int], closed_at: int | None = None) -> None:
        self.keys, self.closed_at = keys, closed_at
        self.shown: list[np.ndarray] = []
        self.destroyed: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DISPLAY", ":99")
        monkeypatch.setattr(cv2, "namedWindow", lambda title, flags=0: None)
        monkeypatch.setattr(cv2, "imshow", lambda title, frame: self.shown.append(frame))
        monkeypatch.setattr(cv2, "waitKey", self.wait_key)
        monkeypatch.setattr(cv2, "getWindowProperty", self.window_property)
        monkeypatch.setattr(cv2, "destroyWindow", self.destroyed.append)

    def wait_key(self, delay: int = 0) -> int:
        n = len(self.shown)
        return self.keys[n - 1] if 0 < n <= len(self.keys) and not self.destroyed else -1

    def window_property(self, title: str, prop: int) -> float:
        assert prop == cv2.WND_PROP_VISIBLE
        return 0.0 if self.closed_at is not None and len(self.shown) >= self.closed_at else 1.0


@pytest.fixture(scope="module")
def recognizer(app_model_dir):
    return Recognizer(load_model(app_model_dir), make_detector(max_size=320))


@pytest.mark.parametrize(
    "key",
    [ord("q"), ord("Q"), 27, 0x10_0000 | ord("q")],  # 27 = Esc; GTK adds modifier bits
    ids=["q", "Q", "Esc", "q-with-NumLock"],
)
def test_quit_key_in_the_window_stops_and_releases_the_source(
    key, recognizer, face_video, monkeypatch
):
    gui = FakeHighGui(keys=[-1, ord("x"), key])  # a quit key after the third frame
    gui.install(monkeypatch)
    opened = []

    def open_and_remember(source):
        video, is_camera = live_open_source(source)
        opened.append(video)
        return video, is_camera

    live_open_source = live.open_source
    monkeypatch.setattr(live, "open_source", open_and_remember)

    summary = live.run_live(
        str(face_video), recognizer, live.LiveOptions(window=True, skip=False, status_every=0)
    )

    assert summary.frames == 3
    assert len(gui.shown) == 3 and gui.shown[0].shape == (240, 320, 3)
    assert gui.destroyed == [live.WINDOW_TITLE]
    assert not opened[0].capture.isOpened()  # the device is released


def test_closing_the_window_stops_and_other_keys_do_not(recognizer, face_video, monkeypatch):
    gui = FakeHighGui(keys=[ord("x"), ord(" "), 13], closed_at=5)
    gui.install(monkeypatch)

    summary = live.run_live(
        str(face_video), recognizer, live.LiveOptions(window=True, skip=False, status_every=0)
    )

    assert summary.frames == len(gui.shown) == 5
    assert gui.destroyed == [live.WINDOW_TITLE]


def test_ctrl_c_quits_cleanly(app_model_dir, long_face_video):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "live", str(long_face_video),
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
