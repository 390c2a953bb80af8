"""Reading what the user points the app at (images, folders, videos, cameras, streams) and
writing annotated copies. Every failure becomes an AppError naming the input."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline import imaging
from pipeline.app.errors import AppError
from pipeline.app.image_header import FILE_LIMITS, Limits, jpeg_ends_early, read_header
from pipeline.app.video_backend import require_opencv
from pipeline.io import atomic_path, claim_temp, is_temp_name

if TYPE_CHECKING:
    import cv2

#: Images recognised by name; a file with another suffix (.gif, .jp2, ...) is an image when
#: Pillow recognises its header, named directly or found in a folder alike.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: Images with more pixels are refused before decoding unless `--max-pixels` allows them
#: (the policy and its reasons: pipeline/app/image_header.py; a 20000 x 20000 PNG took
#: 2.5 GB to analyse).
DEFAULT_MAX_PIXELS = FILE_LIMITS.max_pixels
#: Container and codec of annotated videos: MPEG-4 Part 2 is in every OpenCV wheel's FFmpeg.
#: Images, folders of images and `ferflow serve` need no OpenCV; everything about video
#: goes through `video_backend.require_opencv`, which names the `ferflow[video]` extra.
ANNOTATED_VIDEO_SUFFIX = ".mp4"
ANNOTATED_VIDEO_FOURCC = "mp4v"
#: A stream that reports no frame rate is assumed to run at this many frames per second.
FALLBACK_FPS = 30.0


def input_kind(path: Path) -> str:
    """'folder', 'image' or 'video', from the file system and the suffix."""
    try:
        path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AppError(
                f"{path}: a symbolic link loop (the link leads back to itself); "
                "point it at a file (`ls -l` shows where it leads)"
            ) from None
        if not path.is_symlink():
            raise AppError(f"{path}: no such file or folder") from None
        raise AppError(f"{path}: a symbolic link to a missing file ({os.readlink(path)})") from None
    if path.is_dir():
        return "folder"
    return _file_kind(path)


def _file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    # An unknown suffix: an image if Pillow recognises its header (read from the file,
    # never the whole of it: this may be a long video).
    return "image" if read_header(path) is not None else "video"


def load_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """A BGR uint8 image and a warning ('' if none), or AppError.

    Refused before decoding: an image whose header claims more than `max_pixels` pixels.
    The warning names damage the decoder hides (a JPEG that ends early decodes with its
    lower part grey).
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AppError(f"{path}: cannot read this file ({e.strerror or e})") from None
    header = read_header(data)
    too_large = header.too_large(Limits(None, max_pixels)) if header else ""
    if too_large:
        raise AppError(
            f"{path}: {too_large}; scale it down, or raise the limit with --max-pixels "
            f"{header.max_pixels_needed()} if the memory to decode it is there"
        )
    # Only a JPEG cut off while copying is decoded in part (and said so below); any other
    # file that ends early is refused, so a tiny file claiming a huge image never gets
    # its missing rows allocated and filled in.
    ends_early = jpeg_ends_early(data)
    try:
        image = imaging.decode(data, truncated_ok=ends_early)
    except imaging.DecodeError as e:
        raise AppError(
            f"{path}: not a readable image (corrupt, truncated or an unsupported format; "
            f"expected one of {', '.join(IMAGE_SUFFIXES)} or another format Pillow reads; "
            f"Pillow said {str(e)[:160]!r})"
        ) from None
    except MemoryError:
        size = f"{header.width:,} x {header.height:,} " if header else ""
        raise AppError(
            f"{path}: not enough memory to decode this {size}image; scale it down, or "
            "free memory and rerun"
        ) from None
    warning = ""
    if ends_early:
        warning = (
            f"{path}: the JPEG file ends before its end-of-image marker ({len(data):,} bytes; "
            "cut off while copying?): its lower part decoded grey; get a complete copy"
        )
    return image, warning


#: Held while `_decoder_messages` collects what FFmpeg prints to the process's stderr (a
#: video's frames are counted): another thread that writes to stderr meanwhile must hold it
#: too, or its text is taken for the decoder's (and dropped). `ferflow predict` holds it
#: for its progress bars and messages.
STDERR_LOCK = threading.Lock()
_stderr_file = None


@contextlib.contextmanager
def _decoder_messages() -> Iterator[list[str]]:
    """Collect what C libraries (FFmpeg under OpenCV) print to the process's stderr meanwhile.

    They report damage there, not to OpenCV: caught, it never reaches the user as a stray
    line beside ferflow's own one-line message. Other threads' stderr output in this short
    window is collected too (and dropped).
    """
    global _stderr_file
    said: list[str] = []
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
        saved = os.dup(fd)
    except (OSError, ValueError):
        yield said  # no stderr to redirect (e.g. a GUI process)
        return
    with STDERR_LOCK:
        if _stderr_file is None:  # one per process, kept open and reused
            _stderr_file = tempfile.TemporaryFile()  # noqa: SIM115
        _stderr_file.seek(0)
        _stderr_file.truncate()
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(_stderr_file.fileno(), fd)
        try:
            yield said
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            _stderr_file.seek(0)
            text = _stderr_file.read().decode("utf-8", errors="replace")
            said.extend(line.strip() for line in text.splitlines() if line.strip())


