"""`labels.json`: the contract between an exported model and everything that runs it.

Shape (other tools read it, so fields are only ever added, never renamed)::

    {"labels": ["angry", ...],
     "input": {"height": 48, "width": 48, "channels": 1, "layout": "NHWC",
               "scale": 1.0, "offset": 0.0}}

The ONNX input is a float32 batch of grayscale faces `pixel * scale + offset`, the output
the class probabilities in `labels` order. Plain Python and numpy only: the app imports
this.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import IMAGE_SIZE, LABELS


@dataclass(frozen=True)
class InputSpec:
    height: int = IMAGE_SIZE
    width: int = IMAGE_SIZE
    channels: int = 1
    layout: str = "NHWC"
    scale: float = 1.0
    offset: float = 0.0

    def feed(self, pixels: np.ndarray) -> np.ndarray:
        """Faces (N, height, width, channels), 0..255 pixels -> the model's float32 input."""
        x = np.asarray(pixels, np.float32) * np.float32(self.scale) + np.float32(self.offset)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x)


@dataclass(frozen=True)
class ModelSpec:
    labels: tuple[str, ...] = LABELS
    input: InputSpec = field(default_factory=InputSpec)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "input": asdict(self.input), **self.extra}


def write_spec(path: str | Path, spec: ModelSpec | None = None) -> None:
    """Write labels.json atomically."""
    from pipeline.io import write_json

    write_json(path, (spec or ModelSpec()).to_dict())


def read_spec(path: str | Path) -> ModelSpec:
    """Read and check labels.json; errors name the file and the field at fault."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labels file not found (the export stage writes it)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object at the top")
    labels = raw.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{path}: 'labels' must be a non-empty list of strings")
    inp = raw.get("input")
    if not isinstance(inp, dict):
        raise ValueError(f"{path}: 'input' must be an object with height, width, channels, ...")
    known = {f for f in InputSpec.__dataclass_fields__}
    try:
        input_spec = InputSpec(**{k: v for k, v in inp.items() if k in known})
        input_spec = InputSpec(
            height=int(input_spec.height),
            width=int(input_spec.width),
            channels=int(input_spec.channels),
            layout=str(input_spec.layout),
            scale=float(input_spec.scale),
            offset=float(input_spec.offset),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad 'input' field ({e})") from None
    if input_spec.layout not in ("NHWC", "NCHW"):
        raise ValueError(f"{path}: 'input.layout' must be NHWC or NCHW, got {input_spec.layout!r}")
    if input_spec.channels not in (1, 3):
        raise ValueError(f"{path}: 'input.channels' must be 1 or 3, got {input_spec.channels}")
    extra = {k: v for k, v in raw.items() if k not in ("labels", "input")}
    return ModelSpec(labels=tuple(labels), input=input_spec, extra=extra)
