"""Recall, false positives, speed and box geometry of the app's face detector on real faces.

Real FER2013 PrivateTest faces (every `--every`-th one) are scaled up to a face size and
pasted, three per frame, into 640x480 frames cut from scikit-image's photos without people
(coffee, rocket, a cat, bricks, ...). Each setting of `pipeline.app.detector.FaceDetector`
then searches every frame: a face counts as found when a box overlaps it with IoU >= 0.4,
every other box is a false positive. The box geometry (FER2013 crop side / Haar box side, and
the offset of the centres) is what `DEFAULT_MARGIN` in `pipeline.app.recognizer` is set from.

    python benchmarks/bench_detector.py /tmp/fer2013.csv [--every 8] [--threads 1]

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

from pipeline.app.detector import FaceDetector  # noqa: E402
from pipeline.app.tracking import iou  # noqa: E402

FRAME_W, FRAME_H = 640, 480
FACE_SIZES = (64, 96, 144)
BACKGROUNDS = ("coffee", "rocket", "chelsea", "brick", "grass", "gravel", "clock", "moon")
#: (name, cascade, detect_width, scale_factor, min_neighbors); the first rows are the app's
#: defaults for `predict` (full width) and `live` (320 px).
SETTINGS = (
    ("predict default: alt2, full width", "haarcascade_frontalface_alt2.xml", 1280, 1.1, 5),
    ("live default: alt2, 320 px", "haarcascade_frontalface_alt2.xml", 320, 1.1, 5),
    ("alt2, 320 px, scale 1.2", "haarcascade_frontalface_alt2.xml", 320, 1.2, 5),
    ("alt, full width", "haarcascade_frontalface_alt.xml", 1280, 1.1, 5),
    ("alt, 320 px", "haarcascade_frontalface_alt.xml", 320, 1.1, 5),
    ("default, full width", "haarcascade_frontalface_default.xml", 1280, 1.1, 5),
    ("default, 320 px", "haarcascade_frontalface_default.xml", 320, 1.1, 5),
    ("default, 320 px, minNeighbors 8", "haarcascade_frontalface_default.xml", 320, 1.1, 8),
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


def evaluate(detector: FaceDetector, frames: list, truths: list) -> dict:
    found = false_pos = total = 0
    geometry, seconds = [], []
    for frame, truth in zip(frames, truths, strict=True):
        # CPU time, not wall time: steadier on a machine shared with other work.
        start = time.process_time()
        boxes = detector.detect(frame)
        seconds.append(time.process_time() - start)
        total += len(truth)
        overlap = iou(truth, boxes)
        matched = set()
        for t in range(len(truth)):
            if overlap.shape[1] and overlap[t].max() >= 0.4:
                b = int(overlap[t].argmax())
                matched.add(b)
                found += 1
                x, y, w, _ = boxes[b]
                tx, ty, side, _ = truth[t]
                dx, dy = tx + side / 2 - (x + w / 2), ty + side / 2 - (y + w / 2)
                geometry.append((side / w, dx / w, dy / w))
        false_pos += len(boxes) - len(matched)
    return {
        "recall": found / total,
        "false_pos_per_frame": false_pos / len(frames),
        "ms_per_frame": 1000 * float(np.mean(seconds)),
        "geometry": np.array(geometry).reshape(-1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the real fer2013.csv (unpacked outside the repo)")
    parser.add_argument("--every", type=int, default=8, help="use every n-th PrivateTest face")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default: 1)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    faces, _ = load_usage(args.csv)
    faces = faces[:: args.every]
    print(f"{len(faces)} PrivateTest faces, 3 per {FRAME_W}x{FRAME_H} frame, ", end="")
    print(f"{args.threads} OpenCV thread(s)")
    scenes = {size: make_frames(faces, size) for size in FACE_SIZES}

    header = "| setting | " + " | ".join(f"recall {s} px" for s in FACE_SIZES)
    print(header + " | false pos./frame | CPU-ms/frame | crop/box side |")
    print("|---" * (len(FACE_SIZES) + 4) + "|")
    geometry = None
    for name, cascade, width, scale, neighbours in SETTINGS:
        detector = FaceDetector(
            cascade, detect_width=width, scale_factor=scale, min_neighbors=neighbours
        )
        results = [evaluate(detector, *scenes[size]) for size in FACE_SIZES]
        false_pos = np.mean([r["false_pos_per_frame"] for r in results])
        ms = np.mean([r["ms_per_frame"] for r in results])
        recalls = " | ".join(f"{r['recall']:.1%}" for r in results)
        ratio = np.median(np.concatenate([r["geometry"] for r in results])[:, 0])
        print(f"| {name} | {recalls} | {false_pos:.3f} | {ms:.1f} | {ratio:.3f} |", flush=True)
        if geometry is None:
            geometry = np.concatenate([r["geometry"] for r in results])

    ratio, dx, dy = np.percentile(geometry, [25, 50, 75], axis=0).T
    print(
        f"\nFER2013 crop side / detector box side ({name_of(SETTINGS[0])}): median {ratio[1]:.3f} "
        f"(quartiles {ratio[0]:.3f}-{ratio[2]:.3f}); centre offset / box side: "
        f"x {dx[1]:+.3f}, y {dy[1]:+.3f}"
    )
    print(f"-> crop margin per side that reproduces FER2013's framing: {(ratio[1] - 1) / 2:.3f}")


def name_of(setting: tuple) -> str:
    return setting[0]


if __name__ == "__main__":
    main()
