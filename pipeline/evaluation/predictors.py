"""A model file as one function: faces in, class probabilities out.

    predict = load_predictor("models/model.keras")          # a trained Keras network
    predict = load_predictor("models/fer2013/emotion.onnx")  # an exported model
    probs = predict(faces)   # faces (N, 48, 48) raw 0..255 pixels -> (N, 7) float32

So evaluation, test-time augmentation and the export checks score a Keras network and an
ONNX file the same way, the ONNX one exactly as `labels.json` says to feed it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.model_spec import ModelSpec, read_spec

#: The contract file the export stage writes beside every ONNX model.
SPEC_FILE = "labels.json"

Predictor = Callable[[np.ndarray], np.ndarray]


def keras_predictor(net, batch_size: int = 512) -> Predictor:
    """`net.predict` on faces (N, 48, 48[, 1])."""
    from pipeline.models import as_model_input

    return lambda faces: net.predict(as_model_input(faces), batch_size=batch_size, verbose=0)


class OnnxPredictor:
    """An ONNX model run by ONNX Runtime on the CPU, its input made as `spec` describes."""

    batch_size_default = 512

    def __init__(
        self, path: str | Path, spec: ModelSpec | None = None, batch_size: int = batch_size_default
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ONNX model not found")
        self.spec = spec or onnx_spec(self.path)
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.log_severity_level = 3  # ONNX Runtime's own warnings are not the user's concern
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def model_input(self, faces: np.ndarray) -> np.ndarray:
        x = np.asarray(faces)
        return self.spec.input.feed(x[..., None] if x.ndim == 3 else x)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        x = self.model_input(faces)
        out = [
            self.session.run(None, {self.input_name: x[i : i + self.batch_size]})[0]
            for i in range(0, len(x), self.batch_size)
        ]
        return (
            np.concatenate(out).astype(np.float32)
            if out
            else np.zeros((0, len(self.spec.labels)), np.float32)
        )


def onnx_spec(path: str | Path, labels: tuple[str, ...] | None = None) -> ModelSpec:
    """How to feed the ONNX model `path`: its own labels.json (beside it) if it has one, so
    a model exported for `scale: 1/255` or NCHW is fed that way; else the pipeline's own
    contract (what the export stage writes) for `labels` (default FER2013's)."""
    own = Path(path).parent / SPEC_FILE
    if own.is_file():
        return read_spec(own)
    return ModelSpec(labels=labels) if labels else ModelSpec()


def load_predictor(
    path: str | Path, batch_size: int = 512, spec: ModelSpec | None = None
) -> Predictor:
    """A `.keras` network or an `.onnx` model fed as `spec` says (default: the model's own
    labels.json, see `onnx_spec`)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxPredictor(path, spec, batch_size)
    from pipeline.training.saving import load_net

    return keras_predictor(load_net(path), batch_size)