def list_inputs(
    folder: Path, *, recursive: bool = False, videos: bool = False
) -> list[tuple[Path, str]]:
    """The folder's images (and with `videos`, its videos), sorted, each with its kind
    ('image', 'video'); AppError if there are none. Images are the files that named directly
    would be read as images (so a .gif counts here as it does on the command line); videos
    are the files with a video suffix (an unknown file is not taken for one here)."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for path in candidates:
        # A run's temporary files (an annotated copy being written here) are not inputs.
        if not path.is_file() or is_temp_name(path.name):
            continue
        kind = _file_kind(path)
        if kind == "image" or (videos and path.suffix.lower() in VIDEO_SUFFIXES):
            found.append((path, kind))
    if not found:
        where = "or its subfolders " if recursive else ""
        hint = "" if recursive else "; add --recursive to look in subfolders"
        what, looked = (
            ("images or videos", f"images Pillow reads and {', '.join(VIDEO_SUFFIXES)}")
            if videos
            else ("images", f"{', '.join(IMAGE_SUFFIXES)} and other formats Pillow reads")
        )
        raise AppError(
            f"{folder}: no {what} found in this folder {where}(looked for {looked}){hint}"
        )
    return sorted(found)


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The folder's images, sorted (`list_inputs`); AppError if there are none."""
    return [path for path, _ in list_inputs(folder, recursive=recursive)]


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

    def count_warning(self, decoded: int) -> str:
        """A warning when `decoded` frames differ from what the container declares ('' if not).

        A damaged middle or a file cut mid-frame ends decoding early without an error.
        """
        if self.frame_count is None or decoded == self.frame_count:
            return ""
        why = "damaged or cut off?" if decoded < self.frame_count else "a wrong header?"
        return (
            f"{self.name}: decoded {decoded:,} of the {self.frame_count:,} frames its container "
            f"declares ({why}); the records cover the {decoded:,} decoded frames"
        )


def _video(capture: cv2.VideoCapture, name: str) -> Video:
    cv2 = require_opencv(f"{name}: reading videos")
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
    known = path.suffix.lower() in VIDEO_SUFFIXES
    cv2 = require_opencv(
        f"{path}: reading videos"
        if known
        else f"{path}: not an image Pillow recognises; reading it as a video"
    )
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened() and not known:
        raise AppError(
            f"{path}: neither a readable image nor a video (Pillow recognises no image format "
            "in its first bytes, and FFmpeg cannot open it); expected an image "
            f"({', '.join(IMAGE_SUFFIXES)}) or a video ({', '.join(VIDEO_SUFFIXES)})"
        )
    if not capture.isOpened():
        raise AppError(
            f"{path}: cannot open this video (corrupt, truncated, or a codec OpenCV's FFmpeg "
            "lacks); try converting it to H.264 .mp4"
        )
    return _video(capture, str(path))


def open_source(source: str) -> tuple[Video, bool]:
    """A camera index ("0"), stream URL or video file for `live`; returns it and is-camera."""
    if source.isdigit():
        cv2 = require_opencv(f"camera {source}: reading cameras")
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise AppError(
                f"camera {source}: cannot open it (no such device, or in use by another "
                "program); list cameras with `ls /dev/video*` on Linux and pass that index"
            )
        return _video(capture, f"camera {source}"), True
    if "://" in source:
        cv2 = require_opencv(f"{source}: reading streams")
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise AppError(f"{source}: cannot open this stream (check the URL and the network)")
        return _video(capture, source), True
    return open_video(Path(source)), False


def write_image(path: Path, image: np.ndarray) -> None:
    """Write an image atomically, in the format its suffix names."""
    try:
        encoded = imaging.encode(image, path.suffix)
    except ValueError as e:
        raise AppError(f"{path}: {e}; name it .png or .jpg") from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded)


class VideoWriter:
    """An annotated video written to a hidden sibling and renamed into place when complete.

    The temporary name is unique per run (two runs never write one file) and ends in the
    target's suffix, because OpenCV picks the container from it. OpenCV's writer reports no
    failed write (a full disk leaves an MP4 without its index, no frame decodable), so the
    file is opened again and its frames counted before it is renamed into place.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        cv2 = require_opencv(f"{path}: writing annotated videos")
        self.path = path
        self.tmp = claim_temp(path, suffix=path.suffix)
        fourcc = cv2.VideoWriter_fourcc(*ANNOTATED_VIDEO_FOURCC)
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        self.frames = 0
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise AppError(f"{path}: cannot write a video here ({ANNOTATED_VIDEO_FOURCC} codec)")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)
        self.frames += 1

    def close(self, *, keep: bool) -> None:
        """Finish the file; with `keep`, check it and rename it into place (AppError if it is
        not what was written: nothing is left under the final name)."""
        self.writer.release()
        try:
            if keep:
                readable = _count_frames(self.tmp)
                if readable != self.frames:
                    raise AppError(
                        f"{self.path}: the annotated video was not written completely "
                        f"({readable} of {self.frames} frames readable back: is the disk "
                        f"full? `df -h {self.path.parent}`); nothing was saved under this name"
                    )
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def _count_frames(path: Path) -> int:
    """Frames OpenCV decodes from a video file (0 if it cannot open it)."""
    # FFmpeg's own complaints about a broken file ("moov atom not found") are caught here:
    # the caller says what is wrong in its one line.
    cv2 = require_opencv(f"{path}: reading videos")
    with _decoder_messages():
        capture = cv2.VideoCapture(str(path))
        try:
            count = 0
            while capture.isOpened() and capture.grab():
                count += 1
            return count
        finally:
            capture.release()
