"""`ferflow live`: a camera, stream or video file, analysed frame by frame as it arrives.

A reader thread keeps only the newest frame, so when analysis is slower than the source the
app skips frames instead of falling further and further behind (a video file is read at its
own frame rate, standing in for a camera). Annotated frames go to a window when there is a
display, JSON lines to stdout otherwise. `q` (or Esc) in the window, or Ctrl-C, ends the run
cleanly and releases the device.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.app.draw import annotate, draw_status
from pipeline.app.errors import AppError
from pipeline.app.media import Video, open_source
from pipeline.app.recognizer import Recognizer
from pipeline.app.records import JsonLines, frame_records
from pipeline.app.video_backend import require_opencv

WINDOW_TITLE = "ferflow live (q to quit)"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27 = Esc


class LatestFrameReader:
    """Reads a source on its own thread and hands out only the newest frame.

    Frames that arrive while the previous one is still being analysed are dropped (and
    counted), which is what keeps a live view live. `pace=True` reads a file no faster than its
    frame rate, as a camera would deliver it.
    """

    def __init__(self, video: Video, *, pace: bool) -> None:
        self.video = video
        self.pace = pace
        self.read_count = 0
        self._latest: tuple[int, np.ndarray] | None = None
        self._ended = False
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = 1.0 / self.video.fps
        next_time = time.perf_counter()
        while not self._stop.is_set():
            ok, frame = self.video.capture.read()
            if not ok:
                break
            with self._ready:
                self._latest = (self.read_count, frame)
                self.read_count += 1
                self._ready.notify()
            if self.pace:
                next_time += interval
                delay = next_time - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
        with self._ready:
            self._ended = True
            self._ready.notify()

    def next(self) -> tuple[int, np.ndarray] | None:
        """The newest unseen frame and its index in the source, or None when the source ended."""
        with self._ready:
            while self._latest is None and not self._ended:
                # A timeout keeps Ctrl-C responsive while waiting for a slow camera.
                self._ready.wait(timeout=0.1)
            latest, self._latest = self._latest, None
            return latest

    def stop(self) -> bool:
        """Stop reading; False if the thread is still blocked in a read (a stalled stream)."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        return not self._thread.is_alive()


class SequentialReader:
    """Every frame in order, none dropped (`--no-skip`): for files and reproducible runs."""

    def __init__(self, video: Video) -> None:
        self.video = video
        self.read_count = 0

    def next(self) -> tuple[int, np.ndarray] | None:
        ok, frame = self.video.capture.read()
        if not ok:
            return None
        self.read_count += 1
        return self.read_count - 1, frame

    def stop(self) -> bool:
        return True


class Window:
    """An OpenCV window; AppError without a display or in a build without GUI (headless)."""

    def __init__(self, title: str = WINDOW_TITLE) -> None:
        self.title = title
        if not display_available():
            raise AppError(
                "no display to open a window on (DISPLAY is not set); use --no-window to print "
                "JSON lines instead"
            )
        self.cv2 = cv2 = require_opencv("the live window")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise AppError(
                "this OpenCV build has no window support (opencv-python-headless, which "
                "ferflow[video] installs); pass --no-window, or for a window swap the build: "
                "pip uninstall opencv-python-headless && pip install 'opencv-python>=4.10,<5'"
            ) from None

    def show(self, frame: np.ndarray) -> bool:
        """Show a frame; False once the user pressed q/Esc or closed the window."""
        cv2 = self.cv2
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        return key not in QUIT_KEYS and not closed

    def close(self) -> None:
        cv2 = self.cv2
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # lets the GUI thread actually take the window down
        except cv2.error:
            pass  # the user closed it already


