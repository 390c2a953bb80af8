"""`ferflow serve` as a real process on uvicorn: clients that misbehave at the socket level."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import httpx2 as httpx
import pytest
from helpers import ServerProcess, camera_frame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pipeline import cli
from pipeline.config import REPO_ROOT


@pytest.fixture(scope="module")
def server(shipped_model_server):
    return shipped_model_server


@pytest.fixture(scope="module")
def frame(astronaut_bgr) -> bytes:
    return cv2.imencode(".jpg", camera_frame(astronaut_bgr, width=320))[1].tobytes()


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


def assert_healthy(server, frame: bytes) -> None:
    response = httpx.post(server.url + "/api/predict", files={"image": ("f.jpg", frame)})
    assert response.status_code == 200
    assert response.json()["records"][0]["faces"] == 2
    log = "".join(server.log)
    assert "Traceback" not in log and "ERROR" not in log, log


def test_listens_on_localhost_only_by_default(server):
    assert urlsplit(server.url).hostname == "127.0.0.1"
    assert cli.build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_upload_cut_off_mid_body_leaves_the_server_serving(server, frame):
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port)) as raw:
        raw.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
            b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + frame[:1000]
        )  # and the client is gone
    assert_healthy(server, frame)


def test_stream_client_gone_mid_frame_leaves_the_others_served(server, frame, astronaut_bgr):
    big = cv2.imencode(".jpg", camera_frame(astronaut_bgr, width=1280))[1].tobytes()
    with connect(ws_url(server)) as staying:
        for _ in range(3):
            with connect(ws_url(server)) as leaving:
                leaving.send(big)
                leaving.socket.shutdown(socket.SHUT_RDWR)  # gone, no closing handshake
        staying.send(frame)
        answer = staying.recv(timeout=30)
    assert '"type": "result"' in answer or '"type":"result"' in answer
    assert_healthy(server, frame)


def test_an_oversize_stream_message_is_refused_by_the_protocol(server, frame):
    with connect(ws_url(server), max_size=None) as ws:
        ws.send(bytes(21 * 1024 * 1024))  # over the 20 MB default
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1009  # "message too big"
    assert_healthy(server, frame)


def test_a_busy_port_is_a_one_line_error(app_model_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["serve", "--model-dir", str(app_model_dir), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"ferflow: error: cannot listen on 127.0.0.1:{port} (")
    assert err.count("\n") == 1


def test_the_python_client_in_the_docs_works(server, frame, tmp_path):
    text = (REPO_ROOT / "docs" / "serve.md").read_text(encoding="utf-8")
    block = text.split("A client in Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "face.jpg").write_bytes(frame)
    code = block.replace("ws://127.0.0.1:8000", ws_url(server).removesuffix("/ws"))
    assert code != block  # the docs still use the address replaced here

    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [(frame, track) for frame, track, _, _ in lines] == [
        ("0", "0"), ("0", "1"), ("1", "0"), ("1", "1"), ("2", "0"), ("2", "1")
    ]  # fmt: skip


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_memory_is_handed_back_when_streams_close(app_model_dir, astronaut_bgr):
    """Each stream holds a recognizer of its own; once they close, the server's memory is
    back near where it was, not held by the allocator."""
    # Large frames: each stream's detector then works at its full 1280-px input.
    frame = cv2.imencode(".jpg", camera_frame(astronaut_bgr, width=1280))[1].tobytes()
    server = ServerProcess("--model-dir", str(app_model_dir))
    try:
        url = ws_url(server)

        def streams(count: int) -> None:
            with contextlib.ExitStack() as stack:
                sockets = [stack.enter_context(connect(url)) for _ in range(count)]
                for ws in sockets:
                    ws.send(frame)
                for ws in sockets:
                    assert '"result"' in ws.recv(timeout=60)

        streams(1)  # libraries and the first arena in place
        time.sleep(1)
        before = rss_mb(server.process.pid)
        streams(8)
        during = rss_mb(server.process.pid)  # closed, maybe not all released yet
        after = during
        for _ in range(50):  # a closed stream's memory is released off the event loop
            time.sleep(0.2)
            after = rss_mb(server.process.pid)
            if after - before < 40:
                break
    finally:
        server.stop()
    print(f"server RSS: {before:.0f} MB, {during:.0f} MB after 8 streams, then {after:.0f} MB")
    assert after - before < 40


def test_connections_to_the_listening_socket_get_no_nagle_delay():
    """asyncio turns Nagle's algorithm off only on sockets that say they are TCP; with it on,
    each answer on a kept-alive connection waited ~40 ms for the client's delayed ACK."""
    import asyncio

    from pipeline.serve.server import _bind

    async def accepted_nodelay() -> int:
        listening = _bind("127.0.0.1", 0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader, writer) -> None:
            option = writer.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            seen.set_result(option)
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
            option = await asyncio.wait_for(seen, 10)
            writer.close()
        return option

    assert asyncio.run(accepted_nodelay()) != 0
