"""`ferflow report` on a real git + DVC repository with two commits whose metrics differ."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.report.cli import main
from pipeline.report.dvc_diff import Change
from pipeline.report.markdown import format_change, format_value

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Pixels of one colour that make a heatmap cell (a cell is 150 x 150 units at scale 2).
MIN_CELL_PIXELS = 20_000

DVC_YAML = """\
metrics:
  - eval/metrics.json
plots:
  - confusion:
      template: confusion
      x: actual
      y:
        eval/plots/confusion.json: predicted
      title: Confusion matrix
  - eval/plots/val_accuracy.tsv:
      x: step
      y: val_accuracy
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _dvc(repo: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, check=True, capture_output=True)


def _write_results(
    repo: Path, accuracy: float, lr: float, hits: int, curve: list[float], flags: list[str]
) -> None:
    (repo / "params.yaml").write_text(f"train:\n  lr: {lr}\n  epochs: 3\n")
    (repo / "eval" / "plots").mkdir(parents=True, exist_ok=True)
    machines = [{"stage": "evaluate", "cpu": "AMD EPYC", "arch": "x86_64", "cpu_flags": flags}]
    (repo / "eval" / "metrics.json").write_text(
        json.dumps(
            {"accuracy": accuracy, "n": 15, "per_class": {"happy": {"f1": accuracy / 2}},
             "machines": machines}
        )
    )  # fmt: skip
    # `hits` of 10 happy faces predicted right, the rest called neutral.
    rows = [{"actual": "happy", "predicted": "happy" if i < hits else "neutral"} for i in range(10)]
    rows += [{"actual": "neutral", "predicted": "neutral"}] * 5
    (repo / "eval" / "plots" / "confusion.json").write_text(json.dumps(rows))
    lines = ["step\tval_accuracy"] + [f"{i}\t{v}" for i, v in enumerate(curve)]
    (repo / "eval" / "plots" / "val_accuracy.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commit 1: accuracy 0.5, lr 0.001. Commit 2: accuracy 0.625, lr 0.002."""
    repo = tmp_path_factory.mktemp("report-repo")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "CI")
    _dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _write_results(repo, 0.5, 0.001, hits=4, curve=[0.2, 0.4, 0.5], flags=["avx2", "avx512f"])
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "baseline")
    # Head made on another CPU kind (AVX2 only): the report must say so.
    _write_results(repo, 0.625, 0.002, hits=7, curve=[0.3, 0.5, 0.625], flags=["avx2"])
    _git(repo, "commit", "-q", "-am", "faster lr")
    return repo


