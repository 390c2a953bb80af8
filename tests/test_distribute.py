"""Data-parallel training on two virtual CPU devices, on the JAX and TensorFlow backends.

Each run is a fresh interpreter: the device split must happen before the backend starts,
and the Keras backend is chosen at import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from pipeline.config import REPO_ROOT

# Runs in the child: the plan's decisions, then the training recipe itself (`make_net` +
# `fit`) with `train.distribute: on`. Prints one JSON line with what it saw.
CHILD = r"""
import json
import keras
import numpy as np
from pipeline.training.distribute import plan_distribution, simulate_cpu_devices

simulate_cpu_devices(2)  # before the backend starts

from pipeline.training.recipe import fit, make_net

facts = {"auto": plan_distribution({"distribute": "auto"}).replicas}  # CPUs: not accelerators
try:
    plan_distribution({"distribute": "on", "devices": 3})
except ValueError as e:
    facts["too_many"] = str(e)
plan = plan_distribution({"distribute": "on"})
facts["describe"] = plan.describe(8, 0.01)
facts["shard"] = len(plan.shard(np.arange(67))[0])

train = {"seed": 0, "epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.01,
         "schedule": "constant", "distribute": "on",
         "augment": {"flip": True, "rotation": 5, "zoom": 0.05, "shift": 0.05, "erasing": 0.5}}
net = make_net({"name": "vgg", "widths": [8, 16], "convs_per_block": 1, "dense": [16]}, train)
before = [w.copy() for w in net.get_weights()]
rng = np.random.default_rng(0)
faces = rng.integers(0, 256, (67, 48, 48), dtype=np.uint8)  # odd: the last batch is partial
labels = rng.integers(0, 7, 67)


class Probe(keras.callbacks.Callback):
    # What the model being fitted looks like, seen from inside `fit`.
    def on_train_batch_end(self, batch, logs=None):
        value = self.model.trainable_weights[0].value
        if hasattr(value, "sharding"):  # JAX array: on how many devices it lives
            facts["copies"] = len(value.sharding.device_set)
        else:  # TF MirroredVariable: one value per device
            facts["copies"] = len(getattr(value, "values", [value]))
        facts["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        facts["jit"] = self.model.jit_compile  # every augmentation on: still compiled?


history = fit(net, (faces, labels), (faces[:33], labels[:33]), train, callbacks=[Probe()],
              verbose=0)
facts["epochs"] = len(history.history["loss"])
facts["net_changed"] = any(not np.allclose(a, b) for a, b in zip(before, net.get_weights()))
# The handed-back net is a plain model: it predicts on any batch size, outside the scope.
facts["predict_shape"] = list(net.predict(faces[:3].astype("float32")[..., None], verbose=0).shape)
print("FACTS " + json.dumps(facts))
"""


def _child_env(backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TF_CONFIG")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    # CPU devices only, also on a GPU machine: `distribute: on` prefers accelerators.
    env.update(CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    return env


def _facts(out: str, err: str, returncode: int) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("FACTS ")]
    assert returncode == 0 and lines, f"child failed:\n{out[-3000:]}\n{err[-3000:]}"
    return json.loads(lines[-1][len("FACTS ") :])


def _require(backend: str) -> None:
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.fail("jax is not installed; `pip install -e '.[dev]'` installs it")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_recipe_trains_on_two_devices(backend: str) -> None:
    _require(backend)
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=_child_env(backend),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    facts = _facts(done.stdout, done.stderr, done.returncode)

    assert facts["auto"] == 1, "auto must spread over accelerators only, not CPU devices"
    assert "train.devices=3 but only 2" in facts["too_many"]
    assert "over 2 replicas" in facts["describe"] and "global batch 16 = 8 x 2" in facts["describe"]
    assert facts["shard"] == 66, "a multiple of the device count"
    assert facts["copies"] == 2, "fit must train the model replicated over both devices"
    assert facts["lr"] == pytest.approx(0.02), "lr 0.01 per device x 2 devices (linear)"
    # XLA with every augmentation on, on JAX; TensorFlow turns it off under op determinism.
    assert facts["jit"] is (backend == "jax")
    assert facts["epochs"] == 2
    assert facts["net_changed"], "the trained weights must end up in `net`"
    assert facts["predict_shape"] == [3, 7]
