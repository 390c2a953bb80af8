"""Test-time augmentation: average the probabilities over flipped and shifted views.

Views are made on the host with numpy (cheap at 48x48) and predicted in large batches by
any predictor (a Keras network or an ONNX model, see `predictors.py`).
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.predictors import Predictor


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift (N, H, W[, C]) images by (dy, dx) pixels, repeating the border into the gap."""
    if dy == 0 and dx == 0:
        return images
    pad = max(abs(dy), abs(dx))
    width = [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, width, mode="edge")
    h, w = images.shape[1:3]
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def views(images: np.ndarray, flip: bool = True, shift: int = 0) -> list[np.ndarray]:
    """The original, its mirror image (if `flip`), and each shifted by up to `shift` px."""
    offsets = range(-shift, shift + 1, shift) if shift else (0,)
    out = []
    for dy in offsets:
        for dx in offsets:
            view = shifted(images, dy, dx)
            out.append(view)
            if flip:
                out.append(view[:, :, ::-1])
    return out


def predict_tta(
    predict: Predictor, images: np.ndarray, flip: bool = True, shift: int = 0
) -> np.ndarray:
    """Mean class probabilities over `views(images, flip, shift)`; (N, classes) float32."""
    all_views = views(images, flip, shift)
    total = sum(predict(view) for view in all_views)
    return (total / len(all_views)).astype("float32")
