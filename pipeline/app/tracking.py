"""Per-face smoothing across video frames, so labels do not flicker, and never across faces.

Each face is matched to a track of the previous frames only if it is plausibly the same face:
its box overlaps the track's (IoU >= 0.3), is of a similar size (within 1.3x), and looks the
same (their gradient signatures correlate >= 0.7, when given). A face that passes no
track's test starts a new track, with no history. Along a track, probabilities are an
exponential moving average: `smoothed = smoothing * previous + (1 - smoothing) * current`. A
track survives a few frames without a detection, then is forgotten; a scene cut
(`SceneCuts`) forgets all of them at once.

The thresholds are measured on real FER2013 PrivateTest faces (numbers beside each constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import imaging

#: Boxes of one face in consecutive frames overlap at least this much.
MIN_IOU = 0.3
#: ...and differ in side by at most this factor (a face does not grow 30% in 1/30 s).
MAX_SIZE_RATIO = 1.3
#: What a face looks like: a histogram of oriented gradients (HOG) of the crop shrunk to
#: 32x32 (8-px cells, 16-px blocks, 9 orientations; 324 numbers). Two crops of one face,
#: re-cropped with harsh detector jitter (side +-8%, centre +-6%, noise), correlate >= 0.7 in
#: 99.5% of 1,500 real PrivateTest faces and in all of scikit-image's 100 LFW faces; two
#: different faces never did (0 of 1,499 PrivateTest and 0 of 99 LFW neighbours). Plain 8x8
#: pixel thumbnails separated far worse: 23% of different LFW faces passed at 0.6.
#: (Measured with OpenCV's HOGDescriptor; `hog` gives the same numbers, correlating >= 0.9999
#: with it on real crops.)
SIGNATURE_SIDE = 32
MIN_SAME_FACE = 0.7
#: Frames whose 16x12 grayscale thumbnails correlate less than this are different scenes. Measured:
#: six different photos correlate at most 0.46; one scene panned by 32 px (5% of a 640-px
#: frame) in one frame still 0.75, a face moving or appearing in it >= 0.93, and a change of
#: exposure does not move it (thumbnails are standardised).
MIN_SAME_SCENE = 0.5


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (N, 4) with every box in `b` (M, 4), x y w h."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0])
    ih = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _standardized(values: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm: the dot product of two is their correlation."""
    values = values.astype(np.float32).ravel()
    values -= values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 1e-3 else values  # flat: correlates 0 with anything


# OpenCV's HOGDescriptor((32, 32), (16, 16), (8, 8), (8, 8), 9) with its defaults, which the
# thresholds above were measured with: a Gaussian window (sigma 4) over each block, each
# pixel's vote shared between the two nearest orientation bins and the nearest cells of its
# block, L2-Hys normalisation per block.
_CELL, _BLOCK, _STRIDE, _BINS, _SIGMA = 8, 16, 8, 9, 4.0
_CLIP = 0.2  # L2-Hys: no single gradient direction dominates a block
_BLOCKS_PER_SIDE = (SIGNATURE_SIDE - _BLOCK) // _STRIDE + 1


