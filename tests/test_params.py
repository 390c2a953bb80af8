"""The params schema: every bad value named in one line with its fix, before anything runs."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import REPO_ROOT
from pipeline.params import (
    STAGE_PARAMS,
    ParamsError,
    all_keys,
    check_params,
    format_schema_table,
    load_params,
    stage_view,
)

PARAMS_FILES = ("params.yaml", "fer2013/params.yaml", "ferplus/params.yaml")


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))


def refused(raw: dict) -> str:
    with pytest.raises(ParamsError) as caught:
        check_params(raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_the_committed_params_files_pass(name: str) -> None:
    params = load_params(REPO_ROOT / name)
    # The top-level knobs reach the training code inside `train`, and only there.
    assert {"lr", "epochs", "batch_size"} <= set(params["train"])
    assert not {"lr", "epochs", "batch_size"} & set(params)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.__setitem__("lrr", r.pop("lr")), r"unknown key 'lrr'; did you mean 'lr'\?"),
        (
            lambda r: r["train"].__setitem__("lr", 0.1),
            r"unknown key 'train\.lr': `lr` is a top-level key .* -S lr=",
        ),
        (lambda r: r.__setitem__("lr", -1), r"lr=-1: input should be greater than 0"),
        (lambda r: r.__setitem__("lr", 0), r"lr=0: input should be greater than 0"),
        (lambda r: r.__setitem__("epochs", 0), r"epochs=0: .*greater than or equal to 1"),
        (lambda r: r.__setitem__("batch_size", 64.5), r"batch_size=64\.5: .*valid integer"),
        (lambda r: r.__setitem__("batch_size", "64"), r"batch_size='64': .*valid integer"),
        (lambda r: r.__setitem__("batch_size", 0), r"batch_size=0: .*greater than or equal"),
        (
            lambda r: r["train"].__setitem__("optimizer", "rmsprop"),
            r"train\.optimizer='rmsprop': input should be 'sgd', 'adam' or 'adamw'",
        ),
        (
            lambda r: r["model"].__setitem__("name", "resnet"),
            r"model\.name='resnet' is unknown; choose one of: seed, vgg",
        ),
        (lambda r: r["train"].pop("seed"), r"missing key 'train\.seed'"),
        (
            lambda r: r["train"]["augment"].__setitem__("fliip", True),
            r"unknown key 'train\.augment\.fliip'; did you mean 'train\.augment\.flip'\?",
        ),
        (
            lambda r: r["ensemble"].__setitem__("members", [{"train": {"sed": 1}}]),
            r"ensemble\.members\[0\]: unknown key 'train\.sed'; did you mean 'train\.seed'\?",
        ),
        # Fractions that must stay below 1: a dropout of 1 drops every unit, a momentum
        # of 1 never forgets, an EMA of 1 never moves.
        (lambda r: r["model"].__setitem__("dropout", 1.0), r"model\.dropout=1\.0: .*less than 1"),
        (lambda r: r["train"].__setitem__("momentum", 1.0), r"train\.momentum=1\.0: .*less than 1"),
        (lambda r: r["train"].__setitem__("ema", 1.0), r"train\.ema=1\.0: .*less than 1"),
        (
            lambda r: r["export"].__setitem__("int8_min_agreement", 1.5),
            r"export\.int8_min_agreement=1\.5: input should be less than or equal to 1",
        ),
    ],
)
def test_bad_values_are_refused_in_one_line(raw: dict, change, message: str) -> None:
    change(raw)
    assert re.search(message, refused(raw))


def test_ensemble_members_may_set_the_training_knobs_in_their_train(raw: dict) -> None:
    raw["ensemble"]["members"] = [{"model": {"name": "seed"}, "train": {"lr": 0.001, "seed": 1}}]
    check_params(raw)
    raw["ensemble"]["members"][0]["train"]["lr"] = -0.001
    assert "ensemble.members[0]: lr=-0.001: input should be greater than 0" in refused(raw)


def test_every_key_is_required_so_a_recipe_cannot_forget_one(raw: dict) -> None:
    for key in ("lr", "epochs", "batch_size", "model", "train", "export"):
        broken = copy.deepcopy(raw)
        del broken[key]
        assert f"missing key '{key}'" in refused(broken)


def test_stage_views_hold_exactly_the_dvc_param_keys() -> None:
    params = load_params()
    for stage, keys in STAGE_PARAMS.items():
        assert list(stage_view(params, stage)) == list(keys)
    assert stage_view(params, "train")["lr"] == params["train"]["lr"]
    assert "lr" not in stage_view(params, "train")["train"]


def test_schema_table_lists_every_key_with_its_value_and_meaning() -> None:
    table = format_schema_table(REPO_ROOT / "params.yaml")
    lines = table.splitlines()
    assert lines[0].split() == ["key", "type", "value", "meaning"]
    assert set(lines[1]) == {"-", " "}, "the header's rule"
    assert max(len(line) for line in lines) <= 100, "wider than a 100-column terminal"
    # A row starts with its key; the lines under it continue its wrapped cells.
    listed = [line.split()[0] for line in lines[2:] if not line.startswith(" ")]
    leaves = {k for k in all_keys() if not any(o.startswith(k + ".") for o in all_keys())}
    assert sorted(listed) == sorted(leaves)
    (lr_line,) = [line for line in lines if line.startswith("lr ")]
    assert "float (> 0.0)" in lr_line and "0.002" in lr_line and "learning rate" in lr_line
    # Every word of a wrapped meaning is printed, in order, in the meaning column.
    start = lines[0].index("meaning")
    row = lines.index(next(line for line in lines if line.startswith("data.raw ")))
    cells = [lines[row][start:].strip()]
    cells += [line[start:].strip() for line in lines[row + 1 :] if line.startswith(" ")][:3]
    assert " ".join(cells).startswith(
        "the FER2013-format CSV (emotion,pixels,Usage), or a folder <split>/<class>/<image>"
    )


def test_schema_table_without_a_file_has_no_value_column() -> None:
    lines = format_schema_table(None).splitlines()
    assert lines[0].split() == ["key", "type", "meaning"]
    assert max(len(line) for line in lines) <= 100


def test_one_value_is_checked_by_the_schemas_own_rule() -> None:
    from pipeline.params import check_value

    assert check_value("train.ema", 0.999) == 0.999
    with pytest.raises(ParamsError, match=r"^train\.ema=1\.0: input should be less than 1$"):
        check_value("train.ema", 1.0)
    with pytest.raises(ParamsError, match=r"^lr=0: input should be greater than 0$"):
        check_value("lr", 0)


def test_ferflow_params_prints_the_table() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "params"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "train.optimizer" in out and "sgd | adam | adamw" in out


def test_params_stage_stops_with_one_line_and_writes_nothing(tmp_path: Path, raw: dict) -> None:
    raw["lr"] = -1
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "stages.params", "--params", str(bad)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"params: error: {bad}: lr=-1: input should be greater than 0"
    ]
