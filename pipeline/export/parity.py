"""Parity check: the exported ONNX model must answer like the Keras network it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import StageError
from pipeline.model_spec import ModelSpec


class ParityError(StageError):
    """ONNX Runtime and Keras disagree beyond the tolerance."""


@dataclass(frozen=True)
class ParityReport:
    images: int
    max_abs_diff: float
    argmax_mismatches: int
    atol: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def onnx_predict(onnx_path: str | Path, images: np.ndarray, spec: ModelSpec | None = None):
    """Probabilities from ONNX Runtime for uint8 faces (N, 48, 48), fed as `spec` says."""
    from pipeline.evaluation.predictors import OnnxPredictor

    return OnnxPredictor(onnx_path, spec)(images)


def check_parity(
    net: Any,
    onnx_path: str | Path,
    images: np.ndarray,
    atol: float = 1e-4,
    spec: ModelSpec | None = None,
) -> ParityReport:
    """Compare Keras and ONNX Runtime on `images`; raise ParityError unless every argmax
    agrees and every probability is within `atol`."""
    if len(images) == 0:
        raise ValueError("parity check needs at least one image, got none")
    from pipeline.models import as_model_input

    expected = net.predict(as_model_input(images), batch_size=256, verbose=0)
    got = onnx_predict(onnx_path, images, spec)
    if got.shape != expected.shape:
        raise ParityError(
            f"{onnx_path}: ONNX output shape {got.shape} differs from Keras' {expected.shape}"
        )
    diff = float(np.abs(got - expected).max())
    mismatches = int((got.argmax(axis=1) != expected.argmax(axis=1)).sum())
    report = ParityReport(len(images), diff, mismatches, atol)
    if mismatches or not diff <= atol:
        raise ParityError(
            f"{onnx_path}: ONNX Runtime disagrees with Keras on {len(images)} test images: "
            f"{mismatches} different predicted classes, max probability difference {diff:.2e} "
            f"(allowed {atol:.0e}). Nothing was written. Check that the exported network has "
            "no augmentation layers and a float32 dtype policy."
        )
    return report
