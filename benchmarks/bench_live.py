"""Can `ferflow live` keep up with a 30 fps 640x480 stream showing three faces?

Writes a 640x480, 30 fps video of three real faces (the astronaut photo shipped with
scikit-image, at three sizes, drifting over a photo background), then runs the live loop on
it exactly as `ferflow live VIDEO --no-window` does: the file is read at its own frame rate
like a camera, and frames that arrive while one is being analysed are skipped. Reported:
frames analysed per second, share of frames skipped, and CPU time per analysed frame; also
the same loop with `--no-skip` (every frame, as fast as it goes: the ceiling).

    python benchmarks/bench_live.py --model-dir models/fer2013
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

from pipeline.app.cli import LIVE_DETECT_EVERY
from pipeline.app.detector import FaceDetector
from pipeline.app.emotion import load_model
from pipeline.app.live import LiveOptions, run_live
from pipeline.app.recognizer import Recognizer

WIDTH, HEIGHT, FPS = 640, 480, 30.0
FACE_SIDES = (140, 160, 180)  # head crops; the faces inside are about 65-85 px wide


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
            x = k * 213 + 16 + int(15 * np.sin(i / 20 + k))
            y = 150 + int(30 * np.cos(i / 25 + 2 * k))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-dir", type=Path, help="exported model (default: the app's)")
    source.add_argument("--build", metavar="NAME", help="export untrained build_model(NAME)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stream length")
    parser.add_argument("--detect-width", type=int, default=320)
    parser.add_argument("--scale-factor", type=float, default=1.1)
    parser.add_argument("--detect-every", type=int, default=LIVE_DETECT_EVERY)
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_live.") as tmp:
        model_dir = args.model_dir
        if args.build:
            model_dir = export_untrained(args.build, Path(tmp))
        video = write_stream(Path(tmp) / "stream.mp4", args.seconds)
        model = load_model(model_dir, threads=args.threads)
        detector = FaceDetector(detect_width=args.detect_width, scale_factor=args.scale_factor)
        recognizer = Recognizer(model, detector, detect_every=args.detect_every)
        print(
            f"model {model.model_path} ({model.model_path.stat().st_size / 1e6:.1f} MB), "
            f"detect width {args.detect_width}, scale factor {args.scale_factor}, "
            f"detector on every {args.detect_every} frame(s), "
            f"ORT threads {args.threads or os.cpu_count()}, {os.cpu_count()} CPUs"
        )
        print("| mode | analysed fps | skipped | faces/frame | CPU-ms/frame | load avg |")
        print("|---|---|---|---|---|---|")
        for label, skip in (("live (30 fps source)", True), ("every frame (--no-skip)", False)):
            result = run_once(video, recognizer, skip)
            print(
                f"| {label} | {result['fps']:.1f} | {result['skipped']:.0%} | "
                f"{result['faces']:.2f} | {result['cpu_ms']:.1f} | {os.getloadavg()[0]:.1f} |",
                flush=True,
            )
        detect, classify = recognizer.detect_seconds, recognizer.classify_seconds
        share = detect / (detect + classify)
        print(f"time split: detection {share:.0%}, emotion model {1 - share:.0%}")


if __name__ == "__main__":
    main()
