"""Annotated frames are legible: measured on the rendered pixels, for every label colour, on
light, dark and grey backgrounds, at face sizes from 48 to 300 px."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.app.draw import COLORS, annotate, contrast, draw_status, layout
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


def test_boxes_cut_by_the_frame_edge_are_drawn_where_they_are_and_nowhere_else():
    """Faces half out of the picture: what is inside is drawn, nothing wraps round to the
    opposite side (numpy would, given a negative index)."""
    frame = np.full((240, 320, 3), 128, np.uint8)
    faces = [
        Face((-30, -20, 90, 90), np.zeros(7, np.float32), "happy", 0.9),
        Face((270, 190, 100, 100), np.zeros(7, np.float32), "sad", 0.5),
    ]
    image = annotate(frame, faces)
    changed = np.any(image != 128, axis=2)
    assert changed[:80, :70].any() and changed[180:, 260:].any()
    assert not changed[120:180, 80:250].any()  # between the two faces: untouched
    assert not changed[:70, 200:].any() and not changed[170:, :100].any()  # no wrap-around


def test_annotate_leaves_the_frame_alone_and_takes_grey_ones():
    frame = np.full((120, 160), 90, np.uint8)
    face = Face((40, 40, 60, 60), np.zeros(7, np.float32), "fear", 0.3)
    image = annotate(frame, [face])
    assert image.shape == (120, 160, 3) and np.all(frame == 90)
    assert np.any(image != 90)
    colour = annotate(np.full((120, 160, 3), 90, np.uint8), [face])
    np.testing.assert_array_equal(image, colour)


@pytest.mark.parametrize("grey", BACKGROUNDS.values())
def test_status_line_is_drawn_in_place_and_legible(grey):
    frame = np.full((240, 320, 3), grey, np.uint8)
    assert draw_status(frame, "29.8 fps  2 faces") is None
    corner = frame[:40, :200].astype(int)
    white, black = np.all(corner >= 230, axis=2), np.all(corner <= 25, axis=2)
    # White letters on a black outline: one or the other shows on any background.
    assert grey > 200 or white.sum() >= 30, "no white text"
    assert black.sum() >= 30, "no black outline"
    assert not np.any(frame[40:] != grey) and not np.any(frame[:, 200:] != grey)
    rows = np.nonzero(np.any(np.abs(corner - grey) > 100, axis=2).any(axis=1))[0]
    assert rows.max() - rows.min() + 1 >= 8, "text too small to read"