def _cell_weights() -> np.ndarray:
    """(6, 32): row 2 * block + cell says how much each image row (or column: the same
    numbers) counts towards that cell of that block row (column)."""
    # The block's Gaussian window is separable, and so is the bilinear share of a vote
    # between cells: one factor per axis, so two small products give every block's cells.
    offset = np.arange(_BLOCK) - _BLOCK / 2  # OpenCV centres the window on pixel 8, not 7.5
    window = np.exp(-(offset**2) / (2 * _SIGMA**2))
    # Bilinear between cell centres; the share of a vote that would fall outside the block
    # is dropped, not moved inwards (as OpenCV does).
    position = (np.arange(_BLOCK) + 0.5) / _CELL - 0.5
    share = np.clip(1 - np.abs(position[:, None] - np.arange(_BLOCK // _CELL)), 0, None)
    weights = np.zeros((_BLOCKS_PER_SIDE, _BLOCK // _CELL, SIGNATURE_SIDE))
    for block in range(_BLOCKS_PER_SIDE):
        start = block * _STRIDE
        weights[block, :, start : start + _BLOCK] = (window[:, None] * share).T
    return weights.reshape(-1, SIGNATURE_SIDE).astype(np.float32)


_CELL_WEIGHTS = _cell_weights()
_PIXELS = np.arange(SIGNATURE_SIDE * SIGNATURE_SIDE)


def hog(gray: np.ndarray) -> np.ndarray:
    """The 324-number HOG descriptor of a 32x32 grey uint8 image, as OpenCV's
    HOGDescriptor((32, 32), (16, 16), (8, 8), (8, 8), 9).compute gives it (float32; within
    float rounding and OpenCV's approximate arctangent: tests/test_app_tracking.py compares
    them)."""
    side = SIGNATURE_SIDE
    if gray.shape != (side, side):
        raise ValueError(f"hog wants a {side}x{side} grey image, got shape {gray.shape}")
    image = gray.astype(np.float32)
    # Centred differences; OpenCV mirrors the border without repeating the edge pixel
    # (BORDER_REFLECT_101), which makes the gradient across the image's edge 0.
    dx = np.zeros_like(image)
    dy = np.zeros_like(image)
    dx[:, 1:-1] = image[:, 2:] - image[:, :-2]
    dy[1:-1] = image[2:] - image[:-2]
    magnitude = np.sqrt(dx * dx + dy * dy)
    # Unsigned orientation: bin k is centred on (k + 0.5) * 20 degrees, and a vote is shared
    # between the two bins either side of it, wrapping from 180 back to 0.
    position = np.arctan2(dy, dx) * np.float32(_BINS / np.pi) - np.float32(0.5)
    low = np.floor(position)
    upper = magnitude * (position - low)
    low = low.astype(np.intp) % _BINS
    votes = np.zeros((side * side, _BINS), np.float32)
    votes[_PIXELS, low.ravel()] = (magnitude - upper).ravel()
    votes[_PIXELS, (low.ravel() + 1) % _BINS] = upper.ravel()
    # (block row, cell row, bin, block column, cell column), then into OpenCV's order:
    # blocks column by column, within a block its cells column by column, then the bins.
    cells = (_CELL_WEIGHTS @ votes.reshape(side, -1)).reshape(-1, side, _BINS)
    cells = (cells.transpose(0, 2, 1) @ _CELL_WEIGHTS.T).reshape(
        _BLOCKS_PER_SIDE, _BLOCK // _CELL, _BINS, _BLOCKS_PER_SIDE, _BLOCK // _CELL
    )
    histograms = cells.transpose(3, 0, 4, 1, 2).reshape(_BLOCKS_PER_SIDE**2, -1)
    # L2-Hys, with OpenCV's regularisers: 0.1 per histogram value before clipping (a flat
    # block stays near 0 instead of blowing noise up) and 1e-3 after.
    norm = np.sqrt((histograms * histograms).sum(axis=1, keepdims=True))
    histograms = np.minimum(histograms / (norm + 0.1 * histograms.shape[1]), _CLIP)
    norm = np.sqrt((histograms * histograms).sum(axis=1, keepdims=True))
    return (histograms / (norm + 1e-3)).ravel()


def face_signature(crop: np.ndarray) -> np.ndarray:
    """What a face looks like, for telling two faces apart from frame to frame."""
    # Grey first, then shrunk, as with OpenCV: shrinking the colour crop first moves flat
    # regions by a grey level, which the HOG's normalisation blows up (correlation down to 0.93).
    small = imaging.resize(imaging.to_gray(crop), (SIGNATURE_SIDE, SIGNATURE_SIDE))
    return _standardized(hog(small))


class SceneCuts:
    """Says whether a frame starts a new scene (a cut, another camera, another video)."""

    def __init__(self, min_same: float = MIN_SAME_SCENE) -> None:
        self.min_same = min_same
        self._previous: np.ndarray | None = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """True if `frame` is not a continuation of the previous one (False for the first)."""
        # Shrunk before turning grey: a quarter of the work on every frame, and the thumbnail
        # moves by at most one grey level (correlations by < 0.01 on scikit-image's photos).
        thumb = _standardized(imaging.to_gray(imaging.resize(frame, (16, 12))))
        previous, self._previous = self._previous, thumb
        return previous is not None and float(thumb @ previous) < self.min_same


@dataclass
class Track:
    id: int
    box: np.ndarray
    probs: np.ndarray
    missed: int = 0
    signature: np.ndarray | None = None


class Tracker:
    """Gives each face a track id and its smoothed probabilities."""

    def __init__(
        self,
        smoothing: float = 0.6,
        *,
        min_iou: float = MIN_IOU,
        max_size_ratio: float = MAX_SIZE_RATIO,
        min_same_face: float = MIN_SAME_FACE,
        max_missed: int = 5,
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.min_iou = min_iou
        self.max_size_ratio = max_size_ratio
        self.min_same_face = min_same_face
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track (a scene cut); ids keep counting, so no id is reused."""
        self.tracks = []

    def looks_like(self, track_id: int, signature: np.ndarray) -> bool:
        """Whether a face signature still looks like the face of track `track_id`."""
        for track in self.tracks:
            if track.id == track_id:
                seen = track.signature
                return seen is None or float(signature @ seen) >= self.min_same_face
        return False

    def _compatible(self, boxes: np.ndarray, signatures: list[np.ndarray] | None) -> np.ndarray:
        """(N faces, M tracks) matching score: the IoU where the pair may be one face, else 0."""
        track_boxes = np.array([t.box for t in self.tracks]).reshape(-1, 4)
        overlap = iou(boxes, track_boxes)
        sides = np.sqrt(np.maximum(boxes[:, 2] * boxes[:, 3], 1.0))[:, None]
        track_sides = np.sqrt(np.maximum(track_boxes[:, 2] * track_boxes[:, 3], 1.0))[None]
        ratio = np.maximum(sides / track_sides, track_sides / sides)
        ok = (overlap >= self.min_iou) & (ratio <= self.max_size_ratio)
        if signatures is not None:
            for f, t in zip(*np.nonzero(ok), strict=True):
                seen = self.tracks[t].signature
                if seen is not None and float(signatures[f] @ seen) < self.min_same_face:
                    ok[f, t] = False
        return np.where(ok, overlap, 0.0)

    def update(
        self,
        boxes: np.ndarray,
        probs: np.ndarray,
        signatures: list[np.ndarray] | None = None,
    ) -> tuple[list[int], np.ndarray]:
        """One frame's boxes (N, 4), raw probabilities (N, K) and optional face signatures
        (`face_signature`) -> track ids and smoothed probabilities."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        smoothed = np.array(probs, np.float32, copy=True)
        ids = [-1] * len(boxes)
        score = self._compatible(boxes, signatures)
        pairs = np.argwhere(score > 0)
        order = np.argsort(-score[pairs[:, 0], pairs[:, 1]], kind="stable")
        used_tracks: set[int] = set()
        for face, t in pairs[order]:
            if ids[face] != -1 or t in used_tracks:
                continue
            track = self.tracks[t]
            track.probs = self.smoothing * track.probs + (1.0 - self.smoothing) * smoothed[face]
            track.box, track.missed = boxes[face], 0
            if signatures is not None:
                track.signature = signatures[face]
            smoothed[face] = track.probs
            ids[face] = track.id
            used_tracks.add(int(t))
        for t, track in enumerate(self.tracks):
            if t not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for face in range(len(boxes)):
            if ids[face] == -1:
                signature = None if signatures is None else signatures[face]
                track = Track(self._next_id, boxes[face], smoothed[face].copy(), 0, signature)
                self.tracks.append(track)
                ids[face] = self._next_id
                self._next_id += 1
        return ids, smoothed
