"""Re-compute the shipped model's PrivateTest accuracy from the real FER2013 CSV.

Uses only what a consumer of the model has: `emotion.onnx` and `labels.json` (input size,
layout, scale, offset, label order), run with ONNX Runtime on the CPU. No Keras, no TTA.
The figure must equal the one in reports/fer2013/metrics.json and the model card.

    python benchmarks/bench_shipped_model.py /path/to/fer2013.csv [--model-dir models/fer2013]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.config import REPO_ROOT
from pipeline.data.fer_csv import read_fer_csv
from pipeline.model_spec import read_spec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--model-dir", type=Path, default=REPO_ROOT / "models" / "fer2013")
    ap.add_argument(
        "--recorded", type=Path, default=REPO_ROOT / "reports" / "fer2013" / "metrics.json"
    )
    args = ap.parse_args()

    spec = read_spec(args.model_dir / "labels.json")
    images, labels = read_fer_csv(args.csv).split_arrays()["test"]
    x = images.astype(np.float32) * spec.input.scale + spec.input.offset
    x = x[..., None] if spec.input.layout == "NHWC" else x[:, None]
    session = ort.InferenceSession(
        str(args.model_dir / "emotion.onnx"), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    probs = np.concatenate(
        [session.run(None, {name: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    )
    seconds = time.perf_counter() - start
    accuracy = float((probs.argmax(1) == labels).mean())
    print(
        f"PrivateTest: {len(labels)} faces, accuracy {accuracy:.4%} "
        f"({len(labels) / seconds:,.0f} faces/s batched, ONNX Runtime CPU)"
    )
    if args.recorded.is_file():
        recorded = json.loads(args.recorded.read_text())["test"]["accuracy"]
        same = abs(recorded - accuracy) < 0.5 / len(labels)
        print(
            f"recorded in {args.recorded.relative_to(REPO_ROOT)}: {recorded:.4%} -> "
            f"{'MATCH' if same else 'MISMATCH'}"
        )
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
