"""Can `ferflow live` keep up with a 30 fps 640x480 stream showing three faces?

Writes a 640x480, 30 fps video of three real faces (the astronaut photo shipped with
scikit-image, at three sizes, drifting over a photo background), then runs the live loop on
it exactly as `ferflow live VIDEO --no-window` does: the file is read at its own frame rate
like a camera, and frames that arrive while one is being analysed are skipped. Reported:
frames analysed per second, share of frames skipped, and CPU time per analysed frame; also
the same loop with `--no-skip` (every frame, as fast as it goes: the ceiling); each with the
detector on every frame and on every 2nd.

With the real CSV (`--csv`), also the smoothing's effect on a video whose every frame is a
new scene (three new PrivateTest faces over another photo): accuracy on the faces found and
false boxes, with no smoothing and the default, the detector on every frame and every 2nd.

    python benchmarks/bench_live.py [--model-dir DIR] [--csv /tmp/fer2013.csv]
    python benchmarks/bench_live.py --build vgg      # untrained build_model("vgg"): speed only

Wall-clock figures depend on what else runs on the machine: the load average is printed
beside them, and CPU-ms per frame is the steadier number.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.app.defaults import LIVE
from pipeline.app.detector import make_detector
from pipeline.app.emotion import load_model
from pipeline.app.live import LiveOptions, run_live
from pipeline.app.recognizer import Recognizer
from pipeline.app.tracking import iou

WIDTH, HEIGHT, FPS = 640, 480, 30.0
FACE_SIDES = (150, 175, 200)  # head crops; the faces inside are about 70-95 px wide


def write_stream(path: Path, seconds: float) -> Path:
    """The test stream: three drifting faces over the 'coffee' photo, mp4v at 30 fps."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    head = photo[20:230, 125:325]  # the astronaut's head with some hair and collar
    background = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (WIDTH, HEIGHT))
    heads = [cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA) for side in FACE_SIDES]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for i in range(round(seconds * FPS)):
        frame = background.copy()
        for k, h in enumerate(heads):
            x = k * 213 + 6 + int(6 * np.sin(i / 20 + k))
            y = 140 + int(30 * np.cos(i / 25 + 2 * k))
            frame[y : y + h.shape[0], x : x + h.shape[1]] = h
        writer.write(frame)
    writer.release()
    return path


def export_untrained(name: str, folder: Path) -> Path:
    """build_model(name) with its initial weights, exported as the export stage does."""
    from pipeline.export.onnx_export import export_onnx
    from pipeline.model_spec import write_spec
    from pipeline.models import build_model

    export_onnx(build_model(name), folder / "emotion.onnx")
    write_spec(folder / "labels.json")
    return folder


def run_once(video: Path, recognizer: Recognizer, skip: bool) -> dict:
    options = LiveOptions(window=False, skip=skip, status_every=0)
    cpu = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the JSON lines are not the point here
        summary = run_live(str(video), recognizer, options)
    cpu = time.process_time() - cpu
    return {
        "fps": summary.fps,
        "skipped": 1 - summary.frames / max(summary.read, 1),
        "faces": summary.faces / max(summary.frames, 1),
        "cpu_ms": 1000 * cpu / max(summary.frames, 1),
    }


def scene_cuts(recognizer: Recognizer, csv: Path, count: int = 100) -> None:
    """Accuracy on found faces in a video whose every frame is a new scene."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_peer import make_frames
    from fer2013_csv import load_usage

    crops, labels = load_usage(csv, "PrivateTest")
    frames, truths, frame_labels = make_frames(crops, labels, count, seed=1)
    print("\nEvery frame a new scene (three new PrivateTest faces over another photo):")
    print("| smoothing | detector on every | accuracy on faces found | false boxes |")
    print("|---|---|---|---|")
    for smoothing in (0.0, LIVE.smoothing):
        for every in (1, 2):
            recognizer.detect_every = every
            recognizer.start_video(smoothing)
            found = correct = false = 0
            for frame, truth, truth_labels in zip(frames, truths, frame_labels, strict=True):
                faces = recognizer(frame)
                overlap = iou(truth, np.array([f.box for f in faces]).reshape(-1, 4))
                hits = overlap.max(axis=1) >= 0.4 if len(faces) else np.zeros(3, bool)
                for t in np.nonzero(hits)[0]:
                    face = faces[int(overlap[t].argmax())]
                    correct += int(np.argmax(face.probabilities) == truth_labels[t])
                found += int(hits.sum())
                false += len(faces) - int(hits.sum())
            recognizer.end_video()
            print(f"| {smoothing} | {every} frame(s) | {correct / found:.1%} | {false} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-dir", type=Path, help="exported model (default: the app's)")
    source.add_argument("--build", metavar="NAME", help="export untrained build_model(NAME)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stream length")
    parser.add_argument("--precision", default="auto", help="auto, int8 or float")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all)")
    parser.add_argument("--csv", type=Path, help="real fer2013.csv: also the scene-cut test")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_live.") as tmp:
        model_dir = args.model_dir
        if args.build:
            model_dir = export_untrained(args.build, Path(tmp))
        video = write_stream(Path(tmp) / "stream.mp4", args.seconds)
        model = load_model(model_dir, threads=args.threads, precision=args.precision)
        detector = make_detector(
            LIVE.detector,
            min_face=LIVE.min_face,
            max_size=LIVE.max_size,
            threshold=LIVE.threshold,
            threads=args.threads,
        )
        recognizer = Recognizer(model, detector)
        print(
            f"model {model.model_path} ({model.model_path.stat().st_size / 1e6:.1f} MB), "
            f"live defaults (min face {LIVE.min_face}, detect size {LIVE.max_size}), "
            f"ORT threads {args.threads or os.cpu_count()}, {os.cpu_count()} CPUs"
        )
        print("| mode | detector on every | analysed fps | skipped | faces/frame | "
              "CPU-ms/frame | load avg |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for every in (1, 2):
            recognizer.detect_every = every
            for label, skip in (("live (30 fps source)", True), ("every frame (--no-skip)", False)):
                result = run_once(video, recognizer, skip)
                print(
                    f"| {label} | {every} frame(s) | {result['fps']:.1f} | "
                    f"{result['skipped']:.0%} | {result['faces']:.2f} | "
                    f"{result['cpu_ms']:.1f} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
        detect, classify = recognizer.detect_seconds, recognizer.classify_seconds
        share = detect / (detect + classify)
        print(f"time split: detection {share:.0%}, emotion model {1 - share:.0%}")
        if args.csv:
            scene_cuts(recognizer, args.csv)


if __name__ == "__main__":
    main()
