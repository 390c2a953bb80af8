"""The ASGI app: the page at `/`, the HTTP API under `/api`, the camera stream at `/ws`.

Every error is a JSON object `{"error": "..."}` with a 4xx status (a bug answers 500 in the
same shape): never an HTML page or a traceback. The OpenAPI docs at `/docs` and `/redoc`
load their scripts from ferflow's own server too (the `fastapi-offline` package ships them).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.app.model_info import model_info
from pipeline.app.version import installed_version
from pipeline.serve.engine import Engine
from pipeline.serve.guard import BodyTimeout, OriginCheck, SecurityHeaders, content_security_policy
from pipeline.serve.schemas import Error, Health, ModelInfo, Prediction
from pipeline.serve.security import Security
from pipeline.serve.stream import stream
from pipeline.serve.uploads import FORMATS, ImageRejected

STATIC = Path(__file__).parent / "static"
#: Room for the multipart framing around the file itself, within the upload limit.
MULTIPART_SLACK = 64 * 1024

#: FastAPIOffline's API docs pages (its defaults), whose pages start their scripts inline.
DOCS_PATHS = ("/docs", "/redoc")
_ERRORS = {status: {"model": Error} for status in (400, 403, 408, 413, 415, 422)}


def create_app(engine: Engine, security: Security | None = None) -> FastAPI:
    """The app around a ready engine; the engine's threads stop when the app shuts down.
    `security`: who may call it and for how long (`pipeline.serve.guard`)."""
    security = security or Security()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.close()

    app = FastAPIOffline(
        title="ferflow",
        summary="Faces and their emotions in photos and camera streams (FER2013 labels).",
        version=installed_version(),
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.security = security
    info = model_info(engine.model)
    limit = engine.limits.max_bytes

    index = page_html(engine.labels)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(index)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post(
        "/api/predict",
        response_model=Prediction,
        responses=_ERRORS,
        summary="Faces and emotions in one photo",
    )
    async def predict(
        request: Request,
        image: Annotated[UploadFile, File(description=f"the photo: {FORMATS}")],
    ) -> Prediction | JSONResponse:
        """Records in `ferflow predict`'s format: one per face, or one with `faces: 0`."""
        parts = len((await request.form()).getlist("image"))  # parsed once, cached
        if parts != 1:
            return JSONResponse(
                {"error": f"expected exactly one 'image' part, got {parts}: one photo a request"},
                400,
            )
        # The file is spooled by now; read no more than the limit allows.
        data = await image.read(limit + 1)
        name = (image.filename or "upload")[:200]
        try:
            analysis = await engine.predict(data, name)
        except ImageRejected as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        return Prediction(width=analysis.width, height=analysis.height, records=analysis.records)

    @app.get("/api/health", response_model=Health, summary="Is the server up")
    async def health() -> Health:
        return Health(
            status="ok",
            model=info["name"],
            uptime_s=round(time.time() - engine.started, 1),
            photos=engine.photos,
            frames=engine.frames,
            streams=engine.streams,
        )

    @app.get("/api/model", response_model=ModelInfo, summary="The model and its recorded accuracy")
    async def model() -> ModelInfo:
        return ModelInfo(**info)

    app.add_api_websocket_route("/ws", stream)
    app.add_middleware(BodyLimit, max_bytes=limit + MULTIPART_SLACK)
    app.add_middleware(BodyTimeout, seconds=security.body_timeout)
    app.add_middleware(OriginCheck, origins=security.origins)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(security.hosts))
    # Outermost, so that refusals carry the headers too.
    app.add_middleware(
        SecurityHeaders,
        policy=content_security_policy(index),
        docs_paths=DOCS_PATHS,
    )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 413:
            message = f"upload over the {limit / (1024 * 1024):.1f} MB limit"
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, 422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises it after this answer, so uvicorn logs the traceback.
        return JSONResponse({"error": "internal error (see the server's log)"}, 500)

    return app


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413 before it is all received: at once
    when its Content-Length says so (nothing is read), else when the bytes so far pass it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        received = int(length) if length.isdigit() else 0

        async def counted() -> Message:
            # Raised where the app reads the body, so FastAPI hands it to the app's error
            # handler and the 413 is JSON like every other error.
            nonlocal received
            if received > self.max_bytes:
                raise HTTPException(413)
            message = await receive()
            if not length.isdigit():
                received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def page_html(labels: tuple[str, ...]) -> str:
    """index.html with each label's colour: the ones `ferflow predict --annotate` draws."""
    from pipeline.app.draw import label_colors

    rules = []
    for label, (b, g, r) in label_colors(labels).items():
        rules.append(f".label-{css_name(label)} {{ --c: rgb({r} {g} {b}); }}")
    style = "<style>\n" + "\n".join(rules) + "\n</style>"
    return (STATIC / "index.html").read_text(encoding="utf-8").replace("<!--label-colors-->", style)


def css_name(label: str) -> str:
    """A label as a CSS class name, spelt as the page spells it (`labelClass` in app.js)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", label)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if where == "image" and error.get("type") == "missing":
            parts.append(f"missing the multipart field 'image' (the photo: {FORMATS})")
        else:
            parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
