"""`ferflow batch SOURCE... --out DIR`: the command over plan, store and run (Ray: the `ray` extra).

Every check that can refuse the run (sources, model, output folder, cluster) runs before the
first file is written; each failure is one line and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.app.cli import model_options, positive_int
from pipeline.app.errors import AppError
from pipeline.batch.plan import CHUNK_FRAMES, IMAGES_PER_UNIT

INSTALL_HINT = "pip install 'ferflow[ray]'"


def add_parser(commands: Any) -> None:
    """Register `batch` on the `ferflow` subcommands, with `predict`'s model and detector
    options."""
    from pipeline.app.defaults import PREDICT

    batch = commands.add_parser(
        "batch",
        help="images and videos to Parquet, on Ray (ferflow[ray])",
        description="Faces and emotions of every image and video frame, one Parquet row per "
        "face, on a local Ray with this machine's cores or on a Ray cluster. Rerun it to "
        "resume: complete sources are skipped. --threads sets each worker's CPUs "
        "(default: 1).",
    )
    batch.add_argument(
        "sources", nargs="+", type=Path, metavar="SOURCE", help="image, folder or video"
    )
    batch.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="the Parquet dataset's folder"
    )
    batch.add_argument(
        "-r", "--recursive", action="store_true", help="look in subfolders of folders too"
    )
    batch.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="join this Ray cluster (default: RAY_ADDRESS, else start a local Ray)",
    )
    batch.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="recognizer actors (default: the cluster's CPUs / --threads)",
    )
    batch.add_argument(
        "--chunk-frames",
        type=positive_int,
        default=CHUNK_FRAMES,
        metavar="N",
        help="video frames per task, so one long video spreads over every worker "
        "(default: %(default)s)",
    )
    batch.add_argument(
        "--images-per-task",
        type=positive_int,
        default=IMAGES_PER_UNIT,
        metavar="N",
        help="images per task and per output file (default: %(default)s)",
    )
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no summary")
    model_options(batch, PREDICT)


def run(args: argparse.Namespace) -> int:
    try:
        import ray
    except ImportError:
        raise AppError(f"`ferflow batch` needs Ray, an optional extra: {INSTALL_HINT}") from None
    from pipeline.batch import run as engine
    from pipeline.batch import store
    from pipeline.batch.plan import find_files, plan_units

    if args.detect_every != 1:
        raise AppError(
            "--detect-every must be 1 for `ferflow batch`: every frame is analysed on its "
            "own, so a video's frame ranges can go to different workers"
        )
    files = find_files(args.sources, recursive=args.recursive)
    model, detector, manifest = _model(args)
    store.check_out(args.out, manifest)
    started = engine.start_ray(engine.ray_address(args.address), quiet=args.quiet)
    try:
        units = plan_units(
            files, chunk_frames=args.chunk_frames, images_per_unit=args.images_per_task
        )
        sources = {str(f) for f, _ in files}
        store.open_out(args.out, manifest)
        store.remove_outdated(args.out, {u.key for u in units}, sources)
        done = store.done_keys(args.out)
        todo = [u for u in units if u.key not in done]
        threads = args.threads or 1
        workers = args.workers or max(1, int(engine.cluster_cpus() // threads))
        worker_args = {
            "model": {
                "name": manifest["model"],
                "file": model.model_path.name,
                "sha256": manifest["model_sha256"],
                "onnx": model.model_path.read_bytes(),
                "labels_json": model.labels_path.read_bytes(),
            },
            "detector": detector,
            "margin": args.margin,
            "threads": threads,
        }
        totals = engine.run_units(
            todo,
            args.out,
            worker_args=worker_args,
            workers=min(workers, max(len(todo), 1)),
            threads=threads,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    finally:
        if started:
            ray.shutdown()
    if not args.quiet:
        failures = sum(f["source"] in sources for f in store.read_failures(args.out))
        complete = len(sources - {item.source for u in todo for item in u.items})
        line = summary(len(sources), complete, totals, failures)
        print(f"ferflow batch: {line}; results in {args.out}", file=sys.stderr)
    return 0


def _model(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The emotion model and detector settings, checked here on the driver (a bad option is
    one line before Ray starts), and the manifest that identifies their results."""
    from pipeline.app.detector import make_detector
    from pipeline.app.emotion import load_model
    from pipeline.app.model_info import model_info
    from pipeline.io import sha256_file

    model = load_model(args.model_dir, args.model, args.labels, threads=1, precision=args.precision)
    detector = {
        "name": args.detector,
        "min_face": args.min_face,
        "max_size": args.detect_size,
        "threshold": args.threshold,
        "cascade": args.cascade,
    }
    make_detector(**detector, threads=1)
    manifest = {
        "model": model_info(model)["name"],
        "model_file": model.model_path.name,
        "model_sha256": sha256_file(model.model_path),
        "labels": list(model.labels),
        "settings": {"detector": detector, "margin": args.margin},
    }
    return model, detector, manifest


def summary(sources: int, complete: int, totals: Any, failures: int) -> str:
    """The run in one line: what it found, how fast, what it could not read."""
    rate = totals.faces / totals.seconds if totals.seconds > 0 else 0.0
    return (
        f"{sources} sources ({complete} complete from an earlier run), {totals.frames} frames, "
        f"{totals.faces} faces in {totals.seconds:.1f} s ({rate:.1f} faces/s), "
        f"{failures} failure{'' if failures == 1 else 's'}"
    )
