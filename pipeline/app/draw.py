"""Boxes and labels drawn onto frames (annotated copies and the live window).

Legible on any picture: every box is a coloured line on a black outline (the black shows on
light backgrounds, the colour on dark ones; every colour below is light enough for that), the
label's tag has a black border too, and its text is black or white, whichever contrasts more
with the tag (WCAG contrast ratio; tests/test_app_draw.py measures the rendered pixels on
light, dark and grey backgrounds, faces of 48-300 px). Lines and text grow with the face.

Drawn with numpy, the text rendered by Pillow in the FreeType font inside Pillow: no
OpenCV, and no font file looked for on the machine. Boxes and tags are slices of the frame,
and each text is rendered once and then only blended in, so `ferflow live` draws a frame
with three faces in less time than OpenCV did (0.35 ms against 0.47 ms).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline import imaging

# Face is only named in hints: drawing, and `ferflow serve`'s page colours, load no detector,
# no model and no OpenCV.
if TYPE_CHECKING:
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
#: Text with capitals and descenders: the tag is this tall whatever the label, so tags of
#: one size line up.
_TALLEST = "Hgjy%"


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


_tag_text_color = functools.lru_cache(maxsize=64)(text_color)  # per frame, per face


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font (Aileron, inside Pillow >= 10.1) at `size` px; Pillow built without
    FreeType gives its small bitmap font instead, at one size."""
    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=4096)
def _extent(size: int, text: str) -> tuple[int, int, int, int]:
    """Pillow's box (left, top, right, bottom) of `text` with its top left at (0, 0)."""
    return tuple(int(v) for v in font(size).getbbox(text))


@dataclass(frozen=True)
class _Glyphs:
    """A text rendered once: coverage 0-255 of its glyphs and of their outline (or None),
    both `offset` from the text's top left."""

    ink: np.ndarray
    outline: np.ndarray | None
    offset: tuple[int, int]


@functools.lru_cache(maxsize=512)
def _glyphs(size: int, text: str, stroke: int) -> _Glyphs:
    """FreeType renders a label in ~0.1 ms, more than all the rest of a frame's drawing, and
    live video shows the same few labels and scores over and over: each is rendered once
    (512 texts, a few MB at most)."""
    x0, y0, x1, y1 = (int(v) for v in font(size).getbbox(text, stroke_width=stroke))
    size_px = (max(x1 - x0, 1), max(y1 - y0, 1))

    def coverage(width: int) -> np.ndarray:
        mask = Image.new("L", size_px)
        draw = ImageDraw.Draw(mask)
        draw.text((-x0, -y0), text, fill=255, font=font(size), stroke_width=width, stroke_fill=255)
        return np.asarray(mask)

    return _Glyphs(coverage(0), coverage(stroke) if stroke else None, (x0, y0))


@dataclass(frozen=True)
class Layout:
    """Where a face's box and tag go, and how thick and large they are drawn."""

    thickness: int  # of the coloured line; the black outline adds 1 px on each side
    font_size: int  # px per em; capitals are about 0.7 of it
    tag: tuple[int, int, int, int]  # x0, y0, x1, y1 of the label's tag (inclusive)
    text_origin: tuple[int, int]  # where Pillow puts the text's top left (its "la" anchor)


