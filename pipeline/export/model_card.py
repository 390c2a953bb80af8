"""`MODEL_CARD.md`: what the exported model is, what it was trained on, how well it does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import LABELS, SPLITS


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or None when it does not exist (e.g. no evaluation yet)."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _split_counts(manifest: Any) -> dict[str, Any]:
    """Rows per split from the prepare stage's manifest, whatever nesting it uses."""
    if not isinstance(manifest, dict):
        return {}
    splits = manifest.get("splits", manifest)
    counts = {}
    for split in SPLITS:
        entry = splits.get(split) if isinstance(splits, dict) else None
        if isinstance(entry, dict):
            for key in ("rows", "n", "count", "images"):
                if isinstance(entry.get(key), int):
                    counts[split] = entry[key]
                    break
        elif isinstance(entry, int):
            counts[split] = entry
    return counts


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_model_card(
    *,
    params: dict[str, Any],
    net_name: str,
    parameter_count: int,
    manifest_path: str | Path,
    metrics: dict[str, Any] | None,
    train_summary: dict[str, Any] | None,
    per_class: list[dict[str, Any]] | None,
    onnx_path: str | Path,
    parity: dict[str, Any],
    backend: str,
    keras_version: str,
) -> str:
    """The card as Markdown. Inputs are plain data so the card is easy to test."""
    paths = params.get("paths", {})
    data_raw = params.get("data", {}).get("raw", "?")
    synthetic = str(data_raw) == str(paths.get("synthetic"))
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    lines = [
        f"# Model card: ferflow `{net_name}` facial emotion classifier",
        "",
        "Classifies a 48x48 grayscale face into one of seven emotions: "
        + ", ".join(LABELS)
        + ". Written by the `export` stage of the ferflow DVC pipeline; every figure below "
        "comes from that run.",
        "",
    ]
    if synthetic:
        lines += [
            "> **Trained on synthetic data.** This model learned the synthetic faces that "
            "`dvc repro` draws by default; it proves the pipeline works end to end and is "
            "not a real emotion recognizer. Train on FER2013 for that (see docs/training.md).",
            "",
        ]
    lines += [
        "## Files",
        "",
        "| file | what |",
        "| --- | --- |",
        f"| `{Path(onnx_path).name}` | ONNX model, sha256 `{sha256_of(onnx_path)}`, "
        f"{Path(onnx_path).stat().st_size / 1e6:.1f} MB"
        + (", float16 weights (float32 input/output)" if parity.get("float16") else "")
        + " |",
        "| `labels.json` | input contract and label order (read this before feeding the model) |",
        "| `model.json` + `model.weights.h5` | Keras architecture and weights "
        "(`keras.models.model_from_json` + `load_weights`) |",
        "",
        "Input: float32 NHWC batch `(N, 48, 48, 1)` of raw grayscale pixels 0..255 (the "
        "rescaling is inside the model). Output: 7 class probabilities in label order.",
        "",
        "## Data",
        "",
        f"- Raw CSV: `{data_raw}`" + (" (synthetic)" if synthetic else ""),
    ]
    if manifest_path.is_file():
        shown = Path(paths.get("prepared", manifest_path.parent)) / manifest_path.name
        lines.append(f"- Prepared data: `{shown.as_posix()}` sha256 `{sha256_of(manifest_path)}`")
    counts = _split_counts(manifest)
    if counts:
        lines.append(
            "- Images per split: "
            + ", ".join(f"{split} {counts[split]:,}" for split in SPLITS if split in counts)
            + " (train = Training, val = PublicTest, test = PrivateTest)"
        )
    lines += [
        "- Model selection (best epoch) used `val` only; `test` was used once, to evaluate.",
        "",
        "## Training",
        "",
        f"Network `{net_name}`, {parameter_count:,} parameters, Keras {keras_version} "
        f"({backend} backend).",
    ]
    if train_summary:
        best = train_summary.get("best_epoch")
        trained = train_summary.get("step")
        if best is not None:
            trained_text = f" of {int(trained) + 1}" if isinstance(trained, int) else ""
            lines.append(
                f"Best epoch {best}{trained_text} "
                f"(val accuracy {_fmt(train_summary.get('best_val_accuracy'))}); its weights "
                "are the ones exported."
            )
    lines += [
        "",
        "```yaml",
        yaml.safe_dump(
            {"model": params.get("model", {}), "train": params.get("train", {})},
            sort_keys=False,
            default_flow_style=None,
        ).rstrip(),
        "```",
        "",
        "## Results on the test split (PrivateTest)",
        "",
    ]
    if metrics:
        lines += ["| evaluation | accuracy | macro F1 | images |", "| --- | --- | --- | --- |"]
        for name, entry in metrics.items():
            lines.append(
                f"| {name} | {_fmt(entry.get('accuracy'))} | {_fmt(entry.get('macro_f1'))} "
                f"| {entry.get('n')} |"
            )
        lines.append("")
    else:
        lines += ["Not evaluated (run `dvc repro evaluate`).", ""]
    if per_class:
        lines += [
            "| class | precision | recall | F1 | support |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in per_class:
            lines.append(
                f"| {row['class']} | {row['precision']:.3f} | {row['recall']:.3f} "
                f"| {row['f1']:.3f} | {row['support']} |"
            )
        lines.append("")
    lines += [
        "## Export check",
        "",
        f"On {parity['images']} test images ONNX Runtime and Keras predicted the same class "
        f"for every image; the largest probability difference was {parity['max_abs_diff']:.1e} "
        f"(allowed {parity['atol']:.0e}).",
        "",
        "## Use",
        "",
        "```bash",
        "ferflow predict photo.jpg --model-dir models   # faces + emotions as JSON lines",
        "```",
        "",
        "or directly with ONNX Runtime:",
        "",
        "```python",
        "import json, numpy as np, onnxruntime as ort",
        "labels = json.load(open('models/labels.json'))['labels']",
        "session = ort.InferenceSession('models/emotion.onnx')",
        "faces = np.zeros((1, 48, 48, 1), np.float32)  # raw 0..255 grayscale pixels",
        "probs = session.run(None, {session.get_inputs()[0].name: faces})[0]",
        "print(labels[int(probs[0].argmax())])",
        "```",
        "",
        "## Limitations",
        "",
        "FER2013 faces are small, frontal-ish web images with noisy labels; `disgust` has few "
        "examples. Expect lower accuracy on faces unlike them (profile views, poor light, "
        "children), and do not use emotion predictions to make decisions about people.",
        "",
    ]
    return "\n".join(lines)
