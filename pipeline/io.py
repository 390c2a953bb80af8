"""Atomic writes: a failed stage leaves no half-written output behind.

Each helper writes into a temporary sibling and renames it into place only when the
block finished without error, so readers see either the old file or the complete new one.

Temporary names are unique per run and say whose they are:
`.<target name>.<pid>-<host>-<random>.tmp` (a suffix such as `.mp4` may follow, where a
library picks the format from the name). Two runs writing the same target never share
one, and a run killed before it could clean up (`kill -9`, a power cut) leaves names that
the next run writing into the same folder recognises: it removes those whose process, on
this host, has ended. git ignores them meanwhile (`.gitignore`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: os.umask can only be read by setting it, and setting it later would
# race with stages that write files from a second thread.
_UMASK = _read_umask()

#: Six hex digits of the host name: a pid says nothing about a process on another machine
#: (a folder shared over the network, another container).
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-[0-9a-f]{8}\.tmp(\.\w+)?$")
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def temp_name(target: str | Path, suffix: str = "") -> Path:
    """A fresh temporary sibling name for `target` (nothing is created)."""
    target = Path(target)
    token = secrets.token_hex(4)
    return target.with_name(f".{target.name}.{os.getpid()}-{HOST_TAG}-{token}.tmp{suffix}")


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of the temporary names above."""
    return _TEMP_NAME.match(name) is not None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no safe probe without a dependency: never remove
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_temp(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders in `folder` left by ended runs on this host.

    Checked once per folder per process (the helpers below call it before they write);
    returns what it removed.
    """
    folder = Path(folder)
    try:
        key = folder.resolve()
    except OSError:
        return []
    with _sweep_lock:
        if key in _swept:
            return []
        _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != HOST_TAG or _process_alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def claim_temp(target: str | Path, suffix: str = "", *, folder: bool = False) -> Path:
    """Create (exclusively) and return a temporary file or folder beside `target`.

    Stale temporary files of ended runs in that folder are removed first. The caller
    removes or renames what it got.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(target.parent)
    while True:
        path = temp_name(target, suffix)
        try:
            if folder:
                path.mkdir(mode=0o700)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        return path


@contextlib.contextmanager
def temp_dir(target: str | Path) -> Iterator[Path]:
    """A temporary folder beside `target` for staging work; removed afterwards."""
    tmp = claim_temp(target, folder=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces `target` in one rename."""
    target = Path(target)
    tmp_path = claim_temp(target)
    try:
        yield tmp_path
        # Created 0600; published outputs follow the umask like any other file.
        tmp_path.chmod(0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except OSError as e:
        if e.filename is None:  # write() names no file (a full disk): name the output
            e.filename = str(target)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces the folder `target`."""
    target = Path(target)
    tmp = claim_temp(target, folder=True)
    try:
        yield tmp
        tmp.chmod(0o777 & ~_UMASK)
        if target.exists():
            # Two renames keep the window without a complete `target` as short as possible.
            old = temp_name(target)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, pretty and with a trailing newline (diff-friendly in git)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
