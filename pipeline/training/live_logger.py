"""Per-epoch DVCLive logging as a small Keras callback.

`dvclive.keras.DVCLiveCallback` imports TensorFlow, which the GPU machine (JAX) lacks, so
ferflow logs through `dvclive.Live` directly. Metric names put train and val side by side
under `plots/metrics/{train,val}/`, so one DVC plot can overlay both curves.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import keras

#: Keras log key -> DVCLive metric name.
METRIC_NAMES: dict[str, str] = {
    "loss": "train/loss",
    "accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "learning_rate": "learning_rate",
}


def drop_steps_from(live_dir: str | Path, first_dropped: int) -> None:
    """Remove rows with `step >= first_dropped` from every DVCLive metric history (.tsv).

    A run killed after DVCLive wrote an epoch but before the resume checkpoint did would
    otherwise log that epoch twice when it is trained again.
    """
    metrics_dir = Path(live_dir) / "plots" / "metrics"
    for tsv in metrics_dir.rglob("*.tsv"):
        with tsv.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows:
            continue
        header, body = rows[0], rows[1:]
        step_col = header.index("step")
        kept = [r for r in body if r and int(r[step_col]) < first_dropped]
        if len(kept) == len(body):
            continue
        with tsv.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t", lineterminator="\n").writerows([header, *kept])


class LiveLogger(keras.callbacks.Callback):
    """Log loss, accuracy (train and val), learning rate and images/s to `live` every epoch.

    DVCLive's step is the epoch index, so a resumed run continues the same curves; the
    first epoch of a fit first drops any history at or after it (see `drop_steps_from`).
    """

    def __init__(self, live: Any, num_train: int) -> None:
        super().__init__()
        self.live, self.num_train = live, int(num_train)
        self._aligned = False
        self._epoch_start = 0.0
        self._train_seconds: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._aligned:
            drop_steps_from(self.live.dir, epoch)
            self._aligned = True
        self.live.step = epoch
        self._epoch_start = time.perf_counter()
        self._train_seconds = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        # Validation runs inside the epoch; images/s should count training only.
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if "learning_rate" not in logs:
            lr = current_learning_rate(self.model)
            if lr is not None:
                logs["learning_rate"] = lr
        self.live.step = epoch
        for key, name in METRIC_NAMES.items():
            if key in logs:
                self.live.log_metric(name, float(logs[key]))
        seconds = self._train_seconds or (time.perf_counter() - self._epoch_start)
        if seconds > 0:
            self.live.log_metric("train/images_per_s", round(self.num_train / seconds, 1))
        self.live.next_step()


def current_learning_rate(model: keras.Model) -> float | None:
    """The optimizer's learning rate now (schedules are evaluated at the current step)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None
