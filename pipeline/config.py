"""The facts every part of ferflow shares: labels, image geometry, splits, params.

Everything here is plain Python (no numpy, no Keras), so any module, the light
inference app included, can import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: FER2013's label order; index i is the class of `emotion == i` in the CSV.
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES: int = len(LABELS)

#: Faces are square grayscale images of this side, in pixels.
IMAGE_SIZE: int = 48
PIXELS_PER_IMAGE: int = IMAGE_SIZE * IMAGE_SIZE
INPUT_SHAPE: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 1)

#: The CSV's header, in order.
CSV_COLUMNS: tuple[str, ...] = ("emotion", "pixels", "Usage")

#: `Usage` value -> name of the split ferflow stores it as. PublicTest is the validation
#: split (model selection); PrivateTest is touched once, by `evaluate`.
SPLIT_OF_USAGE: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLITS: tuple[str, ...] = tuple(SPLIT_OF_USAGE.values())
USAGE_OF_SPLIT: dict[str, str] = {split: usage for usage, split in SPLIT_OF_USAGE.items()}

#: Repository root: the folder holding params.yaml and dvc.yaml.
REPO_ROOT: Path = Path(__file__).resolve().parent.parent
PARAMS_FILE: Path = REPO_ROOT / "params.yaml"


def read_params_file(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as it is, unchecked: for the app, which only looks up `paths` in a
    checkout. Stages load it through `pipeline.params.load_params`, which checks it."""
    import yaml  # here, not at the top: the app imports this module and rarely needs YAML

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found; run from the repository root")
    with path.open(encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ValueError(
            f"{path}: expected a mapping of sections at the top, got {type(params).__name__}"
        )
    return params


def merge_params(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied, nested sections merged key by key; `base` unchanged."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_params(merged[key], value)
        else:
            merged[key] = value
    return merged


def repo_path(relative: str | Path) -> Path:
    """A path from params.yaml, resolved against the repository root unless absolute."""
    p = Path(relative).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
