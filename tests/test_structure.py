"""The package's structure: no import runs from a lower layer to a higher one, and the one
front door (`pipeline.cli`) lists and dispatches every command."""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.config import REPO_ROOT

#: The layers of `pipeline`, bottom up: a unit (a top-level module or subpackage) may import
#: its own modules and those of any lower layer, never a higher one nor a sibling of its own
#: layer (serve, batch and report each stand on the app alone).
LAYERS = (
    ("__init__", "config", "errors", "quiet", "io", "machine", "imaging"),
    ("model_spec", "params_errors"),
    ("params",),
    ("data",),
    ("models", "stage"),
    ("training",),
    ("evaluation",),
    ("export",),
    ("app",),
    ("serve", "batch", "report"),
    ("cli",),
)
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}
PACKAGE = REPO_ROOT / "pipeline"


def _unit(module: str) -> str:
    """`pipeline.app.cli` -> `app`; `pipeline` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every `pipeline...` module the file imports: import statements anywhere (lazy ones in
    functions too) and `importlib.import_module("...")` with a literal name."""
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            if base == "pipeline":  # `from pipeline import cli`: the unit is the name
                names |= {f"{base}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    return {n for n in names if n == "pipeline" or n.startswith("pipeline.")}


def upward_imports(files: list[Path]) -> list[str]:
    wrong = []
    for path in files:
        here = _unit(_module_name(path))
        for name in sorted(imported(path)):
            there = _unit(name)
            if there != here and there != "__init__" and LEVEL[there] >= LEVEL[here]:
                wrong.append(f"{path.relative_to(REPO_ROOT)} ({here}) imports {name} ({there})")
    return wrong


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_of_the_package_has_a_layer():
    units = {_unit(_module_name(path)) for path in FILES}
    assert units - set(LEVEL) == set(), "add the new module or package to LAYERS"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    assert upward_imports(FILES) == []


def test_the_check_sees_an_upward_import_even_inside_a_function(tmp_path, monkeypatch):
    app = tmp_path / "pipeline" / "app"
    app.mkdir(parents=True)
    (app / "bad.py").write_text("def f():\n    from pipeline.serve.cli import run\n")
    (app / "worse.py").write_text("import importlib\nimportlib.import_module('pipeline.cli')\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    found = upward_imports(sorted(app.glob("*.py")))
    assert found == [
        "pipeline/app/bad.py (app) imports pipeline.serve.cli (serve)",
        "pipeline/app/worse.py (app) imports pipeline.cli (cli)",
    ]


def _subcommands() -> dict[str, str]:
    (subparsers,) = (
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return {action.dest: action.help for action in subparsers._choices_actions}


def test_help_lists_every_command_on_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    lines = capsys.readouterr().out.splitlines()

    assert stop.value.code == 0
    for name, help_line in _subcommands().items():
        assert help_line
        assert sum(line.split() == [name, *help_line.split()] for line in lines) == 1, name


def test_every_command_is_dispatched():
    assert set(_subcommands()) == set(cli.COMMANDS) | set(cli.OWN_PARSERS)
    for module, function in cli.COMMANDS.values():
        assert callable(getattr(importlib.import_module(module), function))
