"""The app's parts on their own: cropping, model input preparation, records, model choice.

Tracking: test_app_tracking.py; detection: test_app_detector.py; drawing: test_app_draw.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.app.detector import make_detector
from pipeline.app.emotion import (
    INT8_MODEL_FILE,
    LABELS_FILE,
    MODEL_FILE,
    EmotionModel,
    default_model_files,
    load_model,
    model_file,
)
from pipeline.app.recognizer import Face, Recognizer, crop
from pipeline.app.records import frame_records
from pipeline.config import LABELS, REPO_ROOT, read_params_file
from pipeline.model_spec import InputSpec, ModelSpec, write_spec

# ---------------------------------------------------------------------------------------
# Cropping and model input
# ---------------------------------------------------------------------------------------


def test_crop_adds_the_margin_and_repeats_edges_outside_the_frame():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    inner = crop(image, np.array([2, 2, 4, 4]), margin=0.25)
    np.testing.assert_array_equal(inner, image[1:7, 1:7])

    edge = crop(image, np.array([0, 0, 4, 4]), margin=0.5)
    assert edge.shape == (8, 8)
    np.testing.assert_array_equal(edge[2:, 2:], image[:6, :6])
    np.testing.assert_array_equal(edge[0, 2:], image[0, :6])  # top rows repeat row 0


def write_identity_model(folder: Path, spec: ModelSpec) -> Path:
    """An ONNX model whose 'probabilities' are its input's first 7 values, flattened."""
    import onnx
    from onnx import TensorProto, helper

    s = spec.input
    shape = [None, s.height, s.width, s.channels]
    if s.layout == "NCHW":
        shape = [None, s.channels, s.height, s.width]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 7])
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [7])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "identity", [x], [y], [starts, ends, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / MODEL_FILE)
    write_spec(folder / LABELS_FILE, spec)
    return folder


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (InputSpec(height=4, width=4), [10, 10, 10, 10, 10, 10, 10]),
        (InputSpec(height=4, width=4, scale=1 / 255, offset=-0.5), [10 / 255 - 0.5] * 7),
        (InputSpec(height=4, width=4, channels=3), [30, 20, 10, 30, 20, 10, 30]),  # RGB
        (InputSpec(height=4, width=4, channels=3, layout="NCHW"), [30] * 7),  # red plane first
    ],
)
def test_faces_are_prepared_as_labels_json_says(tmp_path, spec, expected):
    folder = write_identity_model(tmp_path / "m", ModelSpec(input=spec))
    model = EmotionModel(folder / MODEL_FILE, folder / LABELS_FILE)
    face_bgr = np.zeros((20, 20, 3), np.uint8)
    face_bgr[:] = (10, 20, 30)  # blue 10, green 20, red 30; gray is ~22 but gray crops below
    gray = np.full((20, 20), 10, np.uint8)
    crop_for_model = gray if spec.channels == 1 else face_bgr

    probs = model.classify([crop_for_model, crop_for_model])

    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs[0], expected, rtol=1e-5)


def test_all_faces_of_a_frame_go_through_the_model_in_one_batch(app_model_dir, astronaut_bgr):
    model = EmotionModel(app_model_dir / MODEL_FILE, app_model_dir / LABELS_FILE)
    batches = []
    real_predict = model.predict
    model.predict = lambda batch: batches.append(len(batch)) or real_predict(batch)
    frame = np.concatenate([astronaut_bgr, astronaut_bgr, astronaut_bgr], axis=1)

    faces = Recognizer(model, make_detector(max_size=1536))(frame)

    assert len(faces) == 3
    assert batches == [len(faces)]
    assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)  # left to right


# ---------------------------------------------------------------------------------------
# Records, docs and defaults
# ---------------------------------------------------------------------------------------


def test_records_match_the_example_in_the_docs():
    doc = (REPO_ROOT / "docs" / "app.md").read_text(encoding="utf-8")
    example = json.loads(doc.split("```json\n", 1)[1].split("\n```", 1)[0])
    face = Face((1, 2, 3, 4), np.full(7, 1 / 7, np.float32), "angry", 1 / 7, 0)
    (record,) = frame_records("x.mp4", 5, 0.2, [face], LABELS)
    assert list(record) == list(example)
    assert list(record["probabilities"]) == list(example["probabilities"]) == list(LABELS)


def test_model_file_names_are_the_export_stages():
    paths = read_params_file()["paths"]
    assert Path(paths["onnx"]).name == MODEL_FILE
    assert Path(paths["labels"]).name == LABELS_FILE


def test_default_model_is_the_shipped_one_when_present(tmp_path, monkeypatch, app_model_dir):
    import pipeline.app.emotion as emotion

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(emotion, "shipped_model_dir", lambda: None)
    monkeypatch.setattr(emotion, "repo_path", lambda p: tmp_path / p)
    paths = {"onnx": "out/e.onnx", "labels": "out/l.json"}
    monkeypatch.setattr(emotion, "read_params_file", lambda: {"paths": paths})
    assert default_model_files() == (tmp_path / "out/e.onnx", tmp_path / "out/l.json")

    monkeypatch.setattr(emotion, "shipped_model_dir", lambda: shipped)
    assert default_model_files() == (shipped / MODEL_FILE, shipped / LABELS_FILE)


def test_installed_shipped_model_is_the_repositorys_folder():
    """The editable install maps models/fer2013 onto the package pipeline.shipped_model."""
    from pipeline.app.emotion import shipped_model_dir

    assert shipped_model_dir() == REPO_ROOT / "models" / "fer2013"


def test_int8_file_is_preferred_where_the_folder_has_one(tmp_path, app_model_dir):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in (MODEL_FILE, LABELS_FILE):
        shutil.copy(app_model_dir / name, folder / name)
    assert model_file(folder) == folder / MODEL_FILE  # no int8 file: the float one

    shutil.copy(app_model_dir / MODEL_FILE, folder / INT8_MODEL_FILE)
    assert model_file(folder) == folder / INT8_MODEL_FILE
    assert model_file(folder, "float") == folder / MODEL_FILE
    assert load_model(folder).model_path == folder / INT8_MODEL_FILE
    assert load_model(folder, precision="float").model_path == folder / MODEL_FILE


def test_report_subcommand_is_handed_to_the_report_cli(capsys):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    assert "usage: ferflow report" in capsys.readouterr().out
