"""ferflow's app against the `fer` package (PyPI, its shipped model), on the same inputs.

Three comparisons, one run:

1. Accuracy of the two emotion models on the real FER2013 PrivateTest faces (the 48x48
   crops, no detection; each model gets them prepared its own way).
2. Faces per second through each whole pipeline (face detection + emotion) on the same
   640x480 frames, each holding three PrivateTest faces scaled up to 128 px on photo
   backgrounds; also how many faces each found and labelled correctly.
3. Faces per second of each emotion model alone, one face per call and batched.

`fer` is not a dependency of ferflow (it pulls in TensorFlow, and a full install also torch,
torchvision and a second OpenCV): its side runs in a separate Python environment, as a
subprocess of this script (`--peer-python`). Make that environment once:

    python3 -m venv /tmp/peer
    /tmp/peer/bin/pip install --no-deps fer==25.10.3
    /tmp/peer/bin/pip install 'setuptools<80' tensorflow-cpu 'opencv-python-headless<5' \\
        pillow requests

(`--no-deps` skips facenet-pytorch/torch, needed only for fer's optional MTCNN detector;
the default pipeline measured here is its Haar cascade and TFLite model. `setuptools<80`
brings back `pkg_resources`, which fer imports.) Then:

    xz -dc ../shared/data/fer2013/fer2013.csv.xz > /tmp/fer2013.csv
    python benchmarks/bench_peer.py /tmp/fer2013.csv --model-dir models/fer2013 \\
        --peer-python /tmp/peer/bin/python

Without `--peer-python` only ferflow's side runs. Figures depend on the machine and on what
else runs on it: the script prints both, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

FRAME_W, FRAME_H, FACE_SIDE, FACES_PER_FRAME = 640, 480, 128, 3
SINGLE_FACE_CALLS = 300
BATCH = 64


# ---------------------------------------------------------------------------------------
# Shared by both sides (numpy and OpenCV only: this part also runs in the peer environment)
# ---------------------------------------------------------------------------------------


def faces_per_second(classify, faces: np.ndarray, batch: int, rounds: int = 3) -> dict:
    """Throughput of `classify(batch_of_faces)`: faces per wall-clock second (the best of
    `rounds` one-second rounds, so a busy moment on a shared machine does not count) and
    faces per CPU-second (all threads; steadier when other work shares the CPU)."""
    classify(faces[:batch])  # warm-up
    best, done, cpu_total, i = 0.0, 0, 0.0, 0
    for _ in range(rounds):
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < 1.0:
            chunk = faces[i : i + batch]
            if len(chunk) < batch:
                i, chunk = 0, faces[:batch]
            classify(chunk)
            count, i = count + len(chunk), i + batch
        best = max(best, count / (time.perf_counter() - start))
        done, cpu_total = done + count, cpu_total + time.process_time() - cpu
    return {"wall": best, "cpu": done / cpu_total}


def match_faces(boxes: list, truth: np.ndarray) -> list[int]:
    """For each true face box, the index of the detected box over it (IoU >= 0.4), or -1."""
    out = []
    for tx, ty, tw, th in truth:
        best, best_iou = -1, 0.4
        for k, (x, y, w, h) in enumerate(boxes):
            ix = max(0, min(x + w, tx + tw) - max(x, tx))
            iy = max(0, min(y + h, ty + th) - max(y, ty))
            overlap = ix * iy / (w * h + tw * th - ix * iy)
            if overlap >= best_iou:
                best, best_iou = k, overlap
        out.append(best)
    return out


def pipeline_scores(run_frame, frames: np.ndarray, truths: np.ndarray, labels: np.ndarray) -> dict:
    """Run `run_frame(frame) -> [(box, class_index)]` on every frame; speed and correctness."""
    run_frame(frames[0])  # warm-up
    found = correct = detected = 0
    cpu, start = time.process_time(), time.perf_counter()
    results = [run_frame(frame) for frame in frames]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    for faces, truth, truth_labels in zip(results, truths, labels, strict=True):
        detected += len(faces)
        matches = match_faces([box for box, _ in faces], truth)
        for k, label in zip(matches, truth_labels, strict=True):
            if k >= 0:
                found += 1
                correct += int(faces[k][1] == label)
    total = truths.shape[0] * truths.shape[1]
    return {
        "frames_per_s": len(frames) / wall,
        "faces_per_s": detected / wall,
        "cpu_ms_per_frame": 1000 * cpu / len(frames),
        "faces_per_cpu_s": detected / cpu,
        "faces_found": found / total,
        "correct_of_all_faces": correct / total,
        "correct_of_found_faces": correct / max(found, 1),
        "false_detections": detected - found,
    }


# ---------------------------------------------------------------------------------------
# The peer: fer's FER class with its defaults (Haar cascade + quantized TFLite model)
# ---------------------------------------------------------------------------------------


def peer_worker(folder: Path) -> None:
    """Runs inside the peer environment; reads the inputs from `folder`, writes peer.json."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import fer
    from fer.fer import FER

    crops = np.load(folder / "crops.npy")
    labels = np.load(folder / "labels.npy")
    frames = np.load(folder / "frames.npy")
    truths = np.load(folder / "truths.npy")
    frame_labels = np.load(folder / "frame_labels.npy")

    detector = FER()  # mtcnn=False: its default Haar cascade; use_tflite=True: its default model
    classify = detector._classify_emotions  # fer's own batch call (its TFLite path loops)

    def prepare(faces: np.ndarray) -> np.ndarray:
        # Exactly fer.detect_emotions' preprocessing: resize to 64x64, (x / 255 - 0.5) * 2.
        resized = np.array([cv2.resize(f, (64, 64)) for f in faces], dtype=np.float32)
        return (resized / 255.0 - 0.5) * 2.0

    chunks = [crops[i : i + 256] for i in range(0, len(crops), 256)]
    probs = np.concatenate([classify(prepare(chunk)) for chunk in chunks])
    order = list(fer.fer.FER._get_labels().values())

    def run_frame(frame: np.ndarray) -> list:
        return [(f["box"], order.index(max(f["emotions"], key=f["emotions"].get))) for f in
                detector.detect_emotions(frame)]  # fmt: skip

    result = {
        "name": f"fer {fer.__version__} (Haar + quantized TFLite, its defaults)",
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "pipeline": pipeline_scores(run_frame, frames, truths, frame_labels),
        "model_single": faces_per_second(lambda b: classify(prepare(b)), crops, 1),
        "model_batched": faces_per_second(lambda b: classify(prepare(b)), crops, BATCH),
        "versions": {"opencv": cv2.__version__, "python": platform.python_version()},
    }
    (folder / "peer.json").write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------------------------------