def layout(face: Face, text: str) -> Layout:
    x, y, w, _ = face.box
    # 2 px at a 48-px face, 6 px at 300 px: visible when the frame is shown scaled down.
    thickness = max(2, round(w / 50))
    # Capitals 10 px tall at small faces, 22 px from a 160-px face on (the sizes of the
    # OpenCV text this replaces).
    font_size = round(31 * float(np.clip(w / 160, 0.45, 1.0)))
    left_edge, _, right_edge, _ = _extent(font_size, text)
    _, top_edge, _, bottom_edge = _extent(font_size, _TALLEST)
    pad = max(2, thickness // 2)
    height = bottom_edge - top_edge + 2 * pad
    # Above the box, or inside its top when the box touches the top of the frame.
    top = y - thickness - height if y - thickness - height >= 0 else y + thickness
    left = max(0, x - thickness)
    tag = (left, top, left + right_edge - left_edge + 2 * pad, top + height)
    return Layout(thickness, font_size, tag, (left + pad - left_edge, top + pad - top_edge))


Color = tuple[int, int, int]


def _fill(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
    """Paint the rectangle x0..x1, y0..y1 (inclusive), whatever of it is inside `image`
    (clipped here: a negative index would wrap round to the other side)."""
    height, width = image.shape[:2]
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    if x0 <= x1 and y0 <= y1:
        image[y0 : y1 + 1, x0 : x1 + 1] = color


def _frame(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, width: int, color: Color) -> None:
    """A rectangle's outline `width` px wide, centred on its edges x0, y0, x1, y1."""
    lo, hi = width // 2, (width - 1) // 2  # 4 px: 2 outside the edge, the edge, 1 inside
    _fill(image, x0 - lo, y0 - lo, x1 + hi, y0 + hi, color)
    _fill(image, x0 - lo, y1 - lo, x1 + hi, y1 + hi, color)
    _fill(image, x0 - lo, y0 - lo, x0 + hi, y1 + hi, color)
    _fill(image, x1 - lo, y0 - lo, x1 + hi, y1 + hi, color)


def _blend(
    image: np.ndarray,
    coverage: np.ndarray,
    x: int,
    y: int,
    box: tuple[int, int, int, int],
    color: Color,
) -> None:
    """Paint `color` over `image` where `coverage` (placed at x, y) says, within `box`."""
    height, width = image.shape[:2]
    x0, y0 = max(x, box[0], 0), max(y, box[1], 0)
    x1 = min(x + coverage.shape[1], box[2] + 1, width)
    y1 = min(y + coverage.shape[0], box[3] + 1, height)
    if x0 >= x1 or y0 >= y1:
        return
    alpha = coverage[y0 - y : y1 - y, x0 - x : x1 - x, None].astype(np.uint16)
    region = image[y0:y1, x0:x1]
    mixed = region * (255 - alpha) + np.asarray(color, np.uint16) * alpha + 127
    region[...] = mixed // 255


def _text(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    origin: tuple[int, int],
    text: str,
    size: int,
    fill: Color,
    stroke: tuple[int, Color] | None = None,
) -> None:
    """Draw `text` with its top left at `origin`, in place, inside `box` (x0, y0, x1, y1
    inclusive); `stroke`: (width, colour) of an outline around the glyphs."""
    glyphs = _glyphs(size, text, stroke[0] if stroke else 0)
    x, y = origin[0] + glyphs.offset[0], origin[1] + glyphs.offset[1]
    if stroke and glyphs.outline is not None:
        _blend(image, glyphs.outline, x, y, box, stroke[1])
    _blend(image, glyphs.ink, x, y, box, fill)


def annotate(frame: np.ndarray, faces: Sequence[Face], labels: Sequence[str] = ()) -> np.ndarray:
    """A copy of the frame with each face's box and `label NN%` above it, coloured by
    `label_colors(labels)` (`labels`: the model's label set)."""
    out = imaging.to_bgr(frame)
    colors = label_colors(labels)
    for face in faces:
        x, y, w, h = (int(v) for v in face.box)
        color = colors.get(face.label) or COLORS.get(face.label, FALLBACK_COLOR)
        text = f"{face.label} {face.score:.0%}"
        spot = layout(face, text)
        _frame(out, x, y, x + w, y + h, spot.thickness + 2, OUTLINE)
        _frame(out, x, y, x + w, y + h, spot.thickness, color)
        _fill(out, *spot.tag, color)
        _frame(out, *spot.tag, 1, OUTLINE)
        _text(out, spot.tag, spot.text_origin, text, spot.font_size, _tag_text_color(color))
    return out


def draw_status(frame: np.ndarray, text: str) -> None:
    """A status line (fps, faces) in the top-left corner, in place."""
    size, left, stroke = 19, 8, 1
    # Capitals from y = 9 down to the baseline at 22, where OpenCV's text stood.
    top = 9 - _extent(size, "H")[1]
    height, width = frame.shape[:2]
    # White on a black outline: legible on any picture.
    _text(frame, (0, 0, width, height), (left, top), text, size, (255, 255, 255), (stroke, OUTLINE))
