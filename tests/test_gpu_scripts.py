"""The GPU-machine scripts, run here on the CPU the way the lent machine runs them.

`scripts/gpu_explore.sh` -> `scripts/gpu_train.py` (JAX backend, device data parts, weights in
chunks) -> `scripts/gpu_pick.py` -> `scripts/ship_model.py` (TensorFlow backend, ONNX): the
path that produced `models/fer2013/`, on tiny data with a tiny network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import REPO_ROOT, SPLIT_OF_USAGE, SPLITS
from pipeline.data.fer_csv import write_fer_csv
from pipeline.data.shards import load_split

SCRIPTS = REPO_ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
from gpu_train import (  # noqa: E402
    apply_overrides,
    load_device_data,
    load_weight_chunks,
    save_weight_chunks,
)

USAGE_OF_SPLIT = {split: usage for usage, split in SPLIT_OF_USAGE.items()}


@pytest.fixture(scope="module")
def device_data(tiny_prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny data as the two `.npz` parts of ../shared/data/fer2013/device, plus its CSV."""
    folder = tmp_path_factory.mktemp("fer")
    splits = [load_split(tiny_prepared, split) for split in SPLITS]
    pixels = np.concatenate([x for x, _ in splits])
    emotion = np.concatenate([y for _, y in splits]).astype(np.uint8)
    usage = np.concatenate([np.full(len(y), code, np.uint8) for code, (_, y) in enumerate(splits)])
    # Shuffled, so each part holds every split, like the CSV's own order.
    order = np.random.default_rng(0).permutation(len(usage))
    pixels, emotion, usage = pixels[order], emotion[order], usage[order]
    half = len(usage) // 2
    for name, rows in (("a", slice(0, half)), ("b", slice(half, None))):
        np.savez(
            folder / f"fer2013-{name}.npz",
            pixels=pixels[rows],
            emotion=emotion[rows],
            usage=usage[rows],
            row=np.arange(len(usage), dtype=np.int32)[rows],
        )
    usages = [USAGE_OF_SPLIT[SPLITS[code]] for code in usage]
    write_fer_csv(folder / "fer2013.csv", pixels, emotion, usages)
    return folder


