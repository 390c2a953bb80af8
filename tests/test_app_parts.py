"""The app's parts on their own: tracking, cropping, model input preparation, records, defaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.app.detector import FaceDetector
from pipeline.app.emotion import LABELS_FILE, MODEL_FILE, EmotionModel, default_model_files
from pipeline.app.recognizer import Face, Recognizer, crop
from pipeline.app.records import frame_records
from pipeline.app.tracking import Tracker, iou
from pipeline.config import LABELS, REPO_ROOT, load_params
from pipeline.model_spec import InputSpec, ModelSpec, write_spec

# ---------------------------------------------------------------------------------------
# Tracking and smoothing
# ---------------------------------------------------------------------------------------


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou(a, b), [[1.0, 50 / 150, 0.0]])
    assert iou(a, np.zeros((0, 4))).shape == (1, 0)


def test_tracker_follows_faces_and_averages_their_probabilities():
    tracker = Tracker(smoothing=0.5)
    p1, p2 = np.eye(3)[0], np.eye(3)[1]
    left, right = [0, 0, 10, 10], [50, 0, 10, 10]

    ids, probs = tracker.update(np.array([left, right]), np.array([p1, p2]))
    assert ids == [0, 1]
    np.testing.assert_allclose(probs, [p1, p2])  # a new track starts at its first frame

    # Next frame: both moved a little, and their raw probabilities swapped.
    ids, probs = tracker.update(np.array([[2, 0, 10, 10], [52, 0, 10, 10]]), np.array([p2, p1]))
    assert ids == [0, 1]
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0], [0.5, 0.5, 0]])


def test_tracker_starts_new_tracks_and_forgets_lost_ones():
    tracker = Tracker(smoothing=0.9, max_missed=2)
    p = np.full((1, 7), 1 / 7)
    assert tracker.update(np.array([[0, 0, 10, 10]]), p)[0] == [0]
    assert tracker.update(np.array([[100, 100, 10, 10]]), p)[0] == [1]  # no overlap: new face
    for _ in range(2):
        tracker.update(np.zeros((0, 4)), np.zeros((0, 7)))
    assert [t.id for t in tracker.tracks] == [1]  # track 0 missed 3 frames in a row: gone
    assert tracker.update(np.array([[101, 100, 10, 10]]), p)[0] == [1]


def test_tracker_with_zero_smoothing_passes_probabilities_through():
    tracker = Tracker(smoothing=0.0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        raw = rng.dirichlet(np.ones(7), size=1)
        _, probs = tracker.update(np.array([[0, 0, 10, 10]]), raw)
        np.testing.assert_allclose(probs, raw, rtol=1e-6)


def test_smoothing_must_be_a_fraction():
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\)"):
        Tracker(smoothing=1.0)


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

    faces = Recognizer(model, FaceDetector(detect_width=1536))(frame)

    assert len(faces) >= 3
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
    paths = load_params()["paths"]
    assert Path(paths["onnx"]).name == MODEL_FILE
    assert Path(paths["labels"]).name == LABELS_FILE


def test_default_model_is_the_shipped_one_when_present(tmp_path, monkeypatch, app_model_dir):
    import pipeline.app.emotion as emotion

    monkeypatch.setattr(emotion, "repo_path", lambda p: tmp_path / p)
    paths = {"onnx": "out/e.onnx", "labels": "out/l.json"}
    monkeypatch.setattr(emotion, "load_params", lambda: {"paths": paths})
    assert default_model_files() == (tmp_path / "out/e.onnx", tmp_path / "out/l.json")

    shipped = tmp_path / "models" / "fer2013"
    shipped.mkdir(parents=True)
    shutil.copy(app_model_dir / MODEL_FILE, shipped / MODEL_FILE)
    assert default_model_files() == (shipped / MODEL_FILE, shipped / LABELS_FILE)


def test_report_subcommand_is_handed_to_the_report_cli(capsys):
    from pipeline.app.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    assert "usage: ferflow report" in capsys.readouterr().out
