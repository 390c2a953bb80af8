"""Sources -> work units: images in small groups, videos cut into frame ranges.

A unit is what one actor call does and what one output file holds, so it is also what a
killed run can lose. Its key is a hash of what it covers (each file's absolute path, size
and modification time, and the frame range): a second run over unchanged sources finds the
same keys and skips their units; a changed file gets new keys and is redone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.app.errors import AppError
from pipeline.app.media import input_kind, list_inputs, open_video

#: Frames per unit of a video: 10 s at 30 fps. Small enough that a one-hour video is 360
#: units (every worker gets a share, a kill loses 10 s of it), large enough that the seek at
#: each unit's start (decoding from the keyframe before it) stays a small part of its cost.
CHUNK_FRAMES = 300
#: Images per unit, on average: one output file per 16 images rather than per image, and
#: still enough units for every worker on a small folder (150 photos: about 10 units).
IMAGES_PER_UNIT = 16


@dataclass(frozen=True)
class Item:
    """Frames [start, stop) of one file; an image is frame 0; stop None: to the end."""

    source: str
    kind: str
    start: int = 0
    stop: int | None = None


@dataclass(frozen=True)
class Unit:
    key: str
    items: tuple[Item, ...]

    def to_json(self) -> str:
        """The items as JSON lists (source, kind, start, stop): what travels to the actors and
        what each output file's metadata records."""
        return json.dumps([[i.source, i.kind, i.start, i.stop] for i in self.items])


def find_files(paths: list[Path], *, recursive: bool = False) -> list[tuple[Path, str]]:
    """(absolute file, 'image' or 'video') for every source; AppError for a missing source or a
    folder with neither (checked for all before any work starts)."""
    files: list[tuple[Path, str]] = []
    for path in paths:
        kind = input_kind(path)
        if kind != "folder":
            files.append((path.resolve(), kind))
            continue
        found = list_inputs(path, recursive=recursive, videos=True)
        files += sorted((f.resolve(), k) for f, k in found)
    seen: set[Path] = set()
    return [(f, k) for f, k in files if not (f in seen or seen.add(f))]


def frame_count(path: Path) -> int | None:
    """The frame count the container declares; None if unknown or unreadable (the worker
    then reads the video whole, and reports why it cannot)."""
    try:
        video = open_video(path)
    except AppError:
        return None
    try:
        return video.frame_count
    finally:
        video.release()


def plan_units(
    files: list[tuple[Path, str]],
    *,
    chunk_frames: int = CHUNK_FRAMES,
    images_per_unit: int = IMAGES_PER_UNIT,
) -> list[Unit]:
    """Videos in frame ranges (the last one reads to the end, whatever the container says),
    then images in groups, in the order given."""
    video_items: list[list[Item]] = []
    images: list[Item] = []
    for path, kind in files:
        if kind == "image":
            images.append(Item(str(path), "image", 0, 1))
            continue
        count = frame_count(path)
        starts = range(0, max(count or 0, 1), chunk_frames)
        for i, start in enumerate(starts):
            stop = None if i == len(starts) - 1 else start + chunk_frames
            video_items.append([Item(str(path), "video", start, stop)])
    groups = video_items + _image_groups(images, images_per_unit)
    return [Unit(_key(group), tuple(group)) for group in groups]


def _image_groups(images: list[Item], per_unit: int) -> list[list[Item]]:
    """Groups of about `per_unit` images, cut after each image whose file name hashes to 0
    modulo `per_unit` (and at 8x that at most: a run that long has odds of 1 in 4,000 at 16).
    Where a group ends depends on the images themselves, not on their positions, so a photo
    added to a folder redoes its own group only (two groups if it ends one)."""
    groups: list[list[Item]] = []
    current: list[Item] = []
    for item in images:
        current.append(item)
        name = Path(item.source).name.encode()
        cut = int(hashlib.sha256(name).hexdigest()[:8], 16) % per_unit == 0
        if cut or len(current) >= 8 * per_unit:
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


def _key(items: list[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        stat = Path(item.source).stat()
        fields = [item.source, stat.st_size, stat.st_mtime_ns, item.start, item.stop]
        digest.update(json.dumps(fields).encode() + b"\n")
    return digest.hexdigest()[:24]
