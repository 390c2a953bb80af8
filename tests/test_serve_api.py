"""`ferflow serve`'s HTTP API and WebSocket stream, in process (FastAPI's TestClient).

The engine is built exactly as `ferflow serve` builds it (its option parser and recognizer
factory), on the tiny exported model; faces come from a real photo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import (
    HEAVY,
    LIMITS,
    LOCAL,
    OURS_NOT_FOR_THE_APP,
    WS,
    camera_frame,
    jpeg,
    png_claiming,
    serve_engine,
)

from pipeline import cli
from pipeline.app.cli import recognizer
from pipeline.app.defaults import SERVE
from pipeline.app.emotion import load_model
from pipeline.app.model_info import model_info
from pipeline.app.records import frame_records
from pipeline.config import REPO_ROOT
from pipeline.serve.app import create_app
from pipeline.serve.engine import Engine
from pipeline.serve.schemas import Record


@pytest.fixture(scope="module")
def client(app_model_dir):
    with TestClient(create_app(serve_engine(app_model_dir)), base_url=LOCAL) as client:
        yield client


@pytest.fixture(scope="module")
def frame(astronaut_bgr) -> bytes:
    """A 320x240 camera frame with two faces, as the page sends it."""
    return jpeg(camera_frame(astronaut_bgr, width=320))


def post(client: TestClient, data: bytes, name: str = "photo.jpg"):
    return client.post("/api/predict", files={"image": (name, data, "image/jpeg")})


def assert_still_serving(client: TestClient, frame: bytes) -> None:
    assert client.get("/api/health").json()["status"] == "ok"
    assert post(client, frame).json()["records"][0]["faces"] == 2


# ---- the API ------------------------------------------------------------------------------


def test_predict_returns_the_records_of_ferflow_predict(client, app_model_dir, astronaut_bgr,
                                                        tmp_path, capfd):  # fmt: skip
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    # The same detection settings as the server's (serve looks for smaller faces).
    options = ["--min-face", str(SERVE.min_face), "--model-dir", str(app_model_dir), "-q"]
    assert cli.main(["predict", str(photo), *options]) == 0
    expected = [json.loads(line) for line in capfd.readouterr().out.splitlines()]

    response = client.post("/api/predict", files={"image": ("astronaut.png", photo.read_bytes())})

    assert response.status_code == 200
    body = response.json()
    assert (body["width"], body["height"]) == (512, 512)
    for record in expected:
        record["file"] = "astronaut.png"  # predict names the path, the API the upload
    assert body["records"] == expected
    assert expected[0]["faces"] == 1


def test_a_photo_without_faces_gets_the_faces_0_record(client):
    gray = np.full((120, 160, 3), 128, np.uint8)

    records = post(client, jpeg(gray), "wall.jpg").json()["records"]

    assert records == frame_records("wall.jpg", 0, None, [], ("unused",))


def test_record_schema_has_the_keys_of_the_record_format(client, frame):
    record = post(client, frame).json()["records"][0]

    assert set(Record.model_fields) == set(record)


def test_model_reports_labels_contract_and_recorded_accuracy(client, app_model_dir, tmp_path):
    info = client.get("/api/model").json()
    spec = json.loads((app_model_dir / "labels.json").read_text())

    assert info["labels"] == spec["labels"]
    assert info["input"] == spec["input"]
    assert info["name"] == app_model_dir.name  # labels.json names no model: its folder
    assert info["accuracy"] is None  # the tiny model has no evaluation on record

    # What the export stage records in labels.json is the model file's accuracy.
    recorded = tmp_path / "evaluated"
    shutil.copytree(app_model_dir, recorded)
    spec["accuracy"] = {
        "emotion.onnx": {"value": 0.25, "split": "test", "images": 70, "source": "m.json"},
        "other.onnx": {"value": 0.5, "split": "test", "images": 70, "source": "x.json"},
    }
    (recorded / "labels.json").write_text(json.dumps(spec))
    accuracy = model_info(load_model(recorded))["accuracy"]
    assert accuracy == {"value": 0.25, "split": "test", "images": 70, "source": "m.json"}


@pytest.mark.parametrize(
    ("precision", "source"),
    [("float", "reports/fer2013/metrics.json"), ("int8", "reports/fer2013/export.json")],
)
def test_shipped_model_accuracy_is_the_recorded_one(precision, source):
    info = model_info(load_model(REPO_ROOT / "models" / "fer2013", precision=precision))
    record = json.loads((REPO_ROOT / source).read_text())
    expected = record["test"]["accuracy"] if precision == "float" else record["int8"]["accuracy"]

    assert info["name"] == "ferflow-vgg-fer2013"
    assert info["accuracy"]["value"] == expected
    assert (info["accuracy"]["source"], info["accuracy"]["images"]) == (source, 3589)


def test_health_counts_work_done(client, frame):
    before = client.get("/api/health").json()["photos"]
    post(client, frame)

    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["photos"] == before + 1


def test_page_docs_and_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "/static/app.js" in page.text
    assert ".label-happy { --c: rgb(" in page.text  # the colours `predict --annotate` draws
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200
    scripts = [part.split('"')[1] for part in docs.text.split("src=")[1:]]
    assert scripts and all(src.startswith("/") for src in scripts)  # no CDN
    assert all(client.get(src).status_code == 200 for src in scripts)
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


# ---- bad input: a 4xx JSON error each, and the server keeps serving ----------------------


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        (b"", 400, "empty file"),
        (b"just some text, not a photo", 415, "not an image"),
        (
            png_claiming(30_000, 30_000),
            413,
            "30,000 x 30,000 = 900,000,000 pixels, more than the limit",
        ),
    ],
    ids=["empty", "not-an-image", "decompression-bomb"],
)
def test_bad_uploads_get_a_json_error(client, frame, data, status, says):
    response = post(client, data, "bad.jpg")

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert says in response.json()["error"]
    assert response.json()["error"].startswith("bad.jpg: ")
    assert_still_serving(client, frame)


def test_a_truncated_upload_gets_400(client, frame, astronaut_bgr):
    whole = jpeg(astronaut_bgr)

    response = post(client, whole[: len(whole) // 2])

    assert response.status_code == 400
    assert "truncated or corrupt" in response.json()["error"]
    assert_still_serving(client, frame)


def test_an_oversize_upload_gets_413_before_it_is_read(client, frame):
    too_big = b"\xff\xd8" + bytes(LIMITS.max_bytes + 200_000)

    response = post(client, too_big)

    assert response.status_code == 413
    assert response.json() == {"error": "upload over the 1.0 MB limit"}
    # A file just over the limit, within the room left for multipart framing: still 413.
    response = post(client, b"\xff\xd8" + bytes(LIMITS.max_bytes))
    assert response.status_code == 413
    assert "over the 1.0 MB limit" in response.json()["error"]
    assert_still_serving(client, frame)


def test_requests_that_miss_the_image_get_json_errors(client):
    missing = client.post("/api/predict", data={"photo": "x"})
    assert missing.status_code == 422
    assert missing.json() == {
        "error": "missing the multipart field 'image' (the photo: JPEG, PNG, WebP or BMP)"
    }
    assert client.get("/api/predict").status_code == 405
    assert client.get("/api/nothing-here").json() == {"error": "Not Found"}


# ---- the WebSocket stream -----------------------------------------------------------------


def test_stream_answers_each_frame_with_tracked_records(client, frame):
    with client.websocket_connect(WS) as ws:
        answers = []
        for _ in range(3):
            ws.send_bytes(frame)
            answers.append(ws.receive_json())

    assert [a["type"] for a in answers] == ["result"] * 3
    assert [a["frame"] for a in answers] == [0, 1, 2]
    assert [a["analysed"] for a in answers] == [1, 2, 3]
    assert all((a["width"], a["height"]) == (320, 240) for a in answers)
    for answer in answers:
        records = answer["records"]
        assert [r["faces"] for r in records] == [2, 2]
        assert [r["file"] for r in records] == ["stream", "stream"]
        assert [r["track"] for r in records] == [0, 1]  # the same two faces, tracked
        assert records[0]["time"] is not None
    # Identical frames: the smoothed probabilities are those of a single photo.
    photo = post(client, frame).json()["records"]
    for streamed, still in zip(answers[-1]["records"], photo, strict=True):
        assert streamed["box"] == still["box"]
        for label, p in still["probabilities"].items():
            assert streamed["probabilities"][label] == pytest.approx(p, abs=1e-4)


class Gated:
    """A recognizer that says when a frame's analysis began (`entered`) and ends it only once
    `gate` opens: the test decides what arrives meanwhile, whatever the machine's speed."""

    def __init__(self, recognizer, entered: threading.Event, gate: threading.Event) -> None:
        self.recognizer, self.entered, self.gate = recognizer, entered, gate
        self.model = recognizer.model

    def start_video(self, smoothing: float) -> None:
        self.recognizer.start_video(smoothing)

    def __call__(self, frame):
        self.entered.set()
        assert self.gate.wait(timeout=60), "the test never opened the gate"
        return self.recognizer(frame)


