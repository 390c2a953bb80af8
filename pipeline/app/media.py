"""Reading what the user points the app at (images, folders, videos, cameras, streams) and
writing annotated copies. Every failure becomes an AppError naming the input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.app.errors import AppError
from pipeline.io import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: Container and codec of annotated videos: MPEG-4 Part 2 is in every OpenCV wheel's FFmpeg.
ANNOTATED_VIDEO_SUFFIX = ".mp4"
ANNOTATED_VIDEO_FOURCC = "mp4v"
#: A stream that reports no frame rate is assumed to run at this many frames per second.
FALLBACK_FPS = 30.0


def quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own console warnings: the app reports problems itself."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    # Read by OpenCV's FFmpeg backend when it opens a file; -8 is AV_LOG_QUIET.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def input_kind(path: Path) -> str:
    """'folder', 'image' or 'video', from the file system and the suffix."""
    if not path.exists():
        raise AppError(f"{path}: no such file or folder")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    # An unknown suffix: OpenCV recognises image formats by their first bytes.
    return "image" if cv2.haveImageReader(str(path)) else "video"


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 image, or AppError if the file is not a readable image."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise AppError(
            f"{path}: not a readable image (corrupt, truncated or an unsupported format; "
            f"expected one of {', '.join(IMAGE_SUFFIXES)})"
        )
    return image


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The folder's image files by suffix, sorted; AppError if there are none."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    images = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        where = "or its subfolders " if recursive else ""
        hint = "" if recursive else "; add --recursive to look in subfolders"
        raise AppError(
            f"{folder}: no images found in this folder {where}"
            f"(looked for {', '.join(IMAGE_SUFFIXES)}){hint}"
        )
    return images


@dataclass
class Video:
    """An opened video file, camera or stream."""

    capture: cv2.VideoCapture
    name: str
    fps: float
    frame_count: int | None
    size: tuple[int, int]

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self.capture.read()
            if not ok:
                return
            yield frame

    def release(self) -> None:
        self.capture.release()


def _video(capture: cv2.VideoCapture, name: str) -> Video:
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return Video(
        capture,
        name,
        fps if 0 < fps < 1000 else FALLBACK_FPS,
        count if count > 0 else None,
        size,
    )


def open_video(path: Path) -> Video:
    """A video file opened for reading, or AppError."""
    if not path.is_file():
        raise AppError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise AppError(
            f"{path}: cannot open this video (corrupt, truncated, or a codec OpenCV's FFmpeg "
            "lacks); try converting it to H.264 .mp4"
        )
    return _video(capture, str(path))


def open_source(source: str) -> tuple[Video, bool]:
    """A camera index ("0"), stream URL or video file for `live`; returns it and is-camera."""
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise AppError(
                f"camera {source}: cannot open it (no such device, or in use by another "
                "program); list cameras with `ls /dev/video*` on Linux and pass that index"
            )
        return _video(capture, f"camera {source}"), True
    if "://" in source:
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise AppError(f"{source}: cannot open this stream (check the URL and the network)")
        return _video(capture, source), True
    return open_video(Path(source)), False


def write_image(path: Path, image: np.ndarray) -> None:
    """Write an image atomically, in the format its suffix names."""
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise AppError(f"{path}: OpenCV cannot write images of type {path.suffix!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


class VideoWriter:
    """An annotated video written to a hidden sibling and renamed into place when complete.

    The temporary name keeps the suffix because OpenCV picks the container from it.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        fourcc = cv2.VideoWriter_fourcc(*ANNOTATED_VIDEO_FOURCC)
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise AppError(f"{path}: cannot write a video here ({ANNOTATED_VIDEO_FOURCC} codec)")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def close(self, *, keep: bool) -> None:
        self.writer.release()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
