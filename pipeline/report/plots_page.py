"""`ferflow plots-setup`: the page template that lets `dvc plots show` work offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so without a network every
Vega plot silently disappears. `.dvc/config` names a page template instead
(`plots.html_template = plots_page.html`, relative to `.dvc/`); this module writes that
file with the three scripts inlined. The page DVC fills from it (`dvc plots show`,
`dvc plots diff`, any `-o` folder) is then self-contained.

The scripts come from vl-convert-python, the Vega project's own package (it bundles Vega,
Vega-Lite and Vega-Embed, offline): the same Vega that draws the report's PNGs
(`plots.py`), so the page and the pull-request comment draw DVC's specs alike.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import cache
from importlib import metadata
from pathlib import Path

from pipeline.io import write_text
from pipeline.report.plots import VEGA_LITE_VERSION

#: The file `.dvc/config` names as `plots.html_template` (DVC resolves it against `.dvc/`).
PAGE_TEMPLATE = "plots_page.html"
#: The package that bundles the scripts.
SCRIPTS_PACKAGE = "vl-convert-python"

# DVC replaces `{plot_divs}` and `{refresh_tag}`; `{scripts}` (its CDN tags) is left out
# on purpose.
PAGE_HTML = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>ferflow plots</title>
    <!-- Written by `ferflow plots-setup`: {versions}, inlined so the page needs no network. -->
    <script type="text/javascript">
{inline_scripts}
    </script>
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


class PlotsSetupError(Exception):
    """A problem the user can fix; printed as one line."""


def versions() -> str:
    """What the page inlines, e.g. `Vega 6.2.0, Vega-Lite 5.21, Vega-Embed 7.0.2 (...)`."""
    vl_convert = _vl_convert()
    return (
        f"Vega {vl_convert.get_vega_version()}, Vega-Lite {VEGA_LITE_VERSION}, Vega-Embed "
        f"{vl_convert.get_vega_embed_version()} ({SCRIPTS_PACKAGE} "
        f"{metadata.version(SCRIPTS_PACKAGE)})"
    )


@cache
def scripts() -> str:
    """Vega, Vega-Lite and Vega-Embed as one classic script that sets `window.vegaEmbed`
    (DVC's page calls it from inline scripts, so a deferred module would come too late).
    Bundled by vl-convert on each call (seconds), hence cached."""
    bundle = _vl_convert().javascript_bundle(vl_version=VEGA_LITE_VERSION)
    if "</script" in bundle.lower():  # would end the inline <script> element early
        raise PlotsSetupError(f"{SCRIPTS_PACKAGE}'s bundle contains '</script'; cannot inline it")
    # Its own scope: the bundle's top-level names stay out of the page's globals.
    return f"(() => {{\n{bundle}\n}})();"


def _vl_convert():
    try:
        import vl_convert
    except ImportError:
        raise PlotsSetupError(
            f"{SCRIPTS_PACKAGE} is not installed: install the pipeline extra, "
            "pip install -e '.[pipeline]'"
        ) from None
    return vl_convert


def page_template() -> str:
    """The HTML template for DVC, with Vega, Vega-Lite and Vega-Embed inlined."""
    # Not str.format: DVC's own fields must stay, and the scripts are full of braces.
    return PAGE_HTML.replace("{versions}", versions()).replace("{inline_scripts}", scripts())


def dvc_root(start: Path) -> Path:
    """The DVC repository holding `start` (the nearest folder upwards with a `.dvc/`)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise PlotsSetupError(f"{start}: not inside a DVC repository (no .dvc/ folder above it)")


def write_page_template(repo: Path) -> Path:
    """Write `.dvc/plots_page.html` into the DVC repository `repo`; returns its path."""
    target = repo / ".dvc" / PAGE_TEMPLATE
    write_text(target, page_template())
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ferflow plots-setup",
        description=f"Write .dvc/{PAGE_TEMPLATE}, the page template that `dvc plots show` "
        "and `dvc plots diff` fill (named by plots.html_template in .dvc/config), with Vega, "
        "Vega-Lite and Vega-Embed inlined so the plots draw without a network.",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path.cwd(),
        help="a folder inside the DVC repository (default: the current folder)",
    )
    args = parser.parse_args(argv)
    try:
        target = write_page_template(dvc_root(args.repo))
    except PlotsSetupError as e:
        print(f"ferflow plots-setup: error: {e}", file=sys.stderr)
        return 1
    size = target.stat().st_size / 1e6
    print(f"ferflow plots-setup: wrote {target} ({size:.1f} MB); dvc plots show works offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
