"""`ferflow predict`: faces and emotions in images, folders of images and video files."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.app.annotated_names import Item, annotated_names
from pipeline.app.draw import annotate
from pipeline.app.errors import AppError
from pipeline.app.media import (
    DEFAULT_MAX_PIXELS,
    STDERR_LOCK,
    VideoWriter,
    input_kind,
    list_images,
    load_image,
    open_video,
    write_image,
)
from pipeline.app.ordered import in_order
from pipeline.app.recognizer import Look, Recognizer
from pipeline.app.records import JsonLines, frame_records


@dataclass
class Summary:
    files: int = 0
    frames: int = 0
    faces: int = 0
    skipped: list[str] = field(default_factory=list)
    #: Files analysed in part only (a video that stopped decoding early, a cut-off JPEG).
    damaged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"{_count(self.faces, 'face')} in {_count(self.frames, 'frame')} of "
            f"{_count(self.files, 'file')}, {self.seconds:.2f} s ({rate:.1f} frames/s)"
        )
        if self.skipped:
            line += f"; skipped {_count(len(self.skipped), 'unreadable file')}"
        if self.damaged:
            line += f"; {_count(len(self.damaged), 'damaged file')}, read in part (see warnings)"
        return line


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class Options:
    output: Path | None = None
    annotate_dir: Path | None = None
    smoothing: float = 0.6
    recursive: bool = False
    #: None shows progress bars only when stderr is a terminal.
    progress: bool | None = None
    #: Images whose header claims more pixels are refused before decoding.
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Frames analysed at once, each on its own thread (`pipeline.app.ordered`); the records
    #: are the same for any number. 1 analyses one frame after another in the calling thread.
    workers: int = 1


def run_predict(paths: list[Path], recognizer: Recognizer, options: Options) -> Summary:
    """Analyse every input; JSON lines go to stdout or `options.output`.

    With `options.workers > 1` the recognizer's detector and model are called from that many
    threads at once (`Recognizer.look`); records, annotated copies and messages still come
    in input order, from the calling thread.
    """
    # Check every input, and where each annotated copy goes, before the first frame: a typo
    # in the last path or two copies with one name fail before anything is written.
    plan = []
    for path in paths:
        kind = input_kind(path)
        files = list_images(path, recursive=options.recursive) if kind == "folder" else [path]
        plan.append((kind, path, files))
    targets: dict[Path, Path] = {}
    if options.annotate_dir is not None:
        items = [Item(kind, path, file) for kind, path, files in plan for file in files]
        targets = annotated_names(items, options.annotate_dir)
    summary = Summary()
    start = time.perf_counter()
    with JsonLines(options.output) as out:
        for kind, path, files in plan:
            if kind == "video":
                _predict_video(path, recognizer, out, targets.get(path), options, summary)
            else:
                _predict_images(kind, path, files, recognizer, out, targets, options, summary)
        if summary.skipped and summary.files == 0:
            # Raised inside the `with`: an earlier --output file stays as it was.
            raise AppError(f"none of the {len(summary.skipped)} images could be read")
    summary.seconds = time.perf_counter() - start
    return summary


class _Progress:
    """A progress bar on stderr, or nothing; and the run's messages.

    tqdm is imported only when a bar is shown (it costs start-up otherwise). Every write to
    stderr holds `STDERR_LOCK`, so that a worker decoding an image meanwhile does not take
    it for its decoder's message.
    """

    def __init__(self, total: int | None, desc: str, unit: str, show: bool | None) -> None:
        self._bar = None
        if sys.stderr.isatty() if show is None else show:
            from tqdm import tqdm

            # Its monitor thread would redraw the bar without holding the lock.
            tqdm.monitor_interval = 0
            with STDERR_LOCK:
                self._bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self) -> None:
        if self._bar is not None:
            with STDERR_LOCK:
                self._bar.update()

    def close(self) -> None:
        if self._bar is not None:
            with STDERR_LOCK:
                self._bar.close()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _say(message: str) -> None:
    """A line on stderr, above any progress bar."""
    with STDERR_LOCK:
        tqdm = sys.modules.get("tqdm")
        if tqdm is not None:
            tqdm.tqdm.write(message, file=sys.stderr)  # clears and redraws the bars
        else:
            print(message, file=sys.stderr, flush=True)


def _warn(message: str, file: Path, summary: Summary) -> None:
    # Shown with -q too: the run goes on, but these results rest on part of the input.
    _say(f"ferflow: warning: {message}")
    summary.damaged.append(str(file))


@dataclass(frozen=True)
class _Loaded:
    """An image file read and analysed by a worker, or why it could not be read."""

    file: Path
    image: np.ndarray | None = None
    warning: str = ""
    found: Look | None = None
    error: AppError | None = None


def _predict_images(
    kind: str,
    path: Path,
    files: list[Path],
    recognizer: Recognizer,
    out: JsonLines,
    targets: dict[Path, Path],
    options: Options,
    summary: Summary,
) -> None:
    def load(file: Path) -> _Loaded:  # on a worker thread
        try:
            image, warning = load_image(file, max_pixels=options.max_pixels)
        except AppError as e:
            return _Loaded(file, error=e)
        return _Loaded(file, image, warning, recognizer.look(image))

    show = False if kind == "image" else options.progress
    with (
        _Progress(len(files), str(path), "image", show) as bar,
        contextlib.closing(in_order(load, files, options.workers)) as loaded,
    ):
        for item in loaded:
            bar.update()
            if item.error is not None:
                # A bad file in a folder is reported and skipped; the others still count.
                if kind == "image":
                    raise item.error
                summary.skipped.append(str(item.file))
                _say(f"ferflow: skipped {item.error}")
                continue
            if item.warning:
                _warn(item.warning, item.file, summary)
            assert item.image is not None and item.found is not None
            faces = recognizer.follow(item.image, item.found)
            out.write(frame_records(str(item.file), 0, None, faces, recognizer.model.labels))
            target = targets.get(item.file)
            if target is not None:
                write_image(target, annotate(item.image, faces, recognizer.model.labels))
            summary.files += 1
            summary.frames += 1
            summary.faces += len(faces)


def _analysed_frames(
    frames: Iterator[np.ndarray], recognizer: Recognizer, workers: int
) -> Iterator[tuple[np.ndarray, Look | None]]:
    """Each frame with its `look`, computed ahead on the workers when every frame is
    detected; with `detect_every > 1` whether to detect depends on the frames before, so
    the frame comes alone (None) and the recognizer analyses it in order."""
    if recognizer.detect_every != 1:
        return ((frame, None) for frame in frames)
    return in_order(lambda frame: (frame, recognizer.look(frame)), frames, workers)


def _predict_video(
    path: Path,
    recognizer: Recognizer,
    out: JsonLines,
    target: Path | None,
    options: Options,
    summary: Summary,
) -> None:
    video = open_video(path)
    recognizer.start_video(options.smoothing)
    writer = None
    frames = 0
    completed = False
    try:
        analysed = _analysed_frames(video.frames(), recognizer, options.workers)
        with (
            _Progress(video.frame_count, str(path), "frame", options.progress) as bar,
            contextlib.closing(analysed),
        ):
            for frame, found in analysed:
                faces = recognizer(frame) if found is None else recognizer.follow(frame, found)
                records = frame_records(
                    str(path), frames, frames / video.fps, faces, recognizer.model.labels
                )
                out.write(records)
                if target is not None:
                    if writer is None:
                        size = (frame.shape[1], frame.shape[0])
                        writer = VideoWriter(target, video.fps, size)
                    writer.write(annotate(frame, faces, recognizer.model.labels))
                frames += 1
                summary.faces += len(faces)
                bar.update()
        if frames == 0:
            raise AppError(f"{path}: no frame could be decoded (empty or corrupt video)")
        completed = True
        warning = video.count_warning(frames)
        if warning:
            _warn(warning, path, summary)
    finally:
        video.release()
        if writer is not None:
            writer.close(keep=completed)
        recognizer.end_video()
    summary.files += 1
    summary.frames += frames
