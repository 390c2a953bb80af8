"""Carry early stopping's and the plateau schedule's memory across a resumed run.

Keras does the rest: EarlyStopping(restore_best_weights=True) keeps the best-on-val weights
and puts them back when training ends, and BackupAndRestore restores the weights, the
optimizer (so the learning rate) and the epoch. What Keras lacks is saving the callbacks'
own memory: after a kill, EarlyStopping and ReduceLROnPlateau start again from zero, so a
run killed at epoch 40 of a patience-6 plateau would wait 6 more epochs than the
uninterrupted run, and the best weights of the epochs before the kill would be forgotten.
This callback saves their counters after every epoch, and early stopping's best weights
whenever they change, and puts them back when a run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from pipeline.io import atomic_path, write_json

#: The attributes that make up each callback's memory between epochs.
COUNTERS = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}
#: Early stopping's best weights (`model.get_weights()`, in order) in the state folder.
BEST_WEIGHTS = "best_weights.npz"


def _counters(callback: keras.callbacks.Callback) -> tuple[str, ...]:
    for kind, names in COUNTERS.items():
        if isinstance(callback, kind):
            return names
    raise TypeError(f"no counters known for {type(callback).__name__}")


def save_weights(path: Path, weights: Sequence[np.ndarray]) -> None:
    """Write a list of arrays in one rename: a kill mid-write (the very thing resuming is
    for) leaves the previous file, never a corrupt one."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, *weights)  # a file object: np.savez would append ".npz" to a name


def load_weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


class KeepPatience(keras.callbacks.Callback):
    """Save `watched` callbacks' counters (and early stopping's best weights) to `state_dir`
    each epoch; restore them on resume.

    Must come after the watched callbacks in `fit(callbacks=...)`: their `on_train_begin`
    resets the counters, and their `on_epoch_end` updates them, before this one runs.
    """

    def __init__(self, watched: Sequence[keras.callbacks.Callback], state_dir: str | Path) -> None:
        super().__init__()
        self.watched = [(type(c).__name__, c, _counters(c)) for c in watched]
        self.file = Path(state_dir) / "patience.json"
        self.weights_file = Path(state_dir) / BEST_WEIGHTS
        self._stoppers = [
            c
            for c in watched
            if isinstance(c, keras.callbacks.EarlyStopping) and c.restore_best_weights
        ]
        if len(self._stoppers) > 1:
            raise ValueError("one EarlyStopping with restore_best_weights at most")

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.file.is_file():
            return
        saved = json.loads(self.file.read_text(encoding="utf-8"))
        for name, callback, counters in self.watched:
            for counter, value in saved.get(name, {}).items():
                if counter in counters:
                    setattr(callback, counter, value)
        for stopper in self._stoppers:
            if self.weights_file.is_file():
                stopper.best_weights = load_weights(self.weights_file)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for stopper in self._stoppers:
            # Weights before counters: a kill between the two reruns the epoch anyway.
            if stopper.best_epoch == epoch and stopper.best_weights is not None:
                self.weights_file.parent.mkdir(parents=True, exist_ok=True)
                save_weights(self.weights_file, stopper.best_weights)
        state = {
            name: {counter: _plain(getattr(callback, counter, None)) for counter in counters}
            for name, callback, counters in self.watched
        }
        write_json(self.file, state | {"epoch": epoch})


def _plain(value: object) -> object:
    """Counters as JSON values (Keras keeps some as NumPy scalars; `best` starts at +-inf)."""
    return value.item() if hasattr(value, "item") else value
