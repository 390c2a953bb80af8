"""`dvc plots show` offline and one confusion-matrix layout everywhere.

Fast: the page template `ferflow plots-setup` writes (vl-convert's Vega, Vega-Lite and
Vega-Embed bundle inlined), the DVC config that names it, the git-ignored outputs, the plot
templates' class order (the data's, for any label set), and `ferflow report`'s confusion
PNG drawn from DVC's own spec. Slow:
DVC's real pages (`dvc plots show`, `dvc plots diff`) from the tiny project, opened in
headless Chromium with every non-file request blocked: every plot must draw.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import CHROMIUM_ARGS, chromium, open_offline

from pipeline.config import LABELS, REPO_ROOT
from pipeline.report import plots_page
from pipeline.report.plots import VEGA_LITE_VERSION, png_spec

#: ferflow's own Vega-Lite templates for DVC (`template:` in dvc.yaml's `plots:`).
PLOT_TEMPLATES = REPO_ROOT / ".dvc" / "plots"

# --- the page template ---------------------------------------------------------------------


def test_page_template_inlines_the_scripts_and_loads_nothing() -> None:
    html = plots_page.page_template()
    assert "{plot_divs}" in html, "DVC refuses a template without it"
    assert "{scripts}" not in html, "DVC would put its CDN <script src=...> tags there"
    assert not re.search(r"<script[^>]*\ssrc\s*=", html), "a script loaded from elsewhere"
    assert html.count("<script") == 1
    assert plots_page.scripts() in html
    # The bundle sets the three globals DVC's page calls, and is the Vega the report uses.
    for name in ("vegaEmbed", "vegaLite", "vega"):
        assert f"window.{name}=" in plots_page.scripts(), name
    assert f"Vega-Lite {VEGA_LITE_VERSION}," in html


def test_a_bundle_that_would_end_its_script_element_is_refused(monkeypatch) -> None:
    import vl_convert

    plots_page.scripts.cache_clear()  # bundled again, from the patched package
    monkeypatch.setattr(vl_convert, "javascript_bundle", lambda **_: 'x="</script>";')
    try:
        with pytest.raises(plots_page.PlotsSetupError, match="cannot inline it"):
            plots_page.page_template()
    finally:
        plots_page.scripts.cache_clear()


def test_plots_setup_writes_the_template_the_dvc_config_names(tmp_path, capsys) -> None:
    from configobj import ConfigObj

    from pipeline.cli import main

    config = ConfigObj(str(REPO_ROOT / ".dvc" / "config"))
    assert config["plots"]["html_template"] == plots_page.PAGE_TEMPLATE

    (tmp_path / ".dvc").mkdir()
    (tmp_path / "sub").mkdir()
    assert main(["plots-setup", "--repo", str(tmp_path / "sub")]) == 0
    written = tmp_path / ".dvc" / plots_page.PAGE_TEMPLATE
    assert written.read_text(encoding="utf-8") == plots_page.page_template()
    assert "wrote" in capsys.readouterr().out


def test_plots_setup_outside_a_dvc_repository_says_so(tmp_path, capsys) -> None:
    from pipeline.cli import main

    assert main(["plots-setup", "--repo", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not inside a DVC repository" in err[0], err


def test_plot_page_and_its_template_are_git_ignored() -> None:
    for path in ("dvc_plots/index.html", f".dvc/{plots_page.PAGE_TEMPLATE}"):
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT)
        assert done.returncode == 0, f"{path} is not git-ignored"


# --- one confusion-matrix layout -----------------------------------------------------------


def _plot_definition(name: str) -> dict:
    plots = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["plots"]
    (definition,) = [p[name] for p in plots if isinstance(p, dict) and name in p]
    return definition


def _label_lists(node) -> list[tuple[str, list]]:
    """Every class list in a template: scale domains and imputed keys, with where they are."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("domain", "keyvals") and all(isinstance(v, str) for v in value):
                found.append((key, value))
            found += _label_lists(value)
    elif isinstance(node, list):
        for value in node:
            found += _label_lists(value)
    return found


