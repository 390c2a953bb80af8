"""JSON lines: one record per face per frame, and one record with `faces: 0` for a frame with none.

Every record has every key, so a reader never tests for presence:

    {"file": "group.jpg", "frame": 0, "time": null, "faces": 2, "face": 0, "track": null,
     "box": [104, 61, 95, 95], "label": "happy", "score": 0.9312,
     "probabilities": {"angry": 0.0021, "disgust": 0.0001, ..., "neutral": 0.0310}}

`time` is seconds into a video (null for still images), `face` the face's index in its frame
(left to right), `track` the id that follows one face across a video's frames (null for still
images), `box` is x, y, width, height in the frame's pixels.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pipeline.app.errors import AppError
from pipeline.app.recognizer import Face
from pipeline.io import atomic_path

DECIMALS = 4


def frame_records(
    file: str, frame: int, time: float | None, faces: Sequence[Face], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """The records of one frame: one per face, or a single `faces: 0` record."""
    base = {"file": file, "frame": frame, "time": None if time is None else round(time, 3)}
    if not faces:
        empty = {"face": None, "track": None, "box": None, "label": None, "score": None}
        return [{**base, "faces": 0, **empty, "probabilities": None}]
    return [
        {
            **base,
            "faces": len(faces),
            "face": i,
            "track": face.track,
            "box": list(face.box),
            "label": face.label,
            "score": round(face.score, DECIMALS),
            "probabilities": _probabilities(labels, face.probabilities),
        }
        for i, face in enumerate(faces)
    ]


def _probabilities(labels: Sequence[str], probs: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), DECIMALS) for label, p in zip(labels, probs, strict=True)}


class JsonLines:
    """Records to stdout (flushed per frame, for pipes) or to a file written atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._stack = ExitStack()
        self._out: TextIO = sys.stdout

    def __enter__(self) -> JsonLines:
        if self.path is not None:
            # Checked before the first frame: the rename at the end would fail only after the
            # whole run, naming the temporary file.
            if self.path.is_dir():
                raise AppError(f"{self.path}: is a folder; --output takes a file name")
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._out = self._stack.enter_context(tmp.open("w", encoding="utf-8"))
        return self

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        # One write per frame: Ctrl-C between two writes never leaves half a frame.
        try:
            self._out.write("".join(json.dumps(record) + "\n" for record in records))
            if self.path is None:
                self._out.flush()
        except OSError as e:
            raise self._failed(e) from None

    def __exit__(self, *exc: object) -> None:
        # On an error the temporary file is dropped and an earlier output stays intact.
        try:
            self._stack.__exit__(*exc)
        except OSError as e:  # the last buffered write, at close
            raise self._failed(e) from None

    def _failed(self, e: OSError) -> Exception:
        """A failed write as one line naming the output (a full disk names no file itself)."""
        if self.path is None or e.errno not in (errno.ENOSPC, errno.EDQUOT):
            return e
        return AppError(
            f"{self.path}: no space left on device while writing the records; free space "
            f"(`df -h {self.path.parent}`) and rerun (an earlier {self.path.name} is kept)"
        )
