"""Evaluation: metrics agree with scikit-learn computed here, TTA averages exactly the views
it names, a Keras network and an ONNX file are scored the same way, reports have the
declared shape."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.config import LABELS, NUM_CLASSES
from pipeline.evaluation.metrics import classification_metrics, confusion_matrix


def random_predictions(n: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, NUM_CLASSES, n)
    # Mostly right, so every score is somewhere strictly between 0 and 1.
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, NUM_CLASSES, n))
    return y_true, y_pred


def test_metrics_match_scikit_learn():
    y_true, y_pred = random_predictions()
    got = classification_metrics(y_true, y_pred, LABELS)
    labels = list(range(NUM_CLASSES))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert got["n"] == len(y_true)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    for i, label in enumerate(LABELS):
        assert got["per_class"][label] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )
    np.testing.assert_array_equal(
        got["confusion"], skm.confusion_matrix(y_true, y_pred, labels=labels)
    )


def test_hand_counted_example():
    # 5 faces: angry right twice, disgust right once, one angry called disgust, one happy
    # called angry. Rows are actual classes, columns predicted.
    y_true = np.array([0, 0, 0, 1, 3])
    y_pred = np.array([0, 0, 1, 1, 0])
    got = classification_metrics(y_true, y_pred, LABELS)
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["confusion"][0][:2] == [2, 1]
    assert got["confusion"][3][0] == 1
    assert got["per_class"]["angry"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert got["per_class"]["disgust"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    # Five classes never appear and happy is never predicted: all score 0, and macro F1
    # is the mean over all seven classes.
    assert got["per_class"]["happy"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert got["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 7)


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"predictions must lie in 0\.\.6, got 0\.\.7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), NUM_CLASSES)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), NUM_CLASSES)


def test_tta_views_are_the_flips_and_shifts_it_names():
    from pipeline.evaluation.tta import views

    image = np.arange(5 * 5, dtype=np.uint8).reshape(1, 5, 5)
    got = views(image, flip=True, shift=1)
    assert len(got) == 18
    # The first view is the image shifted by (-1, -1): row r, column c shows pixel
    # (r + 1, c + 1), the last row and column repeat the edge.
    expected = np.array([[6, 7, 8, 9, 9], [11, 12, 13, 14, 14], [16, 17, 18, 19, 19],
                         [21, 22, 23, 24, 24], [21, 22, 23, 24, 24]])  # fmt: skip
    np.testing.assert_array_equal(got[0][0], expected)
    np.testing.assert_array_equal(got[1][0], expected[:, ::-1])  # its mirror image
    np.testing.assert_array_equal(got[8][0], image[0])  # the centre view: the image itself
    np.testing.assert_array_equal(got[9][0], image[0, :, ::-1])
    assert [v.shape for v in views(image, flip=False, shift=0)] == [(1, 5, 5)]


def test_tta_averages_the_predictions_of_every_view():
    from pipeline.evaluation.tta import predict_tta

    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    seen = []

    def predict(faces):
        # Probabilities that depend on the exact pixels, recorded per call.
        seen.append(faces.copy())
        score = faces.reshape(len(faces), -1)[:, :7].astype(np.float32) + 1
        return score / score.sum(axis=1, keepdims=True)

    got = predict_tta(predict, images, flip=True, shift=2)
    assert len(seen) == 18
    flipped = images[:, :, ::-1]
    assert any(np.array_equal(view, flipped) for view in seen)
    expected = sum(predict(view) for view in seen[:18]) / 18
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_reports_have_the_declared_shape(tmp_path):
    from pipeline.evaluation.evaluate import write_reports

    y_true, y_pred = random_predictions(200)
    results = {"test": (classification_metrics(y_true, y_pred, LABELS), y_pred)}
    write_reports(results, y_true, tmp_path / "metrics.json", tmp_path / "eval", LABELS)

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (machine,) = metrics.pop("machines")  # where it was made: a list, so DVC's tables skip it
    assert machine["stage"] == "evaluate" and machine["cpu"] and machine["libraries"]
    assert metrics == {
        "test": {
            "accuracy": round(skm.accuracy_score(y_true, y_pred), 6),
            "macro_f1": round(skm.f1_score(y_true, y_pred, average="macro"), 6),
        }
    }
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["test"]["n"] == 200
    records = json.loads((tmp_path / "eval" / "confusion.json").read_text())
    assert len(records) == 200
    assert records[0] == {
        "actual": LABELS[y_true[0]],
        "predicted": LABELS[y_pred[0]],
        "actual_index": int(y_true[0]),
        "predicted_index": int(y_pred[0]),
    }
    per_class = json.loads((tmp_path / "eval" / "per_class.json").read_text())
    assert [row["class"] for row in per_class] == list(LABELS)
    assert sum(row["support"] for row in per_class) == 200
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "confusion.json",
        "confusion.png",
        "per_class.json",
        "per_class.png",
        "summary.json",
    ]


def test_keras_network_and_its_onnx_export_score_alike(tiny_prepared, tiny_params, tmp_path):
    from pipeline.data.shards import load_split
    from pipeline.evaluation.evaluate import run_evaluation
    from pipeline.export.onnx_export import export_onnx
    from pipeline.models import build_model
    from pipeline.training.saving import save_keras

    model_params = dict(tiny_params["model"])
    net = build_model(model_params.pop("name"), **model_params)  # untrained is enough here
    save_keras(net, tmp_path / "model.keras")
    export_onnx(net, tmp_path / "model.onnx")
    tiny_params["evaluate"]["tta"] = True

    by_keras = run_evaluation(
        tiny_params, tiny_prepared, tmp_path / "model.keras", tmp_path / "k.json", tmp_path / "k"
    )
    by_onnx = run_evaluation(
        tiny_params, tiny_prepared, tmp_path / "model.onnx", tmp_path / "o.json", tmp_path / "o"
    )
    assert by_keras == by_onnx
    assert set(by_keras) == {"test", "test_tta"}

    images, labels = load_split(tiny_prepared, "test")
    predicted = net.predict(images[..., None].astype("float32"), verbose=0).argmax(axis=1)
    assert by_keras["test"] == {
        "accuracy": round(skm.accuracy_score(labels, predicted), 6),
        "macro_f1": round(skm.f1_score(labels, predicted, average="macro", labels=range(7)), 6),
    }
    written = json.loads((tmp_path / "k.json").read_text())
    assert written.pop("machines")[0]["stage"] == "evaluate"
    assert written == by_keras


def test_evaluation_names_the_missing_model(tiny_prepared, tiny_params, tmp_path):
    from pipeline.evaluation.evaluate import run_evaluation

    with pytest.raises(FileNotFoundError, match=r"model\.keras: trained model not found"):
        run_evaluation(
            tiny_params, tiny_prepared, tmp_path / "model.keras", tmp_path / "m.json", tmp_path
        )
    with pytest.raises(FileNotFoundError, match=r"model\.onnx: ONNX model not found"):
        run_evaluation(
            tiny_params, tiny_prepared, tmp_path / "model.onnx", tmp_path / "m.json", tmp_path
        )


def test_evaluation_names_the_classes_without_test_images(
    tiny_prepared, tiny_params, tmp_path, capsys
):
    from pipeline.evaluation.evaluate import run_evaluation
    from pipeline.evaluation.metrics import classes_without_support
    from pipeline.models import build_model
    from pipeline.training.saving import save_keras

    prepared = tmp_path / "prepared"
    shutil.copytree(tiny_prepared, prepared)
    labels = np.load(prepared / "test" / "labels.npy")
    keep = labels != 1  # no "disgust" in the test split
    np.save(prepared / "test" / "labels.npy", labels[keep])
    np.save(prepared / "test" / "images.npy", np.load(prepared / "test" / "images.npy")[keep])
    model_params = dict(tiny_params["model"])
    save_keras(build_model(model_params.pop("name"), **model_params), tmp_path / "model.keras")

    run_evaluation(
        tiny_params, prepared, tmp_path / "model.keras", tmp_path / "m.json", tmp_path / "ev"
    )

    assert "warning: the test split has no images of disgust" in capsys.readouterr().out
    per_class = json.loads((tmp_path / "ev" / "per_class.json").read_text())
    assert [row["class"] for row in per_class if row["support"] == 0] == ["disgust"]
    metrics = classification_metrics(labels[keep], labels[keep], LABELS)  # a perfect model
    assert classes_without_support(metrics) == ["disgust"]
    assert metrics["macro_f1"] == pytest.approx((len(LABELS) - 1) / len(LABELS))
