"""`ferflow predict` and `ferflow live`: their options and what they run; the model and
face-detection options every command that runs the recognizer shares (`serve`, `batch`).

The `ferflow` command itself, which dispatches to these, is `pipeline.cli`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.app.defaults import AppDefaults

PROG = "ferflow"


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def pixel_count(text: str) -> int:
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


def positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def model_options(parser: argparse.ArgumentParser, defaults: AppDefaults) -> None:
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
        type=positive_int,
        metavar="N",
        help="ONNX Runtime threads for each network (default: one per core; predict on "
        "folders and videos: 1, with --workers frames analysed at once)",
    )
    group.add_argument(
        "--margin",
        type=fraction,
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
        type=positive_int,
        default=defaults.min_face,
        metavar="PIXELS",
        help="smallest face to look for, in frame pixels; frames are shrunk for detection as "
        "far as this allows, so smaller is slower (default: %(default)s)",
    )
    group.add_argument(
        "--detect-size",
        type=positive_int,
        default=defaults.max_size,
        metavar="PIXELS",
        help="the detector's input is at most this long on its longer side, which caps its "
        "cost on large frames (default: %(default)s)",
    )
    group.add_argument(
        "--threshold",
        type=fraction,
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
        type=positive_int,
        default=defaults.detect_every,
        metavar="N",
        help="in videos, run the face detector on every N-th frame only; the frames between "
        "reuse its boxes, except after a scene cut (default: %(default)s)",
    )


def smoothing_option(parser: argparse.ArgumentParser, defaults: AppDefaults) -> None:
    parser.add_argument(
        "--smoothing",
        type=fraction,
        default=defaults.smoothing,
        metavar="S",
        help="weight of a tracked face's past probabilities in video (exponential moving "
        "average along one face, reset at scene cuts; 0 = none, default: %(default)s)",
    )


def add_predict(commands: Any) -> None:
    """Register `predict` on the `ferflow` subcommands."""
    from pipeline.app.defaults import PREDICT

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
        type=pixel_count,
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
        type=positive_int,
        metavar="N",
        help="frames analysed at once, each on its own thread, in folders and videos; the "
        "records are the same for any N (default: one per core, divided by --threads)",
    )
    smoothing_option(predict, PREDICT)
    model_options(predict, PREDICT)


def add_live(commands: Any) -> None:
    """Register `live` on the `ferflow` subcommands."""
    from pipeline.app.defaults import LIVE

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
        "--max-frames", type=positive_int, metavar="N", help="stop after analysing N frames"
    )
    live.add_argument("-q", "--quiet", action="store_true", help="no fps lines and no summary")
    smoothing_option(live, LIVE)
    model_options(live, LIVE)


def recognizer(args: argparse.Namespace, model=None):  # -> Recognizer, imported lazily
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


def run_predict_command(args: argparse.Namespace) -> int:
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
    summary = run_predict(args.paths, recognizer(args), options)
    if not args.quiet:
        print(f"{PROG} predict: {summary.text()}", file=sys.stderr)
    return 0


def run_live_command(args: argparse.Namespace) -> int:
    from pipeline.app.live import LiveOptions, run_live

    options = LiveOptions(
        window=args.window,
        output=args.output,
        smoothing=args.smoothing,
        skip=args.skip,
        max_frames=args.max_frames,
        status_every=0 if args.quiet else 2.0,
    )
    summary = run_live(args.source, recognizer(args), options)
    if not args.quiet:
        print(f"{PROG} {summary.text()}", file=sys.stderr)
    return 0
