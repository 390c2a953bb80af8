"""Free the fixed input size of an ONNX model, with protobuf alone (no `onnx` package).

Some published ONNX files declare a fixed input shape although the network is fully
convolutional: CenterFace's says 10x3x32x32. ONNX Runtime refuses any other shape, and the
usual fix (`onnx.tools.update_model_dims`) needs the `onnx` package, which adds 30 MB to an
install and a second of start-up to every `ferflow` command. The shape is a few fields deep in
the model's protobuf message, so a description of just those fields is enough to rewrite them;
protobuf keeps every field it was not told about (the weights, the nodes) byte for byte.

Field numbers are ONNX's own (onnx/onnx.proto3): ModelProto.graph = 7, GraphProto.initializer
= 5, .input = 11, .output = 12, ValueInfoProto.name = 1, .type = 2, TypeProto.tensor_type = 1,
Tensor.shape = 2, TensorShapeProto.dim = 1, Dimension.dim_value = 1, .dim_param = 2,
TensorProto.name = 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "ferflow_onnx_subset"


@cache
def _model_class() -> type:
    field = descriptor_pb2.FieldDescriptorProto
    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto2"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> None:
        m = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"

    msg, i64, i32, text = field.TYPE_MESSAGE, field.TYPE_INT64, field.TYPE_INT32, field.TYPE_STRING
    message("Dimension", ("dim_value", 1, i64, one, None), ("dim_param", 2, text, one, None))
    message("Shape", ("dim", 1, msg, many, "Dimension"))
    message("Tensor", ("elem_type", 1, i32, one, None), ("shape", 2, msg, one, "Shape"))
    message("Type", ("tensor_type", 1, msg, one, "Tensor"))
    message("ValueInfo", ("name", 1, text, one, None), ("type", 2, msg, one, "Type"))
    message("Initializer", ("name", 8, text, one, None))
    message(
        "Graph",
        ("initializer", 5, msg, many, "Initializer"),
        ("input", 11, msg, many, "ValueInfo"),
        ("output", 12, msg, many, "ValueInfo"),
    )
    message("Model", ("graph", 7, msg, one, "Graph"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Model"))


def free_dimensions(model: bytes, keep: Sequence[int] = (1,)) -> bytes:
    """The model with every input and output dimension made symbolic except those in `keep`.

    Also drops the weights that old exporters listed among the graph's inputs: ONNX Runtime
    would treat them as inputs a caller may override and leave them out of constant folding
    (for CenterFace that means its batch normalisations stay unfused: 2x slower).
    """
    parsed = _model_class()()
    parsed.ParseFromString(model)
    graph = parsed.graph
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    for value in [*graph.input, *graph.output]:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis not in keep:
                dim.ClearField("dim_value")
                dim.dim_param = f"{value.name}_{axis}"
    return parsed.SerializeToString()
