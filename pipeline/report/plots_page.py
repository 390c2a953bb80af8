"""`ferflow plots-setup`: the page template that lets `dvc plots show` work offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so without a network every
Vega plot silently disappears. `.dvc/config` names a page template instead
(`plots.html_template = plots_page.html`, relative to `.dvc/`); this module writes that
file with the three scripts inlined. The page DVC fills from it (`dvc plots show`,
`dvc plots diff`, any `-o` folder) is then self-contained.

The scripts come from the `django-js-lib-vega-embed` wheel (no dependencies): the npm
releases' `build/*.min.js` files, byte for byte, less their trailing source-map comment.
Their SHA-256 is checked here, so a changed wheel is refused, never inlined.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.io import write_text

#: The file `.dvc/config` names as `plots.html_template` (DVC resolves it against `.dvc/`).
PAGE_TEMPLATE = "plots_page.html"
#: The Python package that ships the scripts, and its folder holding them.
SCRIPTS_PACKAGE = "js_lib_vega_embed"
SCRIPTS_FOLDER = "static/js_lib_vega_embed"


@dataclass(frozen=True)
class Script:
    name: str
    version: str
    file: str
    sha256: str


#: Vega-Lite 5 because DVC's templates declare the v5 schema; in load order.
SCRIPTS: tuple[Script, ...] = (
    Script(
        "Vega",
        "5.33.0",
        "vega5.js",
        "6a6c1e9978bd78435dfbb51344d1d536319262e70f2c569ca9764ce5acc203da",
    ),
    Script(
        "Vega-Lite",
        "5.23.0",
        "vega-lite5.js",
        "594f554cecafe6b992d51b7c00f4c0e5fc5f92114c7e1a641d2cf150f21cc60d",
    ),
    Script(
        "Vega-Embed",
        "6.29.0",
        "vega-embed6.js",
        "dbd49aff8999dfb12983cbcefeefb355ae72af68d7556ddcec12193a0eb46450",
    ),
)

# DVC replaces `{plot_divs}` and `{refresh_tag}`; `{scripts}` (its CDN tags) is left out
# on purpose.
PAGE_HTML = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>ferflow plots</title>
    <!-- Written by `ferflow plots-setup`: {versions}, inlined so the page needs no network. -->
{inline_scripts}
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


def read_script(script: Script) -> str:
    """The script's text from the installed package, after checking its SHA-256."""
    try:
        data = (resources.files(SCRIPTS_PACKAGE) / SCRIPTS_FOLDER / script.file).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise PlotsSetupError(
            f"{script.name} is not installed ({SCRIPTS_PACKAGE}/{SCRIPTS_FOLDER}/{script.file}"
            " missing): install the pipeline extra, pip install -e '.[pipeline]'"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != script.sha256:
        raise PlotsSetupError(
            f"{SCRIPTS_PACKAGE}/{SCRIPTS_FOLDER}/{script.file}: SHA-256 {digest} is not "
            f"{script.name} {script.version}'s ({script.sha256}); refusing to inline it"
        )
    text = data.decode("utf-8")
    if "</script" in text.lower():  # would end the inline <script> element early
        raise PlotsSetupError(f"{script.file} contains '</script' and cannot be inlined")
    return text


def page_template() -> str:
    """The HTML template for DVC, with Vega, Vega-Lite and Vega-Embed inlined."""
    versions = ", ".join(f"{s.name} {s.version}" for s in SCRIPTS)
    inline = "\n".join(
        f'    <script type="text/javascript">/* {s.name} {s.version} */\n{read_script(s)}\n'
        "    </script>"
        for s in SCRIPTS
    )
    # Not str.format: DVC's own fields must stay, and the scripts are full of braces.
    return PAGE_HTML.replace("{versions}", versions).replace("{inline_scripts}", inline)


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
