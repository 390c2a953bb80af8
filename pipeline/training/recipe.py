"""The training recipe: network + augmentation + optimizer + schedule, from params.yaml.

`make_net` and `fit` are all a stage needs:

    net = make_net(params["model"], params["train"])
    history = fit(net, (x_train, y_train), (x_val, y_val), params["train"])

Model selection uses the validation split (PublicTest) only; the test split never enters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline.config import INPUT_SHAPE
from pipeline.models import as_model_input, build_model
from pipeline.models.augment import build_augmenter
from pipeline.params import check_value
from pipeline.training.distribute import plan_distribution
from pipeline.training.patience import KeepPatience

Arrays = tuple[np.ndarray, ...]  # (images, labels) or (images, labels, soft targets)


def make_net(model_params: dict[str, Any], train_params: dict[str, Any]) -> keras.Model:
    """Seed everything, set the precision policy, then build the network `model.name`."""
    keras.utils.set_random_seed(int(train_params.get("seed", 0)))
    # The policy must be set before layers are built; it only changes compute dtype, the
    # variables (and the saved model) stay float32.
    policy = "mixed_bfloat16" if train_params.get("mixed_precision", False) else "float32"
    keras.config.set_dtype_policy(policy)
    params = dict(model_params)
    name = params.pop("name")
    return build_model(name, **params)


def make_optimizer(params: dict[str, Any], steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Optimizer and learning-rate schedule from the `train` section.

    schedule: `cosine` (linear warm-up for `warmup_epochs`, then cosine decay to zero over the
    remaining epochs), `constant`, or `plateau` (constant, lowered by ReduceLROnPlateau, see
    `make_callbacks`). optimizer: `sgd` (Nesterov momentum), `adam` or `adamw`. `ema` > 0
    keeps an exponential moving average of the weights with that momentum (see `fit`).
    """
    lr = float(params["lr"])
    schedule = params.get("schedule", "constant")
    epochs = int(params["epochs"])
    if schedule == "cosine":
        warmup = int(params.get("warmup_epochs", 0)) * steps_per_epoch
        total = max(epochs * steps_per_epoch - warmup, 1)
        rate: Any = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr / 10 if warmup else lr,
            decay_steps=total,
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    elif schedule in ("constant", "plateau"):
        rate = lr
    else:
        raise ValueError(f"train.schedule={schedule!r}; expected cosine, constant or plateau")

    name = params.get("optimizer", "adam")
    weight_decay = float(params.get("weight_decay", 0.0)) or None
    # The schema's own range check: params.yaml's values passed it already; this guards
    # callers that build the dict themselves (one rule, one message).
    ema = float(check_value("train.ema", params.get("ema", 0.0)))
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if name == "sgd":
        return keras.optimizers.SGD(
            rate,
            momentum=float(params.get("momentum", 0.9)),
            nesterov=True,
            weight_decay=weight_decay,
            **averaging,
        )
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=weight_decay, **averaging)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=weight_decay or 1e-4, **averaging)
    raise ValueError(f"train.optimizer={name!r}; expected sgd, adam or adamw")


def make_callbacks(params: dict[str, Any]) -> list[keras.callbacks.Callback]:
    """Callbacks the recipe itself needs: plateau LR, and Keras' EarlyStopping, which always
    runs, because with `restore_best_weights` it puts the best-on-val_accuracy weights back
    when training ends, stopped early or not (Keras 3: `on_train_end`). Patience 0 (off)
    means it never stops: patience = every epoch."""
    callbacks: list[keras.callbacks.Callback] = []
    if params.get("schedule") == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_accuracy",
                mode="max",
                factor=float(params.get("plateau_factor", 0.9)),
                patience=int(params.get("plateau_patience", 3)),
            )
        )
    patience = int(params.get("early_stopping_patience", 0)) or int(params["epochs"])
    callbacks.append(
        keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
        )
    )
    return callbacks


