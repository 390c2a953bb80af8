"""`ferflow batch` with 1 and 2 workers against `ferflow predict`, on the same inputs.

Inputs are made here from real faces: frames of 640x480, each holding three FER2013
PrivateTest faces of 96-160 px over a photo (bench_peer.py's frames), written as a folder of
PNG photos and as one long MPEG-4 video. Each run is a whole `ferflow` process, timed from
start to exit (Python, model loading and, for batch, starting a local Ray included), and
faces/s is the faces it found over that time. Batch also prints its own rate, measured from
its first task to its last result (Ray's start-up and planning left out), shown beside it.
predict runs with `--smoothing 0`, the setting whose answers batch reproduces.

    xz -dc ../shared/data/fer2013/fer2013.csv.xz > /tmp/fer2013.csv
    nice python benchmarks/bench_batch.py /tmp/fer2013.csv

Figures depend on the machine and its load: the script prints both.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

FPS = 30.0


def write_inputs(csv: Path, folder: Path, images: int, video_frames: int) -> tuple[Path, Path]:
    from bench_peer import make_frames
    from fer2013_csv import load_usage

    crops, labels = load_usage(csv, "PrivateTest")
    frames = make_frames(crops, labels, max(images, 1))[0]
    photos = folder / "photos"
    photos.mkdir()
    for i, frame in enumerate(frames[:images]):
        cv2.imwrite(str(photos / f"{i:05d}.png"), frame)
    video = folder / "long.mp4"
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for i in range(video_frames):
        writer.write(frames[(i // 10) % len(frames)])  # each scene held a third of a second
    writer.release()
    return photos, video


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
    return seconds, done.stderr


def run_predict(source: Path, tmp: Path, extra: list[str]) -> dict:
    records = tmp / "predict.jsonl"
    seconds, _ = timed([sys.executable, "-m", "pipeline.cli", "predict", str(source),
                        "--smoothing", "0", "-q", "-o", str(records), *extra])  # fmt: skip
    faces = sum('"faces": 0,' not in line for line in records.read_text().splitlines())
    return {"seconds": seconds, "faces": faces, "own": None}


def run_batch(source: Path, tmp: Path, workers: int, extra: list[str]) -> dict:
    import pyarrow.parquet as pq

    out = tmp / f"batch-{workers}-{source.name}"
    seconds, err = timed([sys.executable, "-m", "pipeline.cli", "batch", str(source),
                          "--out", str(out), "--workers", str(workers), *extra])  # fmt: skip
    faces = pq.read_table(out / "faces").num_rows
    own = re.search(r"\(([\d.]+) faces/s\)", err)
    return {"seconds": seconds, "faces": faces, "own": float(own.group(1)) if own else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the real fer2013.csv (unpacked outside the repo)")
    parser.add_argument("--images", type=int, default=150, help="photos in the folder")
    parser.add_argument("--video-frames", type=int, default=1800, help="frames of the video")
    parser.add_argument("--model-dir", type=Path, help="ferflow model folder (default: shipped)")
    args = parser.parse_args()
    extra = ["--model-dir", str(args.model_dir)] if args.model_dir else []
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    print(f"{cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_batch.") as name:
        tmp = Path(name)
        photos, video = write_inputs(args.csv, tmp, args.images, args.video_frames)
        inputs = {
            f"{args.images} photos 640x480": photos,
            f"video, {args.video_frames} frames ({args.video_frames / FPS:.0f} s)": video,
        }
        print("| input | run | seconds | faces | faces/s (whole process) | faces/s (batch's own) |")
        print("|---|---|---|---|---|---|")
        for label, source in inputs.items():
            runs = {
                "ferflow predict": run_predict(source, tmp, extra),
                "ferflow batch, 1 worker": run_batch(source, tmp, 1, extra),
                "ferflow batch, 2 workers": run_batch(source, tmp, 2, extra),
            }
            for run, r in runs.items():
                own = f"{r['own']:.1f}" if r["own"] is not None else ""
                print(f"| {label} | {run} | {r['seconds']:.1f} | {r['faces']} | "
                      f"{r['faces'] / r['seconds']:.1f} | {own} |", flush=True)  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
