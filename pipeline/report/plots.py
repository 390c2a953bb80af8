"""Draw `dvc plots diff` as PNGs a pull-request comment can embed.

DVC's plots are Vega-Lite specs meant for a browser; a comment needs images. Each DVC plot
becomes one PNG: a confusion-matrix template becomes side-by-side heatmaps of base, head and
their difference, laid out as DVC's page draws them (rows = the y field, columns = the x
field, in the spec's class order: for ferflow, rows actual and columns predicted); a line
template one chart with a line per revision (and per series); a bar template grouped bars.
Image plots (PNG files a stage wrote) are copied as they are.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import LABELS

#: Colours by role, not by revision name: the base is the muted one.
BASE_COLOR, HEAD_COLOR = "#8c8c8c", "#d62728"
DASHES = ("-", "--", ":", "-.")


@dataclass
class RenderedPlot:
    """One plot of the report: its DVC id and the image(s) drawn for it, by revision label."""

    plot_id: str
    title: str
    images: dict[str, Path] = field(default_factory=dict)  # label -> PNG ("" = one image)


def render_plots(
    plots: dict[str, list[dict[str, Any]]],
    labels: dict[str, str],
    out_dir: str | Path,
) -> list[RenderedPlot]:
    """Draw every plot of a `dvc plots diff --json` result into `out_dir`.

    `labels` maps each DVC revision name (as passed to DVC, base first) to the label shown.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = []
    for plot_id, entries in plots.items():
        vega = [e for e in entries if e.get("type") == "vega" and e.get("content")]
        images = [e for e in entries if e.get("type") == "image" and e.get("url")]
        if vega:
            content = vega[0]["content"]
            title = _title(content, plot_id)
            path = out_dir / f"{_slug(plot_id)}.png"
            if _draw_vega(content, labels, title, path):
                rendered.append(RenderedPlot(plot_id, title, {"": path}))
        elif images:
            plot = RenderedPlot(plot_id, plot_id)
            roles = {rev: "base" if i == 0 else "head" for i, rev in enumerate(labels)}
            for entry in images:
                rev = entry["revisions"][0]
                name = _slug(str(Path(plot_id).with_suffix("")))
                target = (
                    out_dir / f"{roles.get(rev, _slug(rev))}__{name}{Path(entry['url']).suffix}"
                )
                shutil.copyfile(entry["url"], target)
                plot.images[labels.get(rev, rev)] = target
            rendered.append(plot)
    return rendered


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "plot"


