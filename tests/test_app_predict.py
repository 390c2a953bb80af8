"""`ferflow predict` on a real photo, a folder and a video, with a model the pipeline exported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from pipeline.app.recognizer import DEFAULT_MARGIN
from pipeline.app.tracking import iou
from pipeline.cli import main
from pipeline.config import LABELS

#: Where the astronaut's face is in skimage's 512x512 photo (x, y, w, h), by eye: forehead to
#: chin, ear to ear. A detection must overlap it well.
ASTRONAUT_FACE = (175, 60, 100, 105)
#: The face in the `face_video` fixture is ~47 px, below the default smallest face (64 px).
SMALL_FACES = ("--min-face", "40")
RECORD_KEYS = {
    "file",
    "frame",
    "time",
    "faces",
    "face",
    "track",
    "box",
    "label",
    "score",
    "probabilities",
}


def run(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, list[dict], str]:
    """Run the CLI in this process; returns exit status, JSON records on stdout, stderr."""
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def overlap(a: list[int] | tuple[int, ...], b: tuple[int, ...]) -> float:
    """The app's own IoU (tests/test_app_tracking.py checks it on known boxes)."""
    return float(iou(a, b)[0, 0])


@pytest.fixture
def astronaut_png(tmp_path: Path, astronaut_bgr: np.ndarray) -> Path:
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut_bgr)
    return path


def test_finds_the_astronaut_and_writes_a_full_record(capfd, app_model_dir, astronaut_png):
    code, records, err = run(capfd, "predict", astronaut_png, "--model-dir", app_model_dir)

    assert code == 0
    assert len(records) == 1
    record = records[0]
    assert set(record) == RECORD_KEYS
    assert record["file"] == str(astronaut_png)
    assert (record["frame"], record["faces"], record["face"]) == (0, 1, 0)
    assert record["time"] is None and record["track"] is None
    assert overlap(record["box"], ASTRONAUT_FACE) > 0.6
    assert list(record["probabilities"]) == list(LABELS)
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    best = max(record["probabilities"], key=record["probabilities"].get)
    assert record["label"] == best
    assert record["score"] == record["probabilities"][best]
    assert "1 face" in err and "1 frame" in err  # the summary


def test_face_is_prepared_exactly_as_labels_json_says(capfd, app_model_dir, astronaut_png):
    """Crop with the margin, grayscale, area-resize to 48x48, raw pixels: same probabilities."""
    _, (record,), _ = run(capfd, "predict", astronaut_png, "--model-dir", app_model_dir)

    x, y, w, h = record["box"]
    d = round(w * DEFAULT_MARGIN)
    gray = cv2.cvtColor(cv2.imread(str(astronaut_png)), cv2.COLOR_BGR2GRAY)
    face = cv2.resize(
        gray[y - d : y + h + d, x - d : x + w + d], (48, 48), interpolation=cv2.INTER_AREA
    )
    session = ort.InferenceSession(str(app_model_dir / "emotion.onnx"))
    name = session.get_inputs()[0].name
    (expected,) = session.run(None, {name: face[None, :, :, None].astype(np.float32)})[0]

    got = np.array([record["probabilities"][label] for label in LABELS])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_an_image_without_faces_gives_one_record_with_zero_faces(capfd, app_model_dir, tmp_path):
    path = tmp_path / "gradient.jpg"
    cv2.imwrite(str(path), np.tile(np.arange(256, dtype=np.uint8), (200, 1)))

    code, records, _ = run(capfd, "predict", path, "--model-dir", app_model_dir)

    assert code == 0
    assert records == [
        {
            "file": str(path),
            "frame": 0,
            "time": None,
            "faces": 0,
            "face": None,
            "track": None,
            "box": None,
            "label": None,
            "score": None,
            "probabilities": None,
        }
    ]


