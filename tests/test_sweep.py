"""scripts/sweep.sh: a learning-rate x batch-size grid through DVC's queue, compared in a table."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.config import REPO_ROOT

SWEEP = REPO_ROOT / "scripts" / "sweep.sh"


def _experiments(show: list[dict]) -> list[dict]:
    """The experiments of `dvc exp show --json`, each as {name, params, metrics}."""
    found = []
    for commit in show:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = {}
                for entry in data.get("metrics", {}).values():
                    metrics.update(entry.get("data", {}))
                found.append({"name": rev.get("name"), "params": params, "metrics": metrics})
    return found


@pytest.mark.slow
def test_sweep_runs_the_grid_and_compares_it(tiny_project) -> None:
    env = {**tiny_project.env, "LRS": "0.001,0.01", "BATCH_SIZES": "16,32", "JOBS": "2"}
    done = subprocess.run(
        ["bash", str(SWEEP)],
        cwd=tiny_project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (
        f"sweep failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n"
        "If an experiment failed with 'output ... does not exist': queued experiments run in "
        ".dvc/tmp/exps/<id>, and a stage started as `python stages/x.py` imports the installed "
        "`pipeline` (this checkout) instead of the experiment's copy; `python -m stages.x` "
        "imports the copy in the stage's working directory."
    )
    out = done.stdout

    # One Markdown table, every experiment of the grid in it with its params.
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table and "| lr " in table[0] and "batch_size" in table[0]
    assert "test.accuracy" in table[0]
    rows = [line for line in table if "Success" in line]
    assert len(rows) == 4, out

    show = json.loads(tiny_project.dvc("exp", "show", "--json"))
    experiments = _experiments(show)
    grid = {(e["params"]["lr"], e["params"]["batch_size"]) for e in experiments}
    assert grid == {(0.001, 16), (0.001, 32), (0.01, 16), (0.01, 32)}
    for exp in experiments:
        assert 0.0 <= exp["metrics"]["test"]["accuracy"] <= 1.0, exp
    # The params really reached training: different settings, different results.
    scores = {
        (e["metrics"]["test"]["accuracy"], e["metrics"]["test"]["macro_f1"]) for e in experiments
    }
    assert len(scores) > 1, experiments