def _walk(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from _walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _walk(value)


def _encoding(content: dict[str, Any], channel: str) -> dict[str, Any]:
    """The first `encoding.<channel>` in the spec that names a data field other than `rev`."""
    for node in _walk(content):
        enc = node.get("encoding")
        if isinstance(enc, dict) and isinstance(enc.get(channel), dict):
            spec = enc[channel]
            if isinstance(spec.get("field"), str) and spec["field"] != "rev":
                return spec
    return {}


def _marks(content: dict[str, Any]) -> set[str]:
    marks = set()
    for node in _walk(content):
        mark = node.get("mark")
        if isinstance(mark, str):
            marks.add(mark)
        elif isinstance(mark, dict) and isinstance(mark.get("type"), str):
            marks.add(mark["type"])
    return marks


def _title(content: dict[str, Any], default: str) -> str:
    title = content.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    return title if isinstance(title, str) and title else default


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _category_order(values: set[str]) -> list[str]:
    """FER labels in label order, numbers numerically, anything else alphabetically."""
    if values <= set(LABELS):
        return [label for label in LABELS if label in values]
    if all(_number(v) is not None for v in values):
        return sorted(values, key=lambda v: float(v))
    return sorted(values)


def _axis_order(encoding: dict[str, Any], values: set[str]) -> list[str]:
    """The categories of one axis as the browser shows them: the spec's own order (a scale
    domain or a sort list, every listed class even if absent) first, then any other value."""
    explicit = encoding.get("scale", {}).get("domain") or encoding.get("sort")
    if not (isinstance(explicit, list) and all(isinstance(v, str) for v in explicit)):
        return _category_order(values)
    return list(explicit) + _category_order(values - set(explicit))


def _draw_vega(content: dict[str, Any], labels: dict[str, str], title: str, path: Path) -> bool:
    rows = content.get("data", {}).get("values", [])
    x, y = _encoding(content, "x"), _encoding(content, "y")
    if not rows or not x or not y:
        return False
    revs = [r for r in labels if any(row.get("rev") == r for row in rows)]
    marks = _marks(content)
    if "rect" in marks:
        _draw_confusion(rows, x, y, revs, labels, title, path)
    elif "bar" in marks:
        _draw_bars(rows, x, y, revs, labels, title, path)
    else:
        dash = _encoding(content, "strokeDash").get("field")
        _draw_lines(rows, x, y, dash, revs, labels, title, path, points_only="line" not in marks)
    return True


def _new_figure(width: float, height: float):
    # The object-oriented API: no pyplot global state, no GUI backend on a CI runner.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def confusion_counts(
    rows: list[dict[str, Any]], x: dict[str, Any], y: dict[str, Any], revs: list[str]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Count matrices per revision laid out as DVC's page draws them: one row per category
    of the y field (top to bottom), one column per category of the x field, in the spec's
    order. Returns (row categories, column categories, {rev: matrix})."""
    import numpy as np

    xf, yf = x["field"], y["field"]
    row_cats = _axis_order(y, {str(r[yf]) for r in rows})
    col_cats = _axis_order(x, {str(r[xf]) for r in rows})
    row_of = {c: i for i, c in enumerate(row_cats)}
    col_of = {c: j for j, c in enumerate(col_cats)}
    counts = {}
    for rev in revs:
        m = np.zeros((len(row_cats), len(col_cats)), dtype=int)
        for r in rows:
            if r.get("rev") == rev:
                m[row_of[str(r[yf])], col_of[str(r[xf])]] += 1
        counts[rev] = m
    return row_cats, col_cats, counts


def _draw_confusion(rows, x, y, revs, labels, title, path: Path) -> None:
    import numpy as np

    xf, yf = x["field"], y["field"]
    row_cats, col_cats, counts = confusion_counts(rows, x, y, revs)
    panels = [(labels[rev], counts[rev], "Blues") for rev in revs]
    if len(revs) == 2:
        panels.append(("change (head - base)", counts[revs[1]] - counts[revs[0]], "RdBu"))

    side = 1.0 + 0.5 * max(len(row_cats), len(col_cats))
    fig = _new_figure(side * len(panels) + 0.5, side + 0.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, m, cmap) in zip(axes, panels, strict=True):
        limit = max(1, int(np.abs(m).max()))
        vmin = -limit if cmap == "RdBu" else 0
        ax.imshow(m, cmap=cmap, vmin=vmin, vmax=limit)
        for (i, j), value in np.ndenumerate(m):
            strong = abs(value) > 0.6 * limit
            text = f"{value:+d}" if cmap == "RdBu" and value else str(value)
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if strong else "black")  # fmt: skip
        ax.set_xticks(range(len(col_cats)), col_cats, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(row_cats)), row_cats, fontsize=8)
        ax.set_xlabel(x.get("title") or xf)
        ax.set_ylabel(y.get("title") or yf)
        ax.set_title(name, fontsize=10)
    fig.suptitle(title)
    fig.savefig(path)


def _draw_lines(rows, x, y, dash, revs, labels, title, path: Path, points_only: bool) -> None:
    xf, yf = x["field"], y["field"]
    head = list(labels)[-1]
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in rows:
        xv, yv = _number(r.get(xf)), _number(r.get(yf))
        if r.get("rev") in revs and xv is not None and yv is not None:
            series.setdefault((r["rev"], str(r.get(dash, "")) if dash else ""), []).append((xv, yv))
    styles = {
        name: DASHES[i % len(DASHES)] for i, name in enumerate(sorted({k[1] for k in series}))
    }

    fig = _new_figure(6.4, 4.0)
    ax = fig.subplots()
    for (rev, name), points in sorted(
        series.items(), key=lambda kv: (revs.index(kv[0][0]), kv[0][1])
    ):
        points.sort()
        color = HEAD_COLOR if rev == head else BASE_COLOR
        label = f"{labels[rev]}: {name}" if name else labels[rev]
        xs, ys = zip(*points, strict=True)
        if points_only:
            ax.scatter(xs, ys, s=12, color=color, label=label)
        else:
            ax.plot(xs, ys, linestyle=styles[name], color=color, label=label,
                    marker="o" if len(points) < 15 else None, markersize=3)  # fmt: skip
    ax.set_xlabel(x.get("title") or xf)
    # Several y fields in one plot share DVC's synthetic column; their names are in the legend.
    ax.set_ylabel(yf if yf != "dvc_inferred_y_value" else "value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.savefig(path)


def _draw_bars(rows, x, y, revs, labels, title, path: Path) -> None:
    import numpy as np

    # Whichever axis holds numbers is the value; the other names the bars.
    head = list(labels)[-1]
    numeric_x = all(_number(r.get(x["field"])) is not None for r in rows)
    value, cat = (x, y) if numeric_x else (y, x)
    cats = _category_order({str(r.get(cat["field"])) for r in rows})
    fig = _new_figure(6.4, 1.0 + 0.35 * len(cats) * max(1, len(revs)))
    ax = fig.subplots()
    height = 0.8 / max(1, len(revs))
    for k, rev in enumerate(revs):
        values = {str(r.get(cat["field"])): _number(r.get(value["field"])) for r in rows
                  if r.get("rev") == rev}  # fmt: skip
        ys = np.arange(len(cats)) + k * height
        color = HEAD_COLOR if rev == head else BASE_COLOR
        ax.barh(ys, [values.get(c) or 0.0 for c in cats], height=height, color=color,
                label=labels[rev])  # fmt: skip
    ax.set_yticks(np.arange(len(cats)) + height * (len(revs) - 1) / 2, cats)
    ax.invert_yaxis()
    ax.set_xlabel(value.get("title") or value["field"])
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.savefig(path)
