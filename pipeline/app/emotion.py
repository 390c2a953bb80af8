"""The emotion model: an exported `emotion.onnx` run by ONNX Runtime, as `labels.json` describes.

Faces go in as image crops of any size; `prepare` turns them into exactly the tensor the
model was exported for (grayscale or RGB, height x width, `pixel * scale + offset`, NHWC or
NCHW), and `predict` returns one row of probabilities per face, in label order.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline import imaging
from pipeline.app.errors import AppError
from pipeline.config import read_params_file, repo_path
from pipeline.model_spec import ModelSpec, read_spec

#: File names inside a model folder; the export stage writes them (params.yaml `paths.onnx`,
#: `paths.labels`; a test keeps the two in step). A folder may also hold a statically
#: quantized copy of the same network, `emotion.int8.onnx`, described by the same labels.json.
MODEL_FILE = "emotion.onnx"
INT8_MODEL_FILE = "emotion.int8.onnx"
LABELS_FILE = "labels.json"
#: `--precision`: `auto` takes the int8 file where the folder has one (on this project's CPU
#: it is ~3x faster at -0.17 points of PrivateTest accuracy), else the float one.
PRECISIONS = ("auto", "int8", "float")
#: The real FER2013 model, `models/fer2013/` in the repository. pyproject.toml maps that
#: folder onto this package, so a built wheel (and an editable install) carries it.
SHIPPED_MODEL_PACKAGE = "pipeline.shipped_model"
SHIPPED_MODEL_DIR = "models/fer2013"


def shipped_model_dir() -> Path | None:
    """The folder of the model shipped with ferflow, or None if this install has none."""
    try:
        folder = Path(str(importlib.resources.files(SHIPPED_MODEL_PACKAGE)))
    except ModuleNotFoundError:
        # Run from a source tree without installing it: the folder is where the repo has it.
        folder = repo_path(SHIPPED_MODEL_DIR)
    has_model = (folder / MODEL_FILE).is_file() or (folder / INT8_MODEL_FILE).is_file()
    return folder if has_model else None


def model_file(folder: Path, precision: str = "auto") -> Path:
    """The ONNX file of `folder` that `precision` picks."""
    if precision not in PRECISIONS:
        raise AppError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    int8 = folder / INT8_MODEL_FILE
    if precision == "int8" and not int8.is_file():
        raise AppError(
            f"{int8}: this model folder has no int8 model; use --precision float, or make one "
            "with the export stage (`dvc repro export`)"
        )
    if precision == "float" or not int8.is_file():
        return folder / MODEL_FILE
    return int8


def default_model_files(precision: str = "auto") -> tuple[Path, Path]:
    """The shipped model if this install has one, else the export stage's outputs."""
    shipped = shipped_model_dir()
    if shipped is not None:
        return model_file(shipped, precision), shipped / LABELS_FILE
    try:
        paths = read_params_file()["paths"]
        onnx_path, labels_path = repo_path(paths["onnx"]), repo_path(paths["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        # An installed copy has no params.yaml: fall back to the export stage's default folder.
        onnx_path, labels_path = repo_path("models") / MODEL_FILE, repo_path("models") / LABELS_FILE
    chosen = model_file(onnx_path.parent, precision)
    # The float file keeps the name params.yaml gives it; the int8 one sits beside it.
    return (chosen if chosen.name == INT8_MODEL_FILE else onnx_path), labels_path


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """ONNX Runtime options for a small model called once per frame.

    Spinning threads would keep a core busy between frames, stealing it from face detection
    and video decoding, so they sleep instead. `threads=None` uses every core.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Fatal only: the app reports problems itself, as one line.
    options.log_severity_level = 4
    return options


class EmotionModel:
    """An ONNX emotion classifier checked against its labels.json at load time."""

    def __init__(
        self, model_path: str | Path, labels_path: str | Path, *, threads: int | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.labels_path = Path(labels_path)
        if not self.model_path.is_file():
            raise AppError(
                f"{self.model_path}: model file not found; run the export stage "
                "(`dvc repro export`) or choose a model with --model-dir / --model"
            )
        try:
            self.spec: ModelSpec = read_spec(self.labels_path)
        except (FileNotFoundError, ValueError) as e:
            hint = "pass the labels.json exported with this model (--labels)"
            raise AppError(f"{e}; {hint}") from None
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ONNX Runtime raises its own classes, all direct Exceptions
            reason = _first_line(e)
            raise AppError(
                f"{self.model_path}: not a valid ONNX model ({reason}); re-export it"
            ) from None
        self.labels: tuple[str, ...] = self.spec.labels
        self._input_name = self._check_input()
        self._check_output()

    def _expected_input_shape(self) -> tuple[int, int, int]:
        s = self.spec.input
        if s.layout == "NHWC":
            return (s.height, s.width, s.channels)
        return (s.channels, s.height, s.width)

    def _check_input(self) -> str:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise AppError(
                f"{self.model_path}: expected a model with one input (a batch of faces), "
                f"got {len(inputs)} inputs"
            )
        shape = inputs[0].shape
        expected = self._expected_input_shape()
        # Symbolic dimensions (strings) accept any size; only fixed ones must match.
        fixed = [(d, e) for d, e in zip(shape[1:], expected, strict=False) if isinstance(d, int)]
        if len(shape) != 4 or any(d != e for d, e in fixed):
            raise AppError(
                f"{self.model_path}: model input shape is {_shape_text(shape)} but "
                f"{self.labels_path.name} says {self.spec.input.layout} "
                f"{_shape_text([None, *expected])}; use the labels.json exported with this model"
            )
        if inputs[0].type != "tensor(float)":
            raise AppError(
                f"{self.model_path}: model input is {inputs[0].type}, expected tensor(float) "
                "(float32 pixels, see labels.json); re-export it"
            )
        return inputs[0].name

    def _check_output(self) -> None:
        # One dummy face both checks the output size (often a symbolic dim in the graph)
        # and warms the session up, so the first real frame is not slow.
        try:
            probs = self.predict(np.zeros((1, *self._expected_input_shape()), np.float32))
        except Exception as e:  # ONNX Runtime's own exception classes
            reason = _first_line(e)
            raise AppError(
                f"{self.model_path}: the model fails on a test face ({reason})"
            ) from None
        if probs.ndim != 2 or probs.shape[1] != len(self.labels):
            raise AppError(
                f"{self.model_path}: model outputs {probs.shape[-1]} scores per face but "
                f"{self.labels_path} lists {len(self.labels)} labels; use the labels.json "
                "exported with this model"
            )

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Face crops (BGR or grayscale uint8, any size) -> the model's float32 input batch."""
        s = self.spec.input
        batch = np.empty((len(crops), s.height, s.width, s.channels), np.float32)
        for i, crop in enumerate(crops):
            image = imaging.to_gray(crop) if s.channels == 1 else imaging.to_rgb(crop)
            image = imaging.resize(image, (s.width, s.height))
            batch[i] = image.reshape(s.height, s.width, s.channels)
        return s.feed(batch)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """A prepared batch -> probabilities (N, len(labels)), one session call for all faces."""
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        (probs,) = self.session.run(None, {self._input_name: batch})[:1]
        return np.asarray(probs, np.float32)

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Face crops -> probabilities, all faces in one batch."""
        return self.predict(self.prepare(crops))


def load_model(
    model_dir: str | Path | None = None,
    model: str | Path | None = None,
    labels: str | Path | None = None,
    *,
    threads: int | None = None,
    precision: str = "auto",
) -> EmotionModel:
    """The model the user chose: explicit files win over the folder, the folder over the default.

    In a folder, `precision` picks `emotion.int8.onnx` or `emotion.onnx` (see `model_file`);
    `labels` defaults to the labels.json beside the model file.
    """
    if model_dir is not None:
        folder = Path(model_dir)
        if not folder.is_dir():
            raise AppError(f"{folder}: model folder not found; pass a folder holding {MODEL_FILE}")
        default_model, default_labels = model_file(folder, precision), folder / LABELS_FILE
    else:
        default_model, default_labels = default_model_files(precision)
    model_path = Path(model) if model is not None else default_model
    if labels is not None:
        labels_path = Path(labels)
    elif model is not None:
        labels_path = model_path.parent / LABELS_FILE
    else:
        labels_path = default_labels
    return EmotionModel(model_path, labels_path, threads=threads)


def _shape_text(shape: Sequence[object]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + ")"


def _first_line(error: Exception, limit: int = 200) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
