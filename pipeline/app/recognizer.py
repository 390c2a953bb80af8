"""One frame in, its faces out: detect, crop, classify all faces in one batch, smooth over time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.app.detector import Detector, make_detector
from pipeline.app.emotion import EmotionModel
from pipeline.app.tracking import SceneCuts, Tracker, face_signature

#: Extra margin on each side of a face box before cropping, as a fraction of its side. The
#: detectors already return boxes in FER2013's framing (`pipeline.app.detector`), so none is
#: needed for the shipped model; a model trained on wider crops would want some.
DEFAULT_MARGIN = 0.0


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
    faces are tracked from frame to frame and their probabilities smoothed, never across two
    faces or a scene cut (`pipeline.app.tracking`). With `detect_every=n` the detector runs on
    every n-th frame only and the frames between reuse its boxes (at 30 fps a face moves a few
    pixels in a frame); a scene cut runs the detector at once, and a reused box that no longer
    shows its face is dropped.
    """

    def __init__(
        self,
        model: EmotionModel,
        detector: Detector | None = None,
        *,
        margin: float = DEFAULT_MARGIN,
        detect_every: int = 1,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.model = model
        self.detector = detector if detector is not None else make_detector()
        self.margin = margin
        self.detect_every = detect_every
        self.tracker: Tracker | None = None
        self._cuts: SceneCuts | None = None
        self._boxes: np.ndarray | None = None
        self._ids: list[int] = []
        self._since_detection = 0
        self.detect_seconds = 0.0
        self.classify_seconds = 0.0

    def start_video(self, smoothing: float) -> None:
        """The next frames are consecutive frames of one video or stream."""
        self.tracker, self._cuts = Tracker(smoothing), SceneCuts()
        self._boxes, self._ids, self._since_detection = None, [], 0

    def end_video(self) -> None:
        self.tracker, self._cuts, self._boxes, self._ids = None, None, None, []

    def __call__(self, frame: np.ndarray) -> list[Face]:
        start = time.perf_counter()
        video = self.tracker is not None and self._cuts is not None
        cut = video and self._cuts.is_cut(frame)  # type: ignore[union-attr]
        if cut:
            self.tracker.reset()  # type: ignore[union-attr]
        source = frame
        if self.model.spec.input.channels == 1 and frame.ndim == 3:
            source = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = crops = signatures = None
        if video and not cut and self._since_detection < self.detect_every - 1:
            boxes, crops, signatures = self._reuse(source)
        if boxes is None:
            boxes, self._since_detection = self.detector.detect(frame), 0
            crops = [crop(source, box, self.margin) for box in boxes]
            signatures = [face_signature(c) for c in crops] if video else None
        detected = time.perf_counter()
        probs = self.model.classify(crops)
        self.detect_seconds += detected - start
        self.classify_seconds += time.perf_counter() - detected
        ids: list[int | None] = [None] * len(boxes)
        if self.tracker is not None:
            ids, probs = self.tracker.update(boxes, probs, signatures)  # type: ignore[assignment]
            self._boxes, self._ids = boxes, list(ids)  # type: ignore[arg-type]
        labels = self.model.labels
        faces = []
        for box, p, track in zip(boxes, probs, ids, strict=True):
            best = int(np.argmax(p))
            faces.append(Face(tuple(int(v) for v in box), p, labels[best], float(p[best]), track))
        return faces

    def _reuse(self, source: np.ndarray):
        """The previous frame's boxes, crops and signatures, if each box still shows its
        track's face; (None, None, None) if one does not (it moved away, or another face took
        its place: the detector must look again)."""
        tracker = self.tracker
        if self._boxes is None or tracker is None:
            return None, None, None
        crops = [crop(source, box, self.margin) for box in self._boxes]
        signatures = [face_signature(c) for c in crops]
        pairs = zip(self._ids, signatures, strict=True)
        if not all(tracker.looks_like(track, signature) for track, signature in pairs):
            return None, None, None
        self._since_detection += 1
        return self._boxes, crops, signatures
