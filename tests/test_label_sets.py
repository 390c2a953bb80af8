"""The label set comes from the data and the model, never from FER2013's constants: the
prepared manifest sizes the network and names the evaluation's classes; an ONNX model is
fed and described as its own labels.json says; the app names and colours faces with the
model's labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import LABELS
from pipeline.model_spec import InputSpec, ModelSpec, read_spec, write_spec

# ---------------------------------------------------------------------------------------
# An ONNX model with a contract of its own: NCHW, pixels scaled to 0..1.
# ---------------------------------------------------------------------------------------

#: The tiny prepared data's classes are bright bars (conftest.write_tiny_prepared): class k
#: lights rows 4+6k..7+6k. This linear model finds the bar, if fed 0..1 pixels in NCHW.
OWN_SPEC = InputSpec(layout="NCHW", scale=1 / 255)


def bar_weights(classes: int) -> np.ndarray:
    """(48 * 48, classes): logit k is 20 x the mean of class k's bar rows."""
    weights = np.zeros((48, 48, classes), np.float32)
    for k in range(classes):
        weights[4 + 6 * k : 8 + 6 * k, :, k] = 20 / (4 * 48)
    return weights.reshape(48 * 48, classes)


def write_bar_model(folder: Path, labels: tuple[str, ...] = LABELS) -> Path:
    """emotion.onnx (Flatten -> MatMul -> Softmax, NCHW input) + its labels.json."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("faces", TensorProto.FLOAT, [None, 1, 48, 48])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, len(labels)])
    nodes = [
        helper.make_node("Flatten", ["faces"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    w = numpy_helper.from_array(bar_weights(len(labels)), "w")
    graph = helper.make_graph(nodes, "bars", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "emotion.onnx")
    write_spec(folder / "labels.json", ModelSpec(labels=labels, input=OWN_SPEC))
    return folder / "emotion.onnx"


def test_an_onnx_model_is_scored_as_its_own_labels_json_says(tiny_prepared, tmp_path):
    from pipeline.data.shards import load_split
    from pipeline.evaluation.evaluate import run_evaluation
    from pipeline.evaluation.predictors import load_predictor

    model = write_bar_model(tmp_path / "m")
    images, labels = load_split(tiny_prepared, "test")
    probs = load_predictor(model)(images)
    logits = (images.reshape(len(images), -1) / 255.0) @ bar_weights(7)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)

    metrics = run_evaluation({}, tiny_prepared, model, tmp_path / "metrics.json", tmp_path / "e")
    assert metrics["test"]["accuracy"] == 1.0  # the bars, found as the model was built to


def test_export_adopts_an_onnx_model_as_its_own_labels_json_says(
    tiny_params, tiny_prepared, tmp_path
):
    """Calibrated, checked and described with its own input contract: with the default
    one (NHWC, raw pixels) ONNX Runtime would refuse every batch."""
    from pipeline.evaluation.evaluate import run_evaluation
    from pipeline.export.bundle import OUTPUT_KEYS, export_bundle

    models = tmp_path / "models"
    model = write_bar_model(models)
    run_evaluation({}, tiny_prepared, model, tmp_path / "metrics.json", tmp_path / "eval")
    record = tmp_path / "run.json"
    record.write_text(json.dumps({"backend": "jax"}))
    params = {**tiny_params, "export": {**tiny_params["export"], "trained_by": str(record)}}
    params["export"]["calibration_images"] = 100
    names = {key: Path(params["paths"][key]).name for key in OUTPUT_KEYS}
    exported = export_bundle(
        params,
        model_path=model,
        prepared_dir=tiny_prepared,
        train_log=tmp_path / "train",
        eval_dir=tmp_path / "eval",
        outputs={key: models / names[key] for key in OUTPUT_KEYS},
    )
    assert exported["int8"]["accuracy"] == 1.0
    spec = read_spec(models / "labels.json")
    assert spec.input == OWN_SPEC and spec.labels == LABELS


# ---------------------------------------------------------------------------------------
# Labels from the manifest: training, evaluation, export.
# ---------------------------------------------------------------------------------------


def _three_class_prepared(root: Path, names: list[str], soft_shift: int | None = None) -> Path:
    """The tiny bar data cut to three classes, with their own names in the manifest;
    with `soft_shift`, soft targets too (FER+ distribution mode): one-hot of label+shift."""
    from helpers import write_tiny_prepared

    from pipeline.data.shards import write_shards

    source = write_tiny_prepared(root / "seven", {"train": 200, "val": 60, "test": 60})
    splits = {}
    for split in ("train", "val", "test"):
        images = np.load(source / split / "images.npy")
        labels = np.load(source / split / "labels.npy")
        keep = labels < 3
        splits[split] = (images[keep], labels[keep])
        if soft_shift is not None:
            splits[split] += (np.eye(3, dtype=np.float32)[(labels[keep] + soft_shift) % 3],)
    write_shards(root / "prepared", splits, {"file": "made up"}, names)
    return root / "prepared"


@pytest.mark.slow
def test_the_label_set_of_the_data_goes_from_manifest_to_labels_json(tiny_params, tmp_path):
    """Three classes with made-up names: a three-output network, scored and exported
    under those names."""
    from pipeline.evaluation.evaluate import run_evaluation
    from pipeline.export.bundle import OUTPUT_KEYS, export_bundle
    from pipeline.training.run import train_and_save
    from pipeline.training.saving import load_net

    names = ["zebra", "apple", "mango"]  # not sorted: the manifest's order is the index
    prepared = _three_class_prepared(tmp_path, names)
    params = {**tiny_params, "train": {**tiny_params["train"], "epochs": 2}}
    train_and_save(params, prepared, tmp_path / "model.keras", tmp_path / "train", tmp_path / "r")
    assert load_net(tmp_path / "model.keras").output_shape == (None, 3)

    run_evaluation(params, prepared, tmp_path / "model.keras", tmp_path / "m.json", tmp_path / "e")
    per_class = json.loads((tmp_path / "e" / "per_class.json").read_text())
    assert [row["class"] for row in per_class] == names
    confusion = json.loads((tmp_path / "e" / "confusion.json").read_text())
    assert {row["actual"] for row in confusion} == set(names)

    models = tmp_path / "models"
    outputs = {key: models / Path(params["paths"][key]).name for key in OUTPUT_KEYS}
    export_bundle(
        params,
        model_path=tmp_path / "model.keras",
        prepared_dir=prepared,
        train_log=tmp_path / "train",
        eval_dir=tmp_path / "e",
        outputs=outputs,
    )
    assert read_spec(outputs["labels"]).labels == tuple(names)
    card = outputs["model_card"].read_text()
    assert "one of 3 classes: zebra, apple, mango" in card


@pytest.mark.slow
def test_distribution_mode_trains_on_the_soft_targets(tiny_params, tmp_path):
    """FER+ `distribution`: the network learns the targets, not the hard labels. Targets
    that point at the next class make a network that names the next class."""
    from pipeline.data.shards import load_split, load_targets
    from pipeline.evaluation.predictors import load_predictor
    from pipeline.training.run import train_and_save

    prepared = _three_class_prepared(tmp_path, ["a", "b", "c"], soft_shift=1)
    assert load_targets(prepared, "train").shape[1] == 3
    params = {**tiny_params, "train": {**tiny_params["train"], "epochs": 4}}
    train_and_save(params, prepared, tmp_path / "model.keras", tmp_path / "train", tmp_path / "r")
    images, labels = load_split(prepared, "train")
    predicted = load_predictor(tmp_path / "model.keras")(images).argmax(1)
    assert (predicted == (labels + 1) % 3).mean() > 0.8


def test_evaluation_scores_the_classes_model_and_data_share(tiny_prepared, tmp_path):
    """FER2013's model on FER+ labels: classes matched by name, in the data's order; the
    test faces of a class the model lacks are left out."""
    from pipeline.data.shards import load_split
    from pipeline.evaluation.evaluate import shared_classes
    from pipeline.evaluation.predictors import load_predictor

    model_names = ("a", "b", "c", "d", "e", "f", "g")
    predict = load_predictor(write_bar_model(tmp_path / "m", model_names))
    data_names = ("g", "c", "a", "extra")  # another order, one class the model lacks
    images, labels = load_split(tiny_prepared, "test")
    labels = np.array([{6: 0, 2: 1, 0: 2}.get(int(k), 3) for k in labels])
    keep = labels < 3

    scored, names, kept_images, kept_labels, note = shared_classes(
        predict, data_names, images, labels
    )

    assert names == ("g", "c", "a")
    assert kept_labels.tolist() == labels[keep].tolist()
    assert (scored(kept_images).argmax(1) == kept_labels).all()  # columns follow the names
    assert f"{(~keep).sum()} test images of extra left out" in note


# ---------------------------------------------------------------------------------------
# The app: names and colours from the model's labels.json.
# ---------------------------------------------------------------------------------------


class FixedBox:
    """A detector that finds one face covering the whole 48x48 frame."""

    def detect(self, frame: np.ndarray) -> np.ndarray:
        return np.array([[0, 0, 48, 48]], np.int32)


def test_the_recognizer_names_faces_with_the_models_labels(tmp_path):
    """Not with FER2013's constants: a model of three made-up classes names its faces."""
    from pipeline.app.emotion import EmotionModel
    from pipeline.app.recognizer import Recognizer

    labels = ("zebra", "apple", "mango")
    write_bar_model(tmp_path, labels)
    model = EmotionModel(tmp_path / "emotion.onnx", tmp_path / "labels.json")
    names = []
    for k in range(3):
        frame = np.full((48, 48), 20, np.uint8)
        frame[4 + 6 * k : 8 + 6 * k] = 230
        (face,) = Recognizer(model, FixedBox())(frame)
        names.append(face.label)
    assert names == list(labels)


