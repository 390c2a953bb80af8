"""`ferflow serve` left running: foreign hosts and origins, too many streams, trickled
requests, duplicate parts and the model it reports (in process, FastAPI's TestClient, and
uvicorn's protocol on a real socket)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from helpers import LOCAL, WS, jpeg, serve_engine
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from pipeline import cli
from pipeline.serve import cli as serve_cli
from pipeline.serve.app import create_app
from pipeline.serve.security import LOCAL_HOSTS, Security, listening_hosts, origin_of
from pipeline.serve.server import header_deadline_protocol
from pipeline.serve.stream import STREAMS_FULL

FOREIGN = "http://evil.example"


@pytest.fixture(scope="module")
def engine(app_model_dir):
    return serve_engine(app_model_dir)


@pytest.fixture(scope="module")
def client(engine):
    security = Security(origins=("http://localhost:3000",), max_streams=2)
    with TestClient(create_app(engine, security), base_url=LOCAL) as client:
        yield client


@pytest.fixture(scope="module")
def frame(astronaut_bgr) -> bytes:
    return jpeg(astronaut_bgr)


def post(client, frame, **headers):
    return client.post("/api/predict", files={"image": ("a.jpg", frame)}, headers=headers)


# ---- host names --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "192.168.1.20"])
def test_a_foreign_host_name_is_refused(client, frame, host):
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: refused."""
    assert client.get("/api/health", headers={"host": host}).status_code == 400
    assert post(client, frame, host=host).status_code == 400
    with pytest.raises(WebSocketDenialResponse) as denied:
        client.websocket_connect(f"ws://{host}/ws").__enter__()
    assert denied.value.status_code == 400


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000"])
def test_localhost_names_are_answered(client, host):
    assert client.get("/api/health", headers={"host": host}).status_code == 200


def test_hosts_listened_for_follow_the_bound_address():
    assert listening_hosts("127.0.0.1") == LOCAL_HOSTS
    assert listening_hosts("192.168.1.20")[-1] == "192.168.1.20"
    assert listening_hosts("::1", ["My.Host"]) == (*LOCAL_HOSTS, "my.host")
    everywhere = listening_hosts("0.0.0.0")
    assert socket.gethostname().lower() in everywhere and "0.0.0.0" not in everywhere


# ---- origins -----------------------------------------------------------------------------


def test_a_foreign_page_cannot_post_or_stream(client, frame):
    response = post(client, frame, origin=FOREIGN)
    assert response.status_code == 403
    assert "origin 'http://evil.example' may not use this server" in response.json()["error"]
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(WS, headers={"origin": FOREIGN}) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1008


def test_the_own_page_a_named_origin_and_non_browsers_may(client, frame):
    for headers in ({"origin": LOCAL}, {"origin": "http://localhost:3000"}, {}):
        assert post(client, frame, **headers).status_code == 200, headers
        with client.websocket_connect(WS, headers=headers) as ws:
            ws.send_bytes(frame)
            assert ws.receive_json()["type"] == "result"
    # Reading needs no origin check: a GET from anywhere is answered (and changes nothing).
    assert client.get("/api/health", headers={"origin": FOREIGN}).status_code == 200


def test_allow_origin_is_checked_and_normalised():
    assert origin_of("HTTP://LocalHost:3000/") == "http://localhost:3000"
    with pytest.raises(ValueError, match="not an origin"):
        origin_of("http://localhost:3000/page")
    args = cli.build_parser().parse_args(["serve", "--allow-origin", "localhost:3000"])
    with pytest.raises(cli.AppError, match="--allow-origin: 'localhost:3000' is not an origin"):
        serve_cli.serve_security(args)


# ---- streams -----------------------------------------------------------------------------


def test_streams_over_the_cap_are_closed_with_a_reason(client, frame):
    with client.websocket_connect(WS) as first, client.websocket_connect(WS) as second:
        for ws in (first, second):
            ws.send_bytes(frame)
            assert ws.receive_json()["type"] == "result"
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(WS) as third:
            third.receive_json()
        assert closed.value.code == STREAMS_FULL
        assert closed.value.reason.startswith(
            "server busy: it serves at most 2 camera streams at once"
        )
    # Once they are closed, a new stream is served again.
    with client.websocket_connect(WS) as again:
        again.send_bytes(frame)
        assert again.receive_json()["type"] == "result"


# ---- requests ----------------------------------------------------------------------------


def test_two_image_parts_are_refused(client, frame):
    files = [("image", ("a.jpg", frame)), ("image", ("b.jpg", frame))]
    response = client.post("/api/predict", files=files)
    assert response.status_code == 400
    assert response.json()["error"].startswith("expected exactly one 'image' part, got 2")


def test_a_body_that_does_not_arrive_in_time_gets_408(engine):
    """A client that sends its header and then trickles (here: nothing) is answered 408."""
    app = create_app(engine, Security(body_timeout=0.3))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/predict",
        "raw_path": b"/api/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"multipart/form-data; boundary=b"),
            (b"content-length", b"1000"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(3600)  # the body never comes

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))

    assert sent[0]["status"] == 408
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body == {"error": "the request body did not arrive within 0.3 s"}


@pytest.mark.timeout(60)
def test_a_trickled_header_is_cut_off():
    """uvicorn waits forever for a request header; the server's protocol does not."""
    import uvicorn

    async def app(scope, receive, send):
        pass

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(app, http=header_deadline_protocol(0.5), log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with socket.create_connection(sock.getsockname(), timeout=20) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # and no blank line
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                for _ in range(200):  # 20 s of header lines, unless the server cuts it off
                    time.sleep(0.1)
                    raw.sendall(b"X-Slow: 1\r\n")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ---- headers and what the server reports ---------------------------------------------------


def test_security_headers_on_the_page_and_on_refusals(client, frame):
    for response in (
        client.get("/"),
        client.get("/static/app.js"),
        post(client, frame, origin=FOREIGN),
    ):
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "unsafe-inline" not in client.get("/").headers["content-security-policy"]
    # The API docs start their bundled scripts inline: they get a policy that allows that.
    docs = client.get("/docs")
    assert docs.status_code == 200 and "'unsafe-inline'" in docs.headers["content-security-policy"]


def test_api_model_reports_the_weights_of_the_file_served(app_model_dir, tmp_path):
    folder = shutil.copytree(app_model_dir, tmp_path / "model")
    spec = json.loads((folder / "labels.json").read_text())
    spec["weights"] = "float16"
    (folder / "labels.json").write_text(json.dumps(spec))
    shutil.copy(folder / "emotion.onnx", folder / "emotion.int8.onnx")  # stands in for int8

    served = {}
    for precision in ("float", "int8"):
        engine = serve_engine(folder, "--precision", precision)
        with TestClient(create_app(engine), base_url=LOCAL) as client:
            info = client.get("/api/model").json()
        served[precision] = (info["file"], info["weights"])

    assert served == {
        "float": ("emotion.onnx", "float16"),
        "int8": ("emotion.int8.onnx", "int8"),
    }
