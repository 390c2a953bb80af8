"""`ferflow serve`'s options and what it runs: recognizers from the app's options, who the
server answers (`security`), and the server itself (`server`, imported only when it starts).
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.app.cli import model_options, positive_number, recognizer, smoothing_option
from pipeline.app.errors import AppError


def add_parser(commands: Any) -> None:
    """Register `serve` on the `ferflow` subcommands."""
    from pipeline.app.defaults import PREDICT, SERVE
    from pipeline.app.image_header import UPLOAD_LIMITS
    from pipeline.serve.security import Security

    serve = commands.add_parser(
        "serve",
        help="a web page (camera, photos) and an HTTP API for the model",
        description="Serve the page at / (your camera's faces and emotions live, or a dropped "
        "photo), the API under /api (docs at /docs) and the camera stream at /ws. Listens on "
        "this machine only unless --host says otherwise.",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 opens it to the network (no authentication!) "
        "(default: 127.0.0.1)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)"
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable); by default only the "
        "localhost names and --host's own (for 0.0.0.0: this machine's name and addresses)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages of this origin (e.g. http://localhost:3000) post photos and open "
        "streams (repeatable); by default only the server's own page may",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        default=Security.max_streams,
        metavar="N",
        help="camera streams served at once; more are refused with a reason the page shows "
        "(each holds ~75 MB) (default: %(default)s)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=positive_number,
        default=UPLOAD_LIMITS.max_bytes / (1024 * 1024),
        metavar="MB",
        help="largest photo or frame accepted, in encoded bytes (default: %(default)g)",
    )
    serve.add_argument(
        "--max-megapixels",
        type=positive_number,
        default=UPLOAD_LIMITS.max_pixels / 1e6,
        metavar="MP",
        help="largest image accepted, read from its header before decoding; each decoded "
        "image takes 3 bytes a pixel (default: %(default)g)",
    )
    smoothing_option(serve, SERVE)
    model_options(serve, SERVE)
    serve.add_argument(
        "--photo-min-face",
        type=int,
        default=None,
        metavar="PX",
        help="smallest face looked for in photos posted to /api/predict (default: --min-face); "
        f"{PREDICT.min_face}, `ferflow predict`'s default, makes a 640x480 photo about 3x "
        "cheaper to analyse (docs/serve.md)",
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.app.image_header import Limits
    from pipeline.serve.server import ServeOptions, run_server

    first, new_stream, new_photo = serve_recognizers(args)
    limits = Limits(round(args.max_upload_mb * 1024 * 1024), round(args.max_megapixels * 1e6))
    security = serve_security(args)
    options = ServeOptions(args.host, args.port, args.smoothing, limits=limits, security=security)
    run_server(first, new_stream, options, new_photo)
    return 0


def serve_recognizers(args: argparse.Namespace):
    """`ferflow serve`'s first photo recognizer and the factories of the streams' and the
    other photo workers': one model for all, a detector each. Photos may look for larger
    faces than streams (`--photo-min-face`), which shrinks them further before detection."""
    photo_min_face = args.photo_min_face or args.min_face
    photo_args = argparse.Namespace(**{**vars(args), "min_face": photo_min_face})
    first = recognizer(photo_args)
    return (
        first,
        lambda: recognizer(args, first.model),
        lambda: recognizer(photo_args, first.model),
    )


def serve_security(args: argparse.Namespace):  # -> pipeline.serve.security.Security
    """Who `ferflow serve` answers, from its options (AppError for a malformed origin)."""
    from pipeline.serve.security import Security, listening_hosts, origin_of

    if args.max_streams < 1:
        raise AppError(f"--max-streams must be at least 1, got {args.max_streams}")
    try:
        origins = tuple(origin_of(o) for o in args.allow_origin)
    except ValueError as e:
        raise AppError(f"--allow-origin: {e}") from None
    hosts = listening_hosts(args.host, args.allow_host)
    return Security(hosts=hosts, origins=origins, max_streams=args.max_streams)
