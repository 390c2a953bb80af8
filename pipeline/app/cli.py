"""The `ferflow` command: `predict`, `live`, `serve`, and `report` / `params` / `plots-setup`
(pipeline extra: pipeline.report.cli, pipeline.params, pipeline.report.plots_page).

Errors the user can fix (a missing file, a bad model, no camera) print one line,
`ferflow: error: ...`, and exit with status 1; usage errors exit with 2 (argparse).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.errors import AppError

if TYPE_CHECKING:
    from pipeline.app.defaults import AppDefaults

PROG = "ferflow"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _pixel_count(text: str) -> int:
    """A pixel count: `400000000`, `4e8` or `400M` (megapixels)."""
    try:
        value = float(text[:-1]) * 1e6 if text[-1:] in "mM" and text[:-1] else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a pixel count such as 400000000, 4e8 or 400M, got {text}"
        ) from None
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a positive pixel count, got {text}")
    return int(value)


def _positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _model_options(parser: argparse.ArgumentParser, defaults: AppDefaults) -> None:
    from pipeline.app.detector import DEFAULT_CASCADE, DETECTORS
    from pipeline.app.emotion import PRECISIONS
    from pipeline.app.recognizer import DEFAULT_MARGIN

    group = parser.add_argument_group("model")
    group.add_argument(
        "--model-dir",
        type=Path,
        metavar="DIR",
        help="folder holding emotion.onnx (and optionally emotion.int8.onnx) and labels.json "
        "(default: the model shipped with ferflow, else the export stage's folder, models/)",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=PRECISIONS[0],
        help="which file of the model folder to run: int8 (emotion.int8.onnx), float "
        "(emotion.onnx), or auto: int8 where the folder has it, else float (default: auto)",
    )
    group.add_argument(
        "--model", type=Path, metavar="FILE", help="the ONNX file (overrides --model-dir)"
    )
    group.add_argument(
        "--labels", type=Path, metavar="FILE", help="its labels.json (default: beside the model)"
    )
    group.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="ONNX Runtime threads for each network (default: one per core; predict on "
        "folders and videos: 1, with --workers frames analysed at once)",
    )
    group.add_argument(
        "--margin",
        type=_fraction,
        default=DEFAULT_MARGIN,
        metavar="F",
        help="extra margin on each side of a face box before cropping, as a fraction of its "
        f"side (default: {DEFAULT_MARGIN}: boxes already have FER2013's framing)",
    )

    group = parser.add_argument_group("face detection")
    group.add_argument(
        "--detector",
        choices=DETECTORS,
        default=defaults.detector,
        help=f"centerface (the CenterFace network) or haar (OpenCV's Haar cascade; weaker) "
        f"(default: {defaults.detector})",
    )
    group.add_argument(
        "--min-face",
        type=_positive_int,
        default=defaults.min_face,
        metavar="PIXELS",
        help="smallest face to look for, in frame pixels; frames are shrunk for detection as "
        "far as this allows, so smaller is slower (default: %(default)s)",
    )
    group.add_argument(
        "--detect-size",
        type=_positive_int,
        default=defaults.max_size,
        metavar="PIXELS",
        help="the detector's input is at most this long on its longer side, which caps its "
        "cost on large frames (default: %(default)s)",
    )
    group.add_argument(
        "--threshold",
        type=_fraction,
        default=defaults.threshold,
        metavar="F",
        help="CenterFace score a face needs; lower finds more faces and more false ones "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--cascade",
        default=DEFAULT_CASCADE,
        metavar="NAME",
        help="with --detector haar: a cascade file name in cv2.data.haarcascades or a path "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--detect-every",
        type=_positive_int,
        default=defaults.detect_every,
        metavar="N",
        help="in videos, run the face detector on every N-th frame only; the frames between "
        "reuse its boxes, except after a scene cut (default: %(default)s)",
    )


def _smoothing_option(parser: argparse.ArgumentParser, defaults: AppDefaults) -> None:
    parser.add_argument(
        "--smoothing",
        type=_fraction,
        default=defaults.smoothing,
        metavar="S",
        help="weight of a tracked face's past probabilities in video (exponential moving "
        "average along one face, reset at scene cuts; 0 = none, default: %(default)s)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ferflow")
    except PackageNotFoundError:
        return "(not installed)"


class _VersionAction(argparse.Action):
    """`--version`, reading the installed metadata only when asked (importlib.metadata costs
    0.15 s of start-up, which every `ferflow` command would otherwise pay)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.exit(message=f"{parser.prog} {_version()}\n")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.app.defaults import LIVE, PREDICT, SERVE

    parser = argparse.ArgumentParser(
        prog=PROG, description="Facial emotion recognition with an exported ferflow model."
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="faces and emotions in images, folders of images and videos",
        description="Print one JSON line per face per frame (a frame without faces gets one "
        "line with faces: 0).",
    )
    predict.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="image, folder or video"
    )
    predict.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write JSON lines to FILE, not stdout"
    )
    predict.add_argument(
        "--annotate",
        type=Path,
        metavar="DIR",
        help="write copies with boxes and labels drawn into DIR (videos as .mp4, same fps)",
    )
    predict.add_argument(
        "-r", "--recursive", action="store_true", help="look for images in subfolders too"
    )
    from pipeline.app.media import DEFAULT_MAX_PIXELS

    predict.add_argument(
        "--max-pixels",
        type=_pixel_count,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse images whose header claims more pixels, before decoding them "
        f"(default: {DEFAULT_MAX_PIXELS / 1e6:.0f}M; e.g. 400M or 4e8)",
    )
    predict.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars and no summary"
    )
    predict.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="frames analysed at once, each on its own thread, in folders and videos; the "
        "records are the same for any N (default: one per core, divided by --threads)",
    )
    _smoothing_option(predict, PREDICT)
    _model_options(predict, PREDICT)

    live = commands.add_parser(
        "live",
        help="a camera, stream or video file in real time",
        description="Analyse a camera (index), stream (URL) or video file as it plays. Shows a "
        "window when a display exists (q or Esc quits), else prints JSON lines; Ctrl-C quits.",
    )
    live.add_argument(
        "source", nargs="?", default="0", help="camera index, stream URL or video file (default: 0)"
    )
    window = live.add_mutually_exclusive_group()
    window.add_argument(
        "--no-window",
        dest="window",
        action="store_false",
        default=None,
        help="print JSON lines even when a display exists",
    )
    window.add_argument(
        "--window", dest="window", action="store_true", help="require a window (error if none)"
    )
    live.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write JSON lines to FILE, not stdout"
    )
    live.add_argument(
        "--no-skip",
        dest="skip",
        action="store_false",
        help="analyse every frame even when behind (default: skip to the newest frame)",
    )
    live.add_argument(
        "--max-frames", type=_positive_int, metavar="N", help="stop after analysing N frames"
    )
    live.add_argument("-q", "--quiet", action="store_true", help="no fps lines and no summary")
    _smoothing_option(live, LIVE)
    _model_options(live, LIVE)

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
        type=_positive_number,
        default=UPLOAD_LIMITS.max_bytes / (1024 * 1024),
        metavar="MB",
        help="largest photo or frame accepted, in encoded bytes (default: %(default)g)",
    )
    serve.add_argument(
        "--max-megapixels",
        type=_positive_number,
        default=UPLOAD_LIMITS.max_pixels / 1e6,
        metavar="MP",
        help="largest image accepted, read from its header before decoding; each decoded "
        "image takes 3 bytes a pixel (default: %(default)g)",
    )
    _smoothing_option(serve, SERVE)
    _model_options(serve, SERVE)
    serve.add_argument(
        "--photo-min-face",
        type=int,
        default=None,
        metavar="PX",
        help="smallest face looked for in photos posted to /api/predict (default: --min-face); "
        f"{PREDICT.min_face}, `ferflow predict`'s default, makes a 640x480 photo about 3x "
        "cheaper to analyse (docs/serve.md)",
    )

    from pipeline.batch.cli import add_parser as add_batch

    add_batch(commands, lambda parser: _model_options(parser, PREDICT))

    commands.add_parser(
        "report",
        help="pull-request report: metrics, params and plots diff as Markdown",
        add_help=False,
    )
    commands.add_parser(
        "params",
        help="params.yaml's schema: every key, its type, value and meaning",
        add_help=False,
    )
    commands.add_parser(
        "plots-setup",
        help="let `dvc plots show` work offline (writes .dvc/plots_page.html; once per clone)",
        add_help=False,
    )
    return parser


