"""`MODEL_CARD.md`: what the exported model is, what it was trained on, how well it does.

Written by the `export` stage from the pipeline's own records (the prepared data's
manifest, evaluate's metrics and per-class scores, the training run's record, the export
checks), so no figure in it is typed by hand. `render_model_card` takes plain data so it is
easy to test; `CardInputs` gathers that data from the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import SPLITS
from pipeline.io import sha256_file
from pipeline.machine import machine_line


def read_json(path: str | Path | None) -> Any:
    """A JSON file's content, or None when there is no such file (e.g. no evaluation yet)."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass
class ModelFile:
    """A file the card lists: its name, what it is, its size and sha256."""

    path: Path
    what: str

    def row(self) -> str:
        size, digest = self.path.stat().st_size / 1e6, sha256_file(self.path)[:16]
        return f"| `{self.path.name}` | {self.what} | {size:.1f} MB | `{digest}` |"


@dataclass
class CardInputs:
    """Everything the card says, read from the pipeline's records."""

    params: dict[str, Any]
    network: str
    parameter_count: int
    files: list[ModelFile]
    manifest: dict[str, Any] | None
    summary: dict[str, Any] | None
    per_class: list[dict[str, Any]] | None
    run: dict[str, Any] | None
    trained_by: str | None
    parity: dict[str, Any] | None
    int8: dict[str, Any] | None
    pipeline_file: str = "dvc.yaml"
    #: Where each step ran (records' `machines` entries: train, evaluate, export).
    machines: list[dict[str, Any]] | None = None
    #: The model's label set, in output order (labels.json).
    labels: tuple[str, ...] = ()


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, float) else "n/a"


def _split_counts(manifest: dict[str, Any] | None) -> dict[str, int]:
    splits = (manifest or {}).get("splits", {})
    return {s: splits[s]["rows"] for s in SPLITS if isinstance(splits.get(s), dict)}


def _tta_views(evaluate: dict[str, Any]) -> int:
    shift = int(evaluate.get("tta_shift", 0))
    return (2 if evaluate.get("tta_flip", True) else 1) * (9 if shift else 1)


def render_model_card(card: CardInputs) -> str:
    """The card as Markdown."""
    p = card.params
    data_raw = p["data"]["raw"]
    synthetic = data_raw == p["paths"].get("synthetic")
    name = p["export"]["model_name"]
    lines = [
        f"# Model card: {name}",
        "",
        f"Classifies a 48x48 grayscale face into one of {len(card.labels)} classes: "
        + ", ".join(card.labels)
        + f". Written by the `export` stage of the ferflow DVC pipeline (`{card.pipeline_file}`);"
        " every figure below is read from that pipeline's records, none is typed by hand.",
        "",
    ]
    if synthetic:
        lines += [
            "> **Trained on synthetic data.** This model learned the synthetic faces that "
            "`dvc repro` draws by default; it proves the pipeline works end to end and is "
            "not a real emotion recognizer. The real FER2013 model is `models/fer2013/`.",
            "",
        ]
    lines += [
        "## Files",
        "",
        "| file | what | size | sha256 (first 16) |",
        "| --- | --- | --- | --- |",
        *(f.row() for f in card.files),
        "",
        "Input: float32 NHWC batch `(N, 48, 48, 1)` of raw grayscale pixels 0..255 (the "
        "rescaling is inside the model; `labels.json` states the contract). Output: "
        f"{len(card.labels)} class probabilities in label order.",
        "",
        *_data_section(card, data_raw, synthetic),
        *_training_section(card),
        *_results_section(card),
        *_checks_section(card),
        *_machines_section(card),
        *_use_section(card),
        *_limitations_section(synthetic),
    ]
    return "\n".join(lines)