@pytest.mark.timeout(120)
def test_stream_drops_older_frames_instead_of_queueing(app_model_dir, frame):
    args = cli.build_parser().parse_args(["serve", "--model-dir", str(app_model_dir)])
    first, entered, gate = recognizer(args), threading.Event(), threading.Event()
    engine = Engine(first, lambda: Gated(recognizer(args, first.model), entered, gate), workers=1)
    with (
        TestClient(create_app(engine), base_url=LOCAL) as client,
        client.websocket_connect(WS) as ws,
    ):
        ws.send_bytes(frame)
        assert entered.wait(timeout=60)  # frame 0 is being analysed...
        for _ in range(19):
            ws.send_bytes(frame)
        # ...and the reader answers this text message only after every frame sent before
        # it has been put in the slot: once the error is back, all 19 have arrived.
        ws.send_text("all sent")
        assert ws.receive_json()["type"] == "error"
        gate.set()
        answers = [ws.receive_json(), ws.receive_json()]

    # Frame 0 was being analysed; of the 19 that came meanwhile only the newest waited.
    assert [a["frame"] for a in answers] == [0, 19]
    assert [a["analysed"] for a in answers] == [1, 2]
    assert answers[-1]["dropped"] == 18  # ...and the others were counted as dropped


@pytest.mark.parametrize(
    ("message", "status", "says"),
    [
        ({"text": '{"frame": "not binary"}'}, 400, "expected a binary message"),
        ({"bytes": b"garbage, not a frame"}, 415, "frame 0: not an image"),
        ({"bytes": b""}, 400, "frame 0: empty file"),
        (
            {"bytes": png_claiming(40_000, 40_000)},
            413,
            "frame 0: PNG: the image is 40,000 x 40,000",
        ),
    ],
    ids=["text", "not-an-image", "empty", "bomb"],
)
def test_bad_stream_messages_get_an_error_and_the_stream_goes_on(client, frame, message, status,
                                                                 says):  # fmt: skip
    with client.websocket_connect(WS) as ws:
        ws.send(dict(type="websocket.receive", **message))
        error = ws.receive_json()
        ws.send_bytes(frame)
        result = ws.receive_json()

    assert error["type"] == "error"
    assert error["status"] == status
    assert says in error["error"]
    assert result["type"] == "result"
    assert result["records"][0]["faces"] == 2


