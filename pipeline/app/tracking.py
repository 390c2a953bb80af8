"""Per-face smoothing across video frames, so labels do not flicker from frame to frame.

Each face is matched to the track of the previous frames it overlaps most (IoU, greedy, best
pairs first); its probabilities are an exponential moving average over that track:
`smoothed = smoothing * previous + (1 - smoothing) * current`. A track survives a few frames
without a detection (the cascade misses a face now and then), then is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


@dataclass
class Track:
    id: int
    box: np.ndarray
    probs: np.ndarray
    missed: int = 0


class Tracker:
    """Gives each face a track id and its smoothed probabilities."""

    def __init__(
        self, smoothing: float = 0.6, *, min_iou: float = 0.3, max_missed: int = 5
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, boxes: np.ndarray, probs: np.ndarray) -> tuple[list[int], np.ndarray]:
        """One frame's boxes (N, 4) and raw probabilities (N, K) -> track ids and smoothed probs."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        smoothed = np.array(probs, np.float32, copy=True)
        ids = [-1] * len(boxes)
        overlap = iou(boxes, np.array([t.box for t in self.tracks]).reshape(-1, 4))
        pairs = np.argwhere(overlap >= self.min_iou)
        order = np.argsort(-overlap[pairs[:, 0], pairs[:, 1]], kind="stable")
        used_tracks: set[int] = set()
        for face, t in pairs[order]:
            if ids[face] != -1 or t in used_tracks:
                continue
            track = self.tracks[t]
            track.probs = self.smoothing * track.probs + (1.0 - self.smoothing) * smoothed[face]
            track.box, track.missed = boxes[face], 0
            smoothed[face] = track.probs
            ids[face] = track.id
            used_tracks.add(int(t))
        for t, track in enumerate(self.tracks):
            if t not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for face in range(len(boxes)):
            if ids[face] == -1:
                self.tracks.append(Track(self._next_id, boxes[face], smoothed[face].copy()))
                ids[face] = self._next_id
                self._next_id += 1
        return ids, smoothed