def test_any_label_set_gets_distinct_light_colours():
    from pipeline.app.draw import COLORS, label_colors, luminance
    from pipeline.serve.app import page_html

    made_up = ["zebra", "apple", "mango", "happy"]
    colors = label_colors(made_up)
    assert colors["happy"] == COLORS["happy"]
    assert len(set(colors.values())) == len(made_up)
    assert all(luminance(c) >= 0.2 for c in colors.values())
    page = page_html(tuple(made_up))
    b, g, r = colors["mango"]
    assert f".label-mango {{ --c: rgb({r} {g} {b}); }}" in page


def test_a_folder_datasets_names_reach_the_serve_api(tmp_path, astronaut_bgr):
    """`ferflow serve` (its HTTP API) answers with the model's own class names."""
    import cv2
    from fastapi.testclient import TestClient
    from helpers import LOCAL, serve_engine

    from pipeline.export.onnx_export import export_onnx
    from pipeline.models import build_model
    from pipeline.serve.app import create_app

    labels = ("zebra", "apple", "mango")
    net = build_model("vgg", widths=[4, 8], convs_per_block=1, dense=[16], num_classes=3)
    export_onnx(net, tmp_path / "emotion.onnx")
    write_spec(tmp_path / "labels.json", ModelSpec(labels=labels))
    photo = cv2.imencode(".png", astronaut_bgr)[1].tobytes()
    with TestClient(create_app(serve_engine(tmp_path)), base_url=LOCAL) as client:
        answer = client.post("/api/predict", files={"image": ("a.png", photo, "image/png")})
        assert client.get("/api/model").json()["labels"] == list(labels)
    (record,) = answer.json()["records"]
    assert record["faces"] == 1
    assert record["label"] in labels and set(record["probabilities"]) == set(labels)


