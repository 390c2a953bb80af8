"""What `ferflow predict` writes: annotated copies whose names cannot collide, temporary files
unique per run, and the leftovers of a killed run removed by the next one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import ended_pid

from pipeline.app.media import VideoWriter
from pipeline.cli import main
from pipeline.config import REPO_ROOT
from pipeline.io import HOST_TAG


def run(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, list[dict], str]:
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def frame_count(video: Path) -> int:
    """Frames that really decode (not what the header says)."""
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def leftover(folder: Path, target: str, pid: int, suffix: str = "") -> Path:
    """A temporary file as a run with `pid` would leave it, writing `target` in `folder`."""
    path = folder / f".{target}.{pid}-{HOST_TAG}-0123abcd.tmp{suffix}"
    path.write_bytes(b"half a file")
    return path


def git_ignores(name: str) -> bool:
    """Whether this repository's .gitignore ignores a file of this name in any folder."""
    done = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", f"data/{name}"], cwd=REPO_ROOT
    )
    return done.returncode == 0


# ---------------------------------------------------------------------------------------
# Annotated copies: one per input, never two on one name.
# ---------------------------------------------------------------------------------------


def test_same_named_images_in_two_folders_keep_both_copies(
    capfd, app_model_dir, tmp_path, astronaut_bgr
):
    for folder, value in (("d1", 60), ("d2", 200)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.png"), np.full((80, 80, 3), value, np.uint8))
    out = tmp_path / "annotated"

    code, records, _ = run(
        capfd, "predict", tmp_path / "d1/x.png", tmp_path / "d2/x.png",
        "--model-dir", app_model_dir, "--annotate", out,
    )  # fmt: skip

    assert code == 0 and len(records) == 2
    assert cv2.imread(str(out / "d1/x.png"))[0, 0, 0] == 60
    assert cv2.imread(str(out / "d2/x.png"))[0, 0, 0] == 200
    assert not (out / "x.png").exists()


def test_same_named_videos_in_two_folders_keep_both_copies(
    capfd, app_model_dir, tmp_path, face_video
):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(face_video, tmp_path / folder / "v.mp4")
    out = tmp_path / "annotated"

    code, _, _ = run(
        capfd, "predict", tmp_path / "a/v.mp4", tmp_path / "b/v.mp4",
        "--model-dir", app_model_dir, "--annotate", out,
    )  # fmt: skip

    assert code == 0
    assert frame_count(out / "a/v.mp4") == frame_count(out / "b/v.mp4") == 12


def test_folders_with_the_same_layout_and_converted_suffixes_stay_apart(
    capfd, app_model_dir, tmp_path
):
    grey = np.full((50, 50, 3), 128, np.uint8)
    for folder in ("shoot1/photos", "shoot2/photos"):
        (tmp_path / folder).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), grey)
    cv2.imwrite(str(tmp_path / "y.png"), grey)
    cv2.imwrite(str(tmp_path / "y.pgm"), grey[..., 0])
    out = tmp_path / "annotated"

    code, records, err = run(
        capfd, "predict", tmp_path / "shoot1/photos", tmp_path / "shoot2/photos",
        tmp_path / "y.png", tmp_path / "y.pgm", "--model-dir", app_model_dir, "--annotate", out,
    )  # fmt: skip

    assert code == 0 and len(records) == 4, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    # .pgm holds grey only: the colour copy of y.pgm is a PNG beside y.png's copy.
    assert written == ["shoot1/photos/x.jpg", "shoot2/photos/x.jpg", "y.pgm.png", "y.png"]


def test_inputs_that_cannot_be_told_apart_are_refused_before_anything_is_written(
    capfd, app_model_dir, tmp_path
):
    folder = tmp_path / "d"
    folder.mkdir()
    grey = np.full((50, 50, 3), 128, np.uint8)
    # Distinct on Linux, one file on macOS and Windows.
    cv2.imwrite(str(folder / "Face.png"), grey)
    cv2.imwrite(str(folder / "face.png"), grey)
    out = tmp_path / "annotated"

    code, records, err = run(
        capfd, "predict", folder / "Face.png", folder / "face.png",
        "--model-dir", app_model_dir, "--annotate", out, "-o", tmp_path / "r.jsonl",
    )  # fmt: skip

    assert code == 1 and records == []
    assert err.strip().startswith("ferflow: error: --annotate:")
    assert "would both be written to" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "r.jsonl").exists()


