"""Face detectors whose models ship inside installed packages (nothing is downloaded).

- `CenterFace` (default): the CenterFace network (Xu et al. 2019, MIT licence), a 7.3 MB
  ONNX file shipped inside ferflow's own package (`pipeline/app/models/`, with its licence and
  provenance in SOURCE.md), run with ferflow's own ONNX Runtime code.
- `HaarCascade`: OpenCV's Haar cascade from the opencv wheel (4.x; 5.0 ships none), the
  older, cheaper and weaker option.

Both return boxes in FER2013's framing: squares placed on a face the way the dataset's 48x48
crops are, so the emotion model sees what it was trained on. Each detector's own boxes are
turned into those squares with constants measured by `benchmarks/bench_detector.py` on real
FER2013 faces.

Frames are searched on a copy shrunk as far as the smallest face asked for allows
(`min_face`), and never larger than `max_size` pixels on its longer side: the cost grows with
the pixel count, and faces shrunk to the detector's own smallest reliable size are still found.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from pipeline import imaging
from pipeline.app.defaults import PREDICT
from pipeline.app.errors import AppError
from pipeline.app.onnx_shapes import free_dimensions
from pipeline.app.video_backend import require_opencv

#: The detectors `--detector` offers (the default: `pipeline.app.defaults`).
DETECTORS = ("centerface", "haar")


class Detector(Protocol):
    """`detect` is called from one thread at a time unless the detector's class sets
    `thread_safe = True`."""

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """Face boxes (N, 4) int32 `x, y, w, h` in frame pixels, FER2013 framing, left to right."""
        ...


def detection_scale(frame_shape: tuple[int, ...], smallest: int, min_face: int, max_size: int):
    """How much to shrink a frame before detection (<= 1).

    A face of `min_face` pixels must keep at least the detector's `smallest` reliable size, and
    the longer side must not exceed `max_size`; when the two disagree, the cost cap wins.
    """
    longer = max(frame_shape[:2])
    scale = 1.0 if min_face <= smallest else smallest / min_face
    return min(1.0, scale, max_size / longer)


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, max_iou: float) -> np.ndarray:
    """Indices of the boxes (x, y, w, h) kept, best score first: each box overlapping a
    better-scoring kept one by more than `max_iou` (intersection over union) is dropped.
    Ties keep the earlier box (OpenCV's `dnn.NMSBoxes` orders and compares the same way)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    kept: list[int] = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(int(best))
        w = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        inter = w * h
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= max_iou]
    return np.asarray(kept, np.int64)


def _left_to_right(boxes: np.ndarray, *, with_order: bool = False):
    """Boxes rounded to pixels, sorted by x; with `with_order`, also the permutation used."""
    if len(boxes) == 0:
        empty = np.zeros((0, 4), np.int32)
        return (empty, np.zeros(0, np.int64)) if with_order else empty
    boxes = np.round(boxes).astype(np.int32)
    order = np.argsort(boxes[:, 0], kind="stable")
    return (boxes[order], order) if with_order else boxes[order]


def _squares(boxes: np.ndarray, side_per_height: float, shift_x: float, shift_y: float):
    """Detector boxes (x, y, w, h; float) -> FER2013-framed squares.

    The square's side is `side_per_height` times the box height; its centre is the box centre
    moved by `shift_x` box widths and `shift_y` box heights.
    """
    x, y, w, h = boxes.T
    side = side_per_height * h
    cx, cy = x + w * (0.5 + shift_x), y + h * (0.5 + shift_y)
    return np.stack([cx - side / 2, cy - side / 2, side, side], axis=1)


# ---------------------------------------------------------------------------------------
# CenterFace
# ---------------------------------------------------------------------------------------