# ---------------------------------------------------------------------------------------
# End to end: a folder dataset of its own classes, `dvc repro` to export, `ferflow predict`.
# ---------------------------------------------------------------------------------------

MADE_UP = ("yawn", "wink", "frown")


def write_bar_faces(root: Path) -> None:
    """data/faces/{train,test}/<class>/*.png: colour images of various sizes, class k a bar
    at its own height (no val/: data.val_fraction of train becomes val)."""
    import cv2

    rng = np.random.default_rng(1)
    for split, count in (("train", 40), ("test", 12)):
        for k, name in enumerate(MADE_UP):
            folder = root / "data" / "faces" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                side = int(rng.integers(48, 120))
                image = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
                top = side * (4 + 14 * k) // 48
                image[top : top + side // 8] = 220
                cv2.imwrite(str(folder / f"{i:03d}.png"), image)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_folder_dataset_runs_to_export_and_the_app_names_its_classes(tmp_path, astronaut_bgr):
    """The default dvc.yaml, unchanged, on a folder dataset with its own class names:
    the manifest, the scores, labels.json and `ferflow predict` all use those names."""
    import subprocess
    import sys

    import cv2
    from tiny_project import build_tiny_project

    project = build_tiny_project(
        tmp_path / "ws",
        overrides={"data": {"raw": "data/faces", "val_fraction": 0.25}},
        add_data=write_bar_faces,
    )
    root = project.root
    names = sorted(MADE_UP)  # the label set: the class folders, sorted
    manifest = json.loads((root / "data" / "prepared" / "manifest.json").read_text())
    assert manifest["labels"]["names"] == names
    assert manifest["splits"]["val"]["rows"] == 30  # a quarter of each train class
    per_class = json.loads((root / "reports" / "eval" / "per_class.json").read_text())
    assert [row["class"] for row in per_class] == names
    assert read_spec(root / "models" / "labels.json").labels == tuple(names)
    assert "3 classes: frown, wink, yawn" in (root / "models" / "MODEL_CARD.md").read_text()

    cv2.imwrite(str(tmp_path / "photo.png"), astronaut_bgr)  # a real face to find
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "predict", str(tmp_path / "photo.png"),
         "--model-dir", "models", "--precision", "float"],
        cwd=root, env=project.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["faces"] == 1 and record["label"] in names
    assert set(record["probabilities"]) == set(names)

    # `dvc plots show` in a real browser: DVC's templates draw these classes, not FER2013's.
    from helpers import CHROMIUM_ARGS, chromium, open_offline
    from playwright.sync_api import sync_playwright

    project.run(str(Path(sys.executable).parent / "ferflow"), "plots-setup")
    project.dvc("plots", "show", "-o", str(tmp_path / "plots"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = open_offline(browser, tmp_path / "plots" / "index.html", tmp_path / "p.png")
        finally:
            browser.close()
    assert page.problems == []
    panels = page.confusion.pop("panels")
    assert page.confusion == {"x": names, "y": names, "per_class": names} and len(panels) == 1
