"""Networks by name: `build_model(params["model"]["name"], **rest_of_model_section)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

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
