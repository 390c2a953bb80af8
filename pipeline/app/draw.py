"""Boxes and labels drawn onto frames (annotated copies and the live window).

Legible on any picture: every box is a coloured line on a black outline (the black shows on
light backgrounds, the colour on dark ones; every colour below is light enough for that), the
label's tag has a black border too, and its text is black or white, whichever contrasts more
with the tag (WCAG contrast ratio; tests/test_app_draw.py measures the rendered pixels on
light, dark and grey backgrounds, faces of 48-300 px). Lines and text grow with the face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.app.recognizer import Face

#: BGR colour per FER2013 / FER+ label, all with a relative luminance of 0.2 or more (so the
#: colour stands out from a dark background, its black outline from a light one).
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (70, 70, 240),
    "disgust": (70, 200, 70),
    "fear": (230, 130, 200),
    "happy": (40, 215, 255),
    "sad": (240, 170, 60),
    "surprise": (200, 230, 40),
    "neutral": (215, 215, 215),
    "contempt": (170, 110, 200),
}
#: Colours for the classes of any other label set (a folder dataset's own names), given in
#: the order of the model's labels; as light as the ones above, and none of them.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 160, 255),
    (255, 200, 120),
    (180, 130, 255),
    (120, 255, 200),
    (255, 255, 120),
    (150, 200, 100),
    (200, 200, 255),
    (120, 220, 255),
)
FALLBACK_COLOR = PALETTE[0]
OUTLINE = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_colors(labels: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """A colour per label of a model's label set: its own for FER2013's and FER+'s names,
    the next unused one of PALETTE for any other (so a made-up set gets distinct colours)."""
    spare = iter([c for c in PALETTE if c not in COLORS.values()])
    return {label: COLORS.get(label) or next(spare, FALLBACK_COLOR) for label in labels}


def luminance(bgr: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour given as BGR 0-255."""
    channels = np.asarray(bgr, np.float64)[::-1] / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def contrast(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG contrast ratio of two colours (1 to 21; text wants >= 4.5, lines >= 3)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_color(background: Sequence[float]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `background`."""
    black, white = (0, 0, 0), (255, 255, 255)
    return black if contrast(black, background) >= contrast(white, background) else white


@dataclass(frozen=True)
class Layout:
    """Where a face's box and tag go, and how thick and large they are drawn."""

    thickness: int  # of the coloured line; the black outline adds 1 px on each side
    font_scale: float
    text_thickness: int
    tag: tuple[int, int, int, int]  # x0, y0, x1, y1 of the label's tag (inclusive)
    text_origin: tuple[int, int]


def layout(face: Face, text: str) -> Layout:
    x, y, w, _ = face.box
    # 2 px at a 48-px face, 6 px at 300 px: visible when the frame is shown scaled down.
    thickness = max(2, round(w / 50))
    font_scale = float(np.clip(w / 160, 0.45, 1.0))
    text_thickness = 1 if font_scale < 0.7 else 2
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, text_thickness)
    pad = max(2, thickness // 2)
    height = th + base + 2 * pad
    # Above the box, or inside its top when the box touches the top of the frame.
    top = y - thickness - height if y - thickness - height >= 0 else y + thickness
    left = max(0, x - thickness)
    tag = (left, top, left + tw + 2 * pad, top + height)
    return Layout(thickness, font_scale, text_thickness, tag, (left + pad, top + pad + th))


def annotate(frame: np.ndarray, faces: Sequence[Face], labels: Sequence[str] = ()) -> np.ndarray:
    """A copy of the frame with each face's box and `label NN%` above it, coloured by
    `label_colors(labels)` (`labels`: the model's label set)."""
    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    colors = label_colors(labels)
    for face in faces:
        x, y, w, h = face.box
        color = colors.get(face.label) or COLORS.get(face.label, FALLBACK_COLOR)
        text = f"{face.label} {face.score:.0%}"
        spot = layout(face, text)
        corners = (x, y), (x + w, y + h)
        cv2.rectangle(out, *corners, OUTLINE, spot.thickness + 2)
        cv2.rectangle(out, *corners, color, spot.thickness)
        x0, y0, x1, y1 = spot.tag
        cv2.rectangle(out, (x0, y0), (x1, y1), color, cv2.FILLED)
        cv2.rectangle(out, (x0, y0), (x1, y1), OUTLINE, 1)
        cv2.putText(
            out,
            text,
            spot.text_origin,
            FONT,
            spot.font_scale,
            text_color(color),
            spot.text_thickness,
            cv2.LINE_AA,
        )
    return out


def draw_status(frame: np.ndarray, text: str) -> None:
    """A status line (fps, faces) in the top-left corner, in place."""
    cv2.putText(frame, text, (8, 22), FONT, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame, text, (8, 22), FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