def display_available() -> bool:
    """On Linux a window needs an X11 or Wayland display; other systems always have one."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


@dataclass
class LiveOptions:
    #: True: window; False: JSON lines; None: window if a display exists.
    window: bool | None = None
    output: Path | None = None
    smoothing: float = 0.6
    skip: bool = True
    max_frames: int | None = None
    #: Seconds between fps lines on stderr when there is no window (0: none).
    status_every: float = 2.0


@dataclass
class LiveSummary:
    source: str
    frames: int = 0
    read: int = 0
    faces: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        skipped = self.read - self.frames
        return (
            f"live {self.source}: {self.frames} frames in {self.seconds:.1f} s "
            f"({self.fps:.1f} fps), {skipped} skipped, {self.faces} faces"
        )


class FpsMeter:
    """Frames per second over the last second or so (an exponential average of intervals)."""

    def __init__(self) -> None:
        self._last: float | None = None
        self._interval: float | None = None

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            self._interval = dt if self._interval is None else 0.9 * self._interval + 0.1 * dt
        self._last = now
        return 1.0 / self._interval if self._interval else 0.0


def run_live(source: str, recognizer: Recognizer, options: LiveOptions) -> LiveSummary:
    """Analyse `source` until it ends, the user quits, or `max_frames` frames were analysed."""
    video, is_camera = open_source(source)
    window: Window | None = None
    reader: LatestFrameReader | SequentialReader | None = None
    try:
        use_window = display_available() if options.window is None else options.window
        if use_window:
            try:
                window = Window()
            except AppError as e:
                if options.window:  # asked for explicitly: that is an error
                    raise
                print(f"ferflow: {e}; printing JSON lines instead", file=sys.stderr)
        recognizer.start_video(options.smoothing)
        if options.skip:
            reader = LatestFrameReader(video, pace=not is_camera).start()
        else:
            reader = SequentialReader(video)
        # Records go to --output if given, else to stdout unless a window shows the results.
        write_records = window is None or options.output is not None
        summary = _loop(video, reader, recognizer, window, options, write_records)
        if summary.read == 0:
            raise AppError(f"{video.name}: opened, but no frame could be read from it")
    finally:
        # Releasing a capture that another thread is still reading from can crash OpenCV;
        # a reader stuck in a stalled stream is left to end with the process instead.
        if reader is None or reader.stop():
            video.release()
        if window is not None:
            window.close()
        recognizer.end_video()
    return summary


@contextlib.contextmanager
def _ctrl_c_sets(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C is how a live run ends: it sets `stop`, and the loop finishes the frame in hand.

    A second Ctrl-C raises KeyboardInterrupt as usual (e.g. a stream stalled in a read).
    Signal handlers can only be set in the main thread; elsewhere Ctrl-C stays an exception.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _loop(
    video: Video,
    reader: LatestFrameReader | SequentialReader,
    recognizer: Recognizer,
    window: Window | None,
    options: LiveOptions,
    write_records: bool,
) -> LiveSummary:
    summary = LiveSummary(video.name)
    meter = FpsMeter()
    start = time.perf_counter()
    last_status = start
    labels = recognizer.model.labels
    stop = threading.Event()
    try:
        with JsonLines(options.output) as out, _ctrl_c_sets(stop):
            try:
                while not stop.is_set() and (
                    options.max_frames is None or summary.frames < options.max_frames
                ):
                    item = reader.next()
                    if item is None:
                        break
                    index, frame = item
                    faces = recognizer(frame)
                    now = time.perf_counter()
                    fps = meter.tick()
                    if write_records:
                        out.write(frame_records(video.name, index, now - start, faces, labels))
                    summary.frames += 1
                    summary.faces += len(faces)
                    if window is not None:
                        shown = annotate(frame, faces, labels)
                        draw_status(shown, f"{fps:.1f} fps  {len(faces)} faces")
                        if not window.show(shown):
                            break
                    elif options.status_every and now - last_status >= options.status_every:
                        print(f"live: {fps:.1f} fps, {len(faces)} faces", file=sys.stderr)
                        last_status = now
            except KeyboardInterrupt:
                pass  # a second Ctrl-C: stop now, still keeping what was written
    finally:
        reader.stop()
        summary.seconds = time.perf_counter() - start
        summary.read = reader.read_count
    return summary
