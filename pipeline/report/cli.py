"""`ferflow report --base REV [--head REV] [--out FILE]`: the pull-request report, anywhere.

    ferflow report --base main --head HEAD                 # Markdown on stdout, no images
    ferflow report --base origin/main --out report/report.md  # + report/report_plots/*.png

`--head` defaults to the workspace (the files as they are now, e.g. right after
`dvc repro`). Any revision git knows works: branches, tags, commit ids, `HEAD~1`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipeline.io import write_text
from pipeline.report import dvc_diff
from pipeline.report.markdown import render_report


def build_report(base: str, head: str, repo: str | Path = ".", out: Path | None = None) -> str:
    """The Markdown comparing `base` with `head` in the DVC repository `repo`.

    With `out` (the Markdown file to be written) the plots are drawn into the folder
    `<out stem>_plots` beside it, and the Markdown links to them relatively.
    """
    repo = Path(repo)
    base_label = dvc_diff.describe_revision(base, repo)
    head_label = dvc_diff.describe_revision(head, repo)
    metrics, metric_warnings = dvc_diff.metrics_diff(base, head, repo)
    params, param_warnings = dvc_diff.params_diff(base, head, repo)
    warnings = [*metric_warnings, *param_warnings]

    plots = None
    if out is not None:
        from pipeline.report.plots import render_plots

        plots_dir = out.parent / f"{out.stem}_plots"
        shutil.rmtree(plots_dir, ignore_errors=True)  # stale images of an older report
        with tempfile.TemporaryDirectory(prefix="ferflow-plots-") as dvc_images:
            data, plot_warnings = dvc_diff.plots_diff(base, head, repo, dvc_images)
            warnings += plot_warnings
            labels = {rev: label for rev, label in ((base, base_label), (head, head_label))}
            plots = render_plots(data, labels, plots_dir)
    return render_report(
        base_label, head_label, metrics, params, plots, warnings, out.parent if out else "."
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
    except dvc_diff.DvcError as e:
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
