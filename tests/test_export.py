"""Export: ONNX matches Keras, parity check guards the stage, tutorial formats load back."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import ended_pid

from pipeline.io import HOST_TAG
from pipeline.model_spec import read_spec
from pipeline.params import all_keys

OUTPUT_KEYS = ("onnx", "labels", "model_card", "model_json", "model_weights")
FILE_NAMES = {
    "onnx": "emotion.onnx",
    "labels": "labels.json",
    "model_card": "MODEL_CARD.md",
    "model_json": "model.json",
    "model_weights": "model.weights.h5",
}


def tiny_net(tiny_params, seed: int = 0):
    import keras

    from pipeline.models import build_model

    keras.utils.set_random_seed(seed)
    model_params = dict(tiny_params["model"])
    return build_model(model_params.pop("name"), **model_params)


def faces(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48)).astype(np.uint8)


def keras_probs(net, images):
    return net.predict(images[..., None].astype("float32"), verbose=0)


@pytest.mark.parametrize("float16, atol", [(False, 1e-5), (True, 1e-2)])
def test_onnx_runtime_matches_keras(tiny_params, tmp_path, float16, atol):
    import onnxruntime as ort

    from pipeline.export.onnx_export import export_onnx

    net = tiny_net(tiny_params)
    path = export_onnx(net, tmp_path / "sub" / "m.onnx", float16=float16)
    assert path == tmp_path / "sub" / "m.onnx"
    assert [p.name for p in path.parent.iterdir()] == ["m.onnx"]  # no temp files left

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("pixels", ["batch", 48, 48, 1], "tensor(float)")
    assert (out.name, out.shape, out.type) == ("probabilities", ["batch", 7], "tensor(float)")
    images = faces()
    got = session.run(None, {"pixels": images[..., None].astype(np.float32)})[0]
    np.testing.assert_allclose(got, keras_probs(net, images), atol=atol)


def test_float16_export_is_smaller(tiny_params, tmp_path):
    from pipeline.export.onnx_export import export_onnx

    net = tiny_net(tiny_params)
    full = export_onnx(net, tmp_path / "f32.onnx").stat().st_size
    half = export_onnx(net, tmp_path / "f16.onnx", float16=True).stat().st_size
    assert half < 0.7 * full


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: Exports argv[1] (a .keras file) to argv[2] in a fresh process, as the export stage would.
EXPORT_SCRIPT = """
import sys
from pipeline.export.onnx_export import export_onnx
from pipeline.training.saving import load_net
export_onnx(load_net(sys.argv[1]), sys.argv[2])
"""


def test_exporting_one_model_twice_gives_the_same_bytes(tiny_params, tmp_path):
    """tf2onnx numbers the names it invents with a counter that runs on between exports."""
    from pipeline.export.onnx_export import export_onnx
    from pipeline.training.saving import load_net, save_keras

    save_keras(tiny_net(tiny_params), tmp_path / "model.keras")
    first = export_onnx(load_net(tmp_path / "model.keras"), tmp_path / "a.onnx")
    second = export_onnx(load_net(tmp_path / "model.keras"), tmp_path / "b.onnx")

    assert sha256(first) == sha256(second)


def test_exports_in_processes_with_different_hash_seeds_give_the_same_bytes(tiny_params, tmp_path):
    """Which of several equal constants tf2onnx keeps follows Python's per-process hash seed
    (seeds 1 and 2 kept different ones before names were made canonical)."""
    from pipeline.training.saving import save_keras

    save_keras(tiny_net(tiny_params), tmp_path / "model.keras")
    hashes = []
    for seed in ("1", "2"):
        target = tmp_path / f"seed{seed}.onnx"
        subprocess.run(
            [sys.executable, "-c", EXPORT_SCRIPT, str(tmp_path / "model.keras"), str(target)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        hashes.append(sha256(target))

    assert hashes[0] == hashes[1]


def test_parity_check_fails_for_a_different_model(tiny_params, tmp_path):
    from pipeline.export.onnx_export import export_onnx
    from pipeline.export.parity import ParityError, check_parity

    net, other = tiny_net(tiny_params, seed=0), tiny_net(tiny_params, seed=1)
    export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ParityError, match=r"disagrees with Keras on 16 test images"):
        check_parity(net, tmp_path / "other.onnx", faces())
    export_onnx(net, tmp_path / "same.onnx")
    report = check_parity(net, tmp_path / "same.onnx", faces())
    assert report.argmax_mismatches == 0 and report.max_abs_diff <= 1e-4


def export_to(folder, params, prepared, model_path):
    from pipeline.export.bundle import OUTPUT_KEYS, export_bundle

    names = {"int8": "emotion.int8.onnx", "export_record": "export.json", **FILE_NAMES}
    return export_bundle(
        params,
        model_path=model_path,
        prepared_dir=prepared,
        train_log=folder / "train",
        eval_dir=folder / "eval",
        outputs={key: folder / "models" / names[key] for key in OUTPUT_KEYS},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny network trained on the learnable tiny data (confident predictions: int8
    rounding must not flip them), evaluated, with its train log; shared read-only."""
    from helpers import write_tiny_prepared

    from pipeline.config import REPO_ROOT, merge_params
    from pipeline.evaluation.evaluate import run_evaluation
    from pipeline.params import load_params
    from pipeline.training.run import train_and_save

    root = tmp_path_factory.mktemp("trained")
    prepared = write_tiny_prepared(root / "prepared", {"train": 280, "val": 70, "test": 140})
    params = merge_params(
        load_params(REPO_ROOT / "params.yaml"),
        {
            "train": {"epochs": 6, "batch_size": 32, "lr": 0.01, "schedule": "constant",
                      "augment": {"flip": False, "rotation": 0.0, "zoom": 0.0, "shift": 0.0}},
            "export": {"parity_images": 50, "calibration_images": 100},
        },
    )  # fmt: skip
    params["model"] = {"name": "vgg", "widths": [4, 8], "convs_per_block": 1, "dense": [16]}
    train_and_save(params, prepared, root / "model.keras", root / "train", root / "r", verbose=0)
    run_evaluation(params, prepared, root / "model.keras", root / "metrics.json", root / "eval")
    return root, params, prepared