def adapt_normalization(net: keras.Model, images: np.ndarray) -> None:
    """Fit every Normalization layer of `net` to the training images (never val or test)."""
    for layer in net.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt(images)


def build_training_model(net: keras.Model, params: dict[str, Any]) -> keras.Model:
    """`Model(x, net(augment(x)))`: augmentation runs on the accelerator, only while training."""
    augment = build_augmenter(params.get("augment", {}), seed=int(params.get("seed", 0)))
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    return keras.Model(inputs, net(augment(inputs)), name=f"train_{net.name}")


def fit(
    net: keras.Model,
    train: Arrays,
    val: Arrays,
    params: dict[str, Any],
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
    state_dir: str | Path | None = None,
) -> keras.callbacks.History:
    """Train `net` with the recipe in `params` (params.yaml `train`); leave the best-on-val weights.

    `callbacks` run first, so a resume callback (BackupAndRestore) restores state before the
    recipe's own callbacks (early stopping, which keeps the best weights) look at it.
    `state_dir` (the resume folder) lets the best weights and the patience counters survive
    a kill too.

    `train` may carry soft targets third (N, classes), e.g. FER+ vote distributions: the
    network then learns them (categorical cross-entropy), and val still scores the hard
    labels (accuracy against the majority).
    """
    plan = plan_distribution(params)
    x_train = as_model_input(train[0])
    # On all training rows, before sharding: every host must hold the same statistics.
    adapt_normalization(net, x_train)
    soft = len(train) > 2 and train[2] is not None
    y_train, y_val = np.asarray(train[1]), np.asarray(val[1])
    if soft:
        classes = np.asarray(train[2]).shape[1]
        y_train = np.asarray(train[2], np.float32)
        y_val = np.eye(classes, dtype=np.float32)[y_val]
    x_train, y_train = plan.shard(x_train, y_train)
    x_val, y_val = plan.shard(as_model_input(val[0]), y_val)
    per_device = int(params["batch_size"])
    batch_size = plan.global_batch_size(per_device)
    val_batch_size = plan.global_batch_size(max(per_device, 256 // plan.replicas))
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    if plan.enabled:
        print(plan.describe(per_device, float(params["lr"])))

    with plan.replica_of(net) as replica:
        model = build_training_model(replica, params)
        model.compile(
            optimizer=make_optimizer(
                {**params, "lr": plan.scale_lr(float(params["lr"]))}, steps_per_epoch
            ),
            loss=_loss(soft, float(params.get("label_smoothing") or 0.0)),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")] if soft else ["accuracy"],
            jit_compile=params.get("jit_compile", "auto"),
            steps_per_execution=int(params.get("steps_per_execution", 1)),
        )
        # With `ema`, validation scores the averaged weights and, swapped in at each epoch's
        # end, they are what early stopping sees and keeps as the best.
        averaging = []
        if params.get("ema"):
            averaging = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]
        recipe = make_callbacks(params)
        if state_dir is not None:
            recipe.append(KeepPatience(recipe, state_dir))
        history = model.fit(
            x_train,
            y_train,
            batch_size=batch_size,
            epochs=int(params["epochs"]),
            validation_data=(x_val, y_val),
            validation_batch_size=val_batch_size,
            callbacks=[*callbacks, *averaging, *recipe],
            shuffle=True,
            verbose=verbose,
        )
    return history


def _loss(soft: bool, smoothing: float) -> keras.losses.Loss:
    if soft:
        return keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
    if smoothing:
        return _smoothed_loss(smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def _smoothed_loss(smoothing: float) -> keras.losses.Loss:
    """Label smoothing needs one-hot targets; convert inside the loss so datasets stay sparse."""

    class SmoothedSparseCrossentropy(keras.losses.Loss):
        def call(self, y_true, y_pred):
            num_classes = y_pred.shape[-1]
            one_hot = keras.ops.one_hot(
                keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), num_classes
            )
            return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=smoothing)

    return SmoothedSparseCrossentropy(name="smoothed_crossentropy")
