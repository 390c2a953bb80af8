"""Static int8 quantization of an exported float ONNX model, with its acceptance check.

ONNX Runtime's `quantize_static` (QDQ format, per-channel 7-bit weights stored as int8,
uint8 activations) calibrated on Training faces: on this project's CPU the int8 file ran
about 3x faster than float and is half the size of the float16 one (NOTES.md). It is
accepted only if it stays close to the float model on the test split; otherwise nothing is
written.

Why 7-bit weights (`reduce_range`): x86 CPUs without VNNI multiply uint8 activations by
int8 weights with an instruction (vpmaddubsw) that adds two products into a saturating
16-bit sum. With full 8-bit weights 2 x 255 x 127 overflows it, so the same file scored
67.90% on an AVX2 machine and 69.27% on an AVX-512 VNNI one. ONNX Runtime's quantization
guide prescribes `reduce_range` for such CPUs: with every weight in [-64, 64] the pair sum
is at most 2 x 255 x 64 = 32,640 < 32,767, so the integer arithmetic is exact, and the int8
model answers the same on every CPU. `int8_weight_range` checks a file for it.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import StageError
from pipeline.evaluation.predictors import OnnxPredictor
from pipeline.io import atomic_path
from pipeline.model_spec import ModelSpec


class QuantizationError(StageError):
    """The int8 model loses too much against the float one; nothing was written."""


@dataclass(frozen=True)
class Int8Report:
    float_accuracy: float
    accuracy: float
    agreement: float
    calibration_images: int
    test_images: int
    max_drop: float
    min_agreement: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_float32(model: Any) -> Any:
    """An ONNX model with float16 weights and arithmetic made float32 again (same values).

    Calibration needs float32 tensors; a float16 export (`keep_io_types`) is float32 only at
    its input and output, through Cast nodes that become no-ops here.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT16:
            values = numpy_helper.to_array(tensor).astype(np.float32)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(values, tensor.name))
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.FLOAT
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                values = numpy_helper.to_array(attr.t).astype(np.float32)
                attr.t.CopyFrom(numpy_helper.from_array(values, attr.t.name))
    for value in (*graph.value_info, *graph.input, *graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    return model


class _Faces:
    """ONNX Runtime's CalibrationDataReader over faces, fed as `spec` says, in batches."""

    def __init__(self, predictor: OnnxPredictor, faces: np.ndarray, batch_size: int = 64) -> None:
        x = predictor.model_input(faces)
        self.batches = iter(
            [{predictor.input_name: x[i : i + batch_size]} for i in range(0, len(x), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize_int8(
    float_onnx: str | Path, calibration: np.ndarray, out: str | Path, spec: ModelSpec | None = None
) -> Path:
    """Write a static int8 copy of `float_onnx` calibrated on `calibration` faces to `out`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".int8.", dir=out.parent) as tmp:
        float32 = Path(tmp) / "float32.onnx"
        onnx.save(as_float32(onnx.load(str(float_onnx))), str(float32))
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference needs sympy, which ferflow does not install; ONNX's own
        # shape inference is enough for a fixed-size CNN.
        quant_pre_process(str(float32), str(prepared), skip_symbolic_shape=True)
        reader_model = OnnxPredictor(prepared, spec)
        with atomic_path(out) as staged:
            quantize_static(
                str(prepared),
                str(staged),
                _Faces(reader_model, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
                reduce_range=True,
            )
    return out


#: The weight range whose products with uint8 activations cannot saturate a 16-bit pair
#: sum (2 x 255 x 64 = 32,640): what `reduce_range` quantizes int8 weights to.
SAFE_INT8_WEIGHTS = (-64, 64)


def int8_weight_range(int8_onnx: str | Path) -> tuple[int, int]:
    """The smallest and largest int8 weight in a quantized ONNX file (its integer initializers
    that feed a DequantizeLinear), e.g. (-64, 64) for a file that is exact on every CPU."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(int8_onnx)).graph
    dequantized = {node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    values = [
        numpy_helper.to_array(tensor)
        for tensor in graph.initializer
        if tensor.name in dequantized and tensor.data_type == TensorProto.INT8 and tensor.dims
    ]
    if not values:
        raise ValueError(f"{int8_onnx}: no int8 weights feed a DequantizeLinear node")
    return min(int(v.min()) for v in values), max(int(v.max()) for v in values)


def accept_int8(
    float_probs: np.ndarray,
    int8_probs: np.ndarray,
    labels: np.ndarray,
    max_drop: float,
    min_agreement: float,
    calibration_images: int,
) -> Int8Report:
    """The int8 model's report; QuantizationError unless it is close enough to float."""
    float_pred, int8_pred = float_probs.argmax(1), int8_probs.argmax(1)
    report = Int8Report(
        float_accuracy=round(float((float_pred == labels).mean()), 6),
        accuracy=round(float((int8_pred == labels).mean()), 6),
        agreement=round(float((float_pred == int8_pred).mean()), 6),
        calibration_images=calibration_images,
        test_images=len(labels),
        max_drop=max_drop,
        min_agreement=min_agreement,
    )
    drop = report.float_accuracy - report.accuracy
    if drop > max_drop or report.agreement < min_agreement:
        raise QuantizationError(
            f"the int8 model scores {report.accuracy:.2%} on {len(labels)} test faces against "
            f"float's {report.float_accuracy:.2%} (allowed drop {max_drop:.2%}) and agrees with "
            f"it on {report.agreement:.2%} of them (needed {min_agreement:.0%}); nothing was "
            "written. Calibrate on more faces (export.calibration_images), or allow more "
            "(export.int8_max_drop, export.int8_min_agreement)"
        )
    return report