def _data_section(card: CardInputs, data_raw: str, synthetic: bool) -> list[str]:
    source = (card.manifest or {}).get("source", {})
    lines = ["## Data", ""]
    line = f"- Raw CSV: `{data_raw}`" + (" (synthetic)" if synthetic else "")
    if source.get("sha256"):
        line += f", sha256 `{source['sha256']}`"
    lines.append(line)
    counts = _split_counts(card.manifest)
    if counts:
        lines.append(
            "- Faces per split: "
            + ", ".join(f"{split} {n:,}" for split, n in counts.items())
            + " (train = Training, val = PublicTest, test = PrivateTest)"
        )
    lines += [
        "- Model selection (best epoch) used `val` only; `test` was used once, to evaluate.",
        "",
    ]
    return lines


def _training_section(card: CardInputs) -> list[str]:
    lines = ["## Training", ""]
    run = card.run or {}
    if card.trained_by:  # the other run's own record of its recipe
        recipe = run.get("params", {})
    else:  # as params.yaml writes it: the most-tuned knobs at the top
        train = dict(card.params["train"])
        recipe = {k: train.pop(k) for k in ("lr", "epochs", "batch_size")}
        recipe |= {"model": card.params["model"], "train": train}
    lines.append(
        f"Network `{card.network}`, {card.parameter_count:,} parameters."
        if card.parameter_count
        else f"Network `{card.network}`."
    )
    if card.trained_by:
        lines += [
            "",
            f"**The weights were not trained by this pipeline's `train` stage.** They come from "
            f"an earlier run, recorded in `{card.trained_by}`; this pipeline validated and "
            "prepared the data, scored the file and wrote the int8 copy and this card.",
        ]
        device = run.get("device") or "not recorded by the run"
        epochs = run.get("epochs_run")
        lines += [
            "",
            f"- Backend {run.get('backend', 'not recorded')}; device: {device}.",
            f"- {epochs} epochs in {run.get('train_wall_s')} s of training wall time "
            f"(first epoch {run.get('first_epoch_s')} s with compilation, then "
            f"{run.get('median_epoch_s')} s an epoch); best PublicTest epoch "
            f"{run.get('best_val_epoch')} (val accuracy {_pct(run.get('val_plain'))}).",
        ]
    elif run:
        lines += [
            "",
            f"Trained by this pipeline's `train` stage on {run.get('device', '?')}: best epoch "
            f"{run.get('best_epoch')} of {card.params['train']['epochs']} (val accuracy "
            f"{_pct(run.get('best_val_accuracy'))}); its weights are the ones exported.",
        ]
    lines += [
        "",
        "```yaml",
        yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None).rstrip(),
        "```",
        "",
    ]
    return lines