def test_a_truncated_stream_frame_gets_an_error(client, frame):
    with client.websocket_connect(WS) as ws:
        ws.send_bytes(frame[: len(frame) // 2])
        error = ws.receive_json()
        ws.send_bytes(frame)
        result = ws.receive_json()

    assert (error["type"], error["frame"], error["status"]) == ("error", 0, 400)
    assert "truncated or corrupt" in error["error"]
    assert (result["type"], result["frame"]) == ("result", 1)


def test_a_client_leaving_mid_frame_leaves_the_others_served(client, frame, astronaut_bgr):
    big = jpeg(camera_frame(astronaut_bgr, width=1280))
    with client.websocket_connect(WS) as staying:
        for _ in range(3):
            with client.websocket_connect(WS) as leaving:
                leaving.send_bytes(big)  # and gone before the answer
        staying.send_bytes(frame)
        assert staying.receive_json()["type"] == "result"
    # Every stream closed itself: none is left open.
    deadline = time.monotonic() + 10
    while client.get("/api/health").json()["streams"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/api/health").json()["streams"] == 0
    assert_still_serving(client, frame)


# ---- the light install ----------------------------------------------------------------------


def test_serving_imports_nothing_heavy():
    check = (
        "import json, sys\n"
        "from pipeline.serve.app import create_app\n"
        "import pipeline.serve.server, uvicorn\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | set(sys.modules))))\n"
    )
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout  # fmt: skip
    modules = set(json.loads(out))
    assert not modules & set(HEAVY)
    assert not modules & set(OURS_NOT_FOR_THE_APP)


def test_photo_min_face_applies_to_photos_only(app_model_dir, frame):
    engine = serve_engine(app_model_dir, "--photo-min-face", "300")  # larger than any face here
    with TestClient(create_app(engine), base_url=LOCAL) as client:
        assert post(client, frame).json()["records"][0]["faces"] == 0
        with client.websocket_connect(WS) as ws:
            ws.send_bytes(frame)
            assert ws.receive_json()["records"][0]["faces"] == 2
