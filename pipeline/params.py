"""params.yaml's schema: every key's type, range or choices and one-line meaning.

The `params` stage (the first of the DAG) checks the whole file with it before any other
stage runs, so a bad value stops `dvc repro` / `dvc exp run` before DVC deletes the outputs
of train, evaluate or export; every stage then loads its params through `load_params` too.

    params = load_params("params.yaml")   # ParamsError: one line naming the key and the fix

The three most-tuned knobs are top-level keys, the way people type them
(`dvc exp run -S lr=0.001 -S epochs=30 -S batch_size=128`); `load_params` hands them to
the training code inside the `train` section, so the library reads one training dict.
Every key is required: a recipe that forgets one is refused, never silently defaulted.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pipeline.config import PARAMS_FILE, merge_params
from pipeline.params_errors import explain, explain_value, kind_of

#: Top-level training knobs, moved into `train` by `load_params`.
TOP_LEVEL_TRAIN_KEYS: tuple[str, ...] = ("lr", "epochs", "batch_size")

#: What each stage reads, as DVC param keys: dvc.yaml's `params:` lists exactly these (a
#: test checks it), and the `params` stage writes each stage's validated view to
#: `<paths.params>/<stage>.json`, the file that stage depends on.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "synthesize": ("synthesize",),
    "validate": ("data", "validate"),
    "prepare": ("data",),
    "train": ("lr", "epochs", "batch_size", "model", "train"),
    "ensemble": ("lr", "epochs", "batch_size", "model", "train", "ensemble"),
    "evaluate": ("evaluate",),
    "export": ("lr", "epochs", "batch_size", "model", "train", "data", "evaluate", "export"),
}


class ParamsError(ValueError):
    """params.yaml breaks the schema; the message is one line naming the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Bool = Annotated[bool, Field(strict=True)]


def _field(meaning: str, **constraints: Any) -> Any:
    return Field(description=meaning, **constraints)


class Data(_Section):
    raw: str = _field(
        "the FER2013-format CSV (emotion,pixels,Usage), or a folder <split>/<class>/<image> "
        "(docs/data.md); default: the synthetic set `synthesize` draws"
    )
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = _field(
        "a folder without val/: this share of each train class becomes val", default=0.1
    )
    split_seed: NonNegativeInt = _field("seed of that share of train", default=0)
    ferplus: str | None = _field(
        "FER+ votes file (fer2013new.csv) relabelling data.raw row by row; null: none",
        default=None,
    )
    ferplus_mode: Literal["majority", "distribution"] = _field(
        "FER+ labels: the majority vote, or trained on the vote distribution (scored on "
        "the majority)",
        default="majority",
    )


class Rows(_Section):
    train: PositiveInt = _field("synthetic faces in the train split (Training)")
    val: PositiveInt = _field("synthetic faces in the val split (PublicTest)")
    test: PositiveInt = _field("synthetic faces in the test split (PrivateTest)")


class Synthesize(_Section):
    seed: NonNegativeInt = _field("random seed of the synthetic faces")
    rows: Rows


class Validate(_Section):
    duplicates: Literal["warn", "fail"] = _field(
        "images that appear twice: record them (warn) or stop the pipeline (fail)"
    )
    missing_class: Literal["warn", "fail"] = _field(
        "a split without any face of a class: warn, or stop the pipeline when it is the test "
        "split (fail)"
    )


class Paths(_Section):
    synthetic: str = _field("where `synthesize` writes its CSV")
    params: str = _field("folder of each stage's validated params (written by `params`)")
    validation: str = _field("validation reports folder")
    prepared: str = _field("prepared shards folder (train/val/test)")
    model: str = _field("the network evaluate and export read (.keras, or a float .onnx)")
    train_log: str = _field("DVCLive log of training")
    train_resume: str = _field("training's resume checkpoint (not a DVC output)")
    ensemble: str = _field("extra ensemble networks folder")
    ensemble_resume: str = _field("the ensemble stage's resume folder (not a DVC output)")
    metrics: str = _field("evaluate's metrics file")
    eval: str = _field("evaluate's plots folder (confusion matrix, per-class)")
    onnx: str = _field("the exported float ONNX model")
    int8: str = _field("the exported int8 ONNX model (the app's default)")
    labels: str = _field("labels.json, the model's input/label contract")
    model_card: str = _field("MODEL_CARD.md")
    model_json: str = _field("the tutorial's architecture JSON")
    model_weights: str = _field("the tutorial's weights file (.weights.h5)")
    export_record: str = _field("export's record: parity, int8 acceptance (a DVC metric)")