@pytest.fixture(scope="module")
def report(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("out") / "report.md"
    assert main(["--base", "HEAD~1", "--head", "HEAD", "--out", str(out), "--repo", str(repo)]) == 0
    return out, _squeezed(out.read_text())


def _squeezed(markdown: str) -> str:
    """Table cells padded to their column's width, read with single spaces."""
    return re.sub(r" {2,}", " ", markdown)


@pytest.mark.slow
def test_metrics_table_shows_both_values_and_the_change(repo: Path, report) -> None:
    _, md = report
    base, head = (
        _git(repo, "rev-parse", "--short", "HEAD~1"),
        _git(repo, "rev-parse", "--short", "HEAD"),
    )
    assert f"| Metric | HEAD~1 ({base}) | HEAD ({head}) | Change |" in md
    assert "| `accuracy` | 0.5000 | 0.6250 | +0.1250 (+25.0%) |" in md
    assert "| `per_class.happy.f1` | 0.2500 | 0.3125 | +0.0625 (+25.0%) |" in md
    assert "From `eval/metrics.json`." in md


@pytest.mark.slow
def test_metrics_made_on_two_cpu_kinds_are_flagged(report) -> None:
    _, text = report
    assert "**Made on different CPU kinds.**" in text
    assert "> - `eval/metrics.json`: base `x86_64 avx2 avx512f`, head `x86_64 avx2`" in text


@pytest.mark.slow
def test_unchanged_metrics_are_folded_away(report) -> None:
    _, md = report
    changed, folded = md.split("<details><summary>1 unchanged</summary>")
    assert "| `n` |" not in changed.split("### Params")[0]
    assert "| `n` | 15 | 15 | 0 |" in folded.split("</details>")[0]


@pytest.mark.slow
def test_params_table_lists_the_changed_param_only(report) -> None:
    _, md = report
    assert "| `train.lr` | 0.001 | 0.002 | +0.001 (+100.0%) |" in md
    assert "train.epochs" not in md  # unchanged params stay out of the comment


@pytest.mark.slow
def test_plots_are_pngs_linked_relative_to_the_report(report) -> None:
    out, md = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 2, md
    for link in links:
        assert not Path(link).is_absolute() and link.startswith("report_plots/")
        image = out.parent / link
        assert image.read_bytes()[:8] == PNG_MAGIC
    assert "#### Confusion matrix" in md and "#### eval/plots/val_accuracy.tsv" in md
    assert "### Warnings" not in md


def _cells(pixels: np.ndarray) -> list[tuple[int, int, tuple[int, ...]]]:
    """(x, y, colour) of each heatmap cell in the image: the large areas of one colour that
    is not the white background (the number written on a cell leaves it one area)."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    cells = []
    for colour, count in zip(colours, counts, strict=True):
        if count < MIN_CELL_PIXELS or np.all(colour >= 250):
            continue
        mask = np.all(pixels == colour, axis=-1).astype(np.uint8)
        n, _, stats, centres = cv2.connectedComponentsWithStats(mask)
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] >= MIN_CELL_PIXELS:
                x, y = centres[i]
                cells.append((int(x), int(y), tuple(int(c) for c in colour)))
    return cells


@pytest.mark.slow
def test_confusion_png_shows_base_and_head_as_dvc_draws_them(report) -> None:
    """DVC's confusion template, drawn by Vega: one panel per revision (base left), rows
    `predicted` (the y field) and columns `actual`, happy before neutral, each cell coloured
    by its count on one scale: base 4 of 10 happy faces right, head 7. The colour scheme is
    Vega's; what is checked is that equal counts share a colour and more is darker."""
    out, _ = report
    pixels = cv2.imread(str(out.parent / "report_plots" / "confusion.png"))
    cells = _cells(pixels)
    assert len(cells) == 8, cells  # 2 panels x 2 x 2, zero cells included
    # Base panel left, head right; in each, rows top to bottom, columns left to right.
    by_x = sorted(cells)
    panels = [
        sorted(by_x[:4], key=lambda c: (c[1], c[0])),
        sorted(by_x[4:], key=lambda c: (c[1], c[0])),
    ]
    counts = [[4, 0, 6, 5], [7, 0, 3, 5]]  # [pred happy: act happy, neutral; pred neutral: ...]
    seen = {}
    for panel, expected in zip(panels, counts, strict=True):
        for (_, _, colour), count in zip(panel, expected, strict=True):
            assert seen.setdefault(count, colour) == colour, f"count {count}: two colours"
    # More faces, darker cell: luminance falls strictly as the count grows.
    luminance = {c: 0.114 * b + 0.587 * g + 0.299 * r for c, (b, g, r) in seen.items()}
    ordered = sorted(luminance)
    assert ordered == [0, 3, 4, 5, 6, 7]
    assert all(luminance[a] > luminance[b] for a, b in itertools.pairwise(ordered)), luminance


def test_a_plot_vega_cannot_draw_is_a_warning_not_a_missing_image(tmp_path: Path) -> None:
    from pipeline.report.plots import render_plots

    good = {"data": {"values": [{"step": 0, "acc": 0.5, "rev": "HEAD"}]}, "mark": "line",
            "encoding": {"x": {"field": "step"}, "y": {"field": "acc"}}}  # fmt: skip
    bad = {**good, "mark": "no-such-mark"}
    plots = {"good": [{"type": "vega", "content": good}], "bad": [{"type": "vega", "content": bad}]}
    rendered, warnings = render_plots(plots, {"HEAD": "HEAD"}, tmp_path)
    assert [p.plot_id for p in rendered] == ["good"]
    assert rendered[0].images[""].read_bytes()[:8] == PNG_MAGIC
    assert len(warnings) == 1 and warnings[0].startswith("plot bad: Vega could not draw it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.png"]


@pytest.mark.slow
def test_workspace_is_the_default_head(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = repo / "eval" / "metrics.json"
    committed = metrics.read_text()
    try:
        metrics.write_text(
            json.dumps({"accuracy": 0.75, "n": 15, "per_class": {"happy": {"f1": 0.4}}})
        )
        assert main(["--base", "HEAD", "--repo", str(repo)]) == 0
    finally:
        metrics.write_text(committed)
    md = _squeezed(capsys.readouterr().out)
    assert "→ head **`workspace`**" in md
    assert "| `accuracy` | 0.6250 | 0.7500 | +0.1250 (+20.0%) |" in md
    assert "Not drawn: give `--out FILE`" in md


@pytest.mark.slow
def test_a_base_without_metrics_shows_dashes_and_a_warning(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A third commit whose metrics file cannot be read: the comparison must say so.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    _git(clone, "config", "user.email", "ci@example.com")
    _git(clone, "config", "user.name", "CI")
    (clone / "eval" / "metrics.json").write_text("{not json")
    _git(clone, "commit", "-q", "-am", "broken metrics")
    assert main(["--base", "HEAD", "--head", "HEAD~1", "--repo", str(clone)]) == 0
    md = _squeezed(capsys.readouterr().out)
    assert "| `accuracy` | — | 0.6250 | added |" in md
    assert "### Warnings" in md and "HEAD" in md.split("### Warnings")[1]


@pytest.mark.slow
def test_unknown_revision_is_a_clear_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--base", "no-such-branch", "--head", "HEAD", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "'no-such-branch' is not a git revision" in err and "fetch-depth: 0" in err


@pytest.mark.slow
def test_out_never_deletes_a_plots_folder_it_did_not_write(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "X.md"
    mine = tmp_path / "X_plots"
    mine.mkdir()
    (mine / "notes.txt").write_text("a person's notes")

    code = main(["--base", "HEAD~1", "--head", "HEAD", "--out", str(out), "--repo", str(repo)])

    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ferflow report: error: ")
    assert "holds files this report did not write (notes.txt)" in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "a person's notes"
    assert not out.exists()


@pytest.mark.slow
def test_out_replaces_its_own_plots_folder_whole(repo: Path, report) -> None:
    out, _ = report
    plots = out.parent / "report_plots"
    before = sorted(p.name for p in plots.iterdir())

    args = ["--base", "HEAD~1", "--head", "HEAD", "--out", str(out), "--repo", str(repo)]
    assert main(args) == 0

    assert sorted(p.name for p in plots.iterdir()) == before
    assert ".ferflow-report.json" in before and "confusion.png" in before


@pytest.mark.parametrize(
    ("old", "new", "metric", "expected"),
    [
        (0.5, 0.625, True, "+0.1250 (+25.0%)"),
        (0.5, 0.5, True, "0"),
        (None, 0.5, True, "added"),
        (0.5, None, True, "removed"),
        (0, 3, False, "+3"),  # no relative change from zero
        ("adam", "sgd", False, "changed"),
        (1e-5, 2e-5, True, "+1e-05 (+100.0%)"),
    ],
)
def test_format_change(old, new, metric: bool, expected: str) -> None:
    assert format_change(Change("m.json", "k", old, new), metric) == expected


@pytest.mark.parametrize(
    ("value", "metric", "expected"),
    [
        (0.61234, True, "0.6123"),
        (3.2e-6, True, "3.2e-06"),
        (0.001, False, "0.001"),
        (30, False, "30"),
        (True, False, "true"),
        ("adamw", False, "`adamw`"),
        ([64, 128], False, "`[64,128]`"),
        ("6368f8539f2c1f93be7be55f302f32b1", False, "`6368f8539f2c1f93be7be…`"),
        (None, True, "—"),
    ],
)
def test_format_value(value, metric: bool, expected: str) -> None:
    assert format_value(value, metric) == expected
