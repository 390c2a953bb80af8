"""Training augmentation (train.augment): what random erasing does to a face, and that the
train step stays under XLA with every transform on."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.models import build_model
from pipeline.models.augment import build_augmenter
from pipeline.training.recipe import build_training_model

EVERYTHING = {"flip": True, "rotation": 10, "zoom": 0.1, "shift": 0.1, "erasing": 0.5}


def erased_boxes(rate: float, count: int) -> list[np.ndarray]:
    """The pixels erasing changed in `count` flat grey faces (one mask per face)."""
    faces = np.full((count, 48, 48, 1), 100.0, np.float32)
    out = keras.ops.convert_to_numpy(
        build_augmenter({"erasing": rate}, seed=0)(faces, training=True)
    )
    assert out.min() >= 0.0 and out.max() <= 255.0  # raw pixel range
    return [face[..., 0] != 100.0 for face in out]


def test_erasing_fills_one_box_of_a_face_with_noise():
    for changed in erased_boxes(rate=1.0, count=50):
        assert changed.any(), "rate 1 erases every face"
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        box = changed[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        # One solid rectangle (noise that lands on exactly 100 is left as it was, rarely).
        assert box.mean() > 0.95 and changed.sum() == pytest.approx(box.sum(), abs=3)
        assert 0.01 < box.size / 48**2 < 0.3  # 2-25% of the face, give or take the pixel grid


def test_erasing_rate_is_the_probability_per_face():
    erased = [changed.any() for changed in erased_boxes(rate=0.5, count=400)]
    assert np.mean(erased) == pytest.approx(0.5, abs=0.08)


def test_augmentation_is_off_at_inference():
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    out = build_augmenter(EVERYTHING, seed=0)(faces, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), faces)


def supports_jit(model: keras.Model) -> bool:
    """Keras' own rule: `jit_compile=True` is dropped (with a warning only) unless every
    layer declares supports_jit, as its RandomRotation/RandomZoom/RandomTranslation do not.
    (TensorFlow also drops it under op determinism, which ferflow sets; the JAX run in
    tests/test_distribute.py trains compiled with every transform on.)"""
    return all(layer.supports_jit for layer in model._flatten_layers())


def test_every_transform_keeps_the_train_step_compilable():
    net = build_model("vgg", widths=[4], convs_per_block=1, dense=[8])
    assert supports_jit(build_training_model(net, {"augment": EVERYTHING, "seed": 0}))


def test_the_check_would_catch_keras_rotation():
    inputs = keras.Input((48, 48, 1))
    rotated = keras.layers.RandomRotation(0.05)(inputs)
    net = build_model("vgg", widths=[4], convs_per_block=1, dense=[8])
    assert not supports_jit(keras.Model(inputs, net(rotated)))