class VggModel(_Section):
    name: Literal["vgg"] = _field("network: vgg (ferflow's) or seed (the tutorial's)")
    widths: list[PositiveInt] = _field("filters of each conv block", min_length=1)
    convs_per_block: PositiveInt = _field("3x3 conv + batch norm + ReLU layers per block")
    dense: list[PositiveInt] = _field("units of each dense layer before the softmax")
    dropout: Fraction = _field("dropout after each dense layer")


class SeedModel(_Section):
    name: Literal["seed"] = _field("network: vgg (ferflow's) or seed (the tutorial's)")


class Augment(_Section):
    flip: Bool = _field("mirror faces left-right at random")
    rotation: float = _field("largest random rotation, degrees", ge=0.0, le=180.0)
    zoom: Fraction = _field("largest random zoom, fraction of the side")
    shift: Fraction = _field("largest random shift, fraction of the side")
    erasing: float = _field("probability of erasing a random patch", ge=0.0, le=1.0)


class Train(_Section):
    seed: NonNegativeInt = _field("seed of weights, data order and augmentation")
    optimizer: Literal["sgd", "adam", "adamw"] = _field("sgd (Nesterov), adam or adamw")
    momentum: Fraction = _field("SGD momentum (sgd only)")
    schedule: Literal["cosine", "constant", "plateau"] = _field(
        "learning rate: cosine (warm-up, then decay), constant, or plateau (lowered on "
        "val_accuracy plateaus)"
    )
    warmup_epochs: NonNegativeInt = _field("linear warm-up epochs (cosine only)")
    plateau_factor: float = _field("LR factor on a plateau (plateau only)", gt=0.0, lt=1.0)
    plateau_patience: PositiveInt = _field("epochs without progress before lowering the LR")
    weight_decay: float = _field("decoupled weight decay", ge=0.0)
    label_smoothing: Fraction = _field("label smoothing of the cross-entropy")
    ema: Fraction = _field("momentum of a weight moving average (0 = off, e.g. 0.999)")
    early_stopping_patience: NonNegativeInt = _field("0 = off; else epochs on val_accuracy")
    mixed_precision: Bool = _field("bfloat16 compute (GPUs; slow on CPUs)")
    jit_compile: Literal["auto", True, False] = _field("XLA compilation: auto, true or false")
    steps_per_execution: PositiveInt = _field("batches per compiled call")
    distribute: Literal["auto", "on", "off"] = _field(
        "data-parallel over devices: auto (when > 1 accelerator), on, off"
    )
    devices: NonNegativeInt = _field("devices to use, 0 = all visible")
    lr_scaling: Literal["linear", "sqrt", "none"] = _field("LR scaling with the device count")
    augment: Augment


class MemberOverrides(_Section):
    # Checked loosely here (a mapping per section); `load_params` validates each member's
    # merged model/train sections with the full schema, so a typo is caught there.
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class Ensemble(_Section):
    members: list[MemberOverrides] = _field(
        "extra networks for an evaluate-time ensemble, each model/train overrides"
    )


class Evaluate(_Section):
    batch_size: PositiveInt = _field("faces per prediction batch")
    tta: Bool = _field("also score the mean over flipped and shifted views (test_tta)")
    tta_flip: Bool = _field("TTA views include the mirror image")
    tta_shift: NonNegativeInt = _field("TTA shifts of -n, 0, +n pixels in each direction")


class Export(_Section):
    model_name: str = _field("the model's name in labels.json and the card", min_length=1)
    float16: Bool = _field("float16 weights in the ONNX file (float32 input/output)")
    parity_images: PositiveInt = _field("test faces ONNX Runtime must match Keras on")
    parity_atol: float = _field("largest probability difference allowed (float32)", gt=0.0)
    float16_atol: float = _field("largest probability difference allowed (float16)", gt=0.0)
    calibration_images: PositiveInt = _field("Training faces that calibrate int8")
    int8_max_drop: float = _field(
        "largest test accuracy the int8 model may lose vs float (0.005 = 0.5 points)",
        ge=0.0,
        le=1.0,
    )
    int8_min_agreement: float = _field(
        "least share of test faces int8 and float must put in the same class", ge=0.0, le=1.0
    )
    trained_by: str | None = _field(
        "record of the run that trained the weights, when they were not trained by this "
        "pipeline's train stage (null: they were)"
    )


