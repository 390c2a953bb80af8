"""Boxes and labels drawn onto frames (annotated copies and the live window)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.app.recognizer import Face

#: BGR colour per FER2013 label; any other label set falls back to a neutral orange.
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),
    "disgust": (40, 150, 40),
    "fear": (160, 60, 160),
    "happy": (40, 210, 250),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 40),
    "neutral": (200, 200, 200),
}
FALLBACK_COLOR = (0, 155, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate(frame: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of the frame with each face's box and `label NN%` above it."""
    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    for face in faces:
        x, y, w, h = face.box
        color = COLORS.get(face.label, FALLBACK_COLOR)
        thickness = max(1, round(w / 60))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness)
        text = f"{face.label} {face.score:.0%}"
        scale = max(0.4, w / 200)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
        # Above the box, or inside it when the box touches the top of the frame.
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), color, cv2.FILLED)
        origin = (x + 2, top + th + 2)
        cv2.putText(out, text, origin, FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return out


def draw_status(frame: np.ndarray, text: str) -> None:
    """A status line (fps, faces) in the top-left corner, in place."""
    cv2.putText(frame, text, (8, 22), FONT, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame, text, (8, 22), FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