@pytest.mark.slow
def test_export_writes_every_file_and_they_load_back(trained, tmp_path):
    import shutil

    import onnxruntime as ort

    from pipeline.export.keras_formats import load_keras_formats
    from pipeline.training.saving import load_net

    root, params, prepared = trained
    for name in ("train", "eval"):
        shutil.copytree(root / name, tmp_path / name)
    # What an export killed mid-way leaves: its staging folder, named for an ended process.
    models = tmp_path / "models"
    stale = models / f".export.{ended_pid()}-{HOST_TAG}-0123abcd.tmp"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "raw.onnx").write_bytes(b"half a model")

    record = export_to(tmp_path, params, prepared, root / "model.keras")

    assert sorted(p.name for p in models.iterdir()) == sorted(
        [*FILE_NAMES.values(), "emotion.int8.onnx", "export.json"]
    )
    assert json.loads((models / "export.json").read_text()) == record
    assert set(record) == {"int8", "machines"} and set(record["int8"]) == {"accuracy", "agreement"}
    (machine,) = record["machines"]
    assert machine["stage"] == "export" and machine["cpu"] and "onnxruntime" in machine["libraries"]

    spec = read_spec(models / "labels.json")
    assert (spec.input.scale, spec.input.offset, spec.input.layout) == (1.0, 0.0, "NHWC")
    assert (spec.extra["model"], spec.extra["weights"]) == ("ferflow-vgg-synthetic", "float32")
    # Each file's test accuracy, as evaluate and the int8 check recorded it.
    summary = json.loads((root / "eval" / "summary.json").read_text())["test"]
    assert spec.extra["accuracy"]["emotion.onnx"]["value"] == summary["accuracy"]
    assert spec.extra["accuracy"]["emotion.int8.onnx"]["value"] == record["int8"]["accuracy"]

    net = load_net(root / "model.keras")
    images = faces()
    # The tutorial's way: model_from_json + load_weights.
    reloaded = load_keras_formats(models / "model.json", models / "model.weights.h5")
    np.testing.assert_allclose(keras_probs(reloaded, images), keras_probs(net, images), atol=1e-6)
    session = ort.InferenceSession(str(models / "emotion.onnx"), providers=["CPUExecutionProvider"])
    onnx_probs = session.run(None, {"pixels": images[..., None].astype(np.float32)})[0]
    np.testing.assert_allclose(onnx_probs, keras_probs(net, images), atol=1e-5)

    # int8 really is int8 (quantized weights), and answers like the float model.
    import onnx

    int8 = onnx.load(str(models / "emotion.int8.onnx"))
    assert any(init.data_type == onnx.TensorProto.INT8 for init in int8.graph.initializer)
    session = ort.InferenceSession(
        str(models / "emotion.int8.onnx"), providers=["CPUExecutionProvider"]
    )
    int8_probs = session.run(None, {"pixels": images[..., None].astype(np.float32)})[0]
    assert (int8_probs.argmax(1) == onnx_probs.argmax(1)).mean() >= 0.9


