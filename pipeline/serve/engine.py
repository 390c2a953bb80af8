"""The recognizer behind every endpoint, run on worker threads so the event loop stays free.

One model (an ONNX Runtime session may be run from several threads at once) and one
recognizer per worker for photos: OpenCV's cascade keeps scratch buffers in the classifier,
so two threads must never share a detector. Each WebSocket stream gets its own recognizer
too, because a recognizer in video mode holds that stream's tracks and smoothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import queue
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from pipeline.app.image_header import UPLOAD_LIMITS, Limits
from pipeline.app.recognizer import Face, Recognizer
from pipeline.app.records import frame_records
from pipeline.serve.uploads import decode_image

T = TypeVar("T")


@dataclass(frozen=True)
class Analysis:
    """One analysed image: its size and its records, in `ferflow predict`'s format."""

    width: int
    height: int
    records: list[dict[str, Any]]
    seconds: float


class Engine:
    """Analyses photos (stateless) and streams (tracked, smoothed) on worker threads.

    `first` is a ready recognizer for photos; `new_recognizer()` makes one for each stream
    and `new_photo_recognizer()` (default: the same) the other photo workers', all sharing
    its model.
    """

    def __init__(
        self,
        first: Recognizer,
        new_recognizer: Callable[[], Recognizer],
        *,
        workers: int | None = None,
        smoothing: float = 0.6,
        limits: Limits | None = None,
        new_photo_recognizer: Callable[[], Recognizer] | None = None,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.model = first.model
        self.labels: tuple[str, ...] = first.model.labels
        self.smoothing = smoothing
        self.limits = limits or UPLOAD_LIMITS
        self._new_recognizer = new_recognizer
        self._stills: queue.SimpleQueue[Recognizer] = queue.SimpleQueue()
        self._stills.put(first)
        for _ in range(self.workers - 1):
            self._stills.put((new_photo_recognizer or new_recognizer)())
        # Photos and streams have a pool each, one thread per core: a flood of uploads then
        # shares the cores with the streams (the OS splits them between the threads) instead
        # of queueing every camera frame behind it. Each photo thread finds a recognizer free.
        self.photo_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ferflow-photo")
        self.stream_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ferflow-stream")
        self.started = time.time()
        self.photos = 0
        self.frames = 0
        self.streams = 0

    async def predict(self, data: bytes, name: str) -> Analysis:
        """An uploaded photo's records (ImageRejected if it is too big or not an image)."""
        analysis = await _run(self.photo_pool, self._predict, data, name)
        self.photos += 1
        return analysis

    def _predict(self, data: bytes, name: str) -> Analysis:
        image = decode_image(data, self.limits, name)
        recognizer = self._stills.get()
        try:
            start = time.perf_counter()
            faces = recognizer(image)
        finally:
            self._stills.put(recognizer)
        return _analysis(image, name, 0, None, faces, self.labels, start)

    async def open_stream(self) -> Stream:
        recognizer = await _run(self.stream_pool, self._new_recognizer)
        recognizer.start_video(self.smoothing)
        return Stream(self, recognizer)

    def close(self) -> None:
        for pool in (self.photo_pool, self.stream_pool):
            pool.shutdown(wait=True, cancel_futures=True)


class Stream:
    """The frames of one client's camera: analysed one at a time, faces tracked across them."""

    def __init__(self, engine: Engine, recognizer: Recognizer) -> None:
        self.engine = engine
        self.recognizer = recognizer
        self.opened = time.perf_counter()

    async def analyse(self, data: bytes, frame: int, received: float) -> Analysis:
        """Frame number `frame` (counted from 0, dropped ones included), received at
        `received` (perf_counter seconds); ImageRejected if it is not an image."""
        seconds = received - self.opened
        analysis = await _run(self.engine.stream_pool, self._analyse, data, frame, seconds)
        self.engine.frames += 1
        return analysis

    def _analyse(self, data: bytes, frame: int, seconds: float) -> Analysis:
        image = decode_image(data, self.engine.limits, f"frame {frame}")
        start = time.perf_counter()
        faces = self.recognizer(image)
        labels = self.engine.labels
        return _analysis(image, "stream", frame, seconds, faces, labels, start)


def release_memory() -> None:
    """Hand freed heap memory back to the system. glibc keeps what a closed stream's
    recognizer freed in its per-thread arenas: 8 streams of 1280-px frames, closed, left the
    server 154 MB larger until `malloc_trim` (tests/test_serve_server.py). Elsewhere (macOS,
    musl) nothing to do."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


async def _run(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on one of the pool's threads, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _analysis(
    image: np.ndarray,
    name: str,
    frame: int,
    seconds: float | None,
    faces: list[Face],
    labels: tuple[str, ...],
    start: float,
) -> Analysis:
    records = frame_records(name, frame, seconds, faces, labels)
    return Analysis(image.shape[1], image.shape[0], records, time.perf_counter() - start)
