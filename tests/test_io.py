"""Atomic writes and their temporary files: unique per run, the leftovers of an ended run
removed by the next run writing into the same folder, anything else left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ended_pid


def temp(folder: Path, target: str, pid: int, host: str | None = None, suffix: str = "") -> Path:
    from pipeline.io import HOST_TAG

    return folder / f".{target}.{pid}-{host or HOST_TAG}-0123abcd.tmp{suffix}"


@pytest.fixture
def sleeper():
    """A process that is alive for the test's duration."""
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as process:
        yield process.pid
        process.kill()


def test_two_writers_of_one_target_get_different_temporary_files(tmp_path):
    from pipeline.io import atomic_path

    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert (tmp_path / "a.json").read_text() == "first"  # the last to finish wins, whole
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("helper", ["atomic_path", "atomic_dir", "temp_dir"])
def test_the_next_write_into_a_folder_removes_leftovers_of_ended_runs_only(
    tmp_path, sleeper, helper
):
    import pipeline.io as io

    gone = ended_pid()
    stale_file = temp(tmp_path, "records.jsonl", gone)
    stale_file.write_text("half")
    stale_video = temp(tmp_path, "clip.mp4", gone, suffix=".mp4")
    stale_video.write_text("half")
    stale_dir = temp(tmp_path, "prepared", gone)
    (stale_dir / "train").mkdir(parents=True)
    (stale_dir / "train" / "images.npy").write_bytes(b"x" * 1000)
    kept = [
        temp(tmp_path, "prepared", sleeper),  # a run still going
        temp(tmp_path, "prepared", gone, host="000000"),  # another machine's run
        tmp_path / ".prepared.old",  # not one of ferflow's names
        tmp_path / "notes.tmp",
    ]
    for path in kept:
        path.write_text("keep")

    with getattr(io, helper)(tmp_path / "out") as tmp:
        assert tmp.parent == tmp_path

    assert not any(p.exists() for p in (stale_file, stale_video, stale_dir))
    assert all(p.read_text() == "keep" for p in kept)


def test_a_killed_prepare_leaves_nothing_after_the_next_prepare(tmp_path, small_fer_csv):
    """`data/.prepared.*.tmp` (about 80 MB on real data) goes with the next prepare."""
    from pipeline.data.prepare import validate_and_prepare

    stale = temp(tmp_path, "prepared", ended_pid())
    (stale / "train").mkdir(parents=True)
    (stale / "train" / "images.npy").write_bytes(b"x" * 1000)

    validate_and_prepare(small_fer_csv, tmp_path / "reports", tmp_path / "prepared")

    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fer2013.csv", "prepared", "reports"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    from pipeline.io import atomic_path

    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as staged:
        staged.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_folder_write_leaves_the_old_folder(tmp_path):
    from pipeline.io import atomic_dir

    target = tmp_path / "eval"
    target.mkdir()
    (target / "summary.json").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_dir(target) as staged:
        (staged / "summary.json").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "summary.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["eval"]
