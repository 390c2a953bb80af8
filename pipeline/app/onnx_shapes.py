"""Free the fixed input size of an ONNX model, reading its protobuf bytes directly.

Some published ONNX files declare a fixed input shape although the network is fully
convolutional: CenterFace's says 10x3x32x32. ONNX Runtime refuses any other shape, and the
usual fix (`onnx.tools.update_model_dims`) needs the `onnx` package, which adds 30 MB to an
install and a second of start-up to every `ferflow` command. The shape is a few fields deep in
the model's protobuf message, so this module walks protobuf's wire format itself (tag,
then a varint, 8 or 4 bytes, or a length and that many bytes) and rewrites just those
fields; every other field (the weights, the nodes) is copied byte for byte. The protobuf
package would do the same with a declared subset of the message, but importing it and
parsing and writing 7 MB cost 20 ms of the app's start-up.

Field numbers are ONNX's own (onnx/onnx.proto3): ModelProto.graph = 7, GraphProto.initializer
= 5, .input = 11, .output = 12, ValueInfoProto.name = 1, .type = 2, TypeProto.tensor_type = 1,
Tensor.shape = 2, TensorShapeProto.dim = 1, Dimension.dim_value = 1, .dim_param = 2,
TensorProto.name = 8.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

LENGTH_DELIMITED = 2
_FIXED_SIZE = {1: 8, 5: 4}  # wire type -> bytes (64-bit, 32-bit)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("a protobuf number runs past the end of its message (truncated?)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview, memoryview | None]]:
    """(field number, the whole field's bytes, its payload if length-delimited else None)."""
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        wire = tag & 7
        payload = None
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == LENGTH_DELIMITED:
            size, pos = _varint(data, pos)
            payload, pos = data[pos : pos + size], pos + size
        elif wire in _FIXED_SIZE:
            pos += _FIXED_SIZE[wire]
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (a corrupt ONNX file?)")
        if pos > len(data):
            raise ValueError("protobuf field runs past the end of its message (truncated file?)")
        yield tag >> 3, data[start:pos], payload


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | LENGTH_DELIMITED) + _encode_varint(len(payload)) + payload


def _string(message: memoryview, number: int) -> str:
    """The last value of a string field (protobuf's rule for a repeated scalar), or ''."""
    found = ""
    for n, _, payload in _fields(message):
        if n == number and payload is not None:
            found = bytes(payload).decode("utf-8")
    return found


def _with_free_dims(value_info: memoryview, keep: Sequence[int]) -> bytes:
    """A ValueInfoProto whose tensor shape has a named dimension on every axis not kept."""
    name = _string(value_info, 1)

    def shape(message: memoryview) -> bytes:
        out, axis = [], 0
        for n, whole, payload in _fields(message):
            if n == 1 and payload is not None:  # one Dimension
                if axis not in keep:
                    rest = [w for m, w, _ in _fields(payload) if m not in (1, 2)]
                    free = _field(2, f"{name}_{axis}".encode())
                    out.append(_field(1, free + b"".join(rest)))
                    axis += 1
                    continue
                axis += 1
            out.append(whole)
        return b"".join(out)

    def rewrite(message: memoryview, number: int, inner) -> bytes:
        return b"".join(
            _field(n, inner(p)) if n == number and p is not None else w
            for n, w, p in _fields(message)
        )

    def tensor(message: memoryview) -> bytes:
        return rewrite(message, 2, shape)

    def type_proto(message: memoryview) -> bytes:
        return rewrite(message, 1, tensor)

    return rewrite(value_info, 2, type_proto)


def free_dimensions(model: bytes, keep: Sequence[int] = (1,)) -> bytes:
    """The model with every input and output dimension made symbolic except those in `keep`.

    Also drops the weights that old exporters listed among the graph's inputs: ONNX Runtime
    would treat them as inputs a caller may override and leave them out of constant folding
    (for CenterFace that means its batch normalisations stay unfused: 2x slower).
    """
    data = memoryview(model)
    parts: list[bytes | memoryview] = []
    for number, whole, payload in _fields(data):
        if number != 7 or payload is None:
            parts.append(whole)
            continue
        weights = {_string(p, 8) for n, _, p in _fields(payload) if n == 5 and p is not None}
        graph: list[bytes | memoryview] = []
        for n, field, value_info in _fields(payload):
            if n in (11, 12) and value_info is not None:
                if n == 11 and _string(value_info, 1) in weights:
                    continue
                graph.append(_field(n, _with_free_dims(value_info, keep)))
            else:
                graph.append(field)  # copied once, by the join below (the weights: 7 MB)
        size = sum(len(part) for part in graph)
        parts += [_encode_varint(7 << 3 | LENGTH_DELIMITED), _encode_varint(size), *graph]
    return b"".join(parts)
