"""Networks by name: `build_model(params["model"]["name"], **rest_of_model_section)`, and
`as_model_input`, the one conversion from stored faces to what every network takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from pipeline.config import INPUT_SHAPE
from pipeline.models.networks import build_seed, build_vgg

MODELS: dict[str, Callable[..., keras.Model]] = {"seed": build_seed, "vgg": build_vgg}


def build_model(name: str, **model_params: Any) -> keras.Model:
    """Build the network called `name` with its keyword parameters (from params.yaml `model`)."""
    if name not in MODELS:
        raise ValueError(f"model.name={name!r} is unknown; choose one of {sorted(MODELS)}")
    try:
        return MODELS[name](**model_params)
    except TypeError as e:
        raise ValueError(f"model.name={name!r}: bad parameters {model_params} ({e})") from None


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 48, 48) faces -> float32 (N, 48, 48, 1) raw pixels, the networks' input."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"expected faces (N, 48, 48) or (N, 48, 48, 1), got {images.shape}")
    return images.astype("float32")
