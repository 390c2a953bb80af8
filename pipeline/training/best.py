"""Keep the best-on-validation weights of the network while it trains, and restore them at the end.

Evaluating the last epoch instead of the best one is a classic example bug; EarlyStopping's
`restore_best_weights` only works when it actually stops, so this keeper always runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras


class KeepBest(keras.callbacks.Callback):
    """Remember `net`'s weights at its best `monitor` value; put them back on train end.

    With `state_dir`, the best weights and score are also saved there on every improvement,
    so a run resumed after a kill (BackupAndRestore) still knows the best epoch before it.
    """

    def __init__(
        self,
        net: keras.Model,
        monitor: str = "val_accuracy",
        mode: str = "max",
        state_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.net, self.monitor, self.mode = net, monitor, mode
        self.state_dir = Path(state_dir) if state_dir else None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._weights: list | None = None

    @property
    def _files(self) -> tuple[Path, Path]:
        assert self.state_dir is not None
        return self.state_dir / "best.weights.h5", self.state_dir / "best.json"

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.state_dir is None:
            return
        weights_file, score_file = self._files
        if weights_file.is_file() and score_file.is_file():
            state = json.loads(score_file.read_text())
            self.best, self.best_epoch = state["best"], state["epoch"]
            current = self.net.get_weights()
            self.net.load_weights(weights_file)
            self._weights = self.net.get_weights()
            self.net.set_weights(current)

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not self._better(float(value)):
            return
        self.best, self.best_epoch = float(value), epoch
        self._weights = self.net.get_weights()
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            weights_file, score_file = self._files
            # Write beside, then rename: a kill mid-write (the very thing resuming is for)
            # must not leave a corrupt file that the resumed run then fails to load.
            staged_weights = weights_file.with_name(f"staged.{weights_file.name}")
            staged_score = score_file.with_name(f"staged.{score_file.name}")
            self.net.save_weights(staged_weights)
            staged_score.write_text(json.dumps({"best": self.best, "epoch": epoch}))
            os.replace(staged_weights, weights_file)
            os.replace(staged_score, score_file)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._weights is not None:
            self.net.set_weights(self._weights)
