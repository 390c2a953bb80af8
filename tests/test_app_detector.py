"""Face detection: CenterFace (shipped inside ferflow) on ONNX Runtime, and the Haar option."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from pipeline.app.detector import (
    CENTERFACE_SMALLEST,
    CenterFace,
    HaarCascade,
    centerface_path,
    detection_scale,
    make_detector,
)
from pipeline.app.onnx_shapes import free_dimensions
from pipeline.app.tracking import iou
from pipeline.io import sha256_file

#: The astronaut's face in scikit-image's 512x512 photo, forehead to chin (x, y, w, h), by eye.
ASTRONAUT_FACE = (175, 60, 100, 105)


@pytest.fixture(scope="module")
def centerface() -> CenterFace:
    return CenterFace(min_face=48, threads=1)


def test_centerface_ships_in_ferflow_with_its_recorded_provenance():
    """The file is the one SOURCE.md names (sha256), with its licence beside it."""
    path = centerface_path()
    source = (path.parent / "SOURCE.md").read_text(encoding="utf-8")
    assert f"`{sha256_file(path)}`" in source
    assert "MIT License" in (path.parent / "LICENSE.centerface").read_text(encoding="utf-8")


def test_centerface_finds_the_astronaut_in_fer2013_framing(centerface, astronaut_bgr):
    (box,) = centerface.detect(astronaut_bgr)
    x, y, w, h = box
    assert w == h  # a square, like FER2013's crops
    assert iou(box, ASTRONAUT_FACE)[0, 0] > 0.6


def test_faces_are_found_at_any_frame_size_and_in_grayscale(centerface, astronaut_bgr):
    """Odd sizes are padded to the network's multiple of 32; boxes come back in frame pixels."""
    for width, height in ((333, 250), (700, 517)):
        frame = cv2.resize(astronaut_bgr, (width, height))
        (box,) = centerface.detect(frame)
        expected = np.array(ASTRONAUT_FACE) * [width / 512, height / 512, width / 512, height / 512]
        assert iou(box, expected)[0, 0] > 0.5
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    assert len(centerface.detect(gray)) == 1


def test_smaller_faces_than_min_face_are_not_reported(astronaut_bgr):
    small = cv2.resize(astronaut_bgr, (256, 256))  # the face is now ~55 px
    assert len(CenterFace(min_face=40, threads=1).detect(small)) == 1
    assert len(CenterFace(min_face=80, threads=1).detect(small)) == 0


def test_nothing_is_found_in_a_photo_without_people(centerface):
    from skimage import data

    photo = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    assert len(centerface.detect(photo)) == 0


def test_detection_scale_follows_min_face_and_the_size_cap():
    # A 64-px face is shrunk to the smallest the detector finds reliably.
    assert detection_scale((480, 640), CENTERFACE_SMALLEST, 64, 1280) == 0.5
    assert detection_scale((480, 640), CENTERFACE_SMALLEST, 16, 1280) == 1.0  # never enlarged
    assert detection_scale((3000, 4000), CENTERFACE_SMALLEST, 64, 1280) == 1280 / 4000


def test_haar_remains_an_option(astronaut_bgr):
    (box,) = make_detector("haar", min_face=48).detect(astronaut_bgr)
    assert box[2] == box[3] and iou(box, ASTRONAUT_FACE)[0, 0] > 0.6
    assert isinstance(make_detector("haar"), HaarCascade)


def _doubling_model(batch: int):
    """y = x * w for x of fixed shape (batch, 3, 32, 32), its weight w (2.0) also listed among
    the graph's inputs, as in centerface.onnx."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 32, 32])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x, w], [y])
    graph.initializer.append(weight)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_free_dimensions_lets_a_fixed_size_model_take_any_size(tmp_path):
    """A model declared for 1x3x32x32 (like centerface.onnx) runs on 1x3x64x96 afterwards,
    and a weight listed among its inputs stops being an input."""
    fixed = _doubling_model(batch=1).SerializeToString()
    big = np.ones((1, 3, 64, 96), np.float32)
    with pytest.raises(Exception, match="dimension"):
        ort.InferenceSession(fixed).run(None, {"x": big})

    session = ort.InferenceSession(free_dimensions(fixed))

    assert [i.name for i in session.get_inputs()] == ["x"]
    assert session.get_inputs()[0].shape[1] == 3  # the channel axis stays fixed
    np.testing.assert_allclose(session.run(None, {"x": big})[0], 2 * big)


def test_free_dimensions_changes_only_the_shapes_and_the_listed_weights():
    """Read back with the `onnx` package: nodes, weights and other fields as they were, every
    input and output axis but the kept one named, and a cut-off file refused."""
    model = _doubling_model(batch=10)
    model.doc_string = "kept"

    freed = onnx.load_from_string(free_dimensions(model.SerializeToString()))

    assert freed.doc_string == "kept" and freed.opset_import == model.opset_import
    assert freed.graph.node == model.graph.node
    assert freed.graph.initializer == model.graph.initializer
    for value in (freed.graph.input[0], freed.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == [
            f"{value.name}_0",
            3,
            f"{value.name}_2",
            f"{value.name}_3",
        ]
    assert [i.name for i in freed.graph.input] == ["x"]
    with pytest.raises(ValueError, match="past the end"):
        free_dimensions(model.SerializeToString()[:-3])