def _recognizer(args: argparse.Namespace, model=None):  # -> Recognizer, imported lazily
    """A recognizer as the options say; `model` (an EmotionModel) is shared instead of loaded."""
    from pipeline.app.detector import make_detector
    from pipeline.app.emotion import load_model
    from pipeline.app.recognizer import Recognizer

    if model is None:
        model = load_model(
            args.model_dir, args.model, args.labels, threads=args.threads, precision=args.precision
        )
    detector = make_detector(
        args.detector,
        min_face=args.min_face,
        max_size=args.detect_size,
        threshold=args.threshold,
        threads=args.threads,
        cascade=args.cascade,
    )
    return Recognizer(model, detector, margin=args.margin, detect_every=args.detect_every)


def _predict(args: argparse.Namespace) -> int:
    from pipeline.app.media import input_kind
    from pipeline.app.ordered import cores
    from pipeline.app.predict import Options, run_predict

    # A missing input fails before the model is loaded.
    kinds = [input_kind(path) for path in args.paths]
    # Several frames at once, one thread each, beat one frame at a time on every core: a
    # small network splits poorly across threads, and decoding overlaps the networks. A
    # single photo has nothing to overlap: its networks get every core instead.
    one_photo = kinds == ["image"]
    workers = args.workers or (1 if one_photo else max(1, cores() // (args.threads or 1)))
    if args.threads is None and workers > 1:
        args.threads = 1
    options = Options(
        output=args.output,
        annotate_dir=args.annotate,
        smoothing=args.smoothing,
        recursive=args.recursive,
        progress=False if args.quiet else None,
        max_pixels=args.max_pixels,
        workers=workers,
    )
    summary = run_predict(args.paths, _recognizer(args), options)
    if not args.quiet:
        print(f"{PROG} predict: {summary.text()}", file=sys.stderr)
    return 0


def _live(args: argparse.Namespace) -> int:
    from pipeline.app.live import LiveOptions, run_live

    options = LiveOptions(
        window=args.window,
        output=args.output,
        smoothing=args.smoothing,
        skip=args.skip,
        max_frames=args.max_frames,
        status_every=0 if args.quiet else 2.0,
    )
    summary = run_live(args.source, _recognizer(args), options)
    if not args.quiet:
        print(f"{PROG} {summary.text()}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
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
    first = _recognizer(photo_args)
    return (
        first,
        lambda: _recognizer(args, first.model),
        lambda: _recognizer(photo_args, first.model),
    )


def serve_security(args: argparse.Namespace):  # -> pipeline.serve.guard.Security
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


def _report(argv: Sequence[str]) -> int:
    try:
        report_cli = importlib.import_module("pipeline.report.cli")
    except ImportError as e:
        raise AppError(f"`{PROG} report` is not available in this install ({e})") from None
    return int(report_cli.main(list(argv)) or 0)


def _params(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} params",
        description="Print params.yaml's schema: every key, its type or choices, its value "
        "in FILE and its meaning (the `params` stage checks FILE against it).",
    )
    parser.add_argument("file", nargs="?", default="params.yaml", help="default: params.yaml")
    args = parser.parse_args(argv)
    try:
        schema = importlib.import_module("pipeline.params")
    except ImportError as e:
        raise AppError(f"`{PROG} params` needs the pipeline install (.[pipeline]): {e}") from None
    print(schema.format_schema_table(args.file))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ferflow` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # `report` and `params` have their own parsers and dependencies (pipeline extra).
        if argv[:1] == ["report"]:
            return _report(argv[1:])
        if argv[:1] == ["params"]:
            return _params(argv[1:])
        if argv[:1] == ["plots-setup"]:  # its own parser too; it explains a missing package
            from pipeline.report.plots_page import main as plots_setup

            return plots_setup(argv[1:])
        args = build_parser().parse_args(argv)
        from pipeline.app.media import quiet_opencv

        quiet_opencv()
        from pipeline.batch.cli import run as _batch

        commands = {"predict": _predict, "live": _live, "serve": _serve, "batch": _batch}
        return commands[args.command](args)
    except AppError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (`| head`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # e.g. --output in a folder we may not write to
        where = f"{e.filename}: " if e.filename else ""
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        hint = "; free space there and rerun (nothing half-written was kept)" if full else ""
        print(f"{PROG}: error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
