"""What changed between two revisions, read from DVC's own JSON output.

`dvc metrics diff`, `dvc params diff` and `dvc plots diff` with `--json` are DVC's documented
interface; ferflow renders their output itself instead of pasting `--md` tables, so the
report can show old value, new value and change side by side and draw the plots as images.

DVC exits 0 and prints a warning when it cannot read a revision's metrics (a broken
dvc.yaml, a file that was not committed): those warnings are collected and shown in the
report, so a missing baseline is visible instead of silently empty.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: DVC's name for the uncommitted files in the working tree.
WORKSPACE = "workspace"


class DvcError(RuntimeError):
    """A dvc command failed (unknown revision, not a DVC repository, ...)."""


@dataclass(frozen=True)
class Change:
    """One metric or param: its file, dotted key, and value in the base and head revisions."""

    path: str
    key: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        """new - old when both are numbers, else None."""
        if _is_number(self.old) and _is_number(self.new):
            return float(self.new) - float(self.old)
        return None

    @property
    def relative(self) -> float | None:
        """delta / |old| when defined and old is not zero."""
        delta = self.delta
        if delta is None or not float(self.old):
            return None
        return delta / abs(float(self.old))


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def revisions(base: str, head: str) -> list[str]:
    """The revision arguments DVC takes: comparing with the workspace means naming only base."""
    return [base] if head == WORKSPACE else [base, head]


def run_dvc_json(args: list[str], repo: str | Path) -> tuple[dict[str, Any], list[str]]:
    """Run `dvc ARGS --json` in `repo`; return the parsed JSON and DVC's warning lines."""
    cmd = [sys.executable, "-m", "dvc", *args, "--json"]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 0:
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-3:]
        raise DvcError(
            f"`dvc {' '.join(args)}` failed in {repo} (exit {done.returncode}): " + " ".join(errors)
        )
    try:
        data = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as e:
        raise DvcError(
            f"`dvc {' '.join(args)} --json` printed something that is not JSON ({e}); "
            f"first characters: {done.stdout[:80]!r}"
        ) from None
    warnings = [line for line in lines if line.startswith(("WARNING", "DVC failed"))]
    return data, warnings


def _relevant(warnings: list[str], head: str) -> list[str]:
    # DVC also reads the workspace when two commits are compared and warns about it; that
    # noise only matters when the workspace is one of the two sides.
    if head == WORKSPACE:
        return warnings
    return [w for w in warnings if f"'{WORKSPACE}'" not in w]


def _changes(data: dict[str, Any]) -> list[Change]:
    changes = []
    for path, entries in data.items():
        for key, values in entries.items():
            changes.append(Change(path, key, values.get("old"), values.get("new")))
    return sorted(changes, key=lambda c: (c.path, c.key))


def metrics_diff(base: str, head: str, repo: str | Path) -> tuple[list[Change], list[str]]:
    """Every metric in either revision (`--all`: unchanged ones too, a reviewer wants them)."""
    data, warnings = run_dvc_json(["metrics", "diff", "--all", *revisions(base, head)], repo)
    return _changes(data), _relevant(warnings, head)


def params_diff(base: str, head: str, repo: str | Path) -> tuple[list[Change], list[str]]:
    """The params whose value differs between the revisions."""
    data, warnings = run_dvc_json(["params", "diff", *revisions(base, head)], repo)
    return _changes(data), _relevant(warnings, head)


def plots_diff(
    base: str, head: str, repo: str | Path, images_dir: str | Path
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """DVC's plot definitions filled with each revision's data: {plot id: [entries]}.

    Entries of type `vega` carry the data of every revision (a `rev` field in each row);
    entries of type `image` point to the image DVC copied into `images_dir`.
    """
    args = ["plots", "diff", *revisions(base, head), "-o", str(Path(images_dir).resolve())]
    data, warnings = run_dvc_json(args, repo)
    for error in data.get("errors", []):
        warnings.append(
            f"plots of revision '{error.get('rev')}': {error.get('msg') or error.get('type')}"
        )
    return data.get("data", {}), _relevant(warnings, head)


def cpu_kinds(rev: str, paths: list[str], repo: str | Path) -> dict[str, str]:
    """{metrics file: the CPU kind its `machines` entry names} at `rev` (pipeline.machine);
    files without one (older records, other tools' metrics) are left out."""
    from pipeline.machine import cpu_kind, made_on

    kinds = {}
    for path in paths:
        if rev == WORKSPACE:
            file = Path(repo) / path
            text = file.read_text(encoding="utf-8") if file.is_file() else ""
        else:
            done = subprocess.run(
                ["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True
            )
            text = done.stdout if done.returncode == 0 else ""
        try:
            record = json.loads(text) if text else None
        except json.JSONDecodeError:
            record = None
        machine = made_on(record) if isinstance(record, dict) else {}
        if machine:
            kinds[path] = cpu_kind(machine)
    return kinds


def describe_revision(rev: str, repo: str | Path) -> str:
    """`rev` with its short commit id, e.g. `origin/main (1a2b3c4)`; the workspace as is."""
    if rev == WORKSPACE:
        return WORKSPACE
    done = subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    sha = done.stdout.strip()
    if done.returncode != 0 or not sha:
        raise DvcError(
            f"{rev!r} is not a git revision in {repo}; fetch it first "
            "(in CI: actions/checkout with fetch-depth: 0)"
        )
    return rev if rev.startswith(sha) else f"{rev} ({sha})"
