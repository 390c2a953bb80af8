"""Keras network -> ONNX file that ONNX Runtime runs on raw 0..255 pixels.

Export the network *without* its augmentation: with augmentation layers inside, tf2onnx
writes a graph ONNX Runtime refuses (see NOTES.md). The TensorFlow backend exports through
tf2onnx; the JAX exporter writes pooling nodes ONNX Runtime rejects, so export on TensorFlow
from weights trained anywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

#: Name of the ONNX output (Keras/tf2onnx would call it `Identity:0`).
OUTPUT_NAME = "probabilities"
#: Name of the dynamic batch dimension of input and output.
BATCH_DIM = "batch"


def export_onnx(net, path: str | Path, *, float16: bool = False) -> Path:
    """Write `net` (a `keras.Model` without augmentation) as ONNX to `path`, atomically.

    The input keeps the network's input name (`pixels` for ferflow's networks), float32
    NHWC with a dynamic batch; the output is `probabilities`. With `float16=True` the
    weights and arithmetic become float16 while the input and output stay float32
    (`keep_io_types`), about 40% smaller at ~1e-5 difference.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras exports only a model that has been called once; one tiny call is harmless.
    net(np.zeros((1, *net.input_shape[1:]), dtype="float32"))

    with tempfile.TemporaryDirectory(prefix=".onnx.", dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            # Keras' tf2onnx shim probes `np.object`, which numpy 2 warns about.
            warnings.simplefilter("ignore", FutureWarning)
            net.export(str(raw), format="onnx", verbose=False)
        model = onnx.load(str(raw))
        _rename_output(model, OUTPUT_NAME)
        _name_batch_dim(model, BATCH_DIM)
        if float16:
            from onnxconverter_common import float16 as fp16

            with warnings.catch_warnings():
                # It warns once per weight below float16's range (flushed to 1e-7): noise.
                warnings.simplefilter("ignore", UserWarning)
                model = fp16.convert_float_to_float16(model, keep_io_types=True)
        model.doc_string = "ferflow facial emotion model: float32 NHWC raw pixels -> probabilities"
        _set_metadata(model, {"ferflow.float16": json.dumps(bool(float16))})
        onnx.checker.check_model(model)
        final = Path(tmp) / "final.onnx"
        onnx.save(model, str(final))
        os.replace(final, path)
    return path


def _rename_output(model, new_name: str) -> None:
    graph = model.graph
    if len(graph.output) != 1:
        raise ValueError(f"expected a network with one output, got {len(graph.output)}")
    old = graph.output[0].name
    if old == new_name:
        return
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new_name
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new_name
    graph.output[0].name = new_name


def _name_batch_dim(model, name: str) -> None:
    # tf2onnx calls the dynamic batch `unk__17`; a readable name helps whoever opens the file.
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = name


def _set_metadata(model, props: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or model.metadata_props.add()
        entry.key, entry.value = key, value
