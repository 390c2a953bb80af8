"""The CNNs. Each takes raw 0..255 grayscale faces (48, 48, 1) and returns 7 probabilities.

Rescaling is the first layer, so the exported model takes raw pixels and training and
serving cannot drift apart. Augmentation is not here: see `augment.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from pipeline.config import INPUT_SHAPE, NUM_CLASSES


def _head(x, num_classes: int):
    # float32 softmax: under mixed precision bf16 probabilities would be too coarse for the
    # 1e-4 ONNX parity check and for calibrated scores.
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)


def build_seed(num_classes: int = NUM_CLASSES) -> keras.Model:
    """The tutorial's network, kept as the baseline ferflow is measured against (9.0M params).

    VGG-like: conv 64 (valid, L2 0.01), 64 / 128x3 / 256x3 / 512x3 with batch norm, max-pool
    and dropout 0.5, then dense 512-256-128-64 with dropout. Like the tutorial, it standardises
    each pixel with the training set's mean and std (a Normalization layer that `fit` adapts).
    """
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = layers.Normalization(axis=(1, 2, 3), name="standardize")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", kernel_regularizer=keras.regularizers.l2(0.01))(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.5)(x)
    for filters in (128, 256, 512):
        for _ in range(3):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.5)(x)
    x = layers.Flatten()(x)
    for units, rate in ((512, 0.4), (256, 0.4), (128, 0.5), (64, 0.5)):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(rate)(x)
    return keras.Model(inputs, _head(x, num_classes), name="seed")


def build_vgg(
    widths: Sequence[int] = (64, 128, 256, 512),
    convs_per_block: int = 2,
    dense: Sequence[int] = (1024, 1024),
    dropout: float = 0.5,
    block_dropout: float = 0.0,
    num_classes: int = NUM_CLASSES,
) -> keras.Model:
    """ferflow's default: a VGG variant in the spirit of Khaireddin & Chen (2021).

    Blocks of `convs_per_block` 3x3 conv + batch norm + ReLU, each block halving the
    resolution with max-pool; then dense layers with dropout. Defaults: 10.5M parameters.
    """
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for filters in widths:
        for _ in range(convs_per_block):
            # No conv bias: batch norm's shift replaces it.
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
        if block_dropout:
            x = layers.Dropout(block_dropout)(x)
    x = layers.Flatten()(x)
    for units in dense:
        x = layers.Dense(units, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _head(x, num_classes), name="vgg")
