"""The Ray Data actor: the app's own recognizer, loaded once, run over work units.

Each actor is one `Recognizer` (`pipeline.app`: the same detector, crops and classifier as
`ferflow predict`), with no tracking or smoothing: every frame is analysed on its own, so a
video's frame ranges can go to different actors and still give `predict --smoothing 0`'s
answers. Its ONNX Runtime sessions get exactly the actor's CPUs as threads (ONNX Runtime
would otherwise size its pool to the whole host and ignore OMP_NUM_THREADS).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipeline.app.detector import make_detector
from pipeline.app.emotion import LABELS_FILE, EmotionModel
from pipeline.app.errors import AppError
from pipeline.app.media import load_image, open_video
from pipeline.app.recognizer import Face, Recognizer
from pipeline.app.video_backend import opencv_loaded, require_opencv
from pipeline.batch.plan import Item
from pipeline.batch.store import (
    FAILURES_SCHEMA,
    PROBABILITY_PREFIX,
    faces_schema,
    parquet_bytes,
)

if TYPE_CHECKING:
    import cv2


class FaceWorker:
    """Called by Ray Data on batches of units (columns `key`, `items`); returns one row per
    unit: its faces and failures (b"" if none) as Parquet bytes, its frame and face counts."""

    def __init__(
        self,
        model: Any,
        detector: dict[str, Any],
        margin: float,
        threads: int,
    ) -> None:
        if not isinstance(model, dict):  # an ObjectRef from the driver (run.py)
            import ray

            model = ray.get(model)
        # The model travels as bytes (Ray's object store), so a worker node needs no copy of
        # it and runs exactly the file whose sha256 the driver recorded.
        # ONNX Runtime reads the file whole when the session is made: the copy can go then.
        with tempfile.TemporaryDirectory(prefix="ferflow-batch-") as name:
            folder = Path(name)
            (folder / model["file"]).write_bytes(model["onnx"])
            (folder / LABELS_FILE).write_bytes(model["labels_json"])
            emotion = EmotionModel(folder / model["file"], folder / LABELS_FILE, threads=threads)
        faces = make_detector(**detector, threads=threads)
        self.recognizer = Recognizer(emotion, faces, margin=margin)
        self.name, self.sha256 = model["name"], model["sha256"]
        self.schema = faces_schema(emotion.labels)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            k: [] for k in ("key", "frames", "faces", "seconds", "table", "failures")
        }
        for key, items in zip(batch["key"], batch["items"], strict=True):
            start = time.perf_counter()
            covered = json.loads(str(items))
            rows, failures, frames = self.run_unit([Item(*fields) for fields in covered])
            meta = {"key": str(key), "items": covered, "frames": frames}
            table = pa.Table.from_pylist(rows, schema=self.schema)
            out["key"].append(str(key))
            out["frames"].append(frames)
            out["faces"].append(len(rows))
            out["seconds"].append(time.perf_counter() - start)
            out["table"].append(parquet_bytes(table, meta))
            failed = pa.Table.from_pylist(failures, schema=FAILURES_SCHEMA) if failures else None
            # b"" rather than None: a null in a binary column does not survive every format.
            out["failures"].append(b"" if failed is None else parquet_bytes(failed, meta))
        return out

    def run_unit(self, items: list[Item]) -> tuple[list[dict], list[dict], int]:
        """Face rows, failure rows and frames read for one unit; a bad file is a failure
        row and the unit goes on."""
        rows: list[dict] = []
        failures: list[dict] = []
        frames = 0
        for item in items:
            try:
                if item.kind == "image":
                    image, _warning = load_image(Path(item.source))
                    rows += self._rows(item.source, 0, None, self.recognizer(image))
                    frames += 1
                else:
                    frames += self._video(item, rows, failures)
            except AppError as e:
                failures.append(self._failure(item, str(e)))
            except (MemoryError, *_opencv_errors()) as e:
                failures.append(self._failure(item, f"{item.source}: {type(e).__name__}: {e}"))
        return rows, failures, frames

    def _video(self, item: Item, rows: list[dict], failures: list[dict]) -> int:
        video = open_video(Path(item.source))
        try:
            index = seek(video.capture, item.start)
            for frame in video.frames():
                if item.stop is not None and index >= item.stop:
                    break
                faces = self.recognizer(frame)
                rows += self._rows(item.source, index, index / video.fps, faces)
                index += 1
        finally:
            video.release()
        read = index - item.start
        if item.stop is not None and index < item.stop:
            # A range the container promised but that did not decode (damaged, cut off).
            failures.append(
                self._failure(
                    item,
                    f"{item.source}: decoded {read} of the {item.stop - item.start} frames "
                    f"{item.start}-{item.stop - 1} (damaged or cut off?)",
                )
            )
        if read == 0 and item.start == 0:
            raise AppError(f"{item.source}: no frame could be decoded (empty or corrupt video)")
        return read

    def _rows(self, source: str, frame: int, when: float | None, faces: list[Face]) -> list[dict]:
        labels = self.recognizer.model.labels
        scores = getattr(self.recognizer.detector, "last_scores", None)
        rows = []
        for i, face in enumerate(faces):
            x, y, w, h = face.box
            row = {
                "source": source,
                "frame": frame,
                "time": when,
                "face": i,
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "detector_score": None if scores is None else float(scores[i]),
                "label": face.label,
                "score": face.score,
                "model": self.name,
                "model_sha256": self.sha256,
            }
            for label, p in zip(labels, face.probabilities, strict=True):
                row[PROBABILITY_PREFIX + label] = float(p)
            rows.append(row)
        return rows

    def _failure(self, item: Item, reason: str) -> dict:
        return {
            "source": item.source,
            "frame_start": item.start,
            "frame_stop": item.stop,
            "reason": reason,
            "model_sha256": self.sha256,
        }


def _opencv_errors() -> tuple[type[Exception], ...]:
    """cv2.error where OpenCV is loaded (a video read it), else nothing more to catch: a
    batch of photos runs without OpenCV."""
    if not opencv_loaded():
        return ()
    return (require_opencv("batch").error,)


def seek(capture: cv2.VideoCapture, start: int) -> int:
    """Put `capture` at frame `start` and return it. OpenCV seeks to the keyframe before and
    decodes forward; where the container cannot seek, frames are skipped one by one."""
    if start == 0:
        return 0
    cv2 = require_opencv("batch: seeking in videos")
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    if int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == start:
        return start
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    index = 0
    while index < start and capture.grab():
        index += 1
    return index
