"""The shipped real model and its committed record agree, re-checked from the real CSV.

`models/fer2013/` (float and int8 ONNX, labels.json, MODEL_CARD.md) and `reports/fer2013/`
were written by the fer2013/ pipeline (docs/pipelines.md); this re-scores the shipped files
on PrivateTest with the pipeline's own evaluation code and checks that the metrics DVC
shows, the card and the lock all say what the files really do.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.config import REPO_ROOT

SHARED_CSV = REPO_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.xz"
MODELS = REPO_ROOT / "models" / "fer2013"
REPORTS = REPO_ROOT / "reports" / "fer2013"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_CSV.is_file(), reason="needs ../shared (present in CI)"),
]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def lock_entry(path: str) -> dict:
    """The md5 fer2013/dvc.lock records for `path` (as a dep or an output of any stage)."""
    lock = yaml.safe_load((REPO_ROOT / "fer2013" / "dvc.lock").read_text())
    found = {
        item["path"]: item["md5"]
        for stage in lock["stages"].values()
        for item in (*stage.get("deps", []), *stage.get("outs", []))
    }
    return found[path]


@pytest.fixture(scope="module")
def private_test(tmp_path_factory):
    from pipeline.data.fer_csv import read_fer_csv

    csv = tmp_path_factory.mktemp("fer2013") / "fer2013.csv"
    with lzma.open(SHARED_CSV) as packed, csv.open("wb") as out:
        shutil.copyfileobj(packed, out, 1 << 24)
    assert md5(csv) == lock_entry("data/fer2013/fer2013.csv"), "the lock's data is this CSV"
    return read_fer_csv(csv).split_arrays()["test"]


@pytest.fixture(scope="module")
def scores(private_test):
    from pipeline.evaluation.metrics import classification_metrics
    from pipeline.evaluation.predictors import load_predictor

    images, labels = private_test
    probs = {
        name: load_predictor(MODELS / name)(images)
        for name in ("emotion.onnx", "emotion.int8.onnx")
    }
    float_pred, int8_pred = (p.argmax(1) for p in probs.values())
    return {
        "float": classification_metrics(labels, float_pred),
        "int8": classification_metrics(labels, int8_pred),
        "agreement": float((float_pred == int8_pred).mean()),
    }


def test_dvc_metrics_hold_what_the_shipped_files_score(scores):
    metrics = json.loads((REPORTS / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == round(scores["float"]["accuracy"], 6)
    assert metrics["test"]["macro_f1"] == round(scores["float"]["macro_f1"], 6)
    record = json.loads((REPORTS / "export.json").read_text())
    assert record["int8"]["accuracy"] == round(scores["int8"]["accuracy"], 6)
    assert record["int8"]["agreement"] == round(scores["agreement"], 6)
    assert scores["float"]["n"] == 3589


def test_the_card_says_the_same(scores):
    card = (MODELS / "MODEL_CARD.md").read_text()
    assert f"| float, single view | {scores['float']['accuracy']:.2%} |" in card
    assert f"| int8, single view | {scores['int8']['accuracy']:.2%} |" in card
    assert "reports/fer2013/runs/recipe-seed2-shipped.json" in card


def test_the_lock_records_the_committed_files():
    for path in ("models/fer2013/emotion.onnx", "models/fer2013/emotion.int8.onnx",
                 "models/fer2013/labels.json", "models/fer2013/MODEL_CARD.md",
                 "reports/fer2013/metrics.json", "reports/fer2013/export.json"):  # fmt: skip
        assert lock_entry(path) == md5(REPO_ROOT / path), path
