"""A synthetic FER2013: drawn 48 x 48 faces whose expression follows the label.

Each face is a head with hair, eyes, brows, nose and mouth. The label sets the expression
(how open the eyes are, where the brows' inner and outer ends sit, the mouth's width, curve
and opening, teeth, nose wrinkles) and each face draws its own intensity, so a faint smile
looks almost neutral; pose (rotation, scale, position), face shape, lighting, glasses, blur
and noise vary freely. A small CNN learns it well but not perfectly, and it is the default
`data.raw`, so `dvc repro` runs with no download.

Everything is numpy, vectorised over faces: drawing 6,600 faces takes about a second. The
same seed gives the same faces (on the same numpy build; float rounding may differ across
CPUs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import IMAGE_SIZE, LABELS, NUM_CLASSES, SPLITS, USAGE_OF_SPLIT
from pipeline.data.fer_csv import encode_fer_csv
from pipeline.io import atomic_path

if TYPE_CHECKING:
    pass

#: Share of each class (LABELS order): loosely FER2013's imbalance (happy most common,
#: disgust rare), with disgust raised from 1.5% to 5% so that it can be learnt from a few
#: thousand faces.
CLASS_SHARES: tuple[float, ...] = (0.13, 0.05, 0.13, 0.22, 0.16, 0.12, 0.19)

# Expression of each class at full intensity, in face units (head half-height = 1, y down).
# Columns: eye opening, brow inner end drop, brow outer end drop, mouth half-width, mouth
# curve (+ corners up), mouth opening, mouth tilt (one corner up), nose wrinkles, teeth.
_FEATURES = ("eye", "brow_in", "brow_out", "mouth_w", "curve", "open", "tilt", "wrinkle", "teeth")
_EXPRESSION = np.array(
    [
        # eye   b_in   b_out  m_w   curve  open   tilt  wrinkle teeth
        [0.030, 0.12, -0.05, 0.19, -0.05, 0.00, 0.00, 0.3, 0.0],  # angry
        [0.030, 0.06, 0.04, 0.22, -0.06, 0.025, 0.09, 1.0, 0.0],  # disgust
        [0.110, -0.11, -0.03, 0.30, -0.04, 0.070, 0.00, 0.0, 0.5],  # fear
        [0.040, -0.02, -0.02, 0.33, 0.14, 0.045, 0.00, 0.0, 1.0],  # happy
        [0.045, -0.11, 0.07, 0.22, -0.12, 0.00, 0.00, 0.0, 0.0],  # sad
        [0.120, -0.16, -0.13, 0.14, 0.00, 0.150, 0.00, 0.0, 0.0],  # surprise
        [0.065, 0.00, 0.00, 0.24, 0.00, 0.00, 0.00, 0.0, 0.0],  # neutral
    ],
    np.float32,
)
# Face-to-face variation of each feature, independent of the label.
_JITTER = np.array([0.012, 0.02, 0.02, 0.025, 0.02, 0.01, 0.012, 0.15, 0.2], np.float32)
_NEUTRAL = _EXPRESSION[LABELS.index("neutral")]
assert _EXPRESSION.shape == (NUM_CLASSES, len(_FEATURES))

_BATCH = 512


def class_sizes(rows: int) -> np.ndarray:
    """How many faces of each class a split of `rows` faces holds (each class >= 1 if it can)."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    base = np.minimum(1, np.maximum(0, rows - np.arange(NUM_CLASSES)))
    shares = np.asarray(CLASS_SHARES) / sum(CLASS_SHARES)
    want = shares * (rows - base.sum())
    counts = np.floor(want).astype(np.int64)
    # Largest remainders take the rows that flooring left over.
    counts[np.argsort(counts - want, kind="stable")[: rows - base.sum() - counts.sum()]] += 1
    return counts + base


