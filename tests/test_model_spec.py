"""`InputSpec.feed`: faces become exactly the input `labels.json` describes."""

from __future__ import annotations

import numpy as np

from pipeline.model_spec import InputSpec


def test_nchw_feed_keeps_height_and_width_apart():
    # Every pixel different and the face not square, so a swap of any two axes shows.
    faces = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)  # N, H, W, C

    x = InputSpec(height=3, width=5, channels=3, layout="NCHW").feed(faces)

    assert x.shape == (2, 3, 3, 5)
    for n, c, h, w in [(0, 0, 0, 0), (1, 2, 2, 4), (0, 1, 2, 3), (1, 0, 1, 4)]:
        assert x[n, c, h, w] == faces[n, h, w, c]


def test_nhwc_feed_scales_and_offsets_each_pixel():
    faces = np.array([[[[0], [255]], [[100], [51]]]], np.uint8)  # one 2x2 grey face

    x = InputSpec(height=2, width=2, scale=1 / 255, offset=-0.5).feed(faces)

    assert x.dtype == np.float32 and x.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(x[0, :, :, 0], [[-0.5, 0.5], [100 / 255 - 0.5, -0.3]], atol=1e-6)
