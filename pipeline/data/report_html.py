"""A self-contained HTML page of the validation summary (no CDN, opens offline).

It shows the verdict, every problem with example rows, rows and classes per split as bars,
duplicates, and a few faces of each class, so that a glance tells whether the labels look
right. Images are inline PNGs.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from pipeline import imaging
from pipeline.config import SPLITS
from pipeline.data.fer_csv import USAGES, FerTable
from pipeline.data.image_folder import FolderTable

_FACES_PER_CLASS = 10
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.ok { color: #176b1f; } .bad { color: #a31515; }
table { border-collapse: collapse; } td, th { padding: .2rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr:nth-child(even) { background: #f4f4f4; }
pre { background: #f7f7f7; padding: .6rem; white-space: pre-wrap; }
.bar { fill: #4a78b5; } svg text { font-size: 11px; }
img.faces { image-rendering: pixelated; width: 100%; max-width: 48rem; }
"""


def png_bytes(gray: np.ndarray) -> bytes:
    """A grayscale uint8 (H, W) image as PNG bytes."""
    return imaging.encode(np.ascontiguousarray(gray, dtype=np.uint8), ".png")


def face_grid(
    table: FerTable | FolderTable, per_class: int = _FACES_PER_CLASS
) -> np.ndarray | None:
    """The first `per_class` valid faces of each class, one class per row (blank if fewer)."""
    valid = table.valid
    if not valid.any():
        return None
    size = table.images.shape[1]
    grid = np.full((len(table.names) * size, per_class * size), 255, np.uint8)
    for c in range(len(table.names)):
        rows = np.flatnonzero(valid & (table.labels == c))[:per_class]
        for j, r in enumerate(rows):
            grid[c * size : (c + 1) * size, j * size : (j + 1) * size] = table.images[r]
    return grid


def _class_bars(classes: dict[str, dict[str, int]]) -> str:
    """Horizontal bars of class counts, one block per split, as inline SVG."""
    width, label_w, bar_h = 520, 70, 13
    parts = []
    y = 0
    for split in SPLITS:
        counts = classes.get(split, {})
        top = max(counts.values(), default=0) or 1
        parts.append(f'<text x="0" y="{y + 11}" font-weight="bold">{split}</text>')
        y += 16
        for name, n in counts.items():
            w = (width - label_w - 60) * n / top
            parts.append(
                f'<text x="0" y="{y + 10}">{name}</text>'
                f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}"/>'
                f'<text x="{label_w + w + 4:.1f}" y="{y + 10}">{n:,}</text>'
            )
            y += bar_h
        y += 8
    body = "".join(parts)
    return f'<svg width="{width}" height="{y}" role="img" aria-label="classes">{body}</svg>'


def _ferplus_section(ferplus: dict[str, Any] | None) -> str:
    """FER+ labels (data.ferplus): kept faces per class and split, dropped ones per reason."""
    if not ferplus:
        return ""
    dropped = "".join(
        f"<tr><td>{split}</td>" + "".join(f"<td>{n:,}</td>" for n in reasons.values()) + "</tr>"
        for split, reasons in ferplus["dropped"].items()
    )
    reasons = next(iter(ferplus["dropped"].values()))
    return (
        f"<h2>FER+ labels ({html.escape(ferplus['mode'])})</h2>"
        f"<p>Votes file {html.escape(ferplus['file'])}, sha256 <code>{ferplus['sha256']}</code>."
        " Faces kept, per class (the label set training and evaluation use):</p>"
        + _class_bars(ferplus["classes"])
        + "<p>Faces left out, per reason:</p><table><tr><th>split</th>"
        + "".join(f"<th>{html.escape(r)}</th>" for r in reasons)
        + f"</tr>{dropped}</table>"
    )


def _numbering(table: FerTable | FolderTable) -> str:
    if isinstance(table, FerTable):
        return "Rows are numbered from 1 below the header: row N is line N + 1."
    return "Each row is one image file, named by its path in the folder."


def render(summary: dict[str, Any], table: FerTable | FolderTable) -> str:
    """The page for `summary` (from `validation.summarize`) of `table`."""
    esc = html.escape
    ok = summary["success"]
    verdict = (
        '<p class="ok">Passed every check.</p>'
        if ok
        else f'<p class="bad">Failed {len(summary["problems"])} check(s): not usable as is.</p>'
    )
    problems = "".join(
        f"<h3>{esc(p['check'])} ({p['rows']:,} rows)</h3>"
        f"<pre>{esc(chr(10).join(p['examples']))}</pre>"
        for p in summary["problems"]
    )
    warnings = "".join(f"<p>Warning: {esc(w)}</p>" for w in summary.get("warnings", []))
    rows = summary["rows"]
    split_rows = "".join(
        f"<tr><td>{split} ({usage})</td><td>{rows.get(split, 0):,}</td></tr>"
        for split, usage in zip(SPLITS, USAGES, strict=True)
    )
    d = summary["duplicates"]
    duplicates = (
        f"<p>{d['groups']:,} images appear more than once ({d['repeated_rows']:,} repeated rows; "
        f"{d['groups_across_splits']:,} groups span two splits, which leaks faces between "
        "train and test). First groups (row numbers): "
        + esc("; ".join(", ".join(str(r) for r in g) for g in d["examples"]))
        + "</p>"
        if d["groups"]
        else "<p>No image appears twice.</p>"
    )
    grid = face_grid(table)
    faces = (
        '<img class="faces" alt="sample faces, one class per row" src="data:image/png;base64,'
        + base64.b64encode(png_bytes(grid)).decode()
        + '">'
        + f"<p>Rows, top to bottom: {', '.join(table.names)}.</p>"
        if grid is not None
        else "<p>No valid rows to show.</p>"
    )
    e = summary["expectations"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Data validation</title>
<style>{_STYLE}</style></head><body>
<h1>Validation of {esc(summary["source"]["file"])}</h1>
{verdict}
<p>{e["evaluated"]} Great Expectations checks: {e["failed"]} failed, {e["warnings"]} warning(s).
sha256 <code>{summary["source"]["sha256"]}</code>, {summary["source"]["bytes"]:,} bytes.
{_numbering(table)}</p>
{problems}
{warnings}
<h2>Rows per split</h2>
<table><tr><th>split</th><th>rows</th></tr>{split_rows}
<tr><td>all rows</td><td>{rows["total"]:,}</td></tr></table>
<h2>Classes per split</h2>
{_class_bars(summary["classes"])}
{_ferplus_section(summary.get("ferplus"))}
<h2>Duplicates</h2>
{duplicates}
<h2>Sample faces</h2>
{faces}
</body></html>
"""
