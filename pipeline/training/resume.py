"""Resume an interrupted training run from its last completed epoch.

The resume folder holds Keras' BackupAndRestore checkpoint (weights, optimizer state, epoch),
the best-on-val weights so far, a copy of the DVCLive log and a fingerprint of what is being
trained. It must not be a DVC output: DVC deletes a stage's outputs before running it, which
would throw the checkpoint away exactly when it is needed. For the same reason the DVCLive
log (a DVC output) is copied here after every epoch and put back before a resumed run.
A finished run deletes the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import keras

from pipeline.io import atomic_dir

FINGERPRINT_FILE = "fingerprint.json"


def fingerprint(**parts: Any) -> str:
    """A stable hash of the things a checkpoint is only valid for (params, data hash)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResumeState:
    """The resume folder of one training run.

    A checkpoint left by a run with other params or data is not resumed: resuming it would
    silently mix two experiments, so it is deleted and training starts over.
    """

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key

    @property
    def backup_dir(self) -> Path:
        return self.folder / "backup"

    @property
    def best_dir(self) -> Path:
        return self.folder / "best"

    @property
    def log_copy(self) -> Path:
        return self.folder / "live"

    def _stored_key(self) -> str | None:
        try:
            return json.loads((self.folder / FINGERPRINT_FILE).read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def last_completed_epoch(self) -> int:
        """Epochs already trained according to the checkpoint (0 when there is none)."""
        for name in ("training_metadata.json", "training_metadata.json.bkp"):
            try:
                return int(json.loads((self.backup_dir / name).read_text())["epoch"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return 0

    def prepare(self) -> int:
        """Keep a matching checkpoint, drop any other; return the epoch training resumes at."""
        if self.folder.exists() and self._stored_key() != self.key:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FINGERPRINT_FILE).write_text(json.dumps({"key": self.key}) + "\n")
        return self.last_completed_epoch()

    def callback(self) -> keras.callbacks.Callback:
        # double_checkpoint: a kill while the weights file is being written leaves the
        # previous epoch's copy to fall back on. The folder is removed by `clear`, once the
        # model is safely saved, not by the callback at the end of fit.
        return keras.callbacks.BackupAndRestore(
            str(self.backup_dir), double_checkpoint=True, delete_checkpoint=False
        )

    def log_snapshot(self, live_dir: str | Path) -> keras.callbacks.Callback:
        """A callback that copies the DVCLive folder here after every epoch.

        Put it after the logger and before `callback()`: a kill between the copy and the
        checkpoint then only means that epoch is trained (and logged) again.
        """
        return _CopyLog(Path(live_dir), self.log_copy)

    def restore_log(self, live_dir: str | Path) -> None:
        """Put the copied DVCLive folder back (DVC deleted it before the stage ran)."""
        if not self.log_copy.is_dir():
            return
        with atomic_dir(live_dir) as tmp:
            shutil.copytree(self.log_copy, tmp, dirs_exist_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _CopyLog(keras.callbacks.Callback):
    def __init__(self, source: Path, copy: Path) -> None:
        super().__init__()
        self.source, self.copy = source, copy

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.source.is_dir():
            with atomic_dir(self.copy) as tmp:
                shutil.copytree(self.source, tmp, dirs_exist_ok=True)