class Params(_Section):
    lr: float = _field("learning rate (for one device's batch; see train.lr_scaling)", gt=0.0)
    epochs: PositiveInt = _field("training epochs")
    batch_size: PositiveInt = _field("faces per training batch, per device")
    data: Data
    synthesize: Synthesize | None = _field("the synthetic data set (null: not used)")
    validate_: Validate = Field(alias="validate")
    paths: Paths
    model: Annotated[VggModel | SeedModel, Field(discriminator="name")]
    train: Train
    ensemble: Ensemble | None = _field("null: no ensemble members")
    evaluate: Evaluate
    export: Export


def load_params(path: str | Path = PARAMS_FILE, source: str | None = None) -> dict[str, Any]:
    """Read and check params.yaml; return it as plain data, lr/epochs/batch_size in `train`.

    Raises ParamsError (one line: `source` (default: the path), key, what is wrong, the
    fix) on any breach, and FileNotFoundError when there is no file.
    """
    path = Path(path)
    raw = read_yaml(path)
    checked = check_params(raw, source=source or str(path))
    return effective(checked)


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        hint = " (a directory)" if path.is_dir() else ""
        raise FileNotFoundError(
            f"{path}: params file not found{hint}; run from the repository root"
        )
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}:{where} not valid YAML ({getattr(e, 'problem', e)})") from None


