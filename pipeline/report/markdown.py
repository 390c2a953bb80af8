"""The report as GitHub-flavoured Markdown: metrics, params, plots, then DVC's warnings."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from pipeline.report.dvc_diff import Change
from pipeline.report.plots import RenderedPlot

MISSING = "—"


def format_value(value: Any, metric: bool = False) -> str:
    """A cell: metrics with 4 decimals (columns line up), params as written in params.yaml."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if metric and (value == 0 or 1e-3 <= abs(value) < 1e6):
            return f"{value:.4f}"
        return f"{value:.4g}" if metric else repr(value)
    if isinstance(value, int):
        return str(value)
    text = (
        json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else str(value)
    )
    # Hashes and long lists only need to be told apart in a table cell.
    return f"`{text[:21]}…`" if len(text) > 24 else f"`{text}`"


def format_change(change: Change, metric: bool = False) -> str:
    """`+0.1000 (+20.0%)`, or what happened to a metric that exists on one side only."""
    if change.old is None and change.new is not None:
        return "added"
    if change.new is None and change.old is not None:
        return "removed"
    delta = change.delta
    if delta is None:
        return "changed" if change.old != change.new else ""
    if delta == 0:
        return "0"
    text = f"{delta:+.4f}" if metric and 1e-4 <= abs(delta) < 1e6 else f"{delta:+.4g}"
    relative = change.relative
    if relative is not None:
        text += f" ({relative:+.1%})"
    return text


def _changed(change: Change) -> bool:
    return change.old != change.new


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]
) -> str:
    """A GitHub Markdown (pipe) table; cells as given (numbers keep their formatting)."""
    return tabulate(
        [[_cell(c) for c in row] for row in rows],
        headers=[_cell(h) for h in header],
        tablefmt="pipe",
        colalign=align,
        disable_numparse=True,
    )


def _table(
    changes: Sequence[Change], base: str, head: str, kind: str, metric: bool, show_path: bool
) -> str:
    lead = ["Path"] if show_path else []
    rows = [
        [
            *([f"`{c.path}`"] if lead else []),
            f"`{c.key}`",
            format_value(c.old, metric),
            format_value(c.new, metric),
            format_change(c, metric),
        ]
        for c in changes
    ]
    align = ["left"] * (len(lead) + 1) + ["right"] * 3
    return _markdown_table([*lead, kind, base, head, "Change"], rows, align)


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def machine_note(base: dict[str, str], head: dict[str, str]) -> list[str]:
    """A warning when a metrics file was made on different CPU kinds in base and head."""
    differ = sorted(p for p in set(base) & set(head) if base[p] != head[p])
    if not differ:
        return []
    lines = [
        "> **Made on different CPU kinds.** Float kernels differ between CPU kinds, so these "
        "files' metrics may move a little where nothing changed; each kind repeats its own "
        "exactly. Compare results made on one kind, or rerun the base there "
        '(docs/pipelines.md, "Results per CPU kind").',
    ]
    for path in differ:
        lines.append(f"> - `{path}`: base `{base[path]}`, head `{head[path]}`")
    return [*lines, ""]


def render_report(
    base_label: str,
    head_label: str,
    metrics: Sequence[Change],
    params: Sequence[Change],
    plots: Sequence[RenderedPlot] | None,
    warnings: Sequence[str],
    markdown_dir: str | Path = ".",
    cpu_kinds: tuple[dict[str, str], dict[str, str]] = ({}, {}),
) -> str:
    """The whole report. `plots` None means plots were not drawn (no output file was given).
    `cpu_kinds`: {metrics file: CPU kind that made it} in base and head.

    Image links are relative to `markdown_dir`, the folder the Markdown file is written to.
    """
    markdown_dir = Path(markdown_dir)
    out = [
        "## ferflow report",
        "",
        f"Base **`{base_label}`** → head **`{head_label}`**.",
        "",
        "### Metrics",
        "",
    ]
    changed = [c for c in metrics if _changed(c)]
    unchanged = [c for c in metrics if not _changed(c)]
    paths = sorted({c.path for c in metrics})
    many = len(paths) > 1
    if changed:
        out += [_table(changed, base_label, head_label, "Metric", True, many), ""]
    elif metrics:
        out += ["No metric changed.", ""]
    else:
        out += ["No metrics found in either revision (are they declared in dvc.yaml?).", ""]
    if len(paths) == 1:
        out += [f"From `{paths[0]}`.", ""]
    out += machine_note(*cpu_kinds)
    if unchanged:
        # The comment stays short; the unchanged values are one click away.
        out += [f"<details><summary>{len(unchanged)} unchanged</summary>", ""]
        out += [_table(unchanged, base_label, head_label, "Metric", True, many), ""]
        out += ["</details>", ""]

    out += ["### Params", ""]
    if params:
        many_files = len({c.path for c in params}) > 1
        out += [_table(params, base_label, head_label, "Param", False, many_files), ""]
    else:
        out += ["No params changed.", ""]

    out += ["### Plots", ""]
    if plots is None:
        out += ["Not drawn: give `--out FILE` to render the plots diff as images.", ""]
    elif not plots:
        out += ["No plots found in either revision.", ""]
    for plot in plots or []:
        out += [f"#### {plot.title}", ""]
        if "" in plot.images:
            out += [f"![{plot.title}]({_relative(plot.images[''], markdown_dir)})", ""]
        else:
            header = [f"`{label}`" for label in plot.images]
            cells = [
                f"![{label}]({_relative(p, markdown_dir)})" for label, p in plot.images.items()
            ]
            out += [_markdown_table(header, [cells], ["left"] * len(cells)), ""]

    if warnings:
        unique = list(dict.fromkeys(warnings))
        out += [
            "### Warnings",
            "",
            f"DVC could not read everything ({len(unique)} messages); what it could not read "
            f"shows as {MISSING}. Usual cause: a revision without committed results "
            "(`dvc repro`, then commit dvc.lock, metrics and plots).",
            "",
            "<details><summary>DVC's messages</summary>",
            "",
            *[f"- {_cell(w)}" for w in unique],
            "",
            "</details>",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"
