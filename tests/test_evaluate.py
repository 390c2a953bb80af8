"""Evaluation: metrics agree with scikit-learn; reports have the declared shape."""

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
    got = classification_metrics(y_true, y_pred)
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


def test_classes_never_predicted_or_absent_score_zero_like_scikit_learn():
    y_true = np.array([0, 0, 1, 1, 3])
    y_pred = np.array([0, 1, 1, 1, 0])  # class 3 never predicted; classes 2, 4-6 absent
    got = classification_metrics(y_true, y_pred)
    assert got["per_class"]["happy"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert got["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=range(7), zero_division=0)
    )


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"predictions must lie in 0\.\.6, got 0\.\.7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), NUM_CLASSES)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), NUM_CLASSES)


def test_reports_have_the_declared_shape(tmp_path):
    from pipeline.evaluation.evaluate import write_reports

    y_true, y_pred = random_predictions(200)
    results = {"test": (classification_metrics(y_true, y_pred), y_pred)}
    write_reports(results, y_true, tmp_path / "metrics.json", tmp_path / "eval")

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"test"}
    assert set(metrics["test"]) == {"accuracy", "macro_f1", "n"}
    assert metrics["test"]["n"] == 200
    records = json.loads((tmp_path / "eval" / "confusion.json").read_text())
    assert len(records) == 200
    assert records[0] == {"actual": LABELS[y_true[0]], "predicted": LABELS[y_pred[0]]}
    per_class = json.loads((tmp_path / "eval" / "per_class.json").read_text())
    assert [row["class"] for row in per_class] == list(LABELS)
    assert sum(row["support"] for row in per_class) == 200
    for png in ("confusion.png", "per_class.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "confusion.json",
        "confusion.png",
        "per_class.json",
        "per_class.png",
    ]


def test_evaluation_scores_a_saved_network_with_and_without_tta(
    tiny_prepared, tiny_params, tmp_path
):
    from pipeline.evaluation.evaluate import predict_proba, run_evaluation
    from pipeline.models import build_model
    from pipeline.training.saving import save_keras

    model_params = dict(tiny_params["model"])
    net = build_model(model_params.pop("name"), **model_params)  # untrained is enough here
    save_keras(net, tmp_path / "model.keras")
    tiny_params["evaluate"]["tta"] = True

    metrics = run_evaluation(
        tiny_params, tiny_prepared, tmp_path / "model.keras", tmp_path / "m.json", tmp_path / "ev"
    )

    from pipeline.data.shards import load_split

    images, labels = load_split(tiny_prepared, "test")
    expected = classification_metrics(labels, predict_proba(net, images).argmax(axis=1))
    assert metrics["test"] == {
        "accuracy": round(expected["accuracy"], 6),
        "macro_f1": round(expected["macro_f1"], 6),
        "n": len(labels),
    }
    assert set(metrics) == {"test", "test_tta"}
    assert metrics["test_tta"]["n"] == len(labels)
    assert json.loads((tmp_path / "m.json").read_text()) == metrics


def test_evaluation_names_the_missing_model(tiny_prepared, tiny_params, tmp_path):
    from pipeline.evaluation.evaluate import run_evaluation

    with pytest.raises(FileNotFoundError, match=r"model\.keras: trained model not found"):
        run_evaluation(
            tiny_params, tiny_prepared, tmp_path / "model.keras", tmp_path / "m.json", tmp_path
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
    metrics = classification_metrics(labels[keep], labels[keep])  # a perfect model
    assert classes_without_support(metrics) == ["disgust"]
    assert metrics["macro_f1"] == pytest.approx((len(LABELS) - 1) / len(LABELS))
