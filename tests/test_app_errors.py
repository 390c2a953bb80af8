"""Bad input: one clear line on stderr (no traceback, no library noise), exit status 1, and
nothing written. Each test pins the whole line: the file it names and the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipeline.app.detector import cascade_path
from pipeline.app.errors import AppError
from pipeline.app.media import IMAGE_SUFFIXES
from pipeline.cli import main

SUFFIXES = ", ".join(IMAGE_SUFFIXES)


def fails(capfd: pytest.CaptureFixture[str], *args: object) -> str:
    """Run the CLI; assert it failed cleanly (status 1, one line, nothing on stdout) and
    return that line without its `ferflow: error: ` prefix."""
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert code == 1, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("ferflow: error: ")
    return lines[0].removeprefix("ferflow: error: ")


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    return path


def copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("emotion.onnx", "labels.json"):
        shutil.copy(src / name, dst / name)
    return dst


def test_missing_file(capfd, app_model_dir, tmp_path):
    line = fails(capfd, "predict", tmp_path / "nope.jpg", "--model-dir", app_model_dir)
    assert line == f"{tmp_path / 'nope.jpg'}: no such file or folder"


def test_symlink_loop_says_so(capfd, app_model_dir, tmp_path):
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    line = fails(capfd, "predict", loop, "--model-dir", app_model_dir)
    assert line.startswith(f"{loop}: a symbolic link loop")


def test_dangling_symlink_names_its_target(capfd, app_model_dir, tmp_path):
    link = tmp_path / "photo.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    line = fails(capfd, "predict", link, "--model-dir", app_model_dir)
    assert line == f"{link}: a symbolic link to a missing file ({tmp_path / 'gone.jpg'})"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"just some text\n"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
    ],
)
def test_neither_image_nor_video_says_so(capfd, app_model_dir, tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    line = fails(capfd, "predict", path, "--model-dir", app_model_dir)
    assert line.startswith(f"{path}: neither a readable image nor a video")


def test_corrupt_image(capfd, app_model_dir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    line = fails(capfd, "predict", bad, "--model-dir", app_model_dir)
    assert line == (
        f"{bad}: not a readable image (corrupt, truncated or an unsupported format; "
        f"expected one of {SUFFIXES} or another format Pillow reads; Pillow said "
        "'no image format Pillow knows')"
    )


def test_empty_folder(capfd, app_model_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    line = fails(capfd, "predict", empty, "--model-dir", app_model_dir)
    assert line == (
        f"{empty}: no images found in this folder (looked for {SUFFIXES} and other formats "
        "Pillow reads); add --recursive to look in subfolders"
    )


def test_folder_where_no_image_can_be_read(capfd, app_model_dir, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "b.png").write_bytes(b"not a png")
    output = tmp_path / "out.jsonl"
    code = main(["predict", str(folder), "--model-dir", str(app_model_dir), "-o", str(output)])
    _, err = capfd.readouterr()
    assert code == 1
    assert err.count("ferflow: skipped") == 2
    assert err.strip().splitlines()[-1] == "ferflow: error: none of the 2 images could be read"
    assert not output.exists()


def test_video_that_cannot_be_opened(capfd, app_model_dir, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    line = fails(capfd, "predict", bad, "--model-dir", app_model_dir)
    assert line == (
        f"{bad}: cannot open this video (corrupt, truncated, or a codec OpenCV's FFmpeg lacks); "
        "try converting it to H.264 .mp4"
    )


def test_live_on_a_camera_that_does_not_exist(capfd, app_model_dir):
    line = fails(capfd, "live", "57", "--no-window", "--model-dir", app_model_dir)
    assert line == (
        "camera 57: cannot open it (no such device, or in use by another program); "
        "list cameras with `ls /dev/video*` on Linux and pass that index"
    )


def test_live_on_a_missing_file(capfd, app_model_dir, tmp_path):
    line = fails(capfd, "live", tmp_path / "gone.mp4", "--no-window", "--model-dir", app_model_dir)
    assert line == f"{tmp_path / 'gone.mp4'}: no such video file"


def test_live_window_without_a_display(capfd, app_model_dir, face_video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    line = fails(capfd, "live", face_video, "--window", "--model-dir", app_model_dir)
    assert line == (
        "no display to open a window on (DISPLAY is not set); use --no-window to print "
        "JSON lines instead"
    )


def test_model_file_missing(capfd, png, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line == (
        f"{folder / 'emotion.onnx'}: model file not found; run the export stage "
        "(`dvc repro export`) or choose a model with --model-dir / --model"
    )


def test_model_folder_missing(capfd, png, tmp_path):
    line = fails(capfd, "predict", png, "--model-dir", tmp_path / "nowhere")
    assert line == (
        f"{tmp_path / 'nowhere'}: model folder not found; pass a folder holding emotion.onnx"
    )


def test_model_file_that_is_not_onnx(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    (folder / "emotion.onnx").write_bytes(b"these bytes are not a protobuf")
    line = fails(capfd, "predict", png, "--model-dir", folder)
    # The middle is ONNX Runtime's own words; ferflow's part is the file, the reason, the fix.
    assert line.startswith(f"{folder / 'emotion.onnx'}: not a valid ONNX model ([ONNXRuntimeError]")
    assert line.endswith("Protobuf parsing failed.); re-export it")


def test_labels_file_missing(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    (folder / "labels.json").unlink()
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line == (
        f"{folder / 'labels.json'}: labels file not found (the export stage writes it); "
        "pass the labels.json exported with this model (--labels)"
    )


def test_labels_that_do_not_match_the_output_size(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    spec = json.loads((folder / "labels.json").read_text())
    spec["labels"] = spec["labels"][:5]
    (folder / "labels.json").write_text(json.dumps(spec))
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line == (
        f"{folder / 'emotion.onnx'}: model outputs 7 scores per face but "
        f"{folder / 'labels.json'} lists 5 labels; use the labels.json exported with this model"
    )


def test_labels_that_do_not_match_the_input_size(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    spec = json.loads((folder / "labels.json").read_text())
    spec["input"]["height"] = spec["input"]["width"] = 64
    (folder / "labels.json").write_text(json.dumps(spec))
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line == (
        f"{folder / 'emotion.onnx'}: model input shape is (?, 48, 48, 1) but labels.json says "
        "NHWC (?, 64, 64, 1); use the labels.json exported with this model"
    )


def test_model_with_two_inputs(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 48, 48, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 48, 48, 1])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 48, 48, 1])
    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "g", [x, y], [z])
    onnx.save(helper.make_model(graph), folder / "emotion.onnx")
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line == (
        f"{folder / 'emotion.onnx'}: expected a model with one input (a batch of faces), "
        "got 2 inputs"
    )


def test_annotated_copy_may_not_overwrite_the_input(capfd, app_model_dir, png):
    line = fails(capfd, "predict", png, "--model-dir", app_model_dir, "--annotate", png.parent)
    assert line == (
        f"{png}: the annotated copy would overwrite the input; choose another --annotate folder"
    )
    assert (cv2.imread(str(png)) == 128).all()


def test_missing_cascade_names_the_fix(capfd, app_model_dir, png):
    line = fails(
        capfd, "predict", png, "--model-dir", app_model_dir, "--detector", "haar",
        "--cascade", "nope.xml",
    )  # fmt: skip
    assert line == (
        f"Haar cascade 'nope.xml' not found in OpenCV {cv2.__version__} (looked in "
        f"{cv2.data.haarcascades}); the 4.x wheels ship it and 5.0 does not: "
        "pip install 'opencv-python-headless>=4.10,<5'"
    )


def test_missing_cascade_in_an_opencv_without_cascades(monkeypatch):
    """opencv-python(-headless) 5.0 has no cv2.data.haarcascades at all."""
    import cv2

    monkeypatch.setattr(cv2, "data", None, raising=False)
    with pytest.raises(AppError, match=r"cv2.data: missing.*5.0 does not"):
        cascade_path()


def test_corrupt_cascade_file(capfd, app_model_dir, png, tmp_path):
    bad = tmp_path / "cascade.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    line = fails(
        capfd, "predict", png, "--model-dir", app_model_dir, "--detector", "haar", "--cascade", bad
    )
    assert line == f"{bad}: OpenCV could not load this Haar cascade (corrupt file?)"


def test_int8_asked_for_where_the_folder_has_none(capfd, app_model_dir, png):
    line = fails(capfd, "predict", png, "--model-dir", app_model_dir, "--precision", "int8")
    assert line == (
        f"{app_model_dir / 'emotion.int8.onnx'}: this model folder has no int8 model; use "
        "--precision float, or make one with the export stage (`dvc repro export`)"
    )


def test_detector_model_missing_from_the_install_names_the_fix(monkeypatch, tmp_path):
    """A wheel built without its package data: the error says so, not a bare ONNX failure."""
    import pipeline.app.detector as detector

    monkeypatch.setattr(detector.importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(AppError, match=r"centerface.onnx: the face detector's model is missing"):
        detector.centerface_path()


def test_corrupt_detector_model(tmp_path):
    from pipeline.app.detector import CenterFace

    bad = tmp_path / "centerface.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(AppError, match=r"centerface.onnx: not a valid CenterFace ONNX model"):
        CenterFace(model_path=bad)


def test_usage_errors_exit_with_2(capfd):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["predict", "x.jpg", "--smoothing", "1.5"])
    assert "expected a number in [0, 1)" in capfd.readouterr().err


def test_output_that_is_a_folder(capfd, app_model_dir, png, tmp_path):
    folder_in_the_way = tmp_path / "out.jsonl"
    folder_in_the_way.mkdir()
    line = fails(capfd, "predict", png, "--model-dir", app_model_dir, "-o", folder_in_the_way)
    # The path the user gave, not a temporary file's name; refused before any work.
    assert line == f"{folder_in_the_way}: is a folder; --output takes a file name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "out.jsonl"]
    assert list(folder_in_the_way.iterdir()) == []


def test_broken_pipe_is_not_a_traceback(app_model_dir, long_face_video):
    import subprocess
    import sys

    from pipeline.config import REPO_ROOT

    # `| head -1`: the reader closes the pipe after the first record.
    command = (
        f"{sys.executable} -m pipeline.cli predict {long_face_video} "
        f"--model-dir {app_model_dir} | head -1"
    )
    done = subprocess.run(
        command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert json.loads(done.stdout)["frame"] == 0
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert "ferflow predict:" not in done.stderr  # it stopped early: no summary of a full run


def save_graph(folder: Path, nodes, inputs, outputs, initializers=()) -> None:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, folder / "emotion.onnx")


def test_model_that_wants_bytes_not_floats(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [None, 48, 48, 1])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [None, 48, 48, 1])
    save_graph(folder, [helper.make_node("Identity", ["x"], ["y"])], [x], [y])
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line == (
        f"{folder / 'emotion.onnx'}: model input is tensor(uint8), expected tensor(float) "
        "(float32 pixels, see labels.json); re-export it"
    )


def test_model_that_fails_when_run(capfd, app_model_dir, png, tmp_path):
    folder = copy_model(app_model_dir, tmp_path / "model")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 48, 48, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 7])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [5, 7])  # 2304 values won't fit
    save_graph(folder, [helper.make_node("Reshape", ["x", "shape"], ["y"])], [x], [y], [shape])
    line = fails(capfd, "predict", png, "--model-dir", folder)
    assert line.startswith(f"{folder / 'emotion.onnx'}: the model fails on a test face (")
