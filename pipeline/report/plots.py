"""Draw `dvc plots diff` as PNGs a pull-request comment can embed.

DVC's plots are Vega-Lite specs meant for a browser; a comment needs images. Each spec DVC
hands over (`dvc plots diff --json`: its template filled with every revision's data) is
drawn by vl-convert, the Vega project's own renderer (Vega and Vega-Lite in a Python wheel,
no browser, no network): the PNG is the plot `dvc plots show` draws, one panel or line per
revision as DVC's template lays them out. The offline `dvc plots show` page takes its
scripts from the same wheel (`plots_page.py`), so both draw with one Vega.
Image plots (PNG files a stage wrote) are copied as they are.
"""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Pixels per Vega-Lite unit: sharp on high-density screens, a few hundred kB a plot.
PNG_SCALE = 2.0
#: DVC's Vega-Lite templates declare v5: drawn with the newest v5 that vl-convert ships.
VEGA_LITE_VERSION = "5.21"


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
) -> tuple[list[RenderedPlot], list[str]]:
    """Draw every plot of a `dvc plots diff --json` result into `out_dir`.

    `labels` maps each DVC revision name (as passed to DVC, base first) to the label shown
    above image plots. Returns the plots and a warning for each spec Vega could not draw.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered, warnings = [], []
    for plot_id, entries in plots.items():
        vega = [e for e in entries if e.get("type") == "vega" and e.get("content")]
        images = [e for e in entries if e.get("type") == "image" and e.get("url")]
        if vega:
            content = vega[0]["content"]
            if not content.get("data", {}).get("values"):
                continue  # no revision has data for it
            title = _title(content, plot_id)
            path = out_dir / f"{_slug(plot_id)}.png"
            try:
                path.write_bytes(render_png(content))
            except ValueError as e:  # vl-convert's error for a spec Vega refuses
                warnings.append(f"plot {plot_id}: Vega could not draw it ({_first_line(e)})")
                continue
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
    return rendered, warnings


def png_spec(content: dict[str, Any]) -> dict[str, Any]:
    """The spec as drawn into the PNG: DVC's own, with the values written on the cells.

    DVC's confusion templates bind `showValues` to a checkbox, off until ticked; an image
    has no checkbox, so it is drawn ticked. Nothing else changes.
    """
    spec = copy.deepcopy(content)
    for param in spec.get("params", []):
        if param.get("name") == "showValues":
            param["value"] = True
    return spec


def render_png(content: dict[str, Any]) -> bytes:
    """DVC's filled Vega-Lite spec as PNG bytes (vl-convert: no browser, no network)."""
    import vl_convert

    return vl_convert.vegalite_to_png(
        png_spec(content), vl_version=VEGA_LITE_VERSION, scale=PNG_SCALE
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "plot"


def _title(content: dict[str, Any], default: str) -> str:
    title = content.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    return title if isinstance(title, str) and title else default


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