@pytest.mark.slow
def test_the_card_is_written_from_the_records(trained, tmp_path):
    import shutil

    root, params, prepared = trained
    for name in ("train", "eval"):
        shutil.copytree(root / name, tmp_path / name)
    record = export_to(tmp_path, params, prepared, root / "model.keras")
    card = (tmp_path / "models" / "MODEL_CARD.md").read_text()

    summary = json.loads((root / "eval" / "summary.json").read_text())["test"]
    run = json.loads((root / "train" / "run.json").read_text())
    assert f"| float, single view | {summary['accuracy']:.2%} | {summary['macro_f1']:.3f} |" in card
    assert f"| int8, single view | {record['int8']['accuracy']:.2%} |" in card
    assert f"best epoch {run['best_epoch']} of 6" in card
    per_class = json.loads((root / "eval" / "per_class.json").read_text())
    angry = per_class[0]
    assert f"| angry | {angry['precision']:.3f} | {angry['recall']:.3f} |" in card
    assert "Trained on synthetic data" in card


@pytest.mark.slow
def test_a_failing_int8_model_writes_nothing(trained, tmp_path):
    from pipeline.export.quantize import QuantizationError

    root, params, prepared = trained
    # No int8 model can lose less than nothing and agree on more than everything.
    params = {**params, "export": {**params["export"], "int8_min_agreement": 1.01}}
    with pytest.raises(QuantizationError, match=r"nothing was written") as caught:
        export_to(tmp_path, params, prepared, root / "model.keras")
    assert list((tmp_path / "models").iterdir()) == []
    # The fix it suggests names keys the params schema has.
    named = set(re.findall(r"export\.\w+", str(caught.value)))
    assert named and named <= set(all_keys())


@pytest.mark.slow
def test_an_onnx_model_is_adopted_as_it_is(trained, tmp_path):
    """The fer2013/ pipeline's case: the float model was trained elsewhere, so export
    writes its int8 copy, labels.json and the card, and leaves the float file untouched."""
    from pipeline.export.onnx_export import export_onnx
    from pipeline.training.saving import load_net

    root, params, prepared = trained
    models = tmp_path / "models"
    float_onnx = export_onnx(load_net(root / "model.keras"), models / "emotion.onnx")
    before = float_onnx.read_bytes()
    record_file = tmp_path / "earlier-run.json"
    record_file.write_text(json.dumps({"backend": "jax", "epochs_run": 130, "val_plain": 0.69}))
    params = {**params, "export": {**params["export"], "trained_by": str(record_file)}}

    export_to(tmp_path, params, prepared, float_onnx)
    assert float_onnx.read_bytes() == before
    assert sorted(p.name for p in models.iterdir()) == [
        "MODEL_CARD.md", "emotion.int8.onnx", "emotion.onnx", "export.json", "labels.json"
    ]  # fmt: skip
    card = (models / "MODEL_CARD.md").read_text()
    assert "The weights were not trained by this pipeline's `train` stage" in card
    assert str(record_file) in card and "130 epochs" in card
    assert "device: not recorded by the run" in card


def test_failed_parity_check_writes_nothing(tiny_params, tiny_prepared, tmp_path, monkeypatch):
    tiny_params["export"].update(int8_max_drop=1.0, int8_min_agreement=0.0)
    import pipeline.export.onnx_export as onnx_export
    from pipeline.export.onnx_export import export_onnx
    from pipeline.export.parity import ParityError
    from pipeline.training.saving import save_keras

    save_keras(tiny_net(tiny_params, seed=0), tmp_path / "model.keras")
    other = tiny_net(tiny_params, seed=1)
    # A broken exporter: writes a valid ONNX file of the wrong network.
    monkeypatch.setattr(
        onnx_export, "export_onnx", lambda net, path, float16: export_onnx(other, path)
    )
    with pytest.raises(ParityError):
        export_to(tmp_path, tiny_params, tiny_prepared, tmp_path / "model.keras")
    assert list((tmp_path / "models").iterdir()) == []


