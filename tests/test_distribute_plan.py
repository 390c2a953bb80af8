"""The single-device plan and the params checks, in-process on the default backend."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.training.distribute import DistributionPlan, plan_distribution


def test_off_is_one_device_and_changes_nothing() -> None:
    plan = plan_distribution({"distribute": "off"})
    assert not plan.enabled and plan.replicas == 1
    assert plan.global_batch_size(64) == 64
    assert plan.scale_lr(0.01) == 0.01
    x, y = np.zeros((7, 2)), np.arange(7)
    assert [len(a) for a in plan.shard(x, y)] == [7, 7]
    sentinel = object()
    with plan.replica_of(sentinel) as model:  # type: ignore[arg-type]
        assert model is sentinel


def test_auto_spreads_over_gpus_only() -> None:
    import tensorflow as tf

    gpus = len(tf.config.list_logical_devices("GPU"))
    assert plan_distribution({}).replicas == (gpus if gpus > 1 else 1)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"distribute": "always"}, r"train.distribute='always'; expected one of auto, on, off"),
        ({"devices": -1}, r"train.devices=-1; expected 0 \(all visible devices\)"),
        ({"lr_scaling": "cubic"}, r"train.lr_scaling='cubic'; expected one of linear"),
    ],
)
def test_bad_params_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_distribution(params)


def test_too_many_devices_says_how_many_are_visible() -> None:
    with pytest.raises(ValueError, match=r"train.devices=64 but only \d+ .*lower train.devices"):
        plan_distribution({"distribute": "on", "devices": 64})


@pytest.mark.parametrize(("scaling", "lr"), [("linear", 0.004), ("sqrt", 0.002), ("none", 0.001)])
def test_lr_scaling_rules(scaling: str, lr: float) -> None:
    # A plan over 4 replicas without touching real devices: the arithmetic reads the count.
    plan = DistributionPlan("tensorflow", ("a", "b", "c", "d"), scaling, strategy=object())
    assert plan.scale_lr(0.001) == pytest.approx(lr)
    assert plan.global_batch_size(32) == 128
    x = np.arange(10)
    (kept,) = plan.shard(x)
    assert kept.tolist() == list(range(8))
    with pytest.raises(ValueError, match="3 examples cannot be split over 4 devices"):
        plan.shard(x[:3])
