"""Recall, false positives, speed and box geometry of the app's face detectors on real faces.

Real FER2013 PrivateTest faces (every `--every`-th one) are scaled up to a face size and
pasted, three per frame, into 640x480 frames cut from scikit-image's photos without people
(coffee, rocket, a cat, bricks, ...). Each setting of `pipeline.app.detector.make_detector`
then searches every frame: a face counts as found when a box overlaps it with IoU >= 0.4,
every other box is a false positive. The geometry of CenterFace's own boxes against the
FER2013 crops is what `CENTERFACE_FRAMING` is set from, and `--smallest` measures the smallest
face CenterFace finds at its input (`CENTERFACE_SMALLEST`), on the sharp astronaut photo.

    python benchmarks/bench_detector.py /tmp/fer2013.csv [--every 8] [--smallest]

FER2013 faces are 48x48 and blurry once scaled up, and some are profiles, drawings or
occluded: recall on them is a lower bound of recall on camera frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fer2013_csv import load_usage  # noqa: E402

import pipeline.app.detector as detectors  # noqa: E402
from pipeline.app.defaults import PREDICT  # noqa: E402
from pipeline.app.tracking import iou  # noqa: E402

FRAME_W, FRAME_H = 640, 480
FACE_SIZES = (64, 96, 144)
BACKGROUNDS = ("coffee", "rocket", "chelsea", "brick", "grass", "gravel", "clock", "moon")
#: (name, detector, min_face, threshold); the first row is the app's default.
SETTINGS = (
    ("centerface, min face 64, threshold 0.1 (default)", "centerface", 64, 0.1),
    ("centerface, min face 48", "centerface", 48, 0.1),
    ("centerface, min face 80", "centerface", 80, 0.1),
    ("centerface, min face 64, threshold 0.05", "centerface", 64, 0.05),
    ("centerface, min face 64, threshold 0.2", "centerface", 64, 0.2),
    ("haar alt2, min face 64", "haar", 64, 0.1),
    ("haar alt2, min face 24 (the former predict default)", "haar", 24, 0.1),
)


def backgrounds() -> list[np.ndarray]:
    """Grayscale 640x480 photos without people, shipped with scikit-image."""
    from skimage import data, util

    out = []
    for name in BACKGROUNDS:
        image = util.img_as_ubyte(getattr(data, name)())
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
        out.append(cv2.resize(image, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA))
    return out


def make_frames(faces: np.ndarray, size: int, seed: int = 0) -> tuple[list, list]:
    """Frames holding three faces each, and the true boxes (x, y, w, h) of every frame."""
    rng = np.random.default_rng(seed)
    scenes = backgrounds()
    frames, truths = [], []
    slot = FRAME_W // 3
    for start in range(0, len(faces), 3):
        frame = scenes[(start // 3) % len(scenes)].copy()
        boxes = []
        for k, face in enumerate(faces[start : start + 3]):
            x = k * slot + int(rng.integers(0, slot - size))
            y = int(rng.integers(0, FRAME_H - size))
            frame[y : y + size, x : x + size] = cv2.resize(
                face, (size, size), interpolation=cv2.INTER_CUBIC
            )
            boxes.append((x, y, size, size))
        frames.append(frame)
        truths.append(np.array(boxes))
    return frames, truths


def evaluate(detector, frames: list, truths: list) -> dict:
    found = false_pos = total = 0
    seconds = []
    for frame, truth in zip(frames, truths, strict=True):
        # CPU time, not wall time: steadier on a machine shared with other work.
        start = time.process_time()
        boxes = detector.detect(frame)
        seconds.append(time.process_time() - start)
        total += len(truth)
        overlap = iou(truth, boxes)
        hits = overlap.max(axis=1) >= 0.4 if overlap.shape[1] else np.zeros(len(truth), bool)
        found += int(hits.sum())
        false_pos += len(boxes) - int(hits.sum())
    return {
        "recall": found / total,
        "false_pos_per_frame": false_pos / len(frames),
        "ms_per_frame": 1000 * float(np.mean(seconds)),
    }


def centerface_geometry(frames: list, truths: list) -> np.ndarray:
    """FER2013 crop side / CenterFace box height, and the crop centre's offset from the box
    centre in box heights (x, y), for every face found at the default settings."""
    saved = detectors.CENTERFACE_FRAMING
    detectors.CENTERFACE_FRAMING = (1.0, 0.0, 0.0)  # squares of the box height, same centre
    try:
        detector = detectors.CenterFace(min_face=PREDICT.min_face, threads=1)
        rows = []
        for frame, truth in zip(frames, truths, strict=True):
            boxes = detector.detect(frame)
            overlap = iou(truth, boxes)
            for t in range(len(truth)):
                if overlap.shape[1] and overlap[t].max() >= 0.4:
                    x, y, side, _ = boxes[int(overlap[t].argmax())]
                    tx, ty, true_side, _ = truth[t]
                    dx = (tx + true_side / 2 - (x + side / 2)) / side
                    dy = (ty + true_side / 2 - (y + side / 2)) / side
                    rows.append((true_side / side, dx, dy))
    finally:
        detectors.CENTERFACE_FRAMING = saved
    return np.array(rows)


def smallest_face() -> None:
    """The astronaut's face pasted at small sizes into 320x240 scenes, searched unshrunk."""
    from skimage import data

    head = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[50:175, 165:290]
    scenes = [cv2.cvtColor(s, cv2.COLOR_GRAY2BGR) for s in backgrounds()]
    scenes = [cv2.resize(s, (320, 240), interpolation=cv2.INTER_AREA) for s in scenes]
    rng = np.random.default_rng(1)
    print("\n| face side at the detector's input | found, of 20 |\n|---|---|")
    for side in (16, 20, 24, 28, 32, 40, 48):
        detector = detectors.CenterFace(min_face=16, threads=1)  # 16 < 32: no shrinking
        found = 0
        for k in range(20):
            x, y = int(rng.integers(0, 320 - side)), int(rng.integers(0, 240 - side))
            frame = scenes[k % len(scenes)].copy()
            frame[y : y + side, x : x + side] = cv2.resize(
                head, (side, side), interpolation=cv2.INTER_AREA
            )
            boxes = detector.detect(frame)
            found += bool(len(boxes)) and iou((x, y, side, side), boxes).max() >= 0.3
        print(f"| {side} px | {found} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the real fer2013.csv (unpacked outside the repo)")
    parser.add_argument("--every", type=int, default=8, help="use every n-th PrivateTest face")
    parser.add_argument("--smallest", action="store_true", help="also the smallest-face table")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    faces, _ = load_usage(args.csv)
    faces = faces[:: args.every]
    print(f"{len(faces)} PrivateTest faces, 3 per {FRAME_W}x{FRAME_H} frame, one thread")
    scenes = {size: make_frames(faces, size) for size in FACE_SIZES}

    header = "| setting | " + " | ".join(f"recall {s} px" for s in FACE_SIZES)
    print(header + " | false pos./frame | CPU-ms/frame |")
    print("|---" * (len(FACE_SIZES) + 3) + "|")
    for name, kind, min_face, threshold in SETTINGS:
        detector = detectors.make_detector(kind, min_face=min_face, threshold=threshold, threads=1)
        results = [evaluate(detector, *scenes[size]) for size in FACE_SIZES]
        false_pos = np.mean([r["false_pos_per_frame"] for r in results])
        ms = np.mean([r["ms_per_frame"] for r in results])
        recalls = " | ".join(f"{r['recall']:.1%}" for r in results)
        print(f"| {name} | {recalls} | {false_pos:.3f} | {ms:.1f} |", flush=True)

    # Faces above the default smallest face only (at 64 px, half are cut by min_face).
    geometry = np.concatenate([centerface_geometry(*scenes[size]) for size in FACE_SIZES[1:]])
    q = np.percentile(geometry, [25, 50, 75], axis=0)
    print(
        f"\nCenterFace at the defaults, {FACE_SIZES[1:]} px faces: FER2013 crop side / box "
        f"height: median {q[1, 0]:.3f} "
        f"(quartiles {q[0, 0]:.3f}-{q[2, 0]:.3f}); crop centre - box centre, in box heights: "
        f"x {q[1, 1]:+.3f}, y {q[1, 2]:+.3f} (CENTERFACE_FRAMING is {detectors.CENTERFACE_FRAMING})"
    )
    if args.smallest:
        smallest_face()


if __name__ == "__main__":
    main()
