"""How every DVC stage script runs: params in, one summary line out, one-line errors.

    if __name__ == "__main__":
        run_stage("evaluate", evaluate)   # evaluate(params) -> "accuracy 0.9662 on 800 faces"

`--params FILE` picks the parameter file (the fer2013/ pipeline passes its own). Bad input
(params, data, a failed export check, missing files) ends the stage with one line naming
the file and the reason and exit status 1; Ctrl-C with one line saying what is kept
(status 130). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import inspect
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.config import PARAMS_FILE, repo_path
from pipeline.data.errors import DataError
from pipeline.errors import StageError
from pipeline.params import ParamsError, load_params

#: Errors that are the user's input, not ferflow's bugs: shown as one line, no traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ParamsError,
    StageError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
)


#: A full disk, or a full quota: the user frees space and reruns.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: DVC's lock file: a DVC process killed (or out of space) during its lock bookkeeping can
#: leave it empty, and every `dvc` command then fails until it is removed.
DVC_RWLOCK = ".dvc/tmp/rwlock"


def disk_full_message(e: OSError) -> str:
    """One line for a full disk: the file, what to do, and a stale DVC lock if one is left."""
    where = e.filename or "an output file"
    folder = Path(e.filename).parent if e.filename else Path(".")
    message = (
        f"{where}: no space left on device; free space there (`df -h {folder}`) and rerun "
        "(outputs are written to temporary files first: none was left half-written)"
    )
    lock = repo_path(DVC_RWLOCK)
    if lock.is_file() and lock.stat().st_size == 0:
        message += (
            f"; {lock} is empty (a DVC run cut short): remove it once space is free, or "
            "every dvc command fails ('Unable to read RWLock-file')"
        )
    return message


def parse_args(
    stage: str, argv: Sequence[str] | None = None, flags: dict[str, str] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}")
    parser.add_argument(
        "--params",
        default=PARAMS_FILE.name,
        help="the parameter file (default: params.yaml; fer2013/params.yaml for the real data)",
    )
    for flag, meaning in (flags or {}).items():
        parser.add_argument(f"--{flag}", action="store_true", help=meaning)
    return parser.parse_args(argv)


def uncommitted_hint(params_file: str) -> str:
    """How to get the committed values back, when the params file differs from git's HEAD.

    `dvc exp run -S lr=-1` writes its override into the file before the run fails, so the
    next run would fail on it again, before whatever the user changes next.
    """
    path = repo_path(params_file)
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    # Nothing printed: as committed (or not tracked); an error: no git or no repository.
    if done.returncode != 0 or not done.stdout.strip():
        return ""
    return (
        f" ({params_file} differs from the last commit, e.g. by a value `dvc exp run -S` "
        f"left there: `git checkout -- {params_file}` brings back the committed ones)"
    )


def run_stage(
    stage: str,
    work: Callable[..., str],
    argv: Sequence[str] | None = None,
    on_interrupt: str = "nothing was written; earlier outputs are as they were",
    flags: dict[str, str] | None = None,
) -> None:
    """Load and check the params, run `work`, print its summary; exit non-zero on failure.

    `flags`: extra on/off options of this stage ({name: help}), passed to `work` as
    keyword arguments; so is `params_file` (the path given) if `work` takes it.
    """
    args = parse_args(stage, argv, flags)
    options = {
        flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag in flags or {}
    }
    if "params_file" in inspect.signature(work).parameters:
        options["params_file"] = args.params
    start = time.perf_counter()
    try:
        params = load_params(repo_path(args.params), source=args.params)
        summary = work(params, **options)
    except KeyboardInterrupt:
        print(f"\n{stage}: interrupted; {on_interrupt}", file=sys.stderr)
        sys.exit(130)
    except EXPECTED_ERRORS as e:
        hint = uncommitted_hint(args.params) if isinstance(e, ParamsError) else ""
        print(f"{stage}: error: {e}{hint}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise  # anything else is a bug: keep its traceback
        print(f"{stage}: error: {disk_full_message(e)}", file=sys.stderr)
        sys.exit(1)
    print(f"{stage}: {summary} ({time.perf_counter() - start:.1f} s)", flush=True)
