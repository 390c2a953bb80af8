"""Re-compute the shipped models' PrivateTest accuracy and speed from the real FER2013 CSV.

Uses only what a consumer of the model has: `emotion.onnx`, `emotion.int8.onnx` and
`labels.json` (input size, layout, scale, offset, label order), run with ONNX Runtime on the
CPU. No Keras, no TTA. Each accuracy must equal what the fer2013/ pipeline recorded
(`reports/fer2013/metrics.json` for float, `export.json` for int8) and the model card says.

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
from pipeline.machine import cpu_kind, describe_machine, machine_line, made_on
from pipeline.model_spec import read_spec

#: Model file -> (record file, key path of its test accuracy in that record).
RECORDS = {
    "emotion.onnx": ("reports/fer2013/metrics.json", ("test", "accuracy")),
    "emotion.int8.onnx": ("reports/fer2013/export.json", ("int8", "accuracy")),
}


def faces_per_second(session: ort.InferenceSession, x: np.ndarray, batch: int) -> float:
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        session.run(None, {name: x[i : i + batch]})
    return len(x) / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--model-dir", type=Path, default=REPO_ROOT / "models" / "fer2013")
    args = ap.parse_args()

    spec = read_spec(args.model_dir / "labels.json")
    images, labels = read_fer_csv(args.csv).split_arrays()["test"]
    x = spec.input.feed(images[..., None])
    here = describe_machine()
    print(f"{machine_line(here)}; PrivateTest, {len(labels)} faces")
    status = 0
    for file, (record, keys) in RECORDS.items():
        session = ort.InferenceSession(
            str(args.model_dir / file), providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        probs = np.concatenate(
            [session.run(None, {name: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
        )
        accuracy = float((probs.argmax(1) == labels).mean())
        batched = faces_per_second(session, x, 256)
        single = faces_per_second(session, x[:500], 1)
        record_data = json.loads((REPO_ROOT / record).read_text())
        recorded = record_data
        for key in keys:
            recorded = recorded[key]
        recorded_on = made_on(record_data)
        # Float sums differ between CPU kinds (docs/pipelines.md): exact on the record's
        # kind, within 0.3 points on another.
        exact = cpu_kind(recorded_on) == cpu_kind(here)
        same = abs(recorded - accuracy) < (0.5 / len(labels) if exact else 0.003)
        status |= not same
        print(
            f"{file}: accuracy {accuracy:.4%}, recorded {recorded:.4%} in {record} -> "
            f"{'MATCH' if same else 'MISMATCH'}"
            f"{'' if exact else f' (within 0.3 points: recorded on {cpu_kind(recorded_on)})'}; "
            f"{single:,.0f} faces/s one at a time, "
            f"{batched:,.0f} in batches of 256"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
