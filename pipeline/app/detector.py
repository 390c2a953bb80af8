"""Face detection with OpenCV's Haar cascade, which the opencv wheel ships (nothing to download).

opencv-python(-headless) 4.x carries the cascades in `cv2.data.haarcascades`; 5.0 does not,
hence the `<5` pin in pyproject.toml and the check at start-up.

Frames are searched on a copy scaled down to `detect_width` pixels: the cascade's cost grows
with the pixel count, and faces big enough to read an expression on survive the downscale.
`benchmarks/bench_detector.py` measures recall and speed of these settings on real faces.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.app.errors import AppError

#: Of OpenCV's frontal-face cascades, alt2 has the best trade-off on real faces: as many
#: found as `default` at 320 px, a third fewer false positives and ~25% less CPU
#: (`benchmarks/bench_detector.py`; docs/app.md has the table).
DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"


def cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    """The cascade file: a path as given, else the file of that name bundled with OpenCV."""
    given = Path(name)
    if given.is_file():
        return given
    bundled_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if bundled_dir is None or not (Path(bundled_dir) / name).is_file():
        raise AppError(
            f"Haar cascade {name!r} not found in OpenCV {cv2.__version__} "
            f"(looked in {bundled_dir or 'cv2.data: missing'}); the 4.x wheels ship it and 5.0 "
            "does not: pip install 'opencv-python-headless>=4.10,<5'"
        )
    return Path(bundled_dir) / name


class FaceDetector:
    """Frontal faces in a grayscale frame, as (x, y, w, h) boxes in that frame's pixels."""

    def __init__(
        self,
        cascade: str = DEFAULT_CASCADE,
        *,
        detect_width: int = 640,
        min_face: int = 0,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        if detect_width < 64:
            raise AppError(f"detect width must be at least 64 pixels, got {detect_width}")
        if scale_factor <= 1.0:
            raise AppError(f"detector scale factor must be above 1.0, got {scale_factor}")
        path = cascade_path(cascade)
        self.classifier = cv2.CascadeClassifier()
        try:
            loaded = self.classifier.load(str(path))
        except cv2.error:
            loaded = False
        if not loaded or self.classifier.empty():
            raise AppError(f"{path}: OpenCV could not load this Haar cascade (corrupt file?)")
        self.detect_width = detect_width
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, gray: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) int32 `x, y, w, h`, left to right so face order is stable across frames."""
        height, width = gray.shape[:2]
        scale = min(1.0, self.detect_width / width)
        small = gray
        if scale < 1.0:
            size = (round(width * scale), round(height * scale))
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        # Below the cascade's 24 px window nothing can be found; the user's minimum is in
        # full-frame pixels, so it shrinks with the frame.
        min_side = max(24, round(self.min_face * scale))
        found = self.classifier.detectMultiScale(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
        )
        if len(found) == 0:
            return np.zeros((0, 4), np.int32)
        boxes = np.round(np.asarray(found, np.float64) / scale).astype(np.int32)
        return boxes[np.argsort(boxes[:, 0], kind="stable")]
