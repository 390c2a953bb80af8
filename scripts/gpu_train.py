"""Train one recipe on real FER2013 on the lent GPU machine (JAX backend, no TensorFlow, no DVC).

The same `pipeline.training.recipe` the `train` stage uses, fed from the device copy of the
data (two .npz parts, see ../shared/README.md); writes metrics JSON and, optionally, the
best weights as float32 .npz chunks small enough to come back from the machine.

    KERAS_BACKEND=jax python scripts/gpu_train.py --params params/fer2013-gpu.yaml \
        --data /root/fer/fer2013-a.npz /root/fer/fer2013-b.npz --out $OUT/run0 -S train.seed=1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def load_device_data(parts: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arrays = [np.load(p) for p in parts]
    pixels = np.concatenate([a["pixels"] for a in arrays])
    emotion = np.concatenate([a["emotion"] for a in arrays]).astype(np.int64)
    usage = np.concatenate([a["usage"] for a in arrays])
    return {s: (pixels[usage == c], emotion[usage == c]) for s, c in SPLIT_CODES.items()}


def save_weight_chunks(weights: list[np.ndarray], out: Path, limit: int = 12 * 2**20) -> None:
    """float32 weights as .npz files under `limit` bytes each (the machine returns <= 16 MiB).

    Array i (or its k-th row block when it alone is too big) is stored as key `w{i:03d}_{k}`;
    `load_weight_chunks` puts them back together.
    """
    pieces = []
    for i, w in enumerate(weights):
        parts = max(1, -(-w.nbytes // limit))
        pieces += [(f"w{i:03d}_{k}", p) for k, p in enumerate(np.array_split(w, parts))]
    chunk, size, index = {}, 0, 0
    for n, (key, piece) in enumerate(pieces):
        if chunk and size + piece.nbytes > limit:
            np.savez(out / f"weights-{index}.npz", **chunk)
            chunk, size, index = {}, 0, index + 1
        chunk[key], size = piece, size + piece.nbytes
        if n == len(pieces) - 1:
            np.savez(out / f"weights-{index}.npz", **chunk)


def load_weight_chunks(files: list[Path]) -> list[np.ndarray]:
    """Inverse of `save_weight_chunks`."""
    found: dict[int, dict[int, np.ndarray]] = {}
    for f in files:
        with np.load(f) as z:
            for key in z.files:
                i, k = key[1:].split("_")
                found.setdefault(int(i), {})[int(k)] = z[key]
    return [np.concatenate([p[k] for k in sorted(p)]) for _, p in sorted(found.items())]


def describe_device() -> str:
    """The accelerator the run used, for the record (e.g. `1x NVIDIA H100 80GB HBM3 (gpu)`)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        devices = jax.devices()
        return (
            f"{len(devices)}x {devices[0].device_kind} ({devices[0].platform}), "
            f"Keras {keras.__version__} on JAX {jax.__version__}"
        )
    return f"{', '.join(keras.distribution.list_devices())}, Keras {keras.__version__}"


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    """`-S train.lr=0.02` like `dvc exp run -S`: dotted key, YAML value."""
    for item in overrides:
        key, _, value = item.partition("=")
        node = params
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    return params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True)
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("-S", "--set", action="append", default=[], dest="overrides")
    ap.add_argument("--save-weights", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop training after this long")
    args = ap.parse_args()

    import keras

    from pipeline.evaluation.tta import predict_tta
    from pipeline.training.recipe import fit, make_net

    params = apply_overrides(yaml.safe_load(Path(args.params).read_text()), args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_device_data(args.data)
    print({s: len(y) for s, (x, y) in data.items()}, flush=True)

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.epochs, self.hit_deadline = time.perf_counter(), [], False

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(time.perf_counter() - self.t)
            # A guard for the machine's 10-minute call limit, not part of the recipe.
            elapsed = time.perf_counter() - self.start
            more_to_go = epoch + 1 < self.params["epochs"]
            if args.max_minutes and more_to_go and elapsed > 60 * args.max_minutes:
                self.model.stop_training = self.hit_deadline = True

    timer = Timer()
    start = time.perf_counter()
    net = make_net(params["model"], params["train"])
    history = fit(net, data["train"], data["val"], params["train"], callbacks=[timer], verbose=2)
    wall = time.perf_counter() - start

    n_train = len(data["train"][1])
    steady = sorted(timer.epochs[1:]) or timer.epochs
    median_epoch = float(steady[len(steady) // 2])
    result = {
        "params": params,
        "backend": keras.backend.backend(),
        "device": describe_device(),
        "train_wall_s": round(wall, 1),
        "epochs_run": len(timer.epochs),
        # Early stopping also ends runs before `epochs`; only the guard makes a run incomplete.
        "stopped_by_deadline": timer.hit_deadline,
        "first_epoch_s": round(timer.epochs[0], 2),
        "median_epoch_s": round(median_epoch, 3),
        "images_per_s": round(n_train / median_epoch),
        "best_val_epoch": int(np.argmax(history.history["val_accuracy"])) + 1,
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.history.items()},
    }
    for split in ("val", "test"):
        x, y = data[split]
        for name, kw in {
            "plain": {"flip": False, "shift": 0},
            "flip": {"flip": True, "shift": 0},
            "flip_shift2": {"flip": True, "shift": 2},
        }.items():
            probs = predict_tta(net, x[..., None].astype("float32"), **kw)
            result[f"{split}_{name}"] = round(float((probs.argmax(1) == y).mean()), 5)
            if split == "test" and name == "plain":
                np.save(out / "test_probs.npy", probs.astype(np.float16))
            if split == "test" and name == "flip_shift2":
                np.save(out / "test_probs_tta.npy", probs.astype(np.float16))
    (out / "result.json").write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if k not in ("history", "params")}
    print(json.dumps(summary), flush=True)

    if args.save_weights:
        save_weight_chunks(net.get_weights(), out)


if __name__ == "__main__":
    main()
