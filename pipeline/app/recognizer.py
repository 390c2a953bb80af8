"""One frame in, its faces out: detect, crop, classify all faces in one batch, smooth over time."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import numpy as np

from pipeline import imaging
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
        top, bottom, left, right = pads
        edges = ((top, bottom), (left, right)) + ((0, 0),) * (inside.ndim - 2)
        inside = np.pad(inside, edges, mode="edge")
    return inside


@dataclass(frozen=True)
class Look:
    """What one frame shows before any tracking: face boxes (N, 4), raw probabilities (N, K),
    face signatures (video only), and the seconds spent detecting and classifying."""

    boxes: np.ndarray
    probabilities: np.ndarray
    signatures: list[np.ndarray] | None
    detect_seconds: float
    classify_seconds: float


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
        # ONNX Runtime sessions may run on several threads at once; an OpenCV cascade may not.
        thread_safe = getattr(self.detector, "thread_safe", False)
        self._detecting = contextlib.nullcontext() if thread_safe else threading.Lock()

    def start_video(self, smoothing: float) -> None:
        """The next frames are consecutive frames of one video or stream."""
        self.tracker, self._cuts = Tracker(smoothing), SceneCuts()
        self._boxes, self._ids, self._since_detection = None, [], 0

    def end_video(self) -> None:
        self.tracker, self._cuts, self._boxes, self._ids = None, None, None, []

    def __call__(self, frame: np.ndarray) -> list[Face]:
        cut = self._scene_cut(frame)
        found = None
        if self.tracker is not None and not cut and self._since_detection < self.detect_every - 1:
            found = self._reuse(frame)
        if found is None:
            found, self._since_detection = self.look(frame), 0
        return self._faces(found)

    def look(self, frame: np.ndarray) -> Look:
        """Detect, crop and classify the faces of one frame, and nothing else.

        It changes no state (the detector's and the model's sessions may be shared between
        threads), so `ferflow predict` runs it on several frames at once and hands each
        result to `follow` in frame order. Face signatures are computed in video mode only.
        """
        start = time.perf_counter()
        with self._detecting:
            boxes = self.detector.detect(frame)
        crops = [self._for_model(crop(frame, box, self.margin)) for box in boxes]
        signatures = [face_signature(c) for c in crops] if self.tracker is not None else None
        detected = time.perf_counter()
        probs = self.model.classify(crops)
        classified = time.perf_counter()
        return Look(boxes, probs, signatures, detected - start, classified - detected)

    def follow(self, frame: np.ndarray, found: Look) -> list[Face]:
        """The faces of a frame that `look` analysed, handed over in frame order: the same as
        calling the recognizer on the frame, for still images and for video when the detector
        runs on every frame (`detect_every=1`)."""
        if self.tracker is not None and self.detect_every != 1:
            raise ValueError("in video, follow() needs detect_every=1 (reused boxes need the past)")
        self._scene_cut(frame)
        self._since_detection = 0
        return self._faces(found)

    def _for_model(self, face: np.ndarray) -> np.ndarray:
        """A face crop in the model's colours: grey for a grey model (each crop on its own,
        a fraction of the frame's pixels; the same numbers as the frame turned grey)."""
        if self.model.spec.input.channels == 1 and face.ndim == 3:
            return imaging.to_gray(face)
        return face

    def _scene_cut(self, frame: np.ndarray) -> bool:
        """In video mode, whether `frame` starts a new scene (tracks are then forgotten)."""
        if self.tracker is None or self._cuts is None:
            return False
        start = time.perf_counter()
        cut = self._cuts.is_cut(frame)
        if cut:
            self.tracker.reset()
        self.detect_seconds += time.perf_counter() - start
        return cut

    def _faces(self, found: Look) -> list[Face]:
        self.detect_seconds += found.detect_seconds
        self.classify_seconds += found.classify_seconds
        boxes, probs = found.boxes, found.probabilities
        ids: list[int | None] = [None] * len(boxes)
        if self.tracker is not None:
            ids, probs = self.tracker.update(boxes, probs, found.signatures)  # type: ignore[assignment]
            self._boxes, self._ids = boxes, list(ids)  # type: ignore[arg-type]
        labels = self.model.labels
        faces = []
        for box, p, track in zip(boxes, probs, ids, strict=True):
            best = int(np.argmax(p))
            faces.append(Face(tuple(int(v) for v in box), p, labels[best], float(p[best]), track))
        return faces

    def _reuse(self, frame: np.ndarray) -> Look | None:
        """The previous frame's boxes, with this frame's crops classified, if each box still
        shows its track's face; None if one does not (it moved away, or another face took
        its place: the detector must look again)."""
        tracker = self.tracker
        if self._boxes is None or tracker is None:
            return None
        start = time.perf_counter()
        crops = [self._for_model(crop(frame, box, self.margin)) for box in self._boxes]
        signatures = [face_signature(c) for c in crops]
        pairs = zip(self._ids, signatures, strict=True)
        if not all(tracker.looks_like(track, signature) for track, signature in pairs):
            self.detect_seconds += time.perf_counter() - start
            return None
        self._since_detection += 1
        checked = time.perf_counter()
        probs = self.model.classify(crops)
        classified = time.perf_counter()
        return Look(self._boxes, probs, signatures, checked - start, classified - checked)
