"""Both pipeline files (dvc.yaml, fer2013/dvc.yaml) wire the one set of stage scripts
honestly: each stage depends on every pipeline module its script imports (at any depth,
imports inside functions included), on its own checked params view, and tracks exactly the
params keys the schema says it reads. One check, for both files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pipeline.config import REPO_ROOT
from pipeline.params import STAGE_PARAMS

PIPELINES = {
    "dvc.yaml": "params.yaml",
    "fer2013/dvc.yaml": "fer2013/params.yaml",
    "ferplus/dvc.yaml": "ferplus/params.yaml",
}


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
    """Files of the `pipeline` modules `script` imports, following every import statement
    (inside functions too: export imports the Keras-only modules when it runs)."""
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


def stages_of(pipeline_file: str) -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / pipeline_file).read_text(encoding="utf-8"))["stages"]


CASES = [(p, s) for p in PIPELINES for s in stages_of(p)]


@pytest.mark.parametrize(("pipeline_file", "stage"), CASES)
def test_deps_list_every_module_the_stage_imports(pipeline_file: str, stage: str) -> None:
    spec = stages_of(pipeline_file)[stage]
    params_file = PIPELINES[pipeline_file]
    flag = "" if params_file == "params.yaml" else f" --params {params_file}"
    assert spec["cmd"] == f"python -m stages.{stage}{flag}"
    script = f"stages/{stage}.py"
    assert script in spec["deps"]
    declared = {d for d in spec["deps"] if d.startswith("pipeline/")}
    assert declared == imported_pipeline_files(REPO_ROOT / script)


@pytest.mark.parametrize(("pipeline_file", "stage"), CASES)
def test_each_stage_reads_its_checked_params(pipeline_file: str, stage: str) -> None:
    spec = stages_of(pipeline_file)[stage]
    if stage == "params":
        # The first stage: the whole file, so any change (a typo included) reruns the check.
        assert PIPELINES[pipeline_file] in spec["deps"]
        return
    assert "${paths.params}/" + f"{stage}.json" in spec["deps"]
    tracked = spec["params"]
    if pipeline_file != "dvc.yaml":  # params of a file other than ./params.yaml
        ((file, tracked),) = (next(iter(entry.items())) for entry in tracked)
        assert file == PIPELINES[pipeline_file]
    assert tuple(tracked) == STAGE_PARAMS[stage]


@pytest.mark.parametrize("pipeline_file", ["fer2013/dvc.yaml", "ferplus/dvc.yaml"])
def test_the_real_pipelines_use_the_default_pipelines_stages(pipeline_file) -> None:
    default, real = stages_of("dvc.yaml"), stages_of(pipeline_file)
    assert set(real) <= set(default)
    for name, spec in real.items():
        assert spec.get("wdir") == "..", name  # paths in fer2013/params.yaml are repo-relative
        code = [d for d in spec["deps"] if d.startswith(("stages/", "pipeline/"))]
        assert code == [d for d in default[name]["deps"] if d.startswith(("stages/", "pipeline/"))]


@pytest.mark.slow
def test_dvc_metrics_show_fits_120_columns_and_lists_both_pipelines() -> None:
    """The committed records, as a fresh clone shows them: headline numbers only."""
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= 120, shown
    paths = [line.split()[0] for line in lines[1:]]
    assert {"reports/metrics.json", "reports/fer2013/metrics.json"} <= set(paths)
    assert "test.accuracy" in lines[0].split()