def test_float16_export_uses_its_own_tolerance(tiny_params, tiny_prepared, tmp_path):
    from pipeline.training.saving import save_keras

    save_keras(tiny_net(tiny_params), tmp_path / "model.keras")
    tiny_params["export"].update(float16=True, float16_atol=1e-2, int8_min_agreement=0.0)
    tiny_params["export"].update(int8_max_drop=1.0)  # an untrained network: no int8 check
    record = export_to(tmp_path, tiny_params, tiny_prepared, tmp_path / "model.keras")
    assert set(record) == {"int8", "machines"}
    card = (tmp_path / "models/MODEL_CARD.md").read_text()
    assert "float16 weights, float32 input/output" in card
    assert "(allowed 1e-02)" in card


def test_parity_check_fails_on_probabilities_alone(tiny_params, tmp_path):
    """Same classes everywhere, probabilities apart: the tolerance alone must refuse it."""
    from pipeline.export.onnx_export import export_onnx
    from pipeline.export.parity import ParityError, check_parity

    net = tiny_net(tiny_params)
    export_onnx(net, tmp_path / "m.onnx")
    images = faces()
    report = check_parity(net, tmp_path / "m.onnx", images)
    assert report.argmax_mismatches == 0
    # A tolerance below the real difference (but the classes all agree) must fail.
    tight = report.max_abs_diff / 2
    assert tight > 0, "float32 export matched Keras bit for bit; pick other faces"
    with pytest.raises(ParityError, match=r"0 different predicted classes, max probability"):
        check_parity(net, tmp_path / "m.onnx", images, atol=tight)


def one_hot(classes, n: int = 3) -> np.ndarray:
    return np.eye(n)[np.asarray(classes)]


@pytest.mark.parametrize(
    "int8_pred, max_drop, min_agreement, accepted",
    [
        # float gets 8 of 10 right; int8 gets 7 right (a drop of 0.1) and agrees on 9.
        ([1, 1, 2, 0, 1, 2, 0, 1, 0, 0], 0.11, 0.9, True),
        ([1, 1, 2, 0, 1, 2, 0, 1, 0, 0], 0.09, 0.9, False),  # drop too large
        ([1, 1, 2, 0, 1, 2, 0, 1, 0, 0], 0.11, 0.91, False),  # agreement too low
        # int8 better than float (all 10 right, a gain of 0.2): a gain is never a loss.
        ([0, 1, 2, 0, 1, 2, 0, 1, 2, 1], 0.0, 0.0, True),
    ],
)
def test_int8_acceptance_weighs_the_drop_and_the_agreement(
    int8_pred, max_drop, min_agreement, accepted
):
    from pipeline.export.quantize import QuantizationError, accept_int8

    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 1])
    float_pred = [0, 1, 2, 0, 1, 2, 0, 1, 0, 0]  # 8 right
    args = (one_hot(float_pred), one_hot(int8_pred), labels, max_drop, min_agreement, 5)
    if accepted:
        report = accept_int8(*args)
        assert report.float_accuracy == 0.8
    else:
        with pytest.raises(QuantizationError, match=r"nothing was written"):
            accept_int8(*args)


@pytest.mark.slow
def test_int8_weights_cannot_saturate_on_any_cpu(trained, tmp_path):
    """7-bit weights: u8 x s8 pair sums stay within 16 bits on CPUs without VNNI, so the
    int8 file computes the same on every CPU (pipeline/export/quantize.py says why)."""
    from pipeline.data.shards import load_split
    from pipeline.export.quantize import SAFE_INT8_WEIGHTS, int8_weight_range, quantize_int8

    root, params, prepared = trained
    images, _ = load_split(prepared, "train")
    export_to(tmp_path, params, prepared, root / "model.keras")
    float_onnx = tmp_path / "models" / "emotion.onnx"
    low, high = int8_weight_range(quantize_int8(float_onnx, images[:64], tmp_path / "q.onnx"))
    assert SAFE_INT8_WEIGHTS[0] <= low and high <= SAFE_INT8_WEIGHTS[1], (low, high)
    # Per-channel symmetric quantization uses the whole allowed range.
    assert (low, high) != (0, 0) and max(-low, high) == 64
