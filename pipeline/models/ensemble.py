"""The ensemble folder (`paths.ensemble`): member networks listed in members.json.

Written by the `ensemble` stage (pipeline/training/ensemble.py), read by `evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path

MEMBERS_FILE = "members.json"


def member_files(folder: str | Path) -> list[Path]:
    """The member networks' files listed in `folder`'s members.json (none: an empty list)."""
    folder = Path(folder)
    index = folder / MEMBERS_FILE
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} not found: run the `ensemble` stage first (`dvc repro ensemble`)"
        )
    return [folder / m["file"] for m in json.loads(index.read_text(encoding="utf-8"))]
