"""Data-parallel training over every visible accelerator, on either Keras backend.

This module is the one place in ferflow with backend-specific distribution code: the JAX
backend uses `keras.distribution.DataParallel` (on one host or across hosts), TensorFlow
`tf.distribute.MirroredStrategy` (one host). Everything else stays plain Keras.

How `fit` uses it (params = the `train` section of params.yaml):

    plan = plan_distribution(params)                 # prints nothing, decides only
    x_train, y_train = plan.shard(x_train, y_train)  # the rows this process feeds
    x_val, y_val = plan.shard(x_val, y_val)
    with plan.replica_of(net) as model:              # `net` itself on one device
        model_to_fit = build_training_model(model, params)
        model_to_fit.compile(optimizer=make_optimizer(..., lr=plan.scale_lr(lr)), ...)
        model_to_fit.fit(x_train, y_train, batch_size=plan.fit_batch_size(batch_size),
                         callbacks=[..., KeepBest(model, ...)])
    # on success the trained weights are back in `net`

Params (all optional):
- `distribute`: `auto` (default: data-parallel when more than one GPU/TPU is visible),
  `on` (always, over the visible devices of the best kind: accelerators, else CPU devices)
  or `off` (one device, whatever is visible).
- `devices`: how many devices to use; 0 (default) means all of them.
- `lr_scaling`: `linear` (default; lr x replicas, Goyal et al. 2017), `sqrt` or `none`.

`batch_size` in params.yaml is the batch of ONE device: one optimizer step averages over a
global batch of `batch_size x replicas`, so per-device memory use is the same on one GPU or
eight, and `lr_scaling` keeps the per-example step size comparable.

Traps this module handles (see NOTES): on JAX every batch, the last partial one included,
must divide by the device count (`shard` cuts each split to a multiple of it); on
TensorFlow the model must be built and compiled inside `strategy.scope()` (`replica_of`
clones `net` inside the scope and copies the weights back at the end); across JAX hosts
Keras takes numpy input only when each process feeds its own share (`shard` again).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

MODES: tuple[str, ...] = ("auto", "on", "off")
LR_SCALINGS: tuple[str, ...] = ("linear", "sqrt", "none")


@dataclass(frozen=True)
class DistributionPlan:
    """Which devices train, and how batch size and learning rate follow from their count.

    `strategy` is the backend object (`keras.distribution.DataParallel` or a
    `tf.distribute.Strategy`), or None when training runs on one device as usual.
    """

    backend: str
    devices: tuple[str, ...]
    lr_scaling: str = "linear"
    strategy: Any = field(default=None, repr=False, compare=False)
    #: Processes (hosts) in the job and this one's index; 1 and 0 on a single host.
    processes: int = 1
    process_index: int = 0

    @property
    def replicas(self) -> int:
        """Model copies in sync, over all hosts: each takes a slice of every batch."""
        return len(self.devices) if self.strategy is not None else 1

    @property
    def enabled(self) -> bool:
        return self.strategy is not None

    def global_batch_size(self, per_device_batch_size: int) -> int:
        """How many examples one optimizer step averages over, on all devices together."""
        if per_device_batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {per_device_batch_size}")
        return int(per_device_batch_size) * self.replicas

    def fit_batch_size(self, per_device_batch_size: int) -> int:
        """The `batch_size` to give Keras' `fit` in this process.

        The global batch on one host; across hosts each process feeds its own share of it.
        """
        return self.global_batch_size(per_device_batch_size) // self.processes

    def scale_lr(self, lr: float) -> float:
        """The learning rate for the global batch, from the one tuned for one device."""
        factor = {"linear": self.replicas, "sqrt": math.sqrt(self.replicas), "none": 1}
        return float(lr) * factor[self.lr_scaling]

    def shard(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """The rows of `arrays` this process feeds to `fit`.

        Cuts them to a multiple of the replica count (at most replicas-1 rows are left out):
        with `fit_batch_size` a multiple of it too, every batch, the last partial one
        included, splits evenly over the devices, which JAX requires. Across hosts each
        process then takes every `processes`-th row, starting at its index, so the hosts
        feed disjoint, equally long shares.
        """
        if not arrays:
            return ()
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError(f"arrays to shard differ in length: {[len(a) for a in arrays]}")
        keep = n - n % self.replicas
        if keep == 0:
            raise ValueError(
                f"{n} examples cannot be split over {self.replicas} devices; "
                "use more data or fewer devices (train.devices)"
            )
        step, start = self.processes, self.process_index
        return tuple(a[:keep][start::step] for a in arrays)

    def scope(self) -> contextlib.AbstractContextManager[None]:
        """The backend's scope: variables created and models compiled in it are replicated."""
        if self.strategy is None:
            return contextlib.nullcontext()
        return self.strategy.scope()

    @contextlib.contextmanager
    def replica_of(self, net: keras.Model) -> Iterator[keras.Model]:
        """Yield the model to train, inside `scope()`; its weights end up in `net`.

        On one device that is `net` itself. Otherwise `net` was built outside the scope (its
        variables live on one device), so a clone is built inside it, starts from `net`'s
        weights, and hands its weights back to `net` when the block finishes without error.
        """
        if self.strategy is None:
            yield net
            return
        with self.scope():
            replica = keras.models.clone_model(net)
            replica.set_weights(net.get_weights())
            yield replica
        net.set_weights(replica.get_weights())

    def describe(self, per_device_batch_size: int | None = None, lr: float | None = None) -> str:
        """One line for the training log."""
        if self.strategy is None:
            return f"distribution: off ({self.backend}, one device)"
        parts = [
            f"distribution: {type(self.strategy).__name__} ({self.backend}) over "
            f"{self.replicas} replicas [{', '.join(self.devices)}]"
        ]
        if self.processes > 1:
            parts.append(f"process {self.process_index} of {self.processes}")
        if per_device_batch_size is not None:
            parts.append(
                f"global batch {self.global_batch_size(per_device_batch_size)} = "
                f"{per_device_batch_size} x {self.replicas}"
            )
        if lr is not None:
            parts.append(f"lr {self.scale_lr(lr):g} = {lr:g} scaled {self.lr_scaling}")
        return "; ".join(parts)


