"""Keras network -> ONNX file that ONNX Runtime runs on raw 0..255 pixels.

Export the network *without* its augmentation: with augmentation layers inside, tf2onnx
writes a graph ONNX Runtime refuses (see NOTES.md). The TensorFlow backend exports through
tf2onnx; the JAX exporter writes pooling nodes ONNX Runtime rejects, so export on TensorFlow
from weights trained anywhere.

The same network always gives the same bytes, so DVC's hash of the file changes only when
the model does. tf2onnx alone does not: it numbers the names it invents with a counter
global to the process (`Transpose__36`, then `Transpose__79` on a second export), keeps
whichever of several equal constants its optimizer meets first (an order that follows
Python's per-process hash seed), and records the traced TensorFlow function's id in the
graph's doc string. `_canonical_names` renames what tf2onnx invented from the graph's
structure alone.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from pipeline.io import temp_dir

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

    with temp_dir(path) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            # Keras' tf2onnx shim probes `np.object`, which numpy 2 warns about.
            warnings.simplefilter("ignore", FutureWarning)
            net.export(str(raw), format="onnx", verbose=False)
        model = onnx.load(str(raw))
        _rename_output(model, OUTPUT_NAME)
        _name_batch_dim(model, BATCH_DIM)
        _canonical_names(model.graph)
        if float16:
            from onnxconverter_common import float16 as fp16

            with warnings.catch_warnings():
                # It warns once per weight below float16's range (flushed to 1e-7): noise.
                warnings.simplefilter("ignore", UserWarning)
                model = fp16.convert_float_to_float16(model, keep_io_types=True)
        model.graph.doc_string = ""  # "converted from b'__inference___call___301'"
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


#: tf2onnx's names for what it adds: `<base>__<process-wide counter>`, `:<port>` on tensors.
_INVENTED = re.compile(r"^(?P<base>.*)__(?P<number>\d+)(?P<port>:\d+)?$")


def _canonical_names(graph) -> None:
    """Renumber invented names in order of first appearance; name constants by their reader.

    The node order is deterministic; the numbers tf2onnx gives are not. A node and its
    output tensors (`Shape__46`, `Shape__46:0`) keep sharing one number. Each initializer
    (weights and constants) is named after the first node that reads it, because which of
    several equal constants survives tf2onnx's deduplication, and so its name, varies between
    processes; initializers are then stored in order of first use. Names Keras chose
    (`vgg_1/conv2d_1/...`), the graph's input and its output stay as they are.
    """
    keep = {v.name for v in (*graph.input, *graph.output)}
    initializers = {t.name for t in graph.initializer}
    numbers: dict[str, str] = {}  # "Shape__46" -> "Shape__3"
    used_per_base: dict[str, int] = {}
    renamed: dict[str, str] = {}

    def canonical(name: str) -> str:
        match = _INVENTED.match(name)
        if name in keep or match is None:
            return name
        invented = f"{match['base']}__{match['number']}"
        if invented not in numbers:
            used_per_base[match["base"]] = used_per_base.get(match["base"], 0) + 1
            numbers[invented] = f"{match['base']}__{used_per_base[match['base']]}"
        return numbers[invented] + (match["port"] or "")

    order: list[str] = []
    for node in graph.node:
        node.name = canonical(node.name)
        for i, name in enumerate(node.input):
            if name in initializers:
                if name not in renamed:
                    renamed[name] = f"{node.name}/input{i}"
                    order.append(name)
                node.input[i] = renamed[name]
            else:
                node.input[i] = canonical(name)
        for i, name in enumerate(node.output):
            node.output[i] = canonical(name)
    position = {name: i for i, name in enumerate(order)}
    tensors = sorted(graph.initializer, key=lambda t: position.get(t.name, len(order)))
    for tensor in tensors:
        tensor.name = renamed.get(tensor.name, tensor.name)
    del graph.initializer[:]
    graph.initializer.extend(tensors)
    infos = sorted(graph.value_info, key=lambda v: canonical(v.name))
    for info in infos:
        info.name = canonical(info.name)
    del graph.value_info[:]
    graph.value_info.extend(infos)


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
