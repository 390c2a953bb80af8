"""End to end with real DVC on a temporary copy of the repository and tiny settings
(tests/tiny_project.py): `dvc repro` writes exactly what dvc.yaml declares, metrics and
plots show, `dvc exp run -S train.lr=...` is seen by `dvc exp show` / `dvc metrics diff`,
and `dvc repro` resumes training after a kill. Also (fast): each stage's deps list the
library modules its script imports.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_project import TINY_OVERRIDES, TinyProject, build_tiny_project

from pipeline.config import REPO_ROOT

STAGES = ("train", "ensemble", "evaluate", "export")


# --- deps: every pipeline module a stage imports, at any depth --------------------------


def _module_file(name: str) -> Path | None:
    path = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def imported_pipeline_files(script: Path) -> set[str]:
    """Files of the `pipeline` modules `script` imports, following imports inside functions
    too (evaluate and export import some modules only when they run)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        tree = ast.parse(todo.pop().read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "pipeline":
                    continue
                for i in range(1, len(parts) + 1):  # importing a.b.c imports a and a.b
                    found = _module_file(".".join(parts[:i]))
                    if found and found not in seen:
                        seen.add(found)
                        todo.append(found)
    return {str(f.relative_to(REPO_ROOT)) for f in seen if _has_code(f)}


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_every_module_the_stage_imports(stage: str) -> None:
    spec = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][stage]
    script = f"stages/{stage}.py"
    assert spec["cmd"] == f"python -m stages.{stage}"
    assert script in spec["deps"]
    declared = {d for d in spec["deps"] if d.startswith("pipeline/")}
    assert declared == imported_pipeline_files(REPO_ROOT / script)


# --- the pipeline in a temporary repository ----------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    """This module's own tiny project, `dvc repro`-ed and committed. Its tests change it,
    so it is not the session-wide `tiny_project` that other tests share."""
    return build_tiny_project(tmp_path_factory.mktemp("experiment") / "workspace")


def declared_outputs(repo: Path) -> list[Path]:
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return [Path(out.fs_path) for stage in dvc_repo.index.stages for out in stage.outs]


def read_params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


@pytest.mark.slow
def test_repro_writes_exactly_the_declared_outputs(project):
    repo = project.root
    outputs = declared_outputs(repo)
    for out in outputs:
        assert out.exists(), f"{out.relative_to(repo)} is declared but was not written"
    written = [
        p
        for top in ("data", "models", "reports")
        for p in (repo / top).rglob("*")
        if p.is_file() and p.name != ".gitignore"
    ]
    undeclared = [p for p in written if not any(p == o or o in p.parents for o in outputs)]
    assert undeclared == [], "written but not declared in dvc.yaml"
    resume = repo / read_params(repo)["paths"]["train_resume"]
    assert not resume.exists(), "a finished run leaves no resume state"
    assert json.loads(project.dvc("status", "--json")) == {}


@pytest.mark.slow
def test_repro_metrics_and_plots(project):
    repo = project.root
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"accuracy", "macro_f1", "n"}
    assert metrics["test"]["n"] == TINY_OVERRIDES["synthesize"]["rows"]["test"]
    assert "reports/metrics.json" in project.dvc("metrics", "show", "--json")

    plots = json.loads(project.dvc("plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    for name in ("loss", "accuracy", "learning_rate", "confusion_matrix", "per_class_f1"):
        assert plots["data"][name][0]["type"] == "vega", name
    for image in ("reports/eval/confusion.png", "reports/eval/per_class.png"):
        assert plots["data"][image][0]["type"] == "image", image
    # Train and val curves in one plot: one point per epoch each.
    loss_points = plots["data"]["loss"][0]["content"]["data"]["values"]
    assert len(loss_points) == 2 * read_params(repo)["train"]["epochs"]
    confusion_points = plots["data"]["confusion_matrix"][0]["content"]["data"]["values"]
    assert len(confusion_points) == metrics["test"]["n"]


@pytest.mark.slow
def test_experiment_with_another_learning_rate(project):
    baseline_lr = read_params(project.root)["train"]["lr"]
    assert baseline_lr != 0.0005
    project.dvc("exp", "run", "-S", "train.lr=0.0005")

    assert read_params(project.root)["train"]["lr"] == 0.0005
    rows = json.loads(project.dvc("exp", "show", "--json"))
    experiments = [e for row in rows for e in row.get("experiments") or []]
    assert experiments, "dvc exp show lists no experiment"
    data = experiments[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.0005
    assert "accuracy" in data["metrics"]["reports/metrics.json"]["data"]["test"]

    diff = json.loads(project.dvc("metrics", "diff", "--all", "--json"))
    assert {"test.accuracy", "test.macro_f1", "test.n"} <= set(diff["reports/metrics.json"])
    assert diff["reports/train/metrics.json"]["learning_rate"]["new"] == pytest.approx(0.0005)
    lr_change = json.loads(project.dvc("params", "diff", "--json"))["params.yaml"]["train.lr"]
    assert (lr_change["old"], lr_change["new"]) == (baseline_lr, 0.0005)


@pytest.mark.slow
def test_experiment_with_an_ensemble_member(project):
    metrics_file = project.root / "reports" / "metrics.json"
    assert "test_ensemble" not in json.loads(metrics_file.read_text()), "none by default"
    project.dvc("exp", "run", "-S", "ensemble.members=[{train: {seed: 1}}]")

    members = json.loads((project.root / "models" / "ensemble" / "members.json").read_text())
    assert [(m["member"], m["overrides"]) for m in members] == [(1, {"train": {"seed": 1}})]
    diff = json.loads(project.dvc("metrics", "diff", "--all", "--json"))["reports/metrics.json"]
    assert 0 <= diff["test_ensemble.accuracy"]["new"] <= 1
    assert diff["test_ensemble.accuracy"]["old"] is None


@pytest.mark.slow
def test_dvc_repro_resumes_training_after_kill(project):
    from pipeline.training.resume import ResumeState

    repo, epochs = project.root, 6
    params = read_params(repo)
    params["train"]["epochs"] = epochs
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checkpoint = ResumeState(repo / params["paths"]["train_resume"], key="unused")

    # Its own session, so that one kill takes DVC and the training process it started.
    child = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=repo,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while checkpoint.last_completed_epoch() < 2:
            assert child.poll() is None, "dvc repro ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.02)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    done = checkpoint.last_completed_epoch()
    assert 2 <= done < epochs

    rerun = project.dvc("repro")
    assert f"Resuming training at epoch {done + 1}/{epochs}" in rerun
    log = repo / params["paths"]["train_log"] / "plots" / "metrics"
    for metric in ("train/loss", "val/accuracy"):
        rows = (log / f"{metric}.tsv").read_text().splitlines()[1:]
        assert [int(row.split("\t")[0]) for row in rows] == list(range(epochs)), metric
    assert not checkpoint.folder.exists()
    assert json.loads(project.dvc("status", "--json")) == {}
