"""Training: DVCLive log, resume after a hard kill, determinism, saved network."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline.config import REPO_ROOT
from pipeline.training.live_logger import drop_steps_from
from pipeline.training.resume import ResumeState, fingerprint


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def steps(live_dir: Path, metric: str) -> list[int]:
    return [int(r["step"]) for r in read_tsv(live_dir / "plots" / "metrics" / f"{metric}.tsv")]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    # DVCLive looks for a git/DVC repository around the working directory: keep it out of
    # the checkout. Mixed-precision training sets a global policy: never let it leak.
    monkeypatch.chdir(tmp_path)
    yield
    keras.config.set_dtype_policy("float32")


# --- resume bookkeeping (no training) ---------------------------------------------------


def test_drop_steps_from_keeps_only_earlier_epochs(tmp_path):
    tsv = tmp_path / "plots" / "metrics" / "val" / "accuracy.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\taccuracy\n0\t0.1\n1\t0.2\n2\t0.3\n2\t0.35\n", encoding="utf-8")
    drop_steps_from(tmp_path, 2)
    assert read_tsv(tsv) == [{"step": "0", "accuracy": "0.1"}, {"step": "1", "accuracy": "0.2"}]


def test_resume_state_keeps_matching_checkpoint_and_drops_others(tmp_path):
    folder = tmp_path / "resume"
    first = ResumeState(folder, fingerprint(train={"lr": 0.01}))
    assert first.prepare() == 0
    first.backup_dir.mkdir()
    (first.backup_dir / "training_metadata.json").write_text('{"epoch": 4, "batch": 0}')

    assert ResumeState(folder, fingerprint(train={"lr": 0.01})).prepare() == 4
    # Other params: resuming would mix two experiments, so the checkpoint goes.
    assert ResumeState(folder, fingerprint(train={"lr": 0.02})).prepare() == 0
    assert not first.backup_dir.exists()


def test_resume_state_falls_back_to_previous_checkpoint(tmp_path):
    state = ResumeState(tmp_path / "resume", "key")
    state.prepare()
    state.backup_dir.mkdir()
    # A kill while writing the newest metadata leaves it unreadable; the .bkp copy remains.
    (state.backup_dir / "training_metadata.json").write_text('{"epo')
    (state.backup_dir / "training_metadata.json.bkp").write_text('{"epoch": 3, "batch": 0}')
    assert state.last_completed_epoch() == 3


# --- real training (tiny) -----------------------------------------------------------------


def train(params, prepared, out: Path, **kwargs):
    from pipeline.training.run import train_and_save

    return train_and_save(
        params,
        prepared,
        out / "models" / "model.keras",
        out / "train_log",
        out / "resume",
        verbose=0,
        **kwargs,
    )


def flat_weights(net: keras.Model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in net.get_weights()])


@pytest.mark.slow
def test_train_saves_best_network_and_logs_every_epoch(tiny_prepared, tiny_params, tmp_path):
    from pipeline.training.saving import load_net

    net = train(tiny_params, tiny_prepared, tmp_path)

    saved = load_net(tmp_path / "models" / "model.keras")
    assert saved.input_shape == (None, 48, 48, 1)
    assert not any("augment" in layer.name for layer in saved.layers)
    probe = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(saved.predict(probe, verbose=0), net.predict(probe, verbose=0))

    log = tmp_path / "train_log"
    for metric in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "learning_rate"):
        assert steps(log, metric) == [0, 1, 2], metric
    summary = json.loads((log / "metrics.json").read_text())
    val_accuracy = [float(r["accuracy"]) for r in read_tsv(log / "plots/metrics/val/accuracy.tsv")]
    assert summary["best_epoch"] == int(np.argmax(val_accuracy)) + 1
    assert summary["best_val_accuracy"] == pytest.approx(max(val_accuracy))
    assert summary["best_val_accuracy"] > 0.5  # the tiny data is learnable: it did learn
    assert float(read_tsv(log / "plots/metrics/train/images_per_s.tsv")[-1]["images_per_s"]) > 0
    assert not (tmp_path / "resume").exists(), "a finished run must leave no resume state"


@pytest.mark.slow
def test_same_seed_gives_same_weights_on_cpu(tiny_prepared, tiny_params, tmp_path):
    tiny_params["train"]["epochs"] = 2
    tiny_params["train"]["augment"] = {"flip": True, "shift": 0.1, "erasing": 0.5}
    first = flat_weights(train(tiny_params, tiny_prepared, tmp_path / "a"))
    again = flat_weights(train(tiny_params, tiny_prepared, tmp_path / "b"))
    np.testing.assert_array_equal(first, again)

    tiny_params["train"]["seed"] = 1
    other = flat_weights(train(tiny_params, tiny_prepared, tmp_path / "c"))
    assert not np.array_equal(first, other)


@pytest.mark.slow
def test_mixed_precision_run_saves_a_float32_network(tiny_prepared, tiny_params, tmp_path):
    from pipeline.training.saving import load_net

    tiny_params["train"].update(epochs=1, mixed_precision=True)
    train(tiny_params, tiny_prepared, tmp_path)
    saved = load_net(tmp_path / "models" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}


# Runs in a child process so the test can kill it with SIGKILL, like a crash or `kill -9`.
DRIVER = """
import json, sys
from pipeline.training.run import train_and_save
params = json.loads(open(sys.argv[1]).read())
train_and_save(params, sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], verbose=2)
"""


@pytest.mark.slow
def test_training_resumes_after_kill_at_the_last_completed_epoch(
    tiny_prepared, tiny_params, tmp_path
):
    epochs = 8
    tiny_params["train"]["epochs"] = epochs
    (tmp_path / "params.json").write_text(json.dumps(tiny_params))
    model, log, resume = tmp_path / "model.keras", tmp_path / "log", tmp_path / "resume"
    args = [sys.executable, "-c", DRIVER, "params.json", str(tiny_prepared), str(model), "log"]
    args.append("resume")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    state = ResumeState(resume, key="unused")

    child = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while state.last_completed_epoch() < 2:
            assert child.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    done = state.last_completed_epoch()
    assert 2 <= done < epochs
    assert not model.exists()
    # `dvc repro` deletes a stage's outputs, the DVCLive log included, before running it.
    shutil.rmtree(log)

    rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"Resuming training at epoch {done + 1}/{epochs}" in rerun.stdout
    assert f"Epoch {done + 1}/{epochs}" in rerun.stdout
    assert "Epoch 1/" not in rerun.stdout
    # The log is complete and has no duplicates: earlier epochs from the killed run, the
    # rest from the resumed one.
    for metric in ("train/loss", "val/accuracy", "learning_rate"):
        assert steps(log, metric) == list(range(epochs)), metric
    assert model.is_file()
    assert not resume.exists()


def test_ema_momentum_out_of_range_is_refused():
    from pipeline.training.recipe import make_optimizer

    with pytest.raises(ValueError, match=r"train\.ema=1\.0"):
        make_optimizer({"lr": 0.01, "epochs": 1, "ema": 1.0}, steps_per_epoch=10)


@pytest.mark.slow
def test_ema_validates_and_keeps_the_averaged_weights(tiny_prepared, tiny_params):
    from pipeline.data.shards import load_split
    from pipeline.training.recipe import as_model_input, fit, make_net

    train_split, val_split = load_split(tiny_prepared, "train"), load_split(tiny_prepared, "val")
    runs = {}
    for ema in (0.0, 0.9):
        params = {**tiny_params["train"], "ema": ema}
        net = make_net(tiny_params["model"], params)
        runs[ema] = (net, fit(net, train_split, val_split, params, verbose=0).history)
    (_, plain), (averaged_net, averaged) = runs[0.0], runs[0.9]

    # Averaging only reads the weights: training follows the same path, validation does not.
    np.testing.assert_allclose(averaged["loss"], plain["loss"], rtol=1e-5)
    assert not np.allclose(averaged["val_loss"], plain["val_loss"], rtol=1e-3)
    # The network left behind is the one validated at the best epoch: the averaged weights.
    best = int(np.argmax(averaged["val_accuracy"]))
    probs = averaged_net.predict(as_model_input(val_split[0]), verbose=0)
    val_loss = -np.log(probs[np.arange(len(probs)), val_split[1]]).mean()
    assert val_loss == pytest.approx(averaged["val_loss"][best], rel=1e-4)


@pytest.mark.slow
def test_patience_counters_are_saved_each_epoch_and_restored_on_resume(
    tiny_prepared, tiny_params, tmp_path
):
    from pipeline.data.shards import load_split
    from pipeline.training.patience import KeepPatience
    from pipeline.training.recipe import fit, make_callbacks, make_net

    params = tiny_params["train"] | {
        "schedule": "plateau",
        "plateau_patience": 50,
        "early_stopping_patience": 50,
    }
    net = make_net(tiny_params["model"], params)
    splits = load_split(tiny_prepared, "train"), load_split(tiny_prepared, "val")
    history = fit(net, *splits, params, verbose=0, state_dir=tmp_path).history

    saved = json.loads((tmp_path / "patience.json").read_text())
    val_accuracy = history["val_accuracy"]
    best = int(np.argmax(val_accuracy))
    assert saved["epoch"] == len(val_accuracy) - 1
    assert saved["EarlyStopping"]["best"] == pytest.approx(val_accuracy[best])
    assert saved["EarlyStopping"]["wait"] == len(val_accuracy) - 1 - best

    # A resumed run: the recipe's callbacks reset themselves, then get their counters back.
    resumed = make_callbacks(params)
    for callback in [*resumed, KeepPatience(resumed, tmp_path)]:
        callback.on_train_begin()
    stopper, plateau = resumed[1], resumed[0]
    assert isinstance(stopper, keras.callbacks.EarlyStopping)
    assert stopper.wait == saved["EarlyStopping"]["wait"]
    assert stopper.best == saved["EarlyStopping"]["best"]
    assert plateau.wait == saved["ReduceLROnPlateau"]["wait"]
    assert plateau.best == saved["ReduceLROnPlateau"]["best"]


# --- outputs trained on another machine ---------------------------------------------------


@pytest.mark.slow
def test_brought_back_outputs_are_checked_against_local_data_and_params(
    tiny_prepared, tiny_params, tmp_path
):
    from pipeline.data.shards import load_split
    from pipeline.training.provenance import OutputsMismatch, check_outputs, data_hash

    tiny_params["train"]["epochs"] = 1
    train(tiny_params, tiny_prepared, tmp_path)
    model, log = tmp_path / "models" / "model.keras", tmp_path / "train_log"
    local = data_hash(*load_split(tiny_prepared, "train"), *load_split(tiny_prepared, "val"))
    run = json.loads((log / "run.json").read_text())
    assert run["data_sha256"] == local and run["params"]["train"]["lr"] == 0.01
    assert "Keras" in run["device"]

    def check(**changes):
        train_params = {**tiny_params["train"], **changes.pop("train", {})}
        return check_outputs(
            tiny_params["model"], train_params, changes.get("data", local), model, log
        )

    assert check()["model_sha256"] == run["model_sha256"]
    with pytest.raises(
        OutputsMismatch, match=r"run\.json: the run used train\.lr=0\.01, the params say 0\.02"
    ):
        check(train={"lr": 0.02})
    with pytest.raises(
        OutputsMismatch, match=r"run\.json: the run trained on data sha256 .*local prepared shards"
    ):
        check(data="0" * 64)
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(OutputsMismatch, match=r"model\.keras: not the model file that run wrote"):
        check()
    (log / "run.json").unlink()
    with pytest.raises(OutputsMismatch, match=r"train_log/run\.json: no run record"):
        check()


class _EpochWeights(keras.callbacks.Callback):
    """Every epoch's weights at its end, as validated: the network's and the whole model's."""

    def __init__(self, net: keras.Model) -> None:
        super().__init__()
        self.net, self.net_weights, self.model_weights = net, [], []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.net_weights.append(self.net.get_weights())
        self.model_weights.append(self.model.get_weights())


