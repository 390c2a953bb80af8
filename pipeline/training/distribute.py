"""Data-parallel training over the devices of one host, on either Keras backend.

The one place in ferflow with backend-specific distribution code: the JAX backend uses
`keras.distribution.DataParallel`, TensorFlow `tf.distribute.MirroredStrategy`; the networks
and the recipe stay plain Keras. docs/distributed.md gives the params (`train.distribute`,
`devices`, `lr_scaling`) and how `fit` uses a plan. `batch_size` is the batch of one device:
a step averages over `batch_size x replicas`, and `lr_scaling` follows that count.

Traps handled here (NOTES.md): on JAX every batch, the last partial one included, must divide
by the device count (`shard` cuts each split to a multiple of it); on TensorFlow the model
must be built and compiled inside `strategy.scope()` (`replica_of` clones `net` inside the
scope and copies the weights back at the end).
"""

from __future__ import annotations

import contextlib
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

    @property
    def replicas(self) -> int:
        """Model copies in sync: each takes a slice of every batch."""
        return len(self.devices) if self.strategy is not None else 1

    @property
    def enabled(self) -> bool:
        return self.strategy is not None

    def global_batch_size(self, per_device_batch_size: int) -> int:
        """How many examples one optimizer step averages over, on all devices together: the
        `batch_size` to give Keras' `fit`."""
        if per_device_batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {per_device_batch_size}")
        return int(per_device_batch_size) * self.replicas

    def scale_lr(self, lr: float) -> float:
        """The learning rate for the global batch, from the one tuned for one device."""
        factor = {"linear": self.replicas, "sqrt": math.sqrt(self.replicas), "none": 1}
        return float(lr) * factor[self.lr_scaling]

    def shard(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """The rows of `arrays` to feed to `fit`: cut to a multiple of the replica count.

        At most replicas-1 rows are left out; with `global_batch_size` a multiple of the
        count too, every batch, the last partial one included, splits evenly over the
        devices, which JAX requires.
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
        return tuple(a[:keep] for a in arrays)

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
        if per_device_batch_size is not None:
            parts.append(
                f"global batch {self.global_batch_size(per_device_batch_size)} = "
                f"{per_device_batch_size} x {self.replicas}"
            )
        if lr is not None:
            parts.append(f"lr {self.scale_lr(lr):g} = {lr:g} scaled {self.lr_scaling}")
        return "; ".join(parts)


def plan_distribution(params: Mapping[str, Any]) -> DistributionPlan:
    """Decide from the `train` params which devices train; see the module docstring."""
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
    # list_devices() gives accelerators when there are any, else the CPU devices, never a mix.
    available = list(keras.distribution.list_devices())
    accelerators = [d for d in available if not d.startswith("cpu")]
    if mode == "auto" and len(accelerators) < 2:
        return DistributionPlan("jax", tuple(available[:1]), lr_scaling)
    devices = _pick("jax", accelerators or available, wanted)
    if len(devices) < 2:
        return DistributionPlan("jax", tuple(devices), lr_scaling)
    strategy = keras.distribution.DataParallel(devices=devices)
    return DistributionPlan("jax", tuple(devices), lr_scaling, strategy)


def _plan_tensorflow(mode: str, wanted: int, lr_scaling: str) -> DistributionPlan:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if mode == "auto" and len(gpus) < 2:
        return DistributionPlan("tensorflow", tuple(gpus[:1]) or ("CPU",), lr_scaling)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    devices = _pick("tensorflow", gpus or cpus, wanted)
    if len(devices) < 2:
        return DistributionPlan("tensorflow", tuple(devices), lr_scaling)
    strategy = tf.distribute.MirroredStrategy(devices)
    return DistributionPlan("tensorflow", tuple(devices), lr_scaling, strategy)


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
