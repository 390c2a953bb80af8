"""Where `ferflow predict --annotate DIR` writes each annotated copy: names that cannot collide.

A copy keeps its input's name (`photo.jpg`, `clip.avi.mp4`: a format Pillow cannot write in
colour gets `.png` or `.mp4` appended rather than replacing its suffix, so `x.png` and
`x.pgm` stay apart), and a folder's layout is kept below DIR. Where two inputs would still
land on one name (`a/v.mp4` and `b/v.mp4`), each of them keeps as many of its parent folders
as it takes to tell them apart (`DIR/a/v.mp4`, `DIR/b/v.mp4`). Two names that differ only in
case count as one (macOS and Windows file systems). What cannot be told apart, or a copy
that would overwrite an input, is refused before anything is written.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import imaging
from pipeline.app.errors import AppError
from pipeline.app.media import ANNOTATED_VIDEO_SUFFIX


@dataclass(frozen=True)
class Item:
    """One file to annotate: `kind` is 'image', 'video' or 'folder' (an image in a folder
    given as `root`)."""

    kind: str
    root: Path
    file: Path


def annotated_names(items: list[Item], annotate_dir: Path) -> dict[Path, Path]:
    """File -> where its annotated copy goes; AppError if two inputs cannot be told apart."""
    sources = {item.file: item.file.resolve() for item in items}
    base = {item.file: _own_name(item) for item in items}
    parents = {item.file: _parent_parts(item) for item in items}
    depth = dict.fromkeys(base, 0)

    def target(file: Path) -> Path:
        kept = parents[file][len(parents[file]) - depth[file] :] if depth[file] else ()
        return annotate_dir.joinpath(*kept, base[file])

    while True:
        groups: dict[str, list[Path]] = defaultdict(list)
        for file in base:
            groups[str(target(file)).casefold()].append(file)
        clashes = [files for files in groups.values() if len({sources[f] for f in files}) > 1]
        if not clashes:
            break
        for files in clashes:
            growing = [f for f in files if depth[f] < len(parents[f])]
            stuck = {sources[f]: f for f in files if f not in growing}
            if len(stuck) > 1:  # two different inputs with no parent folder left to add
                first, second = list(stuck.values())[:2]
                raise AppError(
                    f"--annotate: {first} and {second} would both be written to "
                    f"{target(first)}; annotate them in separate runs or folders"
                )
            for f in growing:
                depth[f] += 1

    names = {file: target(file) for file in base}
    inputs = set(sources.values())
    for file, name in names.items():
        if name.resolve() in inputs:
            whose = "" if name.resolve() == sources[file] else f" (the copy of {file})"
            raise AppError(
                f"{name}: the annotated copy{whose} would overwrite the input; "
                "choose another --annotate folder"
            )
    return names


def _own_name(item: Item) -> Path:
    """The copy's path below the annotate folder before any parent folders are added."""
    file = item.file
    if item.kind == "video":
        keep = file.suffix.lower() == ANNOTATED_VIDEO_SUFFIX
        return Path(file.name if keep else file.name + ANNOTATED_VIDEO_SUFFIX)
    relative = file.relative_to(item.root) if item.kind == "folder" else Path(file.name)
    writable = _writes_colour(relative.suffix.lower())
    return relative if writable else relative.with_name(relative.name + ".png")


#: Formats that hold grey (or black and white) only; Pillow would write colour into them
#: anyway, as a PPM under the wrong name.
_GREY_ONLY = (".pgm", ".pbm")


@functools.cache
def _writes_colour(suffix: str) -> bool:
    """Whether a colour image can be written in the format this suffix names."""
    if not suffix or suffix in _GREY_ONLY:
        return False
    try:
        imaging.encode(np.zeros((2, 2, 3), np.uint8), suffix)
    except ValueError:
        return False
    return True


def _parent_parts(item: Item) -> tuple[str, ...]:
    """Folder names that can be put in front of the own name, nearest last."""
    above = item.root if item.kind == "folder" else item.file.parent
    return above.resolve().parts[1:]
