"""Annotated frames are legible: measured on the rendered pixels, for every label colour, on
light, dark and grey backgrounds, at face sizes from 48 to 300 px."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.app.draw import COLORS, annotate, contrast, layout
from pipeline.app.recognizer import Face

BACKGROUNDS = {"light": 245, "dark": 12, "grey": 128}
SIZES = (48, 100, 300)
X, Y = 60, 90


def render(label: str, side: int, grey: int) -> tuple[np.ndarray, Face]:
    frame = np.full((480, 480, 3), grey, np.uint8)
    face = Face((X, Y, side, side), np.zeros(7, np.float32), label, 0.87)
    return annotate(frame, [face]), face


def line_band(image: np.ndarray, grey: int, side: int) -> np.ndarray:
    """The pixels that changed across the box's left edge, at the middle of its height."""
    row = image[Y + side // 2, X - 10 : X + 10].astype(int)
    return row[np.any(row != grey, axis=1)]


@pytest.mark.parametrize("background", BACKGROUNDS)
@pytest.mark.parametrize("label", COLORS)
def test_every_box_and_label_is_legible(label, background):
    grey = BACKGROUNDS[background]
    widths = []
    for side in SIZES:
        image, face = render(label, side, grey)

        band = line_band(image, grey, side)
        widths.append(len(band))
        # The line: some of it stands out from the background by WCAG's 3:1 for graphics.
        assert max(contrast(p, (grey,) * 3) for p in band) >= 3.0, (label, background, side)

        x0, y0, x1, y1 = layout(face, f"{label} 87%").tag
        tag = image[y0 + 1 : y1, x0 + 1 : x1].reshape(-1, 3).astype(int)  # inside its border
        colours, counts = np.unique(tag, axis=0, return_counts=True)
        fill = colours[counts.argmax()]
        distance = np.abs(tag - fill).sum(axis=1)
        # The glyphs' cores; their anti-aliased edges blend into the tag by design.
        text = tag[distance >= 0.8 * distance.max()]
        assert distance.max() > 150 and len(text) >= 20, "no text drawn"
        # Text against its tag: WCAG's 4.5:1 for normal text.
        assert min(contrast(p, fill) for p in text) >= 4.5, (label, background, side)
        inside = np.abs(image[y0 + 1 : y1, x0 + 1 : x1].astype(int) - fill).sum(2)
        rows = np.nonzero(np.any(inside >= 0.8 * distance.max(), axis=1))[0]
        assert rows.max() - rows.min() + 1 >= 8, "text too small to read"
    # Lines grow with the face: thin on small faces, clearly thicker on large ones.
    assert widths[0] >= 3
    assert widths[-1] >= widths[0] + 4


def test_label_of_a_face_at_the_top_edge_stays_in_the_frame():
    frame = np.full((200, 200, 3), 128, np.uint8)
    face = Face((20, 0, 80, 80), np.zeros(7, np.float32), "happy", 0.9)
    x0, y0, x1, y1 = layout(face, "happy 90%").tag
    assert y0 >= 0 and y1 < 80  # inside the box's top, not cut off above the frame
    image = annotate(frame, [face])
    assert np.any(image[y0:y1, x0:x1] != 128)
