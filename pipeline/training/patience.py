"""Carry early stopping's and the plateau schedule's counters across a resumed run.

BackupAndRestore restores the weights, the optimizer (so the learning rate) and the epoch,
but EarlyStopping and ReduceLROnPlateau start again from zero: a run killed at epoch 40 of a
patience-6 plateau would wait 6 more epochs than the uninterrupted run. This callback saves
their counters after every epoch and puts them back when a run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras

from pipeline.io import write_json

#: The attributes that make up each callback's memory between epochs.
COUNTERS = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def _counters(callback: keras.callbacks.Callback) -> tuple[str, ...]:
    for kind, names in COUNTERS.items():
        if isinstance(callback, kind):
            return names
    raise TypeError(f"no counters known for {type(callback).__name__}")


class KeepPatience(keras.callbacks.Callback):
    """Save `watched` callbacks' counters to `state_dir` each epoch; restore them on resume.

    Must come after the watched callbacks in `fit(callbacks=...)`: their `on_train_begin`
    resets the counters, and their `on_epoch_end` updates them, before this one runs.
    """

    def __init__(self, watched: Sequence[keras.callbacks.Callback], state_dir: str | Path) -> None:
        super().__init__()
        self.watched = [(type(c).__name__, c, _counters(c)) for c in watched]
        self.file = Path(state_dir) / "patience.json"

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.file.is_file():
            return
        saved = json.loads(self.file.read_text(encoding="utf-8"))
        for name, callback, counters in self.watched:
            for counter, value in saved.get(name, {}).items():
                if counter in counters:
                    setattr(callback, counter, value)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        state = {
            name: {counter: _plain(getattr(callback, counter, None)) for counter in counters}
            for name, callback, counters in self.watched
        }
        write_json(self.file, state | {"epoch": epoch})


def _plain(value: object) -> object:
    """Counters as JSON values (Keras keeps some as NumPy scalars; `best` starts at +-inf)."""
    return value.item() if hasattr(value, "item") else value