@pytest.mark.slow
def test_the_best_epochs_weights_are_restored_and_saved_for_resume(
    tiny_prepared, tiny_params, tmp_path
):
    """Early stopping off (patience 0): training still ends on the best epoch's weights, not
    the last epoch's, and the resume folder holds those same weights."""
    from pipeline.data.shards import load_split
    from pipeline.training.patience import BEST_WEIGHTS, KeepPatience, load_weights
    from pipeline.training.recipe import fit, make_callbacks, make_net

    params = tiny_params["train"] | {"epochs": 5, "early_stopping_patience": 0}
    net = make_net(tiny_params["model"], params)
    splits = load_split(tiny_prepared, "train"), load_split(tiny_prepared, "val")
    recorder = _EpochWeights(net)
    history = fit(net, *splits, params, callbacks=[recorder], verbose=0, state_dir=tmp_path)

    val_accuracy = history.history["val_accuracy"]
    assert len(val_accuracy) == 5, "patience 0 must mean no early stop"
    best = int(np.argmax(val_accuracy))  # the first of equal scores, as Keras keeps it
    assert best < len(val_accuracy) - 1, f"this data must peak before the end: {val_accuracy}"
    final = net.get_weights()
    for w, expected in zip(final, recorder.net_weights[best], strict=True):
        np.testing.assert_array_equal(w, expected)
    assert not all(
        np.array_equal(w, last) for w, last in zip(final, recorder.net_weights[-1], strict=True)
    ), "the last epoch's weights are the best epoch's: the test proves nothing"

    # A resumed run's early stopping starts from the best weights of the epochs before.
    saved = load_weights(tmp_path / BEST_WEIGHTS)
    for w, expected in zip(saved, recorder.model_weights[best], strict=True):
        np.testing.assert_array_equal(w, expected)
    resumed = make_callbacks(params)
    for callback in [*resumed, KeepPatience(resumed, tmp_path)]:
        callback.on_train_begin()
    (stopper,) = resumed
    assert stopper.best_epoch == best and len(stopper.best_weights) == len(saved)
