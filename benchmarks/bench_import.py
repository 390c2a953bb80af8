"""How long `ferflow predict` takes to start: its imports, and one photo end to end.

Each figure is the median of `--runs` fresh processes (the import cache warm, as for a user
running the command twice):
- `import`: `python -c "import pipeline.app.cli"`, what every command pays first;
- `predict imports`: the modules `ferflow predict` loads for a photo (ONNX Runtime, OpenCV,
  numpy, Pillow for the header) imported in one process, no model loaded;
- `predict photo`: `ferflow predict photo.jpg -q` with the shipped model, the wall time a
  user waits, the models' loading and one photo's analysis included.

    python benchmarks/bench_import.py            # 5 runs each
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
PREDICT_IMPORTS = (
    "import pipeline.app.cli, pipeline.app.predict, pipeline.app.detector, "
    "pipeline.app.emotion, pipeline.app.media, pipeline.app.image_header; "
    "from PIL import Image"
)


def seconds(command: list[str], runs: int, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from skimage import data

    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "astronaut.jpg"
        cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        python = [sys.executable]
        rows = {
            "import pipeline.app.cli": python + ["-c", "import pipeline.app.cli"],
            "predict imports": python + ["-c", PREDICT_IMPORTS],
            "ferflow predict photo.jpg -q": python
            + ["-m", "pipeline.cli", "predict", str(photo), "-q"],
        }
        load = os.getloadavg()[0]
        results = {
            name: seconds(command, args.runs, Path(folder)) for name, command in rows.items()
        }
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    print(f"{os.cpu_count()} cores ({cpu}); load average (1 min) {load:.1f}; {args.runs} runs")
    print("| what | median s |\n|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