# ---------------------------------------------------------------------------------------
# Temporary files: unique per run; a killed run's leftovers go with the next run.
# ---------------------------------------------------------------------------------------


def test_two_writers_of_one_video_do_not_share_a_temporary_file(tmp_path):
    """Two runs annotating into one folder: the last to finish wins, with a whole video."""
    target = tmp_path / "v.mp4"
    first, second = VideoWriter(target, 15.0, (64, 48)), VideoWriter(target, 15.0, (64, 48))
    assert first.tmp != second.tmp
    for i in range(8):
        first.write(np.full((48, 64, 3), i * 10, np.uint8))
        second.write(np.full((48, 64, 3), 255 - i * 10, np.uint8))
    second.write(np.zeros((48, 64, 3), np.uint8))
    first.close(keep=True)
    second.close(keep=True)

    assert frame_count(target) == 9
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run(
    capfd, app_model_dir, tmp_path, face_video
):
    out = tmp_path / "annotated"
    out.mkdir()
    gone = ended_pid()
    stale = [
        leftover(out, "face.mp4", gone, ".mp4"),  # an annotated video being written
        leftover(tmp_path, "records.jsonl", gone),  # the -o file
    ]
    stale_dir = out / f".x.png.{gone}-{HOST_TAG}-89abcdef.tmp"
    stale_dir.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            running = leftover(out, "face.mp4", alive.pid, ".mp4")  # a run still going
            other_host = out / f".face.mp4.{gone}-000000-0123abcd.tmp.mp4"
            other_host.write_bytes(b"another machine's run")
            mine = out / "face.keep.tmp"  # not one of ferflow's names
            mine.write_bytes(b"a person's file")

            code, _, _ = run(
                capfd, "predict", face_video, "--model-dir", app_model_dir,
                "--annotate", out, "-o", tmp_path / "records.jsonl",
            )  # fmt: skip
        finally:
            alive.kill()

    assert code == 0
    assert not any(p.exists() for p in (*stale, stale_dir))
    assert running.exists() and other_host.exists() and mine.exists()
    assert frame_count(out / "face.mp4") == 12


@pytest.mark.parametrize(
    "name",
    [
        ".face.mp4.123-abc123-0123abcd.tmp.mp4",
        ".records.jsonl.123-abc123-0123abcd.tmp",
        ".prepared.123-abc123-0123abcd.tmp",
        ".export.123-abc123-0123abcd.tmp",
    ],
)
def test_git_ignores_temporary_names(name):
    assert git_ignores(name)
    assert not git_ignores(name.lstrip(".").replace(".tmp", ""))


def test_a_real_kill_leaves_an_ignored_temporary_file_the_next_run_removes(
    app_model_dir, tmp_path, long_face_video
):
    out = tmp_path / "annotated"
    command = [
        sys.executable, "-m", "pipeline.cli", "predict", str(long_face_video),
        "--model-dir", str(app_model_dir), "--annotate", str(out), "-q",
        "-o", str(tmp_path / "records.jsonl"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while not partial and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        partial = (
            [p for p in out.glob(".*.tmp.mp4") if p.stat().st_size > 0] if out.is_dir() else []
        )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert partial, f"no temporary video appeared: {process.stderr.read().decode()}"
    left = sorted(p.name for p in (*out.iterdir(), *tmp_path.glob(".records*")))
    assert left and all(git_ignores(name) for name in left), left
    assert not (out / "long.mp4").exists()

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["long.mp4"]
    assert not list(tmp_path.glob(".records*"))
    assert frame_count(out / "long.mp4") == 300
    assert os.path.getsize(tmp_path / "records.jsonl") > 0