#: Where the model file is: package data of ferflow's app (pyproject.toml's package-data;
#: models/SOURCE.md records where it comes from and its sha256).
CENTERFACE_PACKAGE, CENTERFACE_FILE = "pipeline.app", "models/centerface.onnx"
#: Smallest face (pixels, at the detector's input) CenterFace finds reliably: the astronaut
#: photo's face pasted into 320x240 scenes was found 3 times in 20 at 20 px, 15 at 24 px,
#: 20 from 28 px up (`benchmarks/bench_detector.py --smallest`); 32 keeps a margin.
CENTERFACE_SMALLEST = 32
#: Its boxes run from brow to chin and are narrower than tall: a FER2013 crop is a square
#: 1.04 box heights wide, centred 1.5% of a box height above the box centre (medians over
#: 96- and 144-px PrivateTest faces found at the defaults, printed by `bench_detector.py`;
#: quartiles of the side 0.97-1.12). Crops at 1.0 or 1.06 scored the same end to end.
CENTERFACE_FRAMING = (1.04, 0.0, -0.015)
#: Two detections of one face overlap more than this (intersection over union): the
#: weaker is dropped (CenterFace's reference decoder uses 0.3).
CENTERFACE_NMS_IOU = 0.3


def centerface_path() -> Path:
    """centerface.onnx, shipped inside ferflow's own package."""
    path = Path(str(importlib.resources.files(CENTERFACE_PACKAGE) / CENTERFACE_FILE))
    if not path.is_file():
        raise AppError(
            f"{path}: the face detector's model is missing from this ferflow install "
            "(a wheel built without package data?); reinstall ferflow, or use --detector haar"
        )
    return path


