"""After a multi-seed GPU run: pick the run with the best validation accuracy (PublicTest only),
print every run's figures and the seed ensemble's, and copy the picked run's weights out.

    python scripts/gpu_pick.py RUNS_DIR OUT_DIR run0 run1 run2

The labels come from the device data parts in $FER_DATA (default /root/fer).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    runs_dir, out_dir, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    results = {n: json.loads((runs_dir / n / "result.json").read_text()) for n in names}
    best = max(names, key=lambda n: results[n]["val_plain"])
    data_dir = Path(os.environ.get("FER_DATA", "/root/fer"))
    data = [np.load(p) for p in sorted(data_dir.glob("fer2013-*.npz"))]
    usage = np.concatenate([d["usage"] for d in data])
    y = np.concatenate([d["emotion"] for d in data])[usage == 2]
    summary = {"picked": best, "runs": {}}
    for kind in ("test_probs", "test_probs_tta"):
        probs = sum(np.load(runs_dir / n / f"{kind}.npy").astype(np.float32) for n in names)
        summary[f"ensemble_{kind}"] = round(float((probs.argmax(1) == y).mean()), 5)
    for n, r in results.items():
        summary["runs"][n] = {k: v for k, v in r.items() if k not in ("history", "params")}
    print(json.dumps(summary, indent=1))
    (out_dir / "pick.json").write_text(json.dumps(summary, indent=1))
    for f in sorted((runs_dir / best).glob("weights-*.npz")):
        shutil.copy(f, out_dir / f.name)


if __name__ == "__main__":
    main()