def test_ferflow_plot_templates_take_the_class_order_from_the_data() -> None:
    """No class list is written into a template: any label set draws, in its own order
    (confusion records carry their class indices; per_class.json is in label order)."""
    templates = sorted(PLOT_TEMPLATES.glob("*.json"))
    assert [t.stem for t in templates] == ["bar_horizontal_fer", "confusion_fer"]
    for template in templates:
        assert _label_lists(json.loads(template.read_text())) == [], template.name
    bars = json.loads((PLOT_TEMPLATES / "bar_horizontal_fer.json").read_text())
    assert bars["encoding"]["y"]["sort"] is None  # data order: per_class.json's, label order


def test_dvc_confusion_matrix_is_drawn_like_the_evaluate_png() -> None:
    # The PNG (pipeline/evaluation/plots.py): rows = actual, columns = predicted, LABELS order.
    definition = _plot_definition("confusion_matrix")
    assert definition["template"] == "confusion_fer"
    assert definition["x"] == "predicted"  # columns
    assert list(definition["y"].values()) == ["actual"]  # rows
    spec = json.loads((PLOT_TEMPLATES / "confusion_fer.json").read_text())["spec"]
    assert spec["encoding"]["x"]["sort"] == {"field": "predicted_index", "op": "min"}
    assert spec["encoding"]["y"]["sort"] == {"field": "actual_index", "op": "min"}
    assert _plot_definition("per_class_f1")["template"] == "bar_horizontal_fer"


def _filled_confusion_spec(rows: list[dict]) -> dict:
    """The spec DVC builds from dvc.yaml's definition and the committed template."""
    from dvc_render import VegaRenderer

    definition = _plot_definition("confusion_matrix")
    renderer = VegaRenderer(
        rows,
        "confusion_matrix",
        template=definition["template"],
        template_dir=str(PLOT_TEMPLATES),
        x=definition["x"],
        y=next(iter(definition["y"].values())),
    )
    return renderer.get_filled_template()


def _texts(node, found: list[str]) -> list[str]:
    """Every text item of a Vega scenegraph, in drawing order."""
    if isinstance(node, dict):
        if node.get("marktype") == "text":
            found += [item["text"] for item in node.get("items", []) if "text" in item]
        for value in node.values():
            _texts(value, found)
    elif isinstance(node, list):
        for value in node:
            _texts(value, found)
    return found


def _record(actual: str, predicted: str, names=LABELS) -> dict:
    """A confusion.json record as the evaluate stage writes it."""
    return {
        "actual": actual,
        "predicted": predicted,
        "actual_index": names.index(actual),
        "predicted_index": names.index(predicted),
        "rev": "head",
    }


def _drawn_texts(rows: list[dict]) -> list[str]:
    import vl_convert

    spec = png_spec(_filled_confusion_spec(rows))
    return _texts(vl_convert.vegalite_to_scenegraph(spec, vl_version=VEGA_LITE_VERSION), [])


def _remove_axis(texts: list[str], labels: list[str]) -> None:
    start = next(i for i in range(len(texts)) if texts[i : i + len(labels)] == labels)
    del texts[start : start + len(labels)]


def test_report_heatmap_is_the_spec_dvc_draws_with_values_shown() -> None:
    """The report draws DVC's filled spec itself (Vega, through vl-convert): the same axes in
    label order, rows actual and columns predicted, and each cell's count written on it."""
    dvc_spec = _filled_confusion_spec([_record("sad", "happy")])
    spec = png_spec(dvc_spec)
    assert {k: v for k, v in spec.items() if k != "params"} == {
        k: v for k, v in dvc_spec.items() if k != "params"
    }, "the report changes nothing but the values checkbox"
    # Three sad faces called happy, one fear face called fear: every class seen as actual or
    # predicted gets a row and a column, in label order (fear, happy, sad; not alphabetical
    # would be the same here, so surprise, which sorts last, comes before neutral below).
    texts = _drawn_texts([_record("sad", "happy")] * 3 + [_record("fear", "fear")])
    for labels in (["fear", "happy", "sad"], ["fear", "happy", "sad"]):  # columns, then rows
        _remove_axis(texts, labels)
    # One count per cell: 3 and 1, and 0 on the other 7 of the 3 x 3.
    assert sorted(t for t in texts if t.isdigit()) == sorted(["3", "1"] + ["0"] * 7)

    texts = _drawn_texts([_record("neutral", "surprise"), _record("surprise", "surprise")])
    for labels in (["surprise", "neutral"], ["surprise", "neutral"]):  # label order
        _remove_axis(texts, labels)


