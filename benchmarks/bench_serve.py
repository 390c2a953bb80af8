"""How much can `ferflow serve` take: N API clients and M camera streams at once.

Starts a real `ferflow serve` (uvicorn) with the chosen model, then for each scenario runs
N HTTP clients, each posting a 640x480 JPEG with three real faces (the astronaut photo shipped
with scikit-image: 210, 189 and 147 px tall) to /api/predict in a closed loop (recall: the
share of those faces the answers found), and M WebSocket clients that
behave like the page: 320x240 JPEG frames sent at 30 fps whatever the answers (the server
analyses the newest and drops the others). Reported per scenario: API requests/s and
p50/p95 latency, frames analysed per second per stream (slowest and mean), p50/p95 stream
latency (an analysed frame sent -> its answer), the share of frames the server dropped for
newer ones, and the server's CPU use (100% = one core) and CPU time per answer (a photo or a
stream frame analysed): the steadier figure when other programs share the machine.

    python benchmarks/bench_serve.py                       # shipped model, default scenarios
    python benchmarks/bench_serve.py --scenarios 8:0,0:4 --seconds 30
    python benchmarks/bench_serve.py --scenarios 1:0,4:0   # photo API latency, 1 and 4 clients

Clients and server share the machine: client CPU is small (encoded frames are made once),
but on 2 cores it is not nothing. The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx2 as httpx
import websockets

REPO = Path(__file__).resolve().parent.parent
STREAM_FPS = 30.0  # as the page sends (SEND_FPS in pipeline/serve/static/app.js)


#: Faces in the benchmark's frame.
FACES = 3


def test_frame(width: int) -> bytes:
    """Three real faces over a photo, 4:3, as JPEG (quality 85, like the page's frames)."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    head = photo[20:230, 125:325]  # her head, hair and collar: 200 x 210
    frame[200:410, 10:210] = head
    frame[230:419, 440:620] = cv2.flip(cv2.resize(head, (180, 189)), 1)
    third = cv2.cvtColor(cv2.cvtColor(head, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    frame[20:167, 250:390] = cv2.resize(third, (140, 147), interpolation=cv2.INTER_AREA)
    if width != 640:
        frame = cv2.resize(frame, (width, width * 3 // 4), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


@dataclass
class Results:
    api_latencies: list[float] = field(default_factory=list)
    api_faces: list[int] = field(default_factory=list)
    api_errors: int = 0
    stream_latencies: list[float] = field(default_factory=list)
    stream_answers: list[int] = field(default_factory=list)
    stream_sent: list[int] = field(default_factory=list)
    stream_dropped: list[int] = field(default_factory=list)


async def api_client(url: str, photo: bytes, until: float, results: Results) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        while time.perf_counter() < until:
            start = time.perf_counter()
            response = await client.post(url + "/api/predict", files={"image": ("f.jpg", photo)})
            if response.status_code == 200:
                results.api_latencies.append(time.perf_counter() - start)
                results.api_faces.append(response.json()["records"][0]["faces"])
            else:
                results.api_errors += 1


async def stream_client(url: str, frame: bytes, until: float, results: Results) -> None:
    sent: dict[int, float] = {}
    answers = dropped = 0
    async with websockets.connect(url.replace("http://", "ws://") + "/ws") as ws:

        async def read() -> None:
            nonlocal answers, dropped
            async for message in ws:
                answer = json.loads(message)
                if answer["type"] == "result":
                    results.stream_latencies.append(time.perf_counter() - sent[answer["frame"]])
                    answers += 1
                    dropped = answer["dropped"]

        reader = asyncio.create_task(read())
        next_index, next_time = 0, time.perf_counter()
        while time.perf_counter() < until:
            await asyncio.sleep(max(0.0, next_time - time.perf_counter()))
            sent[next_index] = time.perf_counter()
            await ws.send(frame)  # waits only while the socket's buffer is full, as the page
            next_index += 1
            next_time = max(next_time + 1 / STREAM_FPS, time.perf_counter())
        reader.cancel()
    results.stream_answers.append(answers)
    results.stream_sent.append(next_index)
    results.stream_dropped.append(dropped)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_scenario(url: str, pid: int, n: int, m: int, seconds: float) -> dict:
    photo, frame = test_frame(640), test_frame(320)
    # Warm-up: first connections, first frames through each thread.
    warm = Results()
    until = time.perf_counter() + 2.0
    await asyncio.gather(
        *[api_client(url, photo, until, warm) for _ in range(n)],
        *[stream_client(url, frame, until, warm) for _ in range(m)],
    )
    results = Results()
    cpu, start = cpu_seconds(pid), time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *[api_client(url, photo, until, results) for _ in range(n)],
        *[stream_client(url, frame, until, results) for _ in range(m)],
    )
    wall = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu
    answers = len(results.api_latencies) + sum(results.stream_answers)
    row = {
        "N": n,
        "M": m,
        "seconds": round(wall, 1),
        "server_cpu": cpu / wall,
        "cpu_ms_per_answer": 1000 * cpu / max(answers, 1),
    }
    if n:
        lat = sorted(results.api_latencies)
        row |= {
            "api_rps": len(lat) / wall,
            "api_p50_ms": 1000 * statistics.median(lat),
            "api_p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "api_errors": results.api_errors,
            "api_recall": sum(min(f, FACES) for f in results.api_faces)
            / max(FACES * len(results.api_faces), 1),
        }
    if m:
        lat = sorted(results.stream_latencies)
        per_stream = [a / wall for a in results.stream_answers]
        row |= {
            "fps_min": min(per_stream),
            "fps_mean": statistics.mean(per_stream),
            "ws_p50_ms": 1000 * statistics.median(lat),
            "ws_p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "dropped": sum(results.stream_dropped) / max(sum(results.stream_sent), 1),
        }
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| N API clients | M streams | API req/s | API p50 / p95 ms | API recall | frames/s per "
        "stream (min / mean) | stream p50 / p95 ms | dropped | server CPU | CPU-ms per answer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        api = (
            (
                f"{r['api_rps']:.1f}",
                f"{r['api_p50_ms']:.0f} / {r['api_p95_ms']:.0f}",
                f"{r['api_recall']:.0%}",
            )
            if r["N"]
            else ("", "", "")
        )
        ws = (
            (
                f"{r['fps_min']:.1f} / {r['fps_mean']:.1f}",
                f"{r['ws_p50_ms']:.0f} / {r['ws_p95_ms']:.0f}",
                f"{r['dropped']:.0%}",
            )
            if r["M"]
            else ("", "", "")
        )
        lines.append(
            f"| {r['N']} | {r['M']} | {api[0]} | {api[1]} | {api[2]} | {ws[0]} | {ws[1]} | {ws[2]} "
            f"| {r['server_cpu']:.0%} | {r['cpu_ms_per_answer']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/fer2013")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--serve-options",
        default="",
        metavar="OPTIONS",
        help="more `ferflow serve` options, e.g. '--photo-min-face 64'",
    )
    parser.add_argument(
        "--scenarios",
        default="1:0,4:0,0:1,0:2,0:4,4:2",
        help="comma-separated N:M pairs (API clients:streams)",
    )
    args = parser.parse_args()
    scenarios = [tuple(int(x) for x in pair.split(":")) for pair in args.scenarios.split(",")]

    command = [sys.executable, "-m", "pipeline.cli", "serve", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--model-dir", args.model_dir, *shlex.split(args.serve_options)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stderr.readline()
        found = re.search(r"http://\S+:\d+", line)
        if found is None:
            raise SystemExit(f"ferflow serve did not start: {line}{server.stderr.read()}")
        url = found.group(0)
        load_before = os.getloadavg()
        rows = []
        for n, m in scenarios:
            row = asyncio.run(run_scenario(url, server.pid, n, m, args.seconds))
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)  # fmt: skip
            rows.append(row)
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print()
    print(
        f"ferflow serve {args.serve_options or '(defaults)'}, model {args.model_dir}, "
        f"{args.seconds:g} s per scenario; "
        f"machine: {machine()}; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
