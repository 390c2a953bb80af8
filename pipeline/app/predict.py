"""`ferflow predict`: faces and emotions in images, folders of images and video files."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.app.draw import annotate
from pipeline.app.errors import AppError
from pipeline.app.media import (
    ANNOTATED_VIDEO_SUFFIX,
    IMAGE_SUFFIXES,
    VideoWriter,
    input_kind,
    list_images,
    open_video,
    read_image,
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
    seconds: float = 0.0

    def text(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"{_count(self.faces, 'face')} in {_count(self.frames, 'frame')} of "
            f"{_count(self.files, 'file')}, {self.seconds:.2f} s ({rate:.1f} frames/s)"
        )
        if self.skipped:
            line += f"; skipped {_count(len(self.skipped), 'unreadable file')}"
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


def run_predict(paths: list[Path], recognizer: Recognizer, options: Options) -> Summary:
    """Analyse every input; JSON lines go to stdout or `options.output`."""
    # Check every input before the first frame, so a typo in the last path fails fast.
    plan = []
    for path in paths:
        kind = input_kind(path)
        files = list_images(path, recursive=options.recursive) if kind == "folder" else [path]
        if options.annotate_dir is not None:
            for file in files:
                _refuse_overwrite(file, _annotated_path(options.annotate_dir, kind, path, file))
        plan.append((kind, path, files))
    summary = Summary()
    start = time.perf_counter()
    with JsonLines(options.output) as out:
        for kind, path, files in plan:
            if kind == "video":
                _predict_video(path, recognizer, out, options, summary)
            elif kind == "image":
                image = read_image(path)
                _predict_image(path, image, kind, path, recognizer, out, options, summary)
            else:
                # A bad file in a folder is reported and skipped; the others still count.
                bar = tqdm(files, desc=str(path), unit="image", disable=_no_bar(options))
                for file in bar:
                    try:
                        image = read_image(file)
                    except AppError as e:
                        summary.skipped.append(str(file))
                        tqdm.write(f"ferflow: skipped {e}", file=sys.stderr)
                        continue
                    _predict_image(file, image, kind, path, recognizer, out, options, summary)
        if summary.skipped and summary.files == 0:
            # Raised inside the `with`: an earlier --output file stays as it was.
            raise AppError(f"none of the {len(summary.skipped)} images could be read")
    summary.seconds = time.perf_counter() - start
    return summary


def _no_bar(options: Options) -> bool | None:
    return None if options.progress is None else not options.progress


def _predict_image(
    file: Path,
    image: np.ndarray,
    kind: str,
    root: Path,
    recognizer: Recognizer,
    out: JsonLines,
    options: Options,
    summary: Summary,
) -> None:
    faces = recognizer(image)
    out.write(frame_records(str(file), 0, None, faces, recognizer.model.labels))
    if options.annotate_dir is not None:
        target = _annotated_path(options.annotate_dir, kind, root, file)
        write_image(target, annotate(image, faces))
    summary.files += 1
    summary.frames += 1
    summary.faces += len(faces)


def _predict_video(
    path: Path, recognizer: Recognizer, out: JsonLines, options: Options, summary: Summary
) -> None:
    video = open_video(path)
    recognizer.start_video(options.smoothing)
    writer = None
    target = _annotated_path(options.annotate_dir, "video", path, path)
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
                if options.annotate_dir is not None:
                    if writer is None:
                        size = (frame.shape[1], frame.shape[0])
                        writer = VideoWriter(target, video.fps, size)
                    writer.write(annotate(frame, faces))
                frames += 1
                summary.faces += len(faces)
                bar.update()
        if frames == 0:
            raise AppError(f"{path}: no frame could be decoded (empty or corrupt video)")
        completed = True
    finally:
        video.release()
        if writer is not None:
            writer.close(keep=completed)
        recognizer.end_video()
    summary.files += 1
    summary.frames += frames


def _annotated_path(annotate_dir: Path | None, kind: str, root: Path, file: Path) -> Path:
    """Where the annotated copy of `file` goes; a folder's layout is kept below annotate_dir."""
    if annotate_dir is None:
        return file
    if kind == "video":
        return annotate_dir / (file.stem + ANNOTATED_VIDEO_SUFFIX)
    target = annotate_dir / (file.relative_to(root) if kind == "folder" else file.name)
    return target if target.suffix.lower() in IMAGE_SUFFIXES else target.with_suffix(".png")


def _refuse_overwrite(source: Path, target: Path) -> None:
    if target.resolve() == source.resolve():
        raise AppError(
            f"{target}: the annotated copy would overwrite the input; choose another --annotate"
        )
