"""One frame in, its faces out: detect, crop, classify all faces in one batch, smooth over time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.app.detector import FaceDetector
from pipeline.app.emotion import EmotionModel
from pipeline.app.tracking import Tracker

#: Margin added on each side of the detector's box before cropping, as a fraction of its side.
#: Measured, not guessed: on real FER2013 faces the Haar box is 1.01-1.05x smaller than the
#: 48x48 crop the model was trained on (1.05 searching at full width, 1.01 at 320 px) and
#: centred on it (`benchmarks/bench_detector.py`), so a 2% margin per side reproduces the
#: training framing.
DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class Face:
    """A face found in a frame: its box (x, y, w, h) and emotion probabilities in label order."""

    box: tuple[int, int, int, int]
    probabilities: np.ndarray
    label: str
    score: float
    track: int | None = None


def crop(image: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    """The box grown by `margin` per side; parts outside the frame repeat its edge pixels.

    Repeating edges (rather than clipping the box) keeps a face at a frame border centred and
    at the same scale as the faces the model learnt from.
    """
    x, y, w, h = (int(v) for v in box)
    dx, dy = round(w * margin), round(h * margin)
    x0, y0, x1, y1 = x - dx, y - dy, x + w + dx, y + h + dy
    height, width = image.shape[:2]
    inside = image[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    pads = (max(-y0, 0), max(y1 - height, 0), max(-x0, 0), max(x1 - width, 0))
    if any(pads):
        inside = cv2.copyMakeBorder(inside, *pads, borderType=cv2.BORDER_REPLICATE)
    return inside


class Recognizer:
    """Faces and their emotions in BGR frames.

    Still images are independent of each other. Between `start_video()` and `end_video()`,
    faces are tracked from frame to frame, their probabilities smoothed, and with
    `detect_every=n` the detector runs on every n-th frame only, the frames between reusing
    its boxes (at 30 fps a face moves a few pixels in a frame; detection is the costlier half).
    """

    def __init__(
        self,
        model: EmotionModel,
        detector: FaceDetector,
        *,
        margin: float = DEFAULT_MARGIN,
        detect_every: int = 1,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.model = model
        self.detector = detector
        self.margin = margin
        self.detect_every = detect_every
        self.tracker: Tracker | None = None
        self._frame = 0
        self._boxes: np.ndarray | None = None
        self.detect_seconds = 0.0
        self.classify_seconds = 0.0

    def start_video(self, smoothing: float) -> None:
        """The next frames are consecutive frames of one video or stream."""
        self.tracker = Tracker(smoothing)
        self._frame, self._boxes = 0, None

    def end_video(self) -> None:
        self.tracker, self._boxes = None, None

    def __call__(self, frame: np.ndarray) -> list[Face]:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        start = time.perf_counter()
        reuse = self._boxes is not None and self._frame % self.detect_every != 0
        boxes = self._boxes if reuse else self.detector.detect(gray)
        if self.tracker is not None:
            self._boxes, self._frame = boxes, self._frame + 1
        detected = time.perf_counter()
        source = gray if self.model.spec.input.channels == 1 else frame
        probs = self.model.classify([crop(source, box, self.margin) for box in boxes])
        self.detect_seconds += detected - start
        self.classify_seconds += time.perf_counter() - detected
        ids: list[int | None] = [None] * len(boxes)
        if self.tracker is not None:
            ids, probs = self.tracker.update(boxes, probs)  # type: ignore[assignment]
        labels = self.model.labels
        faces = []
        for box, p, track in zip(boxes, probs, ids, strict=True):
            best = int(np.argmax(p))
            faces.append(Face(tuple(int(v) for v in box), p, labels[best], float(p[best]), track))
        return faces
