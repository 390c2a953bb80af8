"""The light install has no OpenCV (it is the `ferflow[video]` extra): photos and `ferflow
serve` work without it, and whatever needs it (videos, cameras) says so in one line.

"Without OpenCV" is made here by a sitecustomize that puts None in sys.modules["cv2"]:
`import cv2` then fails in that process as if the package were not installed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import cv2
import httpx2 as httpx
import pytest
from helpers import ServerProcess

from pipeline.app.errors import AppError
from pipeline.config import REPO_ROOT

#: What the missing extra is called in every message.
INSTALL = "pip install 'ferflow[video]'"


@pytest.fixture(scope="module")
def no_opencv_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process in which `import cv2` fails."""
    site = tmp_path_factory.mktemp("no_opencv")
    (site / "sitecustomize.py").write_text('import sys\nsys.modules["cv2"] = None\n')
    path = os.pathsep.join([str(site), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def ferflow(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_blocker_blocks(no_opencv_env):
    """Without this the tests below would prove nothing."""
    done = subprocess.run(
        [sys.executable, "-c", "import cv2"], env=no_opencv_env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_photo_and_upload_modules_load_without_opencv(no_opencv_env):
    code = (
        "import sys, pipeline.app.media, pipeline.app.annotated_names, pipeline.imaging, "
        "pipeline.serve.uploads, pipeline.app.video_backend; "
        "assert sys.modules['cv2'] is None, 'something replaced the blocker'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=no_opencv_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_predict_on_a_photo_runs_without_opencv(
    no_opencv_env, app_model_dir, tmp_path, astronaut_bgr
):
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    annotated = tmp_path / "annotated"

    done = ferflow(
        no_opencv_env, "predict", photo, "--model-dir", app_model_dir, "--annotate", annotated
    )

    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["faces"] for line in done.stdout.splitlines()] == [1]
    assert (annotated / "photo.jpg").stat().st_size > 0


def test_predict_on_a_video_without_opencv_names_the_extra(no_opencv_env, app_model_dir, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))

    done = ferflow(no_opencv_env, "predict", video, "--model-dir", app_model_dir)

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"ferflow: error: {video}: reading videos needs OpenCV, which ferflow's light install "
        f"leaves out; install it with: {INSTALL}"
    ]


def test_serve_answers_a_photo_upload_without_opencv(
    no_opencv_env, monkeypatch, app_model_dir, astronaut_bgr
):
    monkeypatch.setenv("PYTHONPATH", no_opencv_env["PYTHONPATH"])  # ServerProcess inherits it
    photo = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
    server = ServerProcess("--model-dir", str(app_model_dir))
    try:
        response = httpx.post(server.url + "/api/predict", files={"image": ("a.jpg", photo)})
        assert response.status_code == 200, response.text
        assert response.json()["records"][0]["faces"] == 1
    finally:
        server.stop()
    assert "Traceback" not in "".join(server.log)


# ---------------------------------------------------------------------------------------
# The door itself (in this process: OpenCV is hidden and the module's memory of it reset).
# ---------------------------------------------------------------------------------------


@pytest.fixture
def fresh_backend(monkeypatch):
    from pipeline.app import video_backend

    monkeypatch.setattr(video_backend, "_cv2", None)
    return video_backend


def test_require_opencv_without_opencv_is_one_line_naming_the_input(monkeypatch, fresh_backend):
    monkeypatch.setitem(sys.modules, "cv2", None)

    with pytest.raises(AppError) as e:
        fresh_backend.require_opencv("clip.mp4: reading videos")

    assert str(e.value) == (
        "clip.mp4: reading videos needs OpenCV, which ferflow's light install leaves out; "
        f"install it with: {INSTALL}"
    )
    assert not fresh_backend.opencv_loaded()


def test_require_opencv_that_does_not_load_says_why(monkeypatch, fresh_backend):
    """opencv-python (not headless) on a server without libGL fails to import: say so."""
    import builtins

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("libGL.so.1: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)

    with pytest.raises(
        AppError,
        match=r"^camera 0: reading cameras needs OpenCV, which is "
        r"installed but does not load \(libGL\.so\.1: .*\); reinstall it",
    ):
        fresh_backend.require_opencv("camera 0: reading cameras")


def test_require_opencv_returns_the_module_and_silences_it(fresh_backend):
    assert fresh_backend.require_opencv("a test") is cv2
    assert fresh_backend.opencv_loaded()
    assert os.environ["OPENCV_FFMPEG_LOGLEVEL"] == "-8"


def _imports_cv2(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "cv2" for alias in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cv2"


def test_no_module_imports_cv2_but_through_the_door():
    """Photos, serve and the data stages must load without OpenCV: an `import cv2` anywhere
    in the package but `video_backend` (the door) would bring it back."""
    offenders = []
    for path in sorted((REPO_ROOT / "pipeline").rglob("*.py")):
        if path.name == "video_backend.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        # Type hints under `if TYPE_CHECKING:` are the one allowed form.
        hints = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }
        offenders += [
            f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
            for node in ast.walk(tree)
            if id(node) not in hints and _imports_cv2(node)
        ]
    assert offenders == []
