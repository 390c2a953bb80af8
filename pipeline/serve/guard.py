"""The middlewares that enforce `pipeline.serve.security`'s policy (its docstring says why
each limit): host names, origins, body read time, and the security headers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Methods that change nothing and so need no origin check.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OriginCheck:
    """403 for a POST (or other unsafe method) or a WebSocket from a foreign page."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = ()) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            kind == "http" and scope["method"] in SAFE_METHODS
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        own = f"{scheme}://{headers.get('host', '')}".lower()
        if origin is None or origin.lower() == own or origin.lower() in self.origins:
            await self.app(scope, receive, send)
            return
        reason = (
            f"origin {origin[:100]!r} may not use this server: only its own page and the "
            "origins named with `ferflow serve --allow-origin` may"
        )
        if kind == "websocket":
            # Closing before accepting: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
        else:
            await JSONResponse({"error": reason}, 403)(scope, receive, send)


class BodyTimeout:
    """408 when a request body takes longer than `seconds` to arrive (a trickled upload)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds

        async def timed() -> Message:
            from starlette.exceptions import HTTPException

            left = deadline - asyncio.get_running_loop().time()
            try:
                return await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:
                # Raised where the app reads the body: the app's handler answers it as JSON.
                raise HTTPException(
                    408, f"the request body did not arrive within {self.seconds:g} s"
                ) from None

        await self.app(scope, timed, send)


def content_security_policy(page: str) -> str:
    """The policy for `/` and `/static`: own scripts and connections only, the page's inline
    `<style>` blocks by hash (label colours), no framing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in re.findall(r"<style>(.*?)</style>", page, flags=re.DOTALL)
    )
    return (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        f"style-src 'self' {hashes}; img-src 'self' blob: data:; media-src 'self' blob: "
        "mediastream:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ).replace("  ", " ")


#: The API docs (`/docs`, `/redoc`) start their bundled scripts from inline ones.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; "
    "frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds the policy and the hardening headers to every HTTP response."""

    def __init__(self, app: ASGIApp, policy: str, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.policy = policy
        self.docs_paths = tuple(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(self.docs_paths) if self.docs_paths else False
        policy = DOCS_POLICY if docs else self.policy

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
            await send(message)

        await self.app(scope, receive, with_headers)