def _results_section(card: CardInputs) -> list[str]:
    lines = ["## Results on the test split (PrivateTest)", ""]
    summary = card.summary or {}
    if not summary:
        return [*lines, "Not evaluated (run the `evaluate` stage).", ""]
    views = _tta_views(card.params.get("evaluate", {}))
    names = {
        "test": "float, single view",
        "test_tta": f"float, mean of {views} views (flip x shifts)",
        "test_ensemble": "float, ensemble",
        "test_ensemble_tta": f"float, ensemble, {views} views",
    }
    lines += ["| model | accuracy | macro F1 | faces |", "| --- | --- | --- | --- |"]
    for key, entry in summary.items():
        if not isinstance(entry, dict):  # `machines`: its own section
            continue
        lines.append(
            f"| {names.get(key, key)} | {_pct(entry.get('accuracy'))} "
            f"| {entry.get('macro_f1', 0):.3f} | {entry.get('n'):,} |"
        )
    if card.int8:
        lines.append(
            f"| int8, single view | {_pct(card.int8['accuracy'])} | | "
            f"{card.int8['test_images']:,} |"
        )
    lines.append("")
    if card.per_class:
        lines += [
            "Per class (float, single view):",
            "",
            "| class | precision | recall | F1 | support |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in card.per_class:
            lines.append(
                f"| {row['class']} | {row['precision']:.3f} | {row['recall']:.3f} "
                f"| {row['f1']:.3f} | {row['support']} |"
            )
        lines.append("")
    return lines


def _checks_section(card: CardInputs) -> list[str]:
    lines = ["## Export checks", ""]
    if card.parity:
        lines.append(
            f"- On {card.parity['images']} test faces ONNX Runtime and Keras predicted the same "
            f"class for every face; the largest probability difference was "
            f"{card.parity['max_abs_diff']:.1e} (allowed {card.parity['atol']:.0e})."
        )
    else:
        lines.append("- The float ONNX file is this pipeline's input, scored as it is.")
    if card.int8:
        i = card.int8
        lines.append(
            "- int8 (static, QDQ, per-channel 7-bit weights, calibrated on "
            f"{i['calibration_images']} Training faces): {_pct(i['accuracy'])} vs float "
            f"{_pct(i['float_accuracy'])} on "
            f"{i['test_images']:,} test faces, same class on {_pct(i['agreement'])} of them "
            f"(accepted: at most {100 * i['max_drop']:.1f} points lost, at least "
            f"{i['min_agreement']:.0%} agreement)."
        )
        speed = i.get("speed")
        if speed:
            lines.append(
                f"- Speed measured by this export on the test faces ({speed['machine']}): "
                f"float {speed['float_faces_per_s']:,} faces/s, int8 "
                f"{speed['int8_faces_per_s']:,} faces/s. It moves with the machine and its "
                "load; `benchmarks/bench_shipped_model.py` measures it again."
            )
    lines.append("")
    return lines


def _machines_section(card: CardInputs) -> list[str]:
    lines = ["## Where these figures were made", ""]
    steps = {m.get("stage"): m for m in card.machines or []}
    if card.trained_by:
        device = (card.run or {}).get("device") or "not recorded by the run"
        lines.append(f"- train: an earlier run ({card.trained_by}); device {device}.")
    for stage in ("train", "evaluate", "export"):
        if stage in steps:
            lines.append(f"- {stage}: {machine_line(steps[stage])}.")
    lines += [
        "",
        "Float results repeat exactly on the same CPU kind and library versions; another kind "
        "(AVX2 against AVX-512, say) sums in another order, and its float figures may differ "
        'slightly (docs/pipelines.md, "Results per CPU kind"). The int8 file\'s weights '
        "are 7-bit, so its integer arithmetic is exact on every CPU.",
        "",
    ]
    return lines


def _use_section(card: CardInputs) -> list[str]:
    # The app runs the int8 file when there is one, so that is the one to show.
    model = card.files[1 if card.int8 else 0].path.name
    return [
        "## Use",
        "",
        "```bash",
        "ferflow predict photo.jpg --model-dir FOLDER_OF_THIS_CARD   # faces + emotions as JSON",
        "```",
        "",
        "or directly with ONNX Runtime:",
        "",
        "```python",
        "import json, numpy as np, onnxruntime as ort",
        "",
        'labels = json.load(open("labels.json"))["labels"]',
        f'session = ort.InferenceSession("{model}")',
        "faces = np.zeros((1, 48, 48, 1), np.float32)  # raw 0..255 grayscale pixels",
        "probs = session.run(None, {session.get_inputs()[0].name: faces})[0]",
        "print(labels[int(probs[0].argmax())])",
        "```",
        "",
    ]


def _limitations_section(synthetic: bool) -> list[str]:
    lines = ["## Limitations", ""]
    if synthetic:
        return [*lines, "Synthetic faces only: do not use it on real faces.", ""]
    return [
        *lines,
        "- FER2013 labels are noisy (human accuracy is about 65%); fear and sad are confused "
        "with each other and with neutral; disgust has few training faces.",
        "- The faces were found by a web image search with emotion keywords: posed and "
        "exaggerated expressions are over-represented, and the demographics (age, skin tone, "
        "gender presentation, cultures of expression) are neither balanced nor documented.",
        "- 48x48 grayscale, roughly frontal, tightly cropped faces: accuracy drops with profile "
        "views, occlusion and crops unlike the detector's.",
        "- Some images appear more than once in FER2013, a few across splits (see the "
        "validation report), which slightly flatters every FER2013 figure.",
        "- Do not use emotion predictions to make decisions about people.",
        "",
    ]