# ferflow's side and the comparison
# ---------------------------------------------------------------------------------------


def make_frames(faces: np.ndarray, labels: np.ndarray, count: int, seed: int = 0):
    """`count` BGR frames with three faces each; their true boxes and labels."""
    from skimage import data, util

    rng = np.random.default_rng(seed)
    scenes = [
        cv2.resize(util.img_as_ubyte(getattr(data, name)()), (FRAME_W, FRAME_H))
        for name in ("coffee", "rocket", "chelsea", "brick", "grass", "clock")
    ]
    scenes = [s if s.ndim == 3 else cv2.cvtColor(s, cv2.COLOR_GRAY2BGR) for s in scenes]
    picks = rng.choice(len(faces), size=(count, FACES_PER_FRAME), replace=False)
    frames, truths = [], []
    slot = FRAME_W // FACES_PER_FRAME
    for n, row in enumerate(picks):
        frame = scenes[n % len(scenes)][..., ::-1].copy()  # skimage is RGB, frames are BGR
        boxes = []
        for k, i in enumerate(row):
            x = k * slot + int(rng.integers(0, slot - FACE_SIDE))
            y = int(rng.integers(0, FRAME_H - FACE_SIDE))
            face = cv2.resize(faces[i], (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC)
            frame[y : y + FACE_SIDE, x : x + FACE_SIDE] = face[..., None]
            boxes.append((x, y, FACE_SIDE, FACE_SIDE))
        frames.append(frame)
        truths.append(boxes)
    return np.stack(frames), np.array(truths), labels[picks]


def ours(model, crops, labels, frames, truths, frame_labels) -> dict:
    from pipeline.app.detector import FaceDetector
    from pipeline.app.recognizer import Recognizer

    probs = np.concatenate([model.classify(crops[i : i + 256]) for i in range(0, len(crops), 256)])
    result = {
        "name": f"ferflow ({model.model_path})",
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "model_single": faces_per_second(model.classify, crops, 1),
        "model_batched": faces_per_second(model.classify, crops, BATCH),
    }
    for key, width in (("pipeline", 1280), ("pipeline_live", 320)):
        recognizer = Recognizer(model, FaceDetector(detect_width=width))

        def run_frame(frame, recognizer=recognizer):
            return [(f.box, int(np.argmax(f.probabilities))) for f in recognizer(frame)]

        result[key] = pipeline_scores(run_frame, frames, truths, frame_labels)
    return result


def run_peer(python: str, folder: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [python, __file__, "--worker", str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"the peer's side failed in {python}:\n{tail}")
    result = json.loads((folder / "peer.json").read_text())
    result["seconds"] = time.perf_counter() - started
    return result


def best_of(results: list[dict]) -> dict:
    """One side's figures over repeated runs: the fastest of each speed, the rest unchanged."""
    best = json.loads(json.dumps(results[0]))
    for result in results[1:]:
        for key in ("model_single", "model_batched"):
            for unit in ("wall", "cpu"):
                best[key][unit] = max(best[key][unit], result[key][unit])
        for key in ("pipeline", "pipeline_live"):
            if key in result:
                for field in ("frames_per_s", "faces_per_s", "faces_per_cpu_s"):
                    best[key][field] = max(best[key][field], result[key][field])
                best[key]["cpu_ms_per_frame"] = min(
                    best[key]["cpu_ms_per_frame"], result[key]["cpu_ms_per_frame"]
                )
    best["runs"] = len(results)
    return best


def table(sides: list[dict]) -> str:
    lines = ["| | " + " | ".join(s["name"] for s in sides) + " |", "|---" * (len(sides) + 1) + "|"]
    accuracy = " | ".join(f"{s['accuracy']:.2%}" for s in sides)
    lines.append(f"| PrivateTest accuracy (48x48 crops, no detection) | {accuracy} |")
    for key, title in (
        ("model_single", "one face per call"),
        ("model_batched", f"batches of {BATCH}"),
    ):
        for unit, name in (("wall", "faces/s"), ("cpu", "faces per CPU-second")):
            values = " | ".join(f"{s[key][unit]:,.0f}" for s in sides)
            lines.append(f"| emotion model alone, {title}: {name} | {values} |")
    pipeline_rows = [
        ("whole pipeline: frames/s", "frames_per_s", "{:.1f}"),
        ("whole pipeline: faces/s", "faces_per_s", "{:.1f}"),
        ("whole pipeline: CPU-ms per frame", "cpu_ms_per_frame", "{:.0f}"),
        ("whole pipeline: faces per CPU-second", "faces_per_cpu_s", "{:.1f}"),
        ("whole pipeline: faces found", "faces_found", "{:.1%}"),
        ("whole pipeline: faces found and labelled right", "correct_of_all_faces", "{:.1%}"),
        ("whole pipeline: false detections", "false_detections", "{:d}"),
    ]
    for key, note in (
        ("pipeline", "fer defaults, ferflow predict defaults"),
        ("pipeline_live", "ferflow live defaults"),
    ):
        for title, field, fmt in pipeline_rows:
            values = " | ".join(fmt.format(s[key][field]) if key in s else "-" for s in sides)
            lines.append(f"| {title} ({note}) | {values} |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        peer_worker(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the real fer2013.csv (unpacked outside the repo)")
    parser.add_argument("--model-dir", type=Path, help="ferflow model folder (default: the app's)")
    parser.add_argument("--peer-python", help="a Python that can `import fer` (see above)")
    parser.add_argument("--frames", type=int, default=100, help="frames for the pipeline test")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="run the sides alternately this many times and keep each side's best speed "
        "(what else runs on the machine changes over a run; default: 2)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fer2013_csv import load_usage

    crops, labels = load_usage(args.csv, "PrivateTest")
    frames, truths, frame_labels = make_frames(crops, labels, args.frames)
    print(
        f"{len(crops)} PrivateTest faces; {len(frames)} frames {FRAME_W}x{FRAME_H} with "
        f"{FACES_PER_FRAME} faces of {FACE_SIDE} px; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    from pipeline.app.emotion import load_model

    model = load_model(args.model_dir)
    inputs = (crops, labels, frames, truths, frame_labels)
    runs: dict[str, list[dict]] = {"ours": [], "peer": []}
    with tempfile.TemporaryDirectory(prefix="bench_peer.") as tmp:
        folder = Path(tmp)
        if args.peer_python:
            names = ("crops", "labels", "frames", "truths", "frame_labels")
            for name, array in zip(names, inputs, strict=True):
                np.save(folder / f"{name}.npy", array)
        for _ in range(args.repeats):
            runs["ours"].append(ours(model, *inputs))
            if args.peer_python:
                runs["peer"].append(run_peer(args.peer_python, folder))
    sides = [best_of(results) for results in runs.values() if results]
    print(table(sides))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(sides, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