def draw_faces(labels: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
    """uint8 (N, 48, 48) faces whose expression is `labels` (int 0-6), drawn with `rng`."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must be 0..{NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}")
    rng = np.random.default_rng(rng)
    out = np.empty((len(labels), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for start in range(0, len(labels), _BATCH):
        batch = labels[start : start + _BATCH]
        out[start : start + len(batch)] = _draw_batch(batch, rng)
    return out


def _col(x: np.ndarray) -> np.ndarray:
    """Per-face values shaped to broadcast against (B, 48, 48) images."""
    return np.asarray(x, np.float32)[:, None, None]


def _soft(signed_distance_px: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - signed_distance_px, 0.0, 1.0)


def _ellipse(u, v, cu, cv, ru, rv, ppu):
    q = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return _soft((q - 1.0) * np.minimum(ru, rv) * ppu)


def _segment(u, v, u0, v0, u1, v1, half_width, ppu):
    du, dv = u1 - u0, v1 - v0
    t = np.clip(((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv), 0.0, 1.0)
    dist = np.hypot(u - (u0 + t * du), v - (v0 + t * dv))
    return _soft((dist - half_width) * ppu)


def _paint(img, alpha, value):
    img *= 1.0 - alpha
    img += alpha * value


def _draw_batch(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    b = len(labels)
    uniform = rng.uniform

    # Expression: neutral + intensity * (class - neutral), plus per-face jitter.
    intensity = uniform(0.45, 1.0, b).astype(np.float32)
    expr = _NEUTRAL + intensity[:, None] * (_EXPRESSION[labels] - _NEUTRAL)
    expr = expr + rng.normal(0.0, 1.0, expr.shape).astype(np.float32) * _JITTER
    f = {name: _col(expr[:, i]) for i, name in enumerate(_FEATURES)}
    f["eye"] = np.maximum(f["eye"], 0.02)
    f["mouth_w"] = np.maximum(f["mouth_w"], 0.08)
    f["open"] = np.maximum(f["open"], 0.0)
    f["tilt"] = f["tilt"] * _col(rng.choice([-1.0, 1.0], b))

    # Pose: face coordinates (u, v) of every pixel.
    angle = _col(rng.normal(0.0, 0.12, b).clip(-0.3, 0.3))
    ppu = _col(uniform(18.0, 23.5, b))  # pixels per face unit
    cx = _col(IMAGE_SIZE / 2 + uniform(-2.5, 2.5, b))
    cy = _col(IMAGE_SIZE / 2 + 1 + uniform(-2.5, 2.5, b))
    grid = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    x, y = grid[None, None, :], grid[None, :, None]
    cos, sin = np.cos(angle), np.sin(angle)
    u = ((x - cx) * cos + (y - cy) * sin) / ppu
    v = (-(x - cx) * sin + (y - cy) * cos) / ppu
    u = u - _col(uniform(-0.05, 0.05, b))  # features slightly off-centre: a little yaw

    # Lighting: background, skin, a linear gradient over the whole picture.
    skin = _col(uniform(95.0, 205.0, b))
    bg = uniform(10.0, 245.0, b)
    too_close = np.abs(bg - skin[:, 0, 0]) < 30
    bg[too_close] = np.where(skin[too_close, 0, 0] > 128, 30.0, 225.0)
    light_dir = _col(uniform(0.0, 2 * np.pi, b))
    gradient = _col(uniform(0.0, 45.0, b)) * (
        ((x - 24) * np.cos(light_dir) + (y - 24) * np.sin(light_dir)) / 24
    )
    ink = skin * _col(uniform(0.15, 0.4, b))  # features: eyes, brows, mouth
    img = np.broadcast_to(_col(bg), (b, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)

    # Head, shaded darker towards its edge, and hair above a hairline.
    head_w = _col(uniform(0.72, 0.86, b))
    head = _ellipse(u, v, 0.0, 0.0, head_w, 1.0, ppu)
    radius2 = (u / head_w) ** 2 + v**2
    _paint(img, head, skin * (1.0 - 0.18 * np.clip(radius2, 0, 1)))
    hairline = _col(uniform(-0.75, -0.45, b)) + 0.25 * u**2
    hair = head * _soft((v - hairline) * ppu) * _col(rng.random(b) < 0.9)
    _paint(img, hair, _col(uniform(15.0, 120.0, b)))

    # Eyes: white with a dark pupil when open, a dark slit when nearly closed.
    eye_y = -0.1 + _col(rng.normal(0.0, 0.02, b))
    for side in (-1.0, 1.0):
        eye_x = side * 0.32
        _paint(
            img,
            _ellipse(u, v, eye_x, eye_y, 0.13, f["eye"], ppu),
            np.minimum(skin * 1.25 + 20, 250),
        )
        pupil = _ellipse(u, v, eye_x, eye_y, np.minimum(0.06, f["eye"] + 0.01), f["eye"], ppu)
        _paint(img, pupil, ink)
        # Brows: inner end near the nose, outer end above the eye's outer corner.
        inner = (side * 0.1, -0.33 + f["brow_in"])
        outer = (side * 0.5, -0.33 + f["brow_out"])
        _paint(img, _segment(u, v, *inner, *outer, 0.045, ppu), ink)
        # Disgust wrinkles the nose; anger a little.
        crease = _segment(u, v, side * 0.05, -0.02, side * 0.13, 0.06, 0.02, ppu)
        _paint(img, crease * np.clip(f["wrinkle"], 0, 1) * 0.7, ink)

    # Glasses on some faces: a nuisance the model must ignore.
    glasses = _col(rng.random(b) < 0.12)
    for side in (-1.0, 1.0):
        rim = _ellipse(u, v, side * 0.32, eye_y, 0.22, 0.16, ppu)
        inner = _ellipse(u, v, side * 0.32, eye_y, 0.18, 0.12, ppu)
        _paint(img, glasses * np.clip(rim - inner, 0, 1), ink)

    # Nose: a soft shadow and two nostrils.
    _paint(img, 0.35 * _segment(u, v, 0.0, -0.05, 0.03, 0.22, 0.03, ppu), skin * 0.7)
    for side in (-1.0, 1.0):
        _paint(img, 0.6 * _ellipse(u, v, side * 0.06, 0.24, 0.035, 0.025, ppu), ink)

    # Mouth: a curved line that opens into a dark lens shape, with teeth on some labels.
    mouth_x = _col(rng.normal(0.0, 0.02, b))
    mouth_y = 0.48 + _col(rng.normal(0.0, 0.03, b))
    t = (u - mouth_x) / f["mouth_w"]
    centre = mouth_y - f["curve"] * t**2 + f["tilt"] * t
    half = 0.04 + f["open"] * np.clip(1.0 - t**2, 0.0, 1.0)
    inside_width = _soft((np.abs(t) - 1.0) * f["mouth_w"] * ppu)
    mouth = _soft((np.abs(v - centre) - half) * ppu) * inside_width
    _paint(img, mouth, ink)
    teeth_band = _soft((np.abs(v - (centre - half * 0.45)) - half * 0.4) * ppu)
    teeth = teeth_band * inside_width * _soft((np.abs(t) - 0.75) * f["mouth_w"] * ppu)
    _paint(
        img,
        teeth * np.clip(f["teeth"], 0, 1) * (f["open"] > 0.02),
        np.minimum(skin * 1.3 + 30, 250),
    )

    img += gradient
    img = _blur(img, uniform(0.2, 1.0, b).astype(np.float32))
    img += rng.normal(0.0, 1.0, img.shape).astype(np.float32) * _col(uniform(2.0, 8.0, b))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _blur(img: np.ndarray, sigma: np.ndarray, radius: int = 3) -> np.ndarray:
    """Separable Gaussian blur with a different sigma per image."""
    k = np.arange(-radius, radius + 1, dtype=np.float32)
    w = np.exp(-(k[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    w /= w.sum(axis=1, keepdims=True)
    size = img.shape[1]
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(img, pad, mode="edge")
        out = np.zeros_like(img)
        for i in range(2 * radius + 1):
            window = padded[:, i : i + size, :] if axis == 1 else padded[:, :, i : i + size]
            out += w[:, i, None, None] * window
        img = out
    return img


def _rows_per_split(rows: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(rows, Mapping):
        unknown = set(rows) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; expected keys among {SPLITS}")
        return {split: int(rows.get(split, 0)) for split in SPLITS}
    return {split: int(rows) for split in SPLITS}


def make_synthetic_arrays(
    rows: int | Mapping[str, int], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (images uint8 (N, 48, 48), labels int64 (N,)), labels shuffled.

    `rows` is the number of faces per split, or a mapping such as
    {"train": 5000, "val": 800, "test": 800}. Each split has its own random stream, so
    resizing one split leaves the others unchanged.
    """
    out = {}
    for index, (split, n) in enumerate(_rows_per_split(rows).items()):
        rng = np.random.default_rng([seed, index])
        labels = rng.permutation(np.repeat(np.arange(NUM_CLASSES), class_sizes(n)))
        out[split] = (draw_faces(labels, rng), labels)
    return out


def _rows_in_file_order(rows, seed):
    arrays = make_synthetic_arrays(rows, seed)
    images = np.concatenate([arrays[s][0] for s in SPLITS])
    labels = np.concatenate([arrays[s][1] for s in SPLITS])
    usages = [USAGE_OF_SPLIT[s] for s in SPLITS for _ in range(len(arrays[s][1]))]
    return images, labels, usages


def write_synthetic_csv(path: str | Path, rows: int | Mapping[str, int], seed: int = 0) -> Path:
    """Draw a synthetic set and write it as a FER2013 CSV at `path` (atomically)."""
    path = Path(path)
    data = encode_fer_csv(*_rows_in_file_order(rows, seed))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