def plan_distribution(params: Mapping[str, Any]) -> DistributionPlan:
    """Decide from the `train` params which devices train; see the module docstring.

    Across hosts the first call joins the job, which must happen before the backend runs
    anything: call it once before building the model (`make_net` does). Later calls with
    the same params return the same plan, so the strategy is created once per process.
    """
    key = (
        keras.backend.backend(),
        str(params.get("distribute", "auto")).lower(),
        int(params.get("devices", 0) or 0),
        str(params.get("lr_scaling", "linear")).lower(),
    )
    if key not in _PLANS:
        _PLANS[key] = _plan(params)
    return _PLANS[key]


_PLANS: dict[tuple[str, str, int, str], DistributionPlan] = {}


def _plan(params: Mapping[str, Any]) -> DistributionPlan:
    mode = str(params.get("distribute", "auto")).lower()
    if mode not in MODES:
        raise ValueError(f"train.distribute={mode!r}; expected one of {', '.join(MODES)}")
    wanted = int(params.get("devices", 0) or 0)
    if wanted < 0:
        raise ValueError(f"train.devices={wanted}; expected 0 (all visible devices) or a count")
    lr_scaling = str(params.get("lr_scaling", "linear")).lower()
    if lr_scaling not in LR_SCALINGS:
        raise ValueError(
            f"train.lr_scaling={lr_scaling!r}; expected one of {', '.join(LR_SCALINGS)}"
        )

    backend = keras.backend.backend()
    if mode == "off" or wanted == 1:
        return DistributionPlan(backend, ("default",), lr_scaling)
    if backend == "jax":
        return _plan_jax(mode, wanted, lr_scaling)
    if backend == "tensorflow":
        return _plan_tensorflow(mode, wanted, lr_scaling)
    if mode == "on":
        raise NotImplementedError(
            f"train.distribute=on is supported on the jax and tensorflow backends, not {backend!r}"
        )
    return DistributionPlan(backend, ("default",), lr_scaling)


