"""`/ws`: a camera's frames in, their faces out, always the newest frame and never a queue.

The client sends each frame as one binary message (JPEG, PNG or WebP bytes). One task
receives messages as fast as they come and keeps only the newest frame; another analyses
that frame on a worker thread and answers with one JSON text message:

    {"type": "result", "frame": 12, "width": 320, "height": 240, "records": [...],
     "analysed": 9, "dropped": 3, "ms": 41.2}

`frame` counts the client's frames from 0 (dropped ones included), so a client knows which
of its frames an answer belongs to; `records` are `ferflow predict`'s records (tracked and
smoothed across the stream). A frame that arrives while another is analysed replaces the
waiting one, which is counted as dropped: a slow client or a busy CPU makes answers rarer,
never later. A bad message gets `{"type": "error", "frame": N or null, "status": 4xx,
"error": "..."}` and the stream goes on.

Past the server's stream cap (`--max-streams`) the connection is accepted and closed at once
with code 1013 ("try again later") and a reason the page shows. A closed stream's memory is
handed back to the system (`release_memory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pipeline.serve.engine import Engine, release_memory
from pipeline.serve.security import Security
from pipeline.serve.uploads import FORMATS, ImageRejected

log = logging.getLogger("ferflow.serve")


class NewestFrame:
    """A one-frame slot: `put` replaces what waits there, `take` waits for a frame or the end."""

    def __init__(self) -> None:
        self._frame: tuple[int, float, bytes] | None = None
        self._ready = asyncio.Event()
        self.closed = False
        self.received = 0
        self.dropped = 0

    def put(self, data: bytes) -> None:
        if self._frame is not None:
            self.dropped += 1
        self._frame = (self.received, time.perf_counter(), data)
        self.received += 1
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> tuple[int, float, bytes] | None:
        while self._frame is None and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            return None
        frame, self._frame = self._frame, None
        return frame


async def stream(websocket: WebSocket) -> None:
    engine: Engine = websocket.app.state.engine
    security: Security = websocket.app.state.security
    await websocket.accept()
    if engine.streams >= security.max_streams:
        await websocket.close(code=STREAMS_FULL, reason=streams_full(security.max_streams))
        return
    slot = NewestFrame()
    sending = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        # The reader answers bad messages while the analyser answers frames: one at a time.
        async with sending:
            if slot.closed or websocket.client_state != WebSocketState.CONNECTED:
                return
            try:
                await websocket.send_json(message)
            except (WebSocketDisconnect, OSError, RuntimeError):
                slot.close()  # the client left mid-answer: stop, quietly

    async def receive() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    text = (message.get("text") or "")[:40]
                    await send(_error(None, 400, f"expected a binary message holding one "
                                      f"{FORMATS} frame, got text {text!r}"))  # fmt: skip
                else:
                    slot.put(data)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            slot.close()

    engine.streams += 1
    reader = asyncio.create_task(receive())
    try:
        session = await engine.open_stream()
        analysed = 0
        while (frame := await slot.take()) is not None:
            index, received, data = frame
            try:
                analysis = await session.analyse(data, index, received)
            except ImageRejected as e:
                await send(_error(index, e.status, str(e)))
                continue
            except Exception:  # a bug, not the client's fault: log it, keep the stream
                log.exception("analysing frame %d of a stream failed", index)
                await send(_error(index, 500, f"frame {index}: internal error (see server log)"))
                continue
            analysed += 1
            await send(
                {
                    "type": "result",
                    "frame": index,
                    "width": analysis.width,
                    "height": analysis.height,
                    "records": analysis.records,
                    "analysed": analysed,
                    "dropped": slot.dropped,
                    "ms": round(analysis.seconds * 1000, 1),
                }
            )
    finally:
        engine.streams -= 1
        slot.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        session = None  # the recognizer goes now, so its memory can be handed back
        await asyncio.to_thread(release_memory)


#: WebSocket close code 1013, "try again later": the server is at its stream cap.
STREAMS_FULL = 1013


def streams_full(cap: int) -> str:
    """The close reason (at most 123 bytes) the page shows."""
    return (
        f"server busy: it serves at most {cap} camera streams at once; close another tab or retry"
    )


def _error(frame: int | None, status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "frame": frame, "status": status, "error": message}