def test_any_label_set_is_drawn_in_its_own_order() -> None:
    names = ("zebra", "apple", "mango")  # a folder dataset's would be sorted; FER+'s are not
    texts = _drawn_texts([_record("mango", "zebra", names), _record("apple", "apple", names)])
    for labels in (list(names), list(names)):
        _remove_axis(texts, labels)
    assert sorted(t for t in texts if t.isdigit()) == sorted(["1", "1"] + ["0"] * 7)


# --- the real page in a real browser, offline ----------------------------------------------


@pytest.mark.slow
def test_dvc_plot_pages_draw_every_plot_offline(tiny_project, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    ferflow = str(Path(sys.executable).parent / "ferflow")
    tiny_project.run(ferflow, "plots-setup")  # README's setup; writes the copy's .dvc/
    listed = json.loads(tiny_project.dvc("plots", "show", "--json"))["data"]
    vega_plots = sorted(name for name, entries in listed.items() if entries[0]["type"] == "vega")
    image_plots = [name for name, entries in listed.items() if entries[0]["type"] == "image"]
    assert "confusion_matrix" in vega_plots and len(vega_plots) >= 5 and image_plots

    # `-o` elsewhere: the page must not depend on where it was written.
    folders = {"show": tmp_path / "show", "diff": tmp_path / "diff"}
    tiny_project.dvc("plots", "show", "-o", str(folders["show"]))
    tiny_project.dvc("plots", "diff", "HEAD", "-o", str(folders["diff"]))  # HEAD vs workspace
    revisions = {"show": 1, "diff": 2}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            # The guard itself: a CDN script (what DVC's own page loads) is caught.
            probe = browser.new_page()
            seen: list[str] = []

            def record(route) -> None:
                seen.append(route.request.url)
                route.abort()

            probe.route("**/*", record)
            probe.set_content('<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>')
            probe.close()
            assert seen, "the request guard did not see a network request"

            for name, folder in folders.items():
                shot = tmp_path / f"dvc_plots_{name}.png"
                page = open_offline(browser, folder / "index.html", shot)
                assert page.problems == [], f"{name}: {page.problems}"
                assert sorted(page.vega) == vega_plots, (name, sorted(page.vega))
                for plot, d in page.vega.items():  # canvas: non-white pixels; svg: shapes
                    assert d and d["marks"] in ("canvas", "svg"), (name, plot, d)
                    assert d["inked"] > (1000 if d["marks"] == "canvas" else 10), (name, d)
                images = [d for d in page.divs.values() if d["images"]]
                assert len(images) == len(image_plots), (name, page.divs)
                for d in images:
                    assert d["imagesLoaded"] == d["images"] == revisions[name], (name, d)
                # Rows actual and columns predicted were checked in the spec; here, that the
                # browser lays both axes out in label order, every class present, one panel
                # per revision (cells filled in for absent classes form no panel of their own).
                panels = page.confusion.pop("panels")
                assert page.confusion == {
                    "x": list(LABELS),
                    "y": list(LABELS),
                    "per_class": list(LABELS),  # the F1 bars too, like per_class.png
                }, name
                assert len(panels) == revisions[name] and None not in panels, (name, panels)
                assert shot.stat().st_size > 10_000
        finally:
            browser.close()