def check_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate `raw` (params.yaml's content) against the schema, members included."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of keys at the top, got {kind_of(raw)}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(f"{source}: {_explain(e, raw)}") from None
    if params.ensemble:
        for i, member in enumerate(params.ensemble.members):
            # A member's `train` may set lr/epochs/batch_size too (the training code reads
            # them there): check them where the schema has them, at the top.
            train = dict(member.train)
            top = {key: train.pop(key) for key in TOP_LEVEL_TRAIN_KEYS if key in train}
            merged = member_sections(_dump(params), {"model": member.model, "train": train})
            candidate = {**raw, **top, **merged}
            try:
                Params.model_validate(candidate)
            except ValidationError as e:
                where = f"{source}: ensemble.members[{i}]"
                raise ParamsError(f"{where}: {_explain(e, candidate)}") from None
    return params


def member_sections(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`model`/`train` of an ensemble member: the main ones with the member's overrides.

    A `model.name` override replaces the whole model section (another architecture's
    parameters are not the main network's).
    """
    model_overrides = overrides.get("model") or {}
    if "name" in model_overrides:
        model = dict(model_overrides)
    else:
        model = merge_params(params["model"], model_overrides)
    return {"model": model, "train": merge_params(params["train"], overrides.get("train") or {})}


def effective(params: Params) -> dict[str, Any]:
    """Plain data for the library: the top-level training knobs moved into `train`."""
    data = _dump(params)
    data["train"] = {**{key: data.pop(key) for key in TOP_LEVEL_TRAIN_KEYS}, **data["train"]}
    return data


def stage_view(params: dict[str, Any], stage: str) -> dict[str, Any]:
    """The validated values `stage` reads (its DVC param keys), from `load_params` output."""
    view: dict[str, Any] = {}
    for key in STAGE_PARAMS[stage]:
        if key in TOP_LEVEL_TRAIN_KEYS:
            view[key] = params["train"][key]
        elif key == "train":
            view[key] = {k: v for k, v in params["train"].items() if k not in TOP_LEVEL_TRAIN_KEYS}
        else:
            view[key] = params[key]
    return view


def _dump(params: Params) -> dict[str, Any]:
    # Every key is required, so "unset" only drops the sections an ensemble member leaves out.
    return params.model_dump(by_alias=True, exclude_unset=True)


def _explain(error: ValidationError, raw: Any) -> str:
    return explain(error, raw, all_keys(), TOP_LEVEL_TRAIN_KEYS)


def check_value(key: str, value: Any) -> Any:
    """Check one dotted key's value with the schema's own rule for it (the library's guard
    for callers that did not load params.yaml); ParamsError in the file check's words.
    `key` is in a plain section (not `model.*`, whose keys depend on `model.name`)."""
    section: type[BaseModel] = Params
    *parents, leaf = key.split(".")
    for name in parents:
        section = section.model_fields[name].annotation
    field = section.model_fields[leaf]
    try:
        return TypeAdapter(Annotated[field.annotation, *field.metadata]).validate_python(value)
    except ValidationError as e:
        raise ParamsError(explain_value(key, value, e.errors()[0]["msg"])) from None


# --- the schema as a table (`ferflow params`), from pydantic's JSON Schema ---------------------


@cache
def _json_schema() -> dict[str, Any]:
    return Params.model_json_schema(by_alias=True)


def _sections(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The sub-sections a property holds: a `$ref`, or the `$ref`s of a union (a nullable
    section, or one network per `model.name`)."""
    defs = _json_schema()["$defs"]
    refs = [prop.get("$ref"), *(p.get("$ref") for p in prop.get("anyOf", prop.get("oneOf", [])))]
    return [defs[ref.rsplit("/", 1)[-1]] for ref in refs if ref]


def _walk(node: dict[str, Any] | None = None, prefix: str = "") -> Iterator[tuple[str, dict, bool]]:
    """(dotted key, its JSON Schema, whether it is a section) for every key, in file order;
    list items (ensemble members) are not descended into."""
    for name, prop in (node or _json_schema())["properties"].items():
        key = f"{prefix}{name}"
        sections = _sections(prop)
        yield key, prop, bool(sections)
        for section in sections:
            yield from _walk(section, f"{key}.")


def all_keys() -> list[str]:
    """Every dotted key the schema knows (model keys of every network), sections included."""
    return sorted({key for key, _, _ in _walk()})


def _describe(prop: dict[str, Any]) -> str:
    """A JSON Schema property as `type (bounds)`, or its choices."""
    if "const" in prop:
        return _plain(prop["const"])
    if "enum" in prop:
        return " | ".join(_plain(v) for v in prop["enum"])
    if "anyOf" in prop:
        return " | ".join(_describe(p) for p in prop["anyOf"])
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}
    kind = prop.get("type", "")
    text = names.get(kind, kind)
    if kind == "array":
        items = prop.get("items", {})
        text = f"list of {_describe(items)}" if "type" in items else "list"
    bounds = [
        f"{sign} {prop[word]}"
        for word, sign in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if word in prop
    ]
    bounds += [f"length >= {prop[word]}" for word in ("minLength", "minItems") if word in prop]
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _plain(value: Any) -> str:
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def schema_rows() -> list[tuple[str, str, str]]:
    """(key, type / allowed values, meaning) for every leaf key, in file order."""
    rows: dict[str, tuple[str, str, str]] = {}
    for key, prop, is_section in _walk():
        if is_section:
            continue
        kind = _describe(prop)
        # Each network's keys are listed under `model.`: `model.name` once, every choice.
        if key in rows and kind not in rows[key][1]:
            kind = f"{rows[key][1]} | {kind}"
        rows[key] = (key, kind, prop.get("description", ""))
    return list(rows.values())


#: `ferflow params` fits a terminal this wide; the meaning column wraps to fit.
TABLE_WIDTH = 100
#: Widest type and value cells before they wrap.
TYPE_WIDTH, VALUE_WIDTH = 18, 14


def format_schema_table(params_file: str | Path | None = None, width: int = TABLE_WIDTH) -> str:
    """`ferflow params`: the schema as a plain-text table (tabulate), with the file's values
    if given, no line wider than `width`."""
    from tabulate import tabulate

    values: dict[str, Any] = {}
    if params_file is not None and Path(params_file).is_file():
        values = _flatten(read_yaml(Path(params_file)) or {})
    if values:  # the value column only when there are values to show
        header = ("key", "type", "value", "meaning")
        rows = [(k, t, _show(values.get(k, "")), m) for k, t, m in schema_rows()]
        widths = [None, TYPE_WIDTH, VALUE_WIDTH]
    else:
        header, rows, widths = ("key", "type", "meaning"), schema_rows(), [None, TYPE_WIDTH]
    key_width = max(len(r[0]) for r in [header, *rows])
    # tabulate's "simple" format: two spaces between columns.
    used = key_width + sum(w for w in widths if w) + 2 * len(widths)
    return tabulate(
        rows,
        headers=header,
        tablefmt="simple",
        maxcolwidths=[*widths, width - used],
        disable_numparse=True,
    )


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: node}


def _show(value: Any) -> str:
    if value == "":
        return ""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()
