"""Training-time augmentation: Keras' own RandomErasing, and one hand-written geometric layer.

Hand-written because of a measured cost: Keras' RandomTranslation/RandomRotation/RandomZoom
declare `supports_jit=False`, which silently switches the whole training step off XLA (a JAX
train step took 2.35 s instead of 0.24 s, NOTES.md), and `keras.ops.image.affine_transform`
lowers to a TensorFlow op XLA cannot compile. `RandomAffine` does their work with one batched
bilinear warp in plain ops (gathers), so the train step stays compiled on every backend.
Keras' RandomErasing keeps `supports_jit=True` (tests/test_augment.py checks every layer). The
layers are identity at inference, and they live only in the training model
(`Model(x, net(augment(x)))`), never in the exported network.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


def bilinear_warp(images, row_x, row_y):
    """Sample each image at p_in = (a0 x + a1 y + a2, b0 x + b1 y + b2) for every output (x, y).

    `row_x` = (a0, a1, a2) and `row_y` = (b0, b1, b2) hold one value per image. Coordinates
    outside the image are clamped to the border (nearest fill). Images: (B, H, W, 1).
    """
    height, width = images.shape[1], images.shape[2]
    ys, xs = ops.meshgrid(
        ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"), indexing="ij"
    )
    xs, ys = xs[None], ys[None]
    a0, a1, a2 = (v[:, None, None] for v in row_x)
    b0, b1, b2 = (v[:, None, None] for v in row_y)
    x_in = ops.clip(a0 * xs + a1 * ys + a2, 0.0, width - 1.0)
    y_in = ops.clip(b0 * xs + b1 * ys + b2, 0.0, height - 1.0)
    x0, y0 = ops.floor(x_in), ops.floor(y_in)
    wx, wy = x_in - x0, y_in - y0
    x0 = ops.cast(x0, "int32")
    y0 = ops.cast(y0, "int32")
    x1 = ops.minimum(x0 + 1, width - 1)
    y1 = ops.minimum(y0 + 1, height - 1)

    flat = ops.reshape(images, (-1, height * width))

    def at(y, x):
        index = ops.reshape(y * width + x, (-1, height * width))
        return ops.reshape(ops.take_along_axis(flat, index, axis=1), (-1, height, width))

    top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx
    return (top * (1.0 - wy) + bottom * wy)[..., None]


class RandomAffine(keras.layers.Layer):
    """Random horizontal flip, rotation, zoom and shift in one bilinear warp per image."""

    def __init__(
        self,
        flip: bool = True,
        rotation: float = 10.0,
        zoom: float = 0.1,
        shift: float = 0.1,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        # float32 even under mixed precision: interpolation in bfloat16 visibly bands faces.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.flip, self.rotation, self.zoom, self.shift = flip, rotation, zoom, shift
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]

        def uniform(low: float, high: float):
            return keras.random.uniform(
                (batch,), low, high, dtype="float32", seed=self.seed_generator
            )

        angle = uniform(-1.0, 1.0) * (self.rotation * math.pi / 180.0)
        scale = 1.0 + uniform(-self.zoom, self.zoom)
        tx = uniform(-self.shift, self.shift) * width
        ty = uniform(-self.shift, self.shift) * height
        if self.flip:
            mirror = ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0)
        else:
            mirror = ops.ones((batch,), dtype="float32")

        # The warp maps each output pixel back to the input: p_in = A (p_out - c) + c + t,
        # with A = R(angle) @ diag(mirror, 1) / scale about the image centre c.
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        a0, a1 = cos * mirror, -sin
        b0, b1 = sin * mirror, cos
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        a2 = cx - a0 * cx - a1 * cy + tx
        b2 = cy - b0 * cx - b1 * cy + ty
        return bilinear_warp(images, (a0, a1, a2), (b0, b1, b2))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "flip": self.flip,
            "rotation": self.rotation,
            "zoom": self.zoom,
            "shift": self.shift,
            "seed": self.seed,
        }


def build_augmenter(params: dict[str, Any], seed: int | None = None) -> keras.layers.Layer:
    """The augmentation stack from the `train.augment` section of params.yaml.

    Keys (all optional): flip (bool), rotation (degrees), zoom (fraction), shift (fraction of
    the side), erasing (probability of random erasing, Zhong et al. 2017: one box of noise).
    Zero or false switches a transform off.
    """
    known = {"flip", "rotation", "zoom", "shift", "erasing"}
    unknown = set(params) - known
    if unknown:
        raise ValueError(
            f"train.augment: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}"
        )
    layers: list[keras.layers.Layer] = []
    flip = bool(params.get("flip", False))
    rotation = float(params.get("rotation", 0.0))
    zoom = float(params.get("zoom", 0.0))
    shift = float(params.get("shift", 0.0))
    if flip or rotation or zoom or shift:
        layers.append(RandomAffine(flip, rotation, zoom, shift, seed=seed, name="affine"))
    erasing = float(params.get("erasing", 0.0))
    if erasing:
        layers.append(
            keras.layers.RandomErasing(
                # (p, p): a fixed probability p; a single number p would draw it from [0, p].
                factor=(erasing, erasing),
                # Each side 14-50% of the face's: 2-25% of its area, aspect ratio 0.28-3.5.
                scale=(0.02, 0.25),
                # Raw pixels. The fill is Keras' noise, normal x 255 clipped to this range.
                value_range=(0.0, 255.0),
                seed=None if seed is None else seed + 1,
                # float32 under mixed precision too, like RandomAffine.
                dtype="float32",
                name="erasing",
            )
        )
    if not layers:
        # An empty Sequential cannot be built; the tutorial's recipe trains without augmentation.
        return keras.layers.Identity(name="augment")
    return keras.Sequential(layers, name="augment")
