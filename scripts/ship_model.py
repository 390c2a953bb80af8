"""Turn a GPU run's weights into the shipped model `models/fer2013/` and its record.

Runs here, on the CPU machine with TensorFlow (ONNX export needs it, see NOTES): rebuilds the
network from the run's params, loads its float32 weights (scripts/gpu_train.py chunks),
exports float16 ONNX, checks it against the float32 Keras model on every PrivateTest face,
and writes labels.json, MODEL_CARD.md and reports/fer2013/.

    python scripts/ship_model.py --csv /tmp/fer2013.csv --weights DIR --runs DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import numpy as np
import yaml
from gpu_train import load_weight_chunks

from pipeline.config import LABELS, REPO_ROOT
from pipeline.data.fer_csv import read_fer_csv
from pipeline.evaluation.metrics import classification_metrics
from pipeline.evaluation.plots import plot_confusion, plot_per_class
from pipeline.evaluation.tta import views
from pipeline.export.onnx_export import export_onnx
from pipeline.export.parity import onnx_predict
from pipeline.io import write_json, write_text
from pipeline.model_spec import ModelSpec, write_spec
from pipeline.training.recipe import as_model_input, make_net

MIN_AGREEMENT = 0.995  # float16 vs float32 argmax on PrivateTest (issue 6)


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[key], label=f"train {key}")
        ax.plot(epochs, history[f"val_{key}"], label=f"val (PublicTest) {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True, help="the real fer2013.csv")
    ap.add_argument("--weights", required=True, help="folder with weights-*.npz")
    ap.add_argument("--result", required=True, help="the shipped run's result.json")
    ap.add_argument("--runs", nargs="*", default=[], help="result.json of the other GPU runs")
    ap.add_argument("--out", default=str(REPO_ROOT / "models" / "fer2013"))
    ap.add_argument("--report", default=str(REPO_ROOT / "reports" / "fer2013"))
    args = ap.parse_args()
    out, report = Path(args.out), Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    report.mkdir(parents=True, exist_ok=True)

    table = read_fer_csv(args.csv)
    x_test, y_test = table.split_arrays()["test"]
    result = json.loads(Path(args.result).read_text())
    params = result["params"]
    # Export in float32: the mixed-precision policy is a training choice only.
    net = make_net(params["model"], {**params["train"], "mixed_precision": False})
    net.set_weights(load_weight_chunks(sorted(Path(args.weights).glob("weights-*.npz"))))

    keras_probs = net.predict(as_model_input(x_test), batch_size=512, verbose=0)
    onnx_path = export_onnx(net, out / "emotion.onnx", float16=True)
    spec = ModelSpec()
    onnx_probs = onnx_predict(onnx_path, x_test, spec)
    agreement = float((onnx_probs.argmax(1) == keras_probs.argmax(1)).mean())
    if agreement < MIN_AGREEMENT:
        onnx_path.unlink()
        raise SystemExit(f"float16 ONNX agrees with float32 Keras on {agreement:.2%} < 99.5%")

    plain = classification_metrics(y_test, onnx_probs.argmax(1))
    tta_views = views(x_test, flip=True, shift=2)
    tta_probs = sum(onnx_predict(onnx_path, v, spec) for v in tta_views) / len(tta_views)
    tta = classification_metrics(y_test, tta_probs.argmax(1))
    write_spec(
        out / "labels.json",
        ModelSpec(extra={"model": "ferflow-vgg-fer2013", "weights": "float16"}),
    )

    keep = ("accuracy", "macro_f1", "n")
    metrics = {
        "test": {k: plain[k] for k in keep},
        "test_tta": {k: tta[k] for k in keep} | {"views": len(tta_views)},
        "float16_vs_float32_argmax_agreement": agreement,
        "keras_float32_test_accuracy": float((keras_probs.argmax(1) == y_test).mean()),
        "per_class": plain["per_class"],
        "confusion": plain["confusion"],
    }
    write_json(report / "metrics.json", metrics)
    plot_confusion(
        np.array(plain["confusion"]),
        LABELS,
        report / "confusion.png",
        title="Shipped model on FER2013 PrivateTest (ONNX, float16)",
    )
    plot_per_class(plain["per_class"], report / "per_class.png")
    plot_curves(result["history"], report / "training_curves.png")
    write_text(report / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    run = {k: v for k, v in result.items() if k not in ("params", "history")}
    run |= {
        # Runs from before gpu_train.py recorded its device were all on the lent H100.
        "device": result.get(
            "device", "1x NVIDIA H100 80GB HBM3 (gpu), Keras 3.15.1 on JAX 0.11.2"
        ),
        "data_sha256": table.sha256,
        "export_machine": f"{platform.machine()} CPU, ONNX Runtime, TensorFlow backend",
        "onnx_bytes": onnx_path.stat().st_size,
    }
    write_json(report / "run.json", run)
    runs_dir = report / "runs"
    runs_dir.mkdir(exist_ok=True)
    for f in args.runs:
        f = Path(f)
        shutil.copy(f, runs_dir / f"{f.parent.parent.parent.name}-{f.parent.name}.json")
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("per_class", "confusion")}))


if __name__ == "__main__":
    main()