@pytest.fixture(scope="module")
def params_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = {
        "model": {"name": "vgg", "widths": [4, 8], "convs_per_block": 1, "dense": [16]},
        "train": {
            "seed": 0,
            "epochs": 3,
            "batch_size": 32,
            "optimizer": "sgd",
            "lr": 0.05,
            "schedule": "cosine",
            "warmup_epochs": 1,
            "weight_decay": 1e-4,
            "ema": 0.9,
            "mixed_precision": False,
            "augment": {"flip": True, "shift": 0.05, "erasing": 0.5},
        },
    }
    path = tmp_path_factory.mktemp("params") / "tiny-gpu.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def jax_env(data: Path, out: Path) -> dict[str, str]:
    # What docs/gpu.md exports on the lent machine, with this checkout and its venv.
    return os.environ | {
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": str(REPO_ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "FER_DATA": str(data),
        "OUT": str(out),
        "JAX_PLATFORMS": "cpu",
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


# --- helpers, no training -------------------------------------------------------------


def test_weight_chunks_round_trip_under_the_size_limit(tmp_path):
    rng = np.random.default_rng(0)
    weights = [rng.random((300, 200), np.float32), rng.random(7, np.float32), np.zeros((5, 0))]
    save_weight_chunks(weights, tmp_path, limit=100_000)

    files = sorted(tmp_path.glob("weights-*.npz"))
    assert len(files) > 1, "the 240 kB array must be split across files"
    assert all(f.stat().st_size < 100_000 + 2_000 for f in files)  # + the npz headers
    back = load_weight_chunks(files)
    assert len(back) == len(weights)
    for got, want in zip(back, weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_overrides_take_dotted_keys_and_yaml_values():
    params = {"train": {"lr": 0.01, "augment": {"flip": True}}}
    apply_overrides(params, ["train.lr=0.02", "train.augment.flip=false", "model.widths=[8, 16]"])
    assert params == {
        "train": {"lr": 0.02, "augment": {"flip": False}},
        "model": {"widths": [8, 16]},
    }


def test_device_parts_are_split_back_by_usage(device_data, tiny_prepared):
    parts = [str(device_data / "fer2013-a.npz"), str(device_data / "fer2013-b.npz")]
    data = load_device_data(parts)
    for split in SPLITS:
        images, labels = load_split(tiny_prepared, split)
        got_images, got_labels = data[split]
        # The same rows; the parts hold them shuffled, so compare them sorted.
        assert sorted(map(bytes, got_images)) == sorted(map(bytes, images))
        assert sorted(got_labels.tolist()) == sorted(labels.tolist())


def test_params_overrides_prints_every_leaf_for_dvc_exp_run(params_file):
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "params_overrides.py"), str(params_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    args = done.stdout.split()
    assert args[::2] == ["-S"] * (len(args) // 2)
    pairs = dict(arg.split("=", 1) for arg in args[1::2])
    assert pairs["model.widths"] == "[4,8]"
    assert pairs["train.augment.erasing"] == "0.5"
    assert pairs["train.mixed_precision"] == "false"
    # Applied back, they rebuild the file's parameters exactly.
    rebuilt = apply_overrides({}, [f"{k}={v}" for k, v in pairs.items()])
    assert rebuilt == yaml.safe_load(params_file.read_text())


# --- the device path, end to end on the CPU -------------------------------------------------


@pytest.mark.slow
def test_explore_pick_and_ship_on_jax(device_data, params_file, tmp_path):
    out, picked, shipped, report = (tmp_path / d for d in ("out", "picked", "shipped", "report"))
    picked.mkdir()
    env = jax_env(device_data, out) | {"PARAMS": str(params_file), "EXTRA": "--save-weights"}
    run(["bash", "scripts/gpu_explore.sh", "s0", "train.seed=0", "s1", "train.seed=1"], env)

    results = {n: json.loads((out / "runs" / n / "result.json").read_text()) for n in ("s0", "s1")}
    for result in results.values():
        assert result["backend"] == "jax"
        assert "cpu" in result["device"]
        assert result["epochs_run"] == 3 and not result["stopped_by_deadline"]
        assert len(result["history"]["val_accuracy"]) == 3
        assert result["images_per_s"] > 0
        assert result["params"]["train"]["ema"] == 0.9
    assert results["s0"]["history"]["loss"] != results["s1"]["history"]["loss"]

    run([sys.executable, "scripts/gpu_pick.py", str(out / "runs"), str(picked), "s0", "s1"], env)
    pick = json.loads((picked / "pick.json").read_text())
    assert pick["picked"] == max(results, key=lambda n: results[n]["val_plain"])
    labels = load_device_data(sorted(str(p) for p in device_data.glob("*.npz")))["test"][1]
    mean = sum(np.load(out / "runs" / n / "test_probs.npy").astype(np.float32) for n in results)
    assert pick["ensemble_test_probs"] == pytest.approx((mean.argmax(1) == labels).mean(), abs=1e-5)

    # Back on a TensorFlow machine: the JAX-trained weights predict what they did on JAX...
    from pipeline.training.recipe import as_model_input, make_net

    result = results[pick["picked"]]
    net = make_net(result["params"]["model"], result["params"]["train"])
    net.set_weights(load_weight_chunks(sorted(picked.glob("weights-*.npz"))))
    images = load_device_data(sorted(str(p) for p in device_data.glob("*.npz")))["test"][0]
    on_jax = np.load(out / "runs" / pick["picked"] / "test_probs.npy").astype(np.float32)
    np.testing.assert_allclose(net.predict(as_model_input(images), verbose=0), on_jax, atol=2e-3)
    # ...and exported to ONNX they score the same.
    ship = [sys.executable, "scripts/ship_model.py", "--csv", str(device_data / "fer2013.csv")]
    ship += ["--weights", str(picked), "--out", str(shipped), "--report", str(report)]
    ship += ["--result", str(out / "runs" / pick["picked"] / "result.json")]
    run(ship, os.environ | {"KERAS_BACKEND": "tensorflow"})
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["keras_float32_test_accuracy"] == pytest.approx(result["test_plain"], abs=1e-5)
    assert metrics["float16_vs_float32_argmax_agreement"] >= 0.995
    assert (shipped / "emotion.onnx").is_file() and (shipped / "labels.json").is_file()
    assert "cpu" in json.loads((report / "run.json").read_text())["device"]
    for figure in ("confusion.png", "per_class.png", "training_curves.png"):
        assert (report / figure).stat().st_size > 1000, figure


@pytest.mark.slow
def test_deadline_guard_stops_after_the_first_epoch_and_says_so(device_data, params_file, tmp_path):
    out = tmp_path / "run"
    parts = [str(device_data / "fer2013-a.npz"), str(device_data / "fer2013-b.npz")]
    cmd = [sys.executable, "scripts/gpu_train.py", "--params", str(params_file), "--data", *parts]
    cmd += ["--out", str(out), "--max-minutes", "1e-6", "-S", "train.ema=0"]
    run(cmd, jax_env(device_data, tmp_path))

    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 1
    assert result["stopped_by_deadline"] is True
    assert result["params"]["train"]["ema"] == 0
    assert not list(out.glob("weights-*.npz")), "weights only with --save-weights"
