"""`ferflow predict`: faces and emotions in images, folders of images and video files."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.app.annotated_names import Item, annotated_names
from pipeline.app.draw import annotate
from pipeline.app.errors import AppError
from pipeline.app.media import (
    DEFAULT_MAX_PIXELS,
    VideoWriter,
    input_kind,
    list_images,
    load_image,
    open_video,
    write_image,
)
from pipeline.app.recognizer import Recognizer
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


def run_predict(paths: list[Path], recognizer: Recognizer, options: Options) -> Summary:
    """Analyse every input; JSON lines go to stdout or `options.output`."""
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
                continue
            # A bad file in a folder is reported and skipped; the others still count.
            no_bar = True if kind == "image" else _no_bar(options)
            bar = tqdm(files, desc=str(path), unit="image", disable=no_bar)
            for file in bar:
                try:
                    image, warning = load_image(file, max_pixels=options.max_pixels)
                except AppError as e:
                    if kind == "image":
                        raise
                    summary.skipped.append(str(file))
                    tqdm.write(f"ferflow: skipped {e}", file=sys.stderr)
                    continue
                if warning:
                    _warn(warning, file, summary)
                _predict_image(file, image, recognizer, out, targets.get(file), summary)
        if summary.skipped and summary.files == 0:
            # Raised inside the `with`: an earlier --output file stays as it was.
            raise AppError(f"none of the {len(summary.skipped)} images could be read")
    summary.seconds = time.perf_counter() - start
    return summary


def _no_bar(options: Options) -> bool | None:
    return None if options.progress is None else not options.progress


def _warn(message: str, file: Path, summary: Summary) -> None:
    # Shown with -q too: the run goes on, but these results rest on part of the input.
    tqdm.write(f"ferflow: warning: {message}", file=sys.stderr)
    summary.damaged.append(str(file))


def _predict_image(
    file: Path,
    image: np.ndarray,
    recognizer: Recognizer,
    out: JsonLines,
    target: Path | None,
    summary: Summary,
) -> None:
    faces = recognizer(image)
    out.write(frame_records(str(file), 0, None, faces, recognizer.model.labels))
    if target is not None:
        write_image(target, annotate(image, faces, recognizer.model.labels))
    summary.files += 1
    summary.frames += 1
    summary.faces += len(faces)


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
        bar = tqdm(total=video.frame_count, desc=str(path), unit="frame", disable=_no_bar(options))
        with bar:
            for frame in video.frames():
                faces = recognizer(frame)
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