class CenterFace:
    """CenterFace on ONNX Runtime: a heatmap of face centres at 1/4 of the input resolution,
    with each centre's box size and offset."""

    smallest = CENTERFACE_SMALLEST
    #: `detect` may run on several threads at once: ONNX Runtime's `run` is thread-safe and the
    #: boxes depend on the frame alone (`last_scores` is then the last call's, so a caller
    #: that reads it calls `detect` from one thread).
    thread_safe = True
    #: The heatmap score of each box the last `detect` returned, in the same order.
    last_scores: np.ndarray = np.zeros(0, np.float32)

    def __init__(
        self,
        *,
        min_face: int = PREDICT.min_face,
        max_size: int = PREDICT.max_size,
        threshold: float = PREDICT.threshold,
        threads: int | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        from pipeline.app.emotion import session_options

        if not 0.0 < threshold < 1.0:
            raise AppError(f"detector threshold must be between 0 and 1, got {threshold}")
        if max_size < 64:
            raise AppError(f"detection size must be at least 64 pixels, got {max_size}")
        path = Path(model_path) if model_path is not None else centerface_path()
        try:
            # The published file fixes its input at 10x3x32x32; the network takes any size.
            model = free_dimensions(path.read_bytes())
            self.session = ort.InferenceSession(
                model, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnx_shapes' ValueError, ONNX Runtime's own classes
            raise AppError(f"{path}: not a valid CenterFace ONNX model ({e})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.min_face, self.max_size, self.threshold = min_face, max_size, threshold

    def detect(self, frame: np.ndarray) -> np.ndarray:
        scale = detection_scale(frame.shape, self.smallest, self.min_face, self.max_size)
        height, width = frame.shape[:2]
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        small = imaging.resize(frame, (w, h)) if scale < 1 else frame
        # The network halves the resolution five times: pad right and bottom to a multiple
        # of 32 with black (padding keeps the aspect ratio, which stretching would not).
        blob = np.zeros((1, 3, h + -h % 32, w + -w % 32), np.float32)
        # RGB, channels first, written straight into the padded input (grey: one channel
        # broadcast to the three).
        rgb = small[..., ::-1] if small.ndim == 3 else small[..., None]
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        heatmap, sizes, offsets, _landmarks = self.session.run(None, {self.input_name: blob})
        boxes, scores = self._decode(heatmap[0, 0], sizes[0], offsets[0])
        if len(boxes):
            keep = non_maximum_suppression(boxes, scores, CENTERFACE_NMS_IOU)
            boxes, scores = _squares(boxes[keep] / scale, *CENTERFACE_FRAMING), scores[keep]
            large = boxes[:, 2] >= self.min_face
            boxes, scores = boxes[large], scores[large]
        boxes, order = _left_to_right(boxes, with_order=True)
        # Kept beside the boxes, not in them: every other caller wants boxes only
        # (`ferflow batch` records these).
        self.last_scores = scores[order] if len(order) else np.zeros(0, np.float32)
        return boxes

    def _decode(self, heatmap: np.ndarray, sizes: np.ndarray, offsets: np.ndarray):
        """Heatmap peaks above the threshold -> boxes (x, y, w, h) at the input's scale."""
        rows, cols = np.nonzero(heatmap > self.threshold)
        # Every output cell covers 4x4 input pixels; sizes are log-encoded in those units.
        box_h, box_w = np.exp(sizes[0, rows, cols]) * 4, np.exp(sizes[1, rows, cols]) * 4
        cy = (rows + offsets[0, rows, cols] + 0.5) * 4
        cx = (cols + offsets[1, rows, cols] + 0.5) * 4
        boxes = np.stack([cx - box_w / 2, cy - box_h / 2, box_w, box_h], axis=1)
        return boxes.astype(np.float32), heatmap[rows, cols].astype(np.float32)


# ---------------------------------------------------------------------------------------
# Haar cascade
# ---------------------------------------------------------------------------------------

#: Of OpenCV's frontal-face cascades, alt2 had the best trade-off on real faces: as many
#: found as `default`, a third fewer false positives and ~25% less CPU.
DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"
#: The cascade's 24x24 window: nothing smaller can be found.
HAAR_SMALLEST = 24
#: Haar boxes are squares 1.01-1.05x smaller than the FER2013 crop and centred on it
#: (`bench_detector.py`): 4% larger reproduces the training framing.
HAAR_FRAMING = (1.04, 0.0, 0.0)


def cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    """The cascade file: a path as given, else the file of that name bundled with OpenCV."""
    given = Path(name)
    if given.is_file():
        return given
    cv2 = require_opencv("--detector haar")
    bundled_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if bundled_dir is None or not (Path(bundled_dir) / name).is_file():
        raise AppError(
            f"Haar cascade {name!r} not found in OpenCV {cv2.__version__} "
            f"(looked in {bundled_dir or 'cv2.data: missing'}); the 4.x wheels ship it and 5.0 "
            "does not: pip install 'opencv-python-headless>=4.10,<5'"
        )
    return Path(bundled_dir) / name


class HaarCascade:
    """OpenCV's Viola-Jones cascade on a grayscale copy of the frame."""

    smallest = HAAR_SMALLEST

    def __init__(
        self,
        cascade: str = DEFAULT_CASCADE,
        *,
        min_face: int = PREDICT.min_face,
        max_size: int = PREDICT.max_size,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        if max_size < 64:
            raise AppError(f"detection size must be at least 64 pixels, got {max_size}")
        if scale_factor <= 1.0:
            raise AppError(f"detector scale factor must be above 1.0, got {scale_factor}")
        cv2 = require_opencv("--detector haar")
        path = cascade_path(cascade)
        self.classifier = cv2.CascadeClassifier()
        try:
            loaded = self.classifier.load(str(path))
        except cv2.error:
            loaded = False
        if not loaded or self.classifier.empty():
            raise AppError(f"{path}: OpenCV could not load this Haar cascade (corrupt file?)")
        self.min_face, self.max_size = min_face, max_size
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, frame: np.ndarray) -> np.ndarray:
        gray = imaging.to_gray(frame)
        scale = detection_scale(gray.shape, self.smallest, self.min_face, self.max_size)
        small = gray
        if scale < 1.0:
            height, width = gray.shape
            small = imaging.resize(gray, (round(width * scale), round(height * scale)))
        side = max(self.smallest, round(self.min_face * scale))
        found = self.classifier.detectMultiScale(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
        )
        if len(found) == 0:
            return np.zeros((0, 4), np.int32)
        boxes = np.asarray(found, np.float64) / scale
        return _left_to_right(_squares(boxes, *HAAR_FRAMING))


def make_detector(
    name: str = PREDICT.detector,
    *,
    min_face: int = PREDICT.min_face,
    max_size: int = PREDICT.max_size,
    threshold: float = PREDICT.threshold,
    threads: int | None = None,
    cascade: str = DEFAULT_CASCADE,
) -> Detector:
    """The detector `--detector NAME` asks for (`threshold` and `threads`: CenterFace only;
    `cascade`: Haar only)."""
    if min_face < 1:
        raise AppError(f"smallest face must be at least 1 pixel, got {min_face}")
    if name == "centerface":
        return CenterFace(
            min_face=min_face, max_size=max_size, threshold=threshold, threads=threads
        )
    if name == "haar":
        return HaarCascade(cascade, min_face=min_face, max_size=max_size)
    raise AppError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