def test_annotated_copy_has_the_box_drawn(capfd, app_model_dir, astronaut_png, tmp_path):
    out_dir = tmp_path / "annotated"
    code, (record,), _ = run(
        capfd, "predict", astronaut_png, "--model-dir", app_model_dir, "--annotate", out_dir
    )

    assert code == 0
    original = cv2.imread(str(astronaut_png))
    annotated = cv2.imread(str(out_dir / "astronaut.png"))
    assert annotated.shape == original.shape
    changed = np.any(annotated != original, axis=2)
    x, y, w, h = record["box"]
    # The box outline changed pixels on the face's left edge; far from the face nothing changed.
    assert changed[y + h // 2, x]
    assert not changed[400:, :100].any()


def test_folder_run_skips_bad_files_and_reports_them(capfd, app_model_dir, astronaut_png, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(astronaut_png, folder / "a.png")
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    cv2.imwrite(str(folder / "c.jpg"), np.full((120, 160, 3), 200, np.uint8))
    (folder / "notes.txt").write_text("not an image, not looked at")
    output = tmp_path / "out.jsonl"

    code, stdout_records, err = run(
        capfd, "predict", folder, "--model-dir", app_model_dir, "--output", output
    )

    assert code == 0
    assert stdout_records == []  # --output takes the records
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [Path(r["file"]).name for r in records] == ["a.png", "c.jpg"]
    assert [r["faces"] for r in records] == [1, 0]
    assert "skipped" in err and "b_corrupt.jpg" in err and "not a readable image" in err
    assert "skipped 1 unreadable file" in err
    assert "Traceback" not in err


def test_folder_run_is_recursive_only_when_asked(capfd, app_model_dir, astronaut_png, tmp_path):
    folder = tmp_path / "nested"
    (folder / "inner").mkdir(parents=True)
    shutil.copy(astronaut_png, folder / "inner" / "a.png")
    shutil.copy(astronaut_png, folder / "top.png")

    _, flat, _ = run(capfd, "predict", folder, "--model-dir", app_model_dir)
    _, deep, _ = run(capfd, "predict", folder, "-r", "--model-dir", app_model_dir)

    assert [Path(r["file"]).name for r in flat] == ["top.png"]
    assert [Path(r["file"]).name for r in deep] == ["a.png", "top.png"]


def test_video_gets_per_frame_records_tracks_and_an_annotated_copy(
    capfd, app_model_dir, face_video, tmp_path
):
    out_dir = tmp_path / "annotated"
    code, records, err = run(
        capfd, "predict", face_video, "--model-dir", app_model_dir, "--annotate", out_dir,
        *SMALL_FACES,
    )  # fmt: skip

    assert code == 0
    assert sorted({r["frame"] for r in records}) == list(range(12))
    assert records[0]["time"] == 0.0
    assert [r["time"] for r in records if r["frame"] == 3][0] == pytest.approx(3 / 15, abs=1e-3)
    # The face slides right 4 px per frame: found in every frame, always the same track.
    # (The cascade also fires now and then on the suit's collar; those get other tracks.)
    face_records = []
    for frame in range(12):
        x, y, w, h = ASTRONAUT_FACE
        scale = 240 / 512  # the photo is shrunk to 240 px in the video
        expected = (
            round(x * scale) + 4 * frame,
            round(y * scale),
            round(w * scale),
            round(h * scale),
        )
        (match,) = [r for r in records if r["frame"] == frame and overlap(r["box"], expected) > 0.5]
        face_records.append(match)
    assert len({r["track"] for r in face_records}) == 1
    assert "12 frames" in err

    copy = cv2.VideoCapture(str(out_dir / "face.mp4"))
    assert copy.isOpened()
    assert copy.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0)
    assert int(copy.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert (copy.get(cv2.CAP_PROP_FRAME_WIDTH), copy.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    copy.release()
    assert not list(out_dir.glob(".*"))  # no temporary file left behind


def test_smoothing_makes_video_probabilities_steadier(capfd, app_model_dir, face_video):
    def probabilities(smoothing: str) -> np.ndarray:
        _, records, _ = run(
            capfd, "predict", face_video, "--model-dir", app_model_dir, "--smoothing", smoothing,
            *SMALL_FACES,
        )  # fmt: skip
        face_track = records[0]["track"]  # the face, leftmost in the first frame
        return np.array(
            [[r["probabilities"][k] for k in LABELS] for r in records if r["track"] == face_track]
        )

    raw, smooth = probabilities("0"), probabilities("0.8")

    # The first frame starts the average; later frames move less from frame to frame.
    np.testing.assert_allclose(smooth[0], raw[0], atol=1e-4)
    assert np.abs(np.diff(smooth, axis=0)).sum() < np.abs(np.diff(raw, axis=0)).sum()
    # Exactly the exponential moving average of the raw probabilities.
    expected = raw[0]
    for row in raw[1:]:
        expected = 0.8 * expected + 0.2 * row
    np.testing.assert_allclose(smooth[-1], expected, atol=1e-3)


def test_output_file_is_replaced_only_by_a_complete_run(
    capfd, app_model_dir, astronaut_png, tmp_path
):
    """The run fails on its second input, after the first one's records were written."""
    output = tmp_path / "out.jsonl"
    output.write_text("earlier results\n")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # exists, so it is accepted up front

    code, records, err = run(
        capfd, "predict", astronaut_png, corrupt, "--model-dir", app_model_dir, "-o", output
    )

    assert code == 1 and records == []
    assert err.strip().splitlines()[-1].startswith(f"ferflow: error: {corrupt}: not a readable")
    assert output.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "astronaut.png", "corrupt.png", "out.jsonl"
    ]  # fmt: skip

    # The same run without the bad file replaces the output whole.
    code, _, _ = run(capfd, "predict", astronaut_png, "--model-dir", app_model_dir, "-o", output)
    assert code == 0
    assert [json.loads(line)["file"] for line in output.read_text().splitlines()] == [
        str(astronaut_png)
    ]


def test_detect_every_reuses_the_detectors_boxes_in_between(capfd, app_model_dir, face_video):
    _, records, _ = run(
        capfd, "predict", face_video, "--model-dir", app_model_dir, "--detect-every", "3",
        *SMALL_FACES,
    )  # fmt: skip

    boxes = {}
    for r in records:
        boxes.setdefault(r["frame"], []).append(r["box"])
    for start in (0, 3, 6, 9):  # the detector ran on these frames only
        assert boxes[start] == boxes[start + 1] == boxes[start + 2]
    assert boxes[0] != boxes[3]  # the face moved 12 px meanwhile


def test_shipped_model_is_the_default_and_sees_the_astronaut_smile(capfd, astronaut_png):
    """The real FER2013 model in models/fer2013 (committed), through the whole app."""
    code, (record,), _ = run(capfd, "predict", astronaut_png)

    assert code == 0
    assert overlap(record["box"], ASTRONAUT_FACE) > 0.6
    assert record["label"] == "happy"
    assert record["score"] > 0.9
