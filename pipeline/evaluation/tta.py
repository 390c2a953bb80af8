"""Test-time augmentation: average the network's probabilities over flipped and shifted views.

Views are made on the host with numpy (cheap at 48x48) and predicted in large batches, so
this works with any backend and for any saved network.
"""

from __future__ import annotations

import keras
import numpy as np


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
    net: keras.Model, images: np.ndarray, flip: bool = True, shift: int = 0, batch_size: int = 1024
) -> np.ndarray:
    """Mean class probabilities over `views(images, flip, shift)`; (N, classes) float32."""
    total = None
    all_views = views(images, flip, shift)
    for view in all_views:
        probs = net.predict(view, batch_size=batch_size, verbose=0)
        total = probs if total is None else total + probs
    return (total / len(all_views)).astype("float32")
