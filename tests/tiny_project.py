"""A throwaway copy of this repository that runs the real pipeline on tiny settings.

Used by the remote round-trip and sweep tests (through the `tiny_project` fixture in
conftest.py): git init, the project's own dvc.yaml, params.yaml (with tiny overrides),
.dvc/config, pipeline/ and stages/, then `dvc repro` and a commit of the results.

The copy lives at `<tmp>/workspace/ferflow`, so the default remote in .dvc/config
(`../ferflow-dvc-storage`, relative to the checkout) resolves to `<tmp>/workspace/
ferflow-dvc-storage`, inside the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import REPO_ROOT, merge_params

#: What a DVC project needs to run: the pipeline definition, its code and its config.
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config")
PROJECT_DIRS = ("pipeline", "stages", ".dvc/plots")

#: Tiny settings: ~350 synthetic faces, a ~19k-parameter network, one epoch.
TINY_OVERRIDES: dict[str, Any] = {
    "lr": 0.01,
    "epochs": 1,
    "batch_size": 32,
    "synthesize": {"rows": {"train": 210, "val": 70, "test": 70}},
    "train": {
        "seed": 0,
        "optimizer": "adam",
        "schedule": "constant",
        "early_stopping_patience": 0,
        "augment": {"flip": True, "rotation": 0.0, "zoom": 0.0, "shift": 0.0},
    },
    "evaluate": {"batch_size": 256, "tta": False},
    # One epoch on 210 faces leaves near-uniform probabilities, on which int8 rounding flips
    # classes: any int8 copy passes here; the acceptance rule is tested on a trained network
    # in test_export.py.
    "export": {
        "float16": False,
        "parity_images": 20,
        "calibration_images": 100,
        "int8_max_drop": 1.0,
        "int8_min_agreement": 0.0,
    },
}
#: Replaces the whole `model` section: its keys are the network builder's arguments.
TINY_MODEL: dict[str, Any] = {
    "name": "vgg",
    "widths": [4, 8],
    "convs_per_block": 1,
    "dense": [16],
    "dropout": 0.5,
}


@dataclass
class TinyProject:
    root: Path
    env: dict[str, str]
    #: What the first `dvc repro` printed (stdout and stderr together).
    first_repro: str = ""

    def run(
        self, *cmd: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None
    ) -> str:
        """Run a command in the project (or `cwd`); fail the test with its output if it fails."""
        done = subprocess.run(
            cmd,
            cwd=cwd or self.root,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}) in {cwd or self.root}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done.stdout

    def dvc(self, *args: str, cwd: Path | None = None, timeout: float = 900) -> str:
        return self.run(sys.executable, "-m", "dvc", *args, cwd=cwd, timeout=timeout)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return self.run("git", *args, cwd=cwd)


def project_env(root: Path) -> dict[str, str]:
    """The environment stages run in: this venv first on PATH (DVC runs `python ...`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TF_CONFIG")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        # The installed `pipeline` is this checkout's (pip install -e); the copy must use its
        # own, or its stages would read and write this checkout's files.
        PYTHONPATH=str(root),
        KERAS_BACKEND="tensorflow",
        DVC_NO_ANALYTICS="1",
        GX_ANALYTICS_ENABLED="false",
        GIT_AUTHOR_NAME="ferflow tests",
        GIT_AUTHOR_EMAIL="tests@ferflow.invalid",
        GIT_COMMITTER_NAME="ferflow tests",
        GIT_COMMITTER_EMAIL="tests@ferflow.invalid",
    )
    return env


def build_tiny_project(
    workspace: Path,
    overrides: dict[str, Any] | None = None,
    add_data: Callable[[Path], None] | None = None,
) -> TinyProject:
    """Copy the project into `workspace/ferflow`, shrink its params, reproduce, commit.

    `overrides` are merged into the tiny params; `add_data(root)` may write data into the
    copy (e.g. a folder dataset for data.raw) before the first commit.
    """
    root = workspace / "ferflow"
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params = merge_params(merge_params(params, TINY_OVERRIDES), overrides or {})
    params["model"] = dict(TINY_MODEL)
    if add_data is not None:
        add_data(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    project = TinyProject(root, project_env(root))
    project.git("init", "-q", "-b", "main")
    # DVC's own bookkeeping files, as `dvc init` would create them next to the copied config.
    (root / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "tiny ferflow")
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=root, env=project.env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    project.first_repro = done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"dvc repro failed in {root}:\n{project.first_repro[-8000:]}")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "reproduce")
    return project
