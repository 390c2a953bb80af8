"""The `ferflow` command: one front door above every layer it dispatches to.

Each command's options live beside the code they drive: `predict` and `live` in
`pipeline.app.cli` (with the model options every recognizer command shares), `serve` in
`pipeline.serve.cli`, `batch` in `pipeline.batch.cli`; `report`, `params` and `plots-setup`
(the pipeline extra) parse their own arguments. Modules load per command, so `ferflow predict`
imports neither the server nor Ray nor the pipeline.

Errors the user can fix (a missing file, a bad model, no camera) print one line,
`ferflow: error: ...`, and exit with status 1; usage errors exit with 2 (argparse).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from pipeline.app.cli import PROG
from pipeline.app.errors import AppError

#: Commands that parse their own arguments (and need the pipeline extra): name -> help line.
OWN_PARSERS = {
    "report": "pull-request report: metrics, params, plots diff (Markdown)",
    "params": "params.yaml's schema: every key, its type, value and meaning",
    "plots-setup": "make `dvc plots show` work offline (once per clone)",
}


class _VersionAction(argparse.Action):
    """`--version`, reading the installed metadata only when asked."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from pipeline.app.version import installed_version

        parser.exit(message=f"{parser.prog} {installed_version()}\n")


class _OneLineCommands(argparse.HelpFormatter):
    """argparse measures the commands' names without the indent it then prints them with,
    so the longest (`plots-setup`) would get its help on a second line: count that indent."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length += self._indent_increment


def build_parser() -> argparse.ArgumentParser:
    from pipeline.app.cli import add_live, add_predict
    from pipeline.batch.cli import add_parser as add_batch
    from pipeline.serve.cli import add_parser as add_serve

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Facial emotion recognition with an exported ferflow model.",
        formatter_class=_OneLineCommands,
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_predict(commands)
    add_live(commands)
    add_serve(commands)
    add_batch(commands)
    for name, line in OWN_PARSERS.items():
        commands.add_parser(name, help=line, add_help=False)
    return parser


#: Commands `build_parser` parses: name -> (module, function) that runs it, imported only
#: for that command.
COMMANDS = {
    "predict": ("pipeline.app.cli", "run_predict_command"),
    "live": ("pipeline.app.cli", "run_live_command"),
    "serve": ("pipeline.serve.cli", "run"),
    "batch": ("pipeline.batch.cli", "run"),
}


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(module), function)


def _report(argv: Sequence[str]) -> int:
    try:
        report_cli = importlib.import_module("pipeline.report.cli")
    except ImportError as e:
        raise AppError(f"`{PROG} report` is not available in this install ({e})") from None
    return int(report_cli.main(list(argv)) or 0)


def _params(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} params",
        description="Print params.yaml's schema: every key, its type or choices, its value "
        "in FILE and its meaning (the `params` stage checks FILE against it).",
    )
    parser.add_argument("file", nargs="?", default="params.yaml", help="default: params.yaml")
    args = parser.parse_args(argv)
    try:
        schema = importlib.import_module("pipeline.params")
    except ImportError as e:
        raise AppError(f"`{PROG} params` needs the pipeline install (.[pipeline]): {e}") from None
    print(schema.format_schema_table(args.file))
    return 0


def _plots_setup(argv: Sequence[str]) -> int:
    # Its own parser too; it explains a missing package.
    from pipeline.report.plots_page import main as plots_setup

    return plots_setup(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ferflow` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own = {"report": _report, "params": _params, "plots-setup": _plots_setup}
    try:
        if argv[:1] and argv[0] in own:
            return own[argv[0]](argv[1:])
        args = build_parser().parse_args(argv)
        return _command(args.command)(args)
    except AppError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (`| head`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # e.g. --output in a folder we may not write to
        where = f"{e.filename}: " if e.filename else ""
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        hint = "; free space there and rerun (nothing half-written was kept)" if full else ""
        print(f"{PROG}: error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