def _pick(kind: str, available: list[str], wanted: int) -> list[str]:
    if wanted > len(available):
        raise ValueError(
            f"train.devices={wanted} but only {len(available)} {kind} device(s) are visible "
            f"({', '.join(available) or 'none'}); lower train.devices or set it to 0 (all)"
        )
    return available[:wanted] if wanted else available


def _plan_jax(mode: str, wanted: int, lr_scaling: str) -> DistributionPlan:
    processes = _initialize_jax_processes()
    # list_devices() gives accelerators when there are any, else the CPU devices, never a mix;
    # after `initialize` it lists the devices of every process (the global mesh).
    available = list(keras.distribution.list_devices())
    accelerators = [d for d in available if not d.startswith("cpu")]
    if mode == "auto" and len(accelerators) < 2 and processes == 1:
        return DistributionPlan("jax", tuple(available[:1]), lr_scaling)
    # Across hosts every process takes part with all of its devices.
    devices = available if processes > 1 else _pick("jax", accelerators or available, wanted)
    if len(devices) < 2:
        return DistributionPlan("jax", tuple(devices), lr_scaling)
    import jax

    # Across hosts each process feeds its own rows (see `shard`): no tf.data auto-sharding.
    strategy = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=processes == 1)
    return DistributionPlan(
        "jax", tuple(devices), lr_scaling, strategy, processes, jax.process_index()
    )


def _initialize_jax_processes() -> int:
    """Join a multi-host job when its launcher set Keras' variables; return the process count.

    `keras.distribution.initialize` reads KERAS_DISTRIBUTION_JOB_ADDRESSES (host 0's
    address:port), KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID.
    """
    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    if processes <= 1:
        return 1
    import jax

    if not jax.distributed.is_initialized():
        # CPU devices of different processes talk through gloo; GPUs ignore this setting.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()
    return jax.process_count()


def _plan_tensorflow(mode: str, wanted: int, lr_scaling: str) -> DistributionPlan:
    import tensorflow as tf

    if _tf_config_workers() > 1:
        # Verified here: Keras 3's fit fails under MultiWorkerMirroredStrategy ("Attempt to
        # convert a value (PerReplica...)"), an open Keras issue (keras-team/keras#20585).
        raise NotImplementedError(
            "TF_CONFIG names several workers, but Keras 3 cannot fit under TensorFlow's "
            "MultiWorkerMirroredStrategy; train across hosts on the JAX backend "
            "(KERAS_BACKEND=jax, see docs/distributed.md), or unset TF_CONFIG"
        )
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if mode == "auto" and len(gpus) < 2:
        return DistributionPlan("tensorflow", tuple(gpus[:1]) or ("CPU",), lr_scaling)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    devices = _pick("tensorflow", gpus or cpus, wanted)
    if len(devices) < 2:
        return DistributionPlan("tensorflow", tuple(devices), lr_scaling)
    strategy = tf.distribute.MirroredStrategy(devices)
    return DistributionPlan("tensorflow", tuple(devices), lr_scaling, strategy)


def _tf_config_workers() -> int:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not valid JSON with a 'cluster' key: {e}") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def simulate_cpu_devices(count: int) -> None:
    """Split the host CPU into `count` devices, to rehearse multi-device training on a laptop.

    Must run before the backend starts: before JAX is imported (it sets XLA_FLAGS), or before
    TensorFlow runs its first operation (it splits the CPU into logical devices). Then
    `distribute: on` trains data-parallel over the CPU devices.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    backend = keras.backend.backend()
    if backend == "jax":
        if _jax_started():
            raise RuntimeError(
                "JAX already started; set XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{count} in the environment before Python starts instead"
            )
        flag = f"--xla_force_host_platform_device_count={count}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    elif backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
        except RuntimeError as e:
            raise RuntimeError(
                f"TensorFlow already started ({e}); call simulate_cpu_devices({count}) before "
                "building any model"
            ) from None
    else:
        raise NotImplementedError(
            f"simulate_cpu_devices supports jax and tensorflow, not {backend}"
        )


def _jax_started() -> bool:
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())
