"""How long `ferflow predict photo.jpg` takes as a whole process, and where its start-up goes.

Like hyperfine: one warm-up run, then `--runs` timed runs of the command on scikit-image's
astronaut photo (512x512, one face); prints the minimum, median and mean wall-clock time and
CPU time (all threads). The same for two parts of it: `import pipeline.cli` (the front door,
what every command pays first) and the modules `ferflow predict` loads for a photo (ONNX
Runtime, OpenCV, numpy, Pillow for the header) without loading a model. Then one run under
`python -X importtime`, and the modules whose import cost the most (cumulative, as imported by
ferflow's own modules or the command).

    python benchmarks/bench_startup.py [--runs 20] [--image PHOTO]

The minimum is the figure least touched by other work on a shared machine; the load average
is printed beside it.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from bench_peer import machine

REPO = Path(__file__).resolve().parent.parent
#: What `ferflow predict photo.jpg` imports, without loading a model or reading the photo.
PREDICT_IMPORTS = (
    "import pipeline.cli, pipeline.app.cli, pipeline.app.predict, pipeline.app.detector, "
    "pipeline.app.emotion, pipeline.app.media, pipeline.app.image_header; from PIL import Image"
)


def run(command: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def import_costs(command: list[str], top: int) -> list[tuple[float, str]]:
    """(cumulative ms, module) of the costliest imports made by ferflow's modules or the
    command itself (not those nested inside another package's import)."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True, check=True
    )
    costs, parents = [], []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        depth, name = len(match[3]) // 2, match[4]
        costs.append((depth, int(match[2]) / 1000, name))
    # importtime prints a module after its own imports: walk backwards to know each parent.
    chosen = []
    for depth, ms, name in reversed(costs):
        del parents[depth:]
        parent = parents[-1] if parents else ""
        inside_a_library = parent.startswith(("numpy", "cv2", "onnxruntime", "google"))
        if not inside_a_library and (depth <= 1 or parent.startswith("pipeline")):
            chosen.append((ms, name))
        parents.append(name)
    return sorted(chosen, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs (default: 20)")
    parser.add_argument("--image", type=Path, help="the photo (default: the astronaut)")
    parser.add_argument("--top", type=int, default=15, help="imports to list")
    args = parser.parse_args()
    # An installed ferflow has its bytecode compiled; a checkout may not (PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(REPO / "pipeline", quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench_startup.") as tmp:
        image = args.image
        if image is None:
            from skimage import data

            image = Path(tmp) / "astronaut.jpg"
            cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        command = [sys.executable, "-m", "pipeline.cli", "predict", str(image), "-q"]
        print(f"machine: {machine()}\nload average at the start: {os.getloadavg()[0]:.1f}")
        print(f"{args.runs} runs of each after a warm-up")
        parts = {
            f"ferflow predict {image.name} -q": command,
            "import pipeline.cli": [sys.executable, "-c", "import pipeline.cli"],
            "predict's imports, no model": [sys.executable, "-c", PREDICT_IMPORTS],
        }
        for what, timed in parts.items():
            run(timed)
            walls, cpus = zip(*(run(timed) for _ in range(args.runs)), strict=True)
            print(f"{what}:")
            for name, values in (("wall", walls), ("CPU", cpus)):
                print(
                    f"  {name}: min {min(values):.3f} s, median {statistics.median(values):.3f}"
                    f" s, mean {statistics.mean(values):.3f} s"
                )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print("\ncostliest imports (python -X importtime, cumulative ms, one run):")
        for ms, name in import_costs(command, args.top):
            print(f"  {ms:7.1f}  {name}")


if __name__ == "__main__":
    main()
