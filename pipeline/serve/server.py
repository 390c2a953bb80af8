"""`ferflow serve`: the app on uvicorn, bound to this machine only unless asked otherwise."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.app.errors import AppError
from pipeline.app.image_header import UPLOAD_LIMITS, Limits
from pipeline.app.recognizer import Recognizer
from pipeline.serve.engine import Engine
from pipeline.serve.security import Security

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    smoothing: float = 0.6
    workers: int | None = None
    limits: Limits = UPLOAD_LIMITS
    log_level: str = "warning"
    security: Security = field(default_factory=Security)


def run_server(
    first: Recognizer,
    new_recognizer: Callable[[], Recognizer],
    options: ServeOptions,
    new_photo_recognizer: Callable[[], Recognizer] | None = None,
) -> None:
    """Serve until Ctrl-C. The socket is bound before the URL is printed, so the line on
    stderr (`ferflow serve: http://HOST:PORT/ ...`) means the server accepts connections,
    and `--port 0` prints the port the system chose."""
    import uvicorn

    from pipeline.serve.app import create_app

    sock = _bind(options.host, options.port)
    engine = Engine(
        first,
        new_recognizer,
        workers=options.workers,
        smoothing=options.smoothing,
        limits=options.limits,
        new_photo_recognizer=new_photo_recognizer,
    )
    app = create_app(engine, options.security)
    config = uvicorn.Config(
        app,
        http=header_deadline_protocol(options.security.header_timeout),
        log_level=options.log_level,
        access_log=False,
        # A bigger WebSocket message is refused by the protocol itself (close code 1009).
        ws_max_size=options.limits.max_bytes,
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"ferflow serve: http://{shown}:{port}/ (API docs at /docs; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    if not _is_loopback(host):
        print(
            f"ferflow serve: listening on {host}: anyone who can reach this machine can use "
            "it (there is no authentication)",
            file=sys.stderr,
            flush=True,
        )
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off (TCP_NODELAY)
        # only on sockets that say they are TCP. Without it every answer on a kept-alive
        # connection waited ~40 ms for the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening now, so a client that reads the printed URL and connects at once waits
        # in the backlog until uvicorn accepts, instead of being refused.
        sock.listen(2048)
    except OSError as e:
        raise AppError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def header_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol with a deadline on each request's header: a connection that
    has not sent a complete request header `seconds` after it opened (or after its first
    byte of a keep-alive request) is closed. uvicorn itself waits forever for a header."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._waiting():
                self._arm()
            super().data_received(data)
            if not self._waiting():
                self._disarm()

        def handle_websocket_upgrade(self, event) -> None:  # type: ignore[no-untyped-def]
            self._disarm()  # the WebSocket protocol takes the connection over
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _waiting(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self._waiting() and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline
