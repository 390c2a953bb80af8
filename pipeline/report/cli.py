"""`ferflow report --base REV [--head REV] [--out FILE]`: the pull-request report, anywhere.

    ferflow report --base main --head HEAD                 # Markdown on stdout, no images
    ferflow report --base origin/main --out report/report.md  # + report/report_plots/*.png

`--head` defaults to the workspace (the files as they are now, e.g. right after
`dvc repro`). Any revision git knows works: branches, tags, commit ids, `HEAD~1`.

The plots folder is replaced as a whole on each run, so it holds no stale images; a list of
what the report wrote in it (`.ferflow-report.json`) lets a later run replace only a folder
of its own: one holding anything else is left alone and the run stops before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipeline.io import atomic_dir, write_text
from pipeline.report import dvc_diff
from pipeline.report.markdown import render_report

#: The list of files a report wrote into its plots folder (hidden, inside that folder).
PLOTS_RECORD = ".ferflow-report.json"


class ReportError(Exception):
    """A problem with where the report would go; printed as one line."""


def plots_dir_for(out: Path) -> Path:
    return out.parent / f"{out.stem}_plots"


def check_plots_dir(plots_dir: Path) -> None:
    """ReportError unless `plots_dir` is absent, empty, or holds only what a report wrote."""
    if not plots_dir.exists():
        return
    if not plots_dir.is_dir():
        raise ReportError(f"{plots_dir} is a file; the report's plots go in a folder of that name")
    record = plots_dir / PLOTS_RECORD
    ours = {PLOTS_RECORD}
    if record.is_file():
        try:
            ours |= set(json.loads(record.read_text(encoding="utf-8"))["files"])
        except (ValueError, KeyError, TypeError):
            ours = set()  # unreadable: trust nothing in the folder
    foreign = sorted(p.name for p in plots_dir.iterdir() if p.name not in ours)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise ReportError(
            f"{plots_dir} holds files this report did not write ({shown}); the report replaces "
            "that folder, so move them or choose another --out"
        )


def build_report(base: str, head: str, repo: str | Path = ".", out: Path | None = None) -> str:
    """The Markdown comparing `base` with `head` in the DVC repository `repo`.

    With `out` (the Markdown file to be written) the plots are drawn into the folder
    `<out stem>_plots` beside it, and the Markdown links to them relatively.
    """
    repo = Path(repo)
    plots_dir = plots_dir_for(out) if out is not None else None
    if plots_dir is not None:
        check_plots_dir(plots_dir)  # before any work
    base_label = dvc_diff.describe_revision(base, repo)
    head_label = dvc_diff.describe_revision(head, repo)
    metrics, metric_warnings = dvc_diff.metrics_diff(base, head, repo)
    params, param_warnings = dvc_diff.params_diff(base, head, repo)
    warnings = [*metric_warnings, *param_warnings]

    plots = None
    if plots_dir is not None:
        from pipeline.report.plots import render_plots

        with (
            tempfile.TemporaryDirectory(prefix="ferflow-plots-") as dvc_images,
            atomic_dir(plots_dir) as staging,
        ):
            data, plot_warnings = dvc_diff.plots_diff(base, head, repo, dvc_images)
            warnings += plot_warnings
            labels = {rev: label for rev, label in ((base, base_label), (head, head_label))}
            plots, render_warnings = render_plots(data, labels, staging)
            warnings += render_warnings
            written = sorted(p.name for p in staging.iterdir())
            (staging / PLOTS_RECORD).write_text(
                json.dumps({"files": written}, indent=1) + "\n", encoding="utf-8"
            )
        for plot in plots:  # drawn in the staging folder, linked where it now is
            plot.images = {k: plots_dir / p.name for k, p in plot.images.items()}
    metric_files = sorted({c.path for c in metrics})
    kinds = (
        dvc_diff.cpu_kinds(base, metric_files, repo),
        dvc_diff.cpu_kinds(head, metric_files, repo),
    )
    return render_report(
        base_label,
        head_label,
        metrics,
        params,
        plots,
        warnings,
        out.parent if out else ".",
        cpu_kinds=kinds,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ferflow report",
        description="Compare metrics, params and plots of two revisions of a DVC pipeline "
        "as Markdown (the pull-request comment).",
    )
    parser.add_argument("--base", required=True, help="the revision to compare against, e.g. main")
    parser.add_argument(
        "--head",
        default=dvc_diff.WORKSPACE,
        help="the revision to report on (default: workspace, the files as they are now)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the Markdown here and draw the plots into <stem>_plots/ beside it "
        "(default: print the Markdown, without plots)",
    )
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="the DVC repository (default: .)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ferflow report`; returns the exit status."""
    args = parse_args(argv)
    out = args.out.resolve() if args.out else None
    try:
        markdown = build_report(args.base, args.head, args.repo, out)
    except (dvc_diff.DvcError, ReportError) as e:
        print(f"ferflow report: error: {e}", file=sys.stderr)
        return 1
    if out is None:
        sys.stdout.write(markdown)
    else:
        write_text(out, markdown)
        print(f"ferflow report: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
