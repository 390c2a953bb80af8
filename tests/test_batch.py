"""`ferflow batch` on a local Ray: the same answers as `ferflow predict --smoothing 0`, resumable
after a kill, failures recorded, bad input refused before anything is written.

The Ray tests share one local Ray (started once per module, 2 CPUs: 3-4 s) and use tiny
inputs: a few photos and a 12-frame video, cut into frame ranges so one video is several tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.batch import store
from pipeline.batch.plan import find_files, plan_units
from pipeline.cli import main
from pipeline.config import REPO_ROOT
from pipeline.io import sha256_file, temp_name

#: The fixtures' video face is ~47 px, below the default smallest face (64 px).
SMALL_FACES = ("--min-face", "40")
#: Labels that are not FER2013's: the columns must come from labels.json.
OTHER_LABELS = ["a", "b", "c", "d", "e", "f", "g"]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for every test here; `ferflow batch` joins it instead of starting one."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def relabelled_model(app_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny exported model with labels.json naming its seven outputs a..g."""
    folder = tmp_path_factory.mktemp("relabelled")
    shutil.copy(app_model_dir / "emotion.onnx", folder / "emotion.onnx")
    spec = json.loads((app_model_dir / "labels.json").read_text())
    spec["labels"] = OTHER_LABELS
    (folder / "labels.json").write_text(json.dumps(spec))
    return folder


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, astronaut_bgr: np.ndarray) -> Path:
    """A folder of photos: one face, two faces, none, and a file that is no image."""
    from helpers import camera_frame

    folder = tmp_path_factory.mktemp("archive")
    cv2.imwrite(str(folder / "astronaut.png"), astronaut_bgr)
    cv2.imwrite(str(folder / "two.jpg"), camera_frame(astronaut_bgr))
    cv2.imwrite(str(folder / "empty.png"), np.full((120, 160, 3), 128, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def batch(capfd, *args: object) -> tuple[int, str]:
    code = main(["batch", *(str(a) for a in args)])
    return code, capfd.readouterr().err


def faces(out: Path):
    import pandas as pd

    return pd.read_parquet(out / store.FACES)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_rows_match_predict_records(
    capfd, ray_session, relabelled_model, archive, face_video, tmp_path
):
    records = tmp_path / "predict.jsonl"
    model = ("--model-dir", relabelled_model)
    assert main(["predict", str(archive), str(face_video), "-o", str(records), "--smoothing",
                 "0", *SMALL_FACES, *map(str, model), "-q"]) == 0  # fmt: skip
    out = tmp_path / "out"
    code, err = batch(capfd, archive, face_video, "--out", out, "--chunk-frames", "5",
                      *SMALL_FACES, *model)  # fmt: skip
    assert code == 0, err
    rows = faces(out)

    expected = [json.loads(line) for line in records.read_text().splitlines()]
    expected = [r for r in expected if r["faces"]]
    assert len(rows) == len(expected) > 12  # every video frame has its face, photos 3
    got = {(r.source, r.frame, r.face): r for r in rows.itertuples()}
    for e in expected:
        r = got[(str(Path(e["file"]).resolve()), e["frame"], e["face"])]
        assert [r.x, r.y, r.w, r.h] == e["box"]
        assert r.label == e["label"]
        probabilities = [getattr(r, "p_" + label) for label in OTHER_LABELS]
        np.testing.assert_allclose(probabilities, list(e["probabilities"].values()), atol=6e-5)
        assert (
            (r.time is None or np.isnan(r.time))
            if e["time"] is None
            else (round(r.time, 3) == e["time"])
        )
        assert 0.1 < r.detector_score <= 1.0
    assert set(rows.model_sha256) == {sha256_file(relabelled_model / "emotion.onnx")}
    # The unreadable photo is a failure row with its reason; the run went on.
    failures = pq.read_table(out / store.FAILURES).to_pylist()
    assert [f["source"] for f in failures] == [str((archive / "broken.jpg").resolve())]
    assert "not a readable image" in failures[0]["reason"]
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("ferflow batch: 5 sources") and "1 failure" in summary, err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_second_run_redoes_only_what_is_missing(
    capfd, ray_session, app_model_dir, face_video, tmp_path
):
    out = tmp_path / "out"
    args = (face_video, "--out", out, "--chunk-frames", "4", *SMALL_FACES,
            "--model-dir", app_model_dir)  # fmt: skip
    assert batch(capfd, *args)[0] == 0
    files = sorted((out / store.FACES).iterdir())
    assert len(files) == 3  # 12 frames in ranges of 4
    before = {f: (f.stat().st_mtime_ns, pq.read_table(f)) for f in files}
    lost = files[1]  # as if the run had been killed while this range was in flight
    lost.unlink()

    code, err = batch(capfd, *args)

    assert code == 0, err
    assert "12 frames" not in err and ", 4 frames" in err, err
    for f, (mtime, table) in before.items():
        assert pq.read_table(f).equals(table)
        assert (f.stat().st_mtime_ns == mtime) == (f != lost)
    # Nothing left to do: a third run skips the whole video.
    code, err = batch(capfd, *args)
    assert code == 0 and "1 sources (1 complete from an earlier run), 0 frames" in err, err
    # A changed file is redone whole, and its earlier rows go: no face is counted twice.
    video = tmp_path / "changed.mp4"
    shutil.copy(face_video, video)
    args = (video, *args[1:])
    assert batch(capfd, *args)[0] == 0
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    code, err = batch(capfd, *args)
    assert code == 0 and ", 12 frames" in err, err
    rows = faces(out)
    assert sorted(rows[rows.source == str(video)].frame) == list(range(12))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killed_run_keeps_whole_files_and_resumes(
    capfd, ray_session, app_model_dir, long_face_video, tmp_path
):
    """A real kill -9 of a run in its own process (and own local Ray)."""
    out = tmp_path / "out"
    args = [str(long_face_video), "--out", str(out), "--chunk-frames", "25", "--workers", "1",
            *SMALL_FACES, "--model-dir", str(app_model_dir), "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "batch", *args],
        cwd=REPO_ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        while len(list((out / store.FACES).glob("*.parquet"))) < 2:
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline, "no unit finished in time"
            time.sleep(0.1)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run and the local Ray it started
        run.wait()
    kept = {f: f.stat().st_mtime_ns for f in (out / store.FACES).glob("*.parquet")}
    assert 2 <= len(kept) < 12
    for f in kept:
        assert pq.read_table(f).num_rows == 25  # whole: every frame of the range has its face
    # What a kill during a write leaves: a temporary name of the dead run, never a .parquet.
    half = temp_name(out / store.FACES / "next.parquet")
    half = half.with_name(half.name.replace(f".{os.getpid()}-", f".{run.pid}-"))
    half.write_bytes(b"PAR1 half a file")

    code, err = batch(capfd, *args[:-1])

    assert code == 0, err
    assert {f: f.stat().st_mtime_ns for f in kept} == kept  # complete ranges not redone
    assert not half.exists()
    rows = faces(out)
    assert sorted(rows.frame) == list(range(300))


def test_plan_cuts_videos_into_ranges_that_cover_every_frame(face_video, tmp_path):
    (unit_a, unit_b, unit_c) = plan_units([(face_video, "video")], chunk_frames=5)
    ranges = [(u.items[0].start, u.items[0].stop) for u in (unit_a, unit_b, unit_c)]
    assert ranges == [(0, 5), (5, 10), (10, None)]  # the last reads to the end, whatever
    # Keys depend on the file: unchanged, the same; touched, new ones.
    assert [u.key for u in plan_units([(face_video, "video")], chunk_frames=5)] == [
        u.key for u in (unit_a, unit_b, unit_c)
    ]
    copy = tmp_path / "copy.mp4"
    shutil.copy(face_video, copy)
    assert unit_a.key not in {u.key for u in plan_units([(copy, "video")], chunk_frames=5)}


def test_folders_give_their_images_and_videos(archive, face_video, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(archive, folder)
    shutil.copy(face_video, folder / "clip.mp4")
    (folder / "notes.txt").write_text("not media")
    kinds = {f.name: k for f, k in find_files([folder])}
    assert kinds["clip.mp4"] == "video" and kinds["astronaut.png"] == "image"
    assert "notes.txt" not in kinds


def other_model_folder(out: Path) -> None:
    out.mkdir()
    manifest = {"model": "someone-else", "model_file": "emotion.onnx", "model_sha256": "0" * 64,
                "labels": OTHER_LABELS, "settings": {}}  # fmt: skip
    (out / store.MANIFEST).write_text(json.dumps(manifest))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file or folder"),
        ("empty", "no images or videos found"),
        ("other-model", "holds results of another model, someone-else"),
        ("unreachable", "unreachable"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    capfd, case, message, app_model_dir, archive, tmp_path
):
    source, out, extra = archive, tmp_path / "out", []
    if case == "missing":
        source = tmp_path / "nowhere"
    elif case == "empty":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "other-model":
        other_model_folder(out)
    else:
        extra = ["--address", f"127.0.0.1:{free_port()}"]
    before = sorted(p.name for p in out.rglob("*")) if out.exists() else None

    code, err = batch(capfd, source, "--out", out, "--model-dir", app_model_dir, *extra)

    assert code == 1
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert (sorted(p.name for p in out.rglob("*")) if out.exists() else None) == before


def test_without_ray_it_says_which_extra_to_install(capfd, monkeypatch, archive, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed

    code, err = batch(capfd, archive, "--out", tmp_path / "out")

    assert code == 1 and "pip install 'ferflow[ray]'" in err, err


def test_centerface_keeps_a_score_for_each_box_it_returns(astronaut_bgr):
    from helpers import camera_frame

    from pipeline.app.detector import make_detector

    detector = make_detector("centerface", threshold=0.1)
    boxes = detector.detect(camera_frame(astronaut_bgr))
    assert len(boxes) == 2 and len(detector.last_scores) == 2
    assert all(0.1 < s <= 1.0 for s in detector.last_scores)
    assert len(detector.detect(np.zeros((240, 320, 3), np.uint8))) == 0
    assert len(detector.last_scores) == 0  # never a stale score from the frame before


@pytest.mark.parametrize("threads", [1, 2])
def test_each_worker_runs_its_sessions_on_its_own_cpus(threads, app_model_dir):
    """ONNX Runtime would size its pools to the whole host; a worker's are its CPUs."""
    from pipeline.batch.worker import FaceWorker

    model = {"name": "tiny", "file": "emotion.onnx", "sha256": "0" * 64,
             "onnx": (app_model_dir / "emotion.onnx").read_bytes(),
             "labels_json": (app_model_dir / "labels.json").read_bytes()}  # fmt: skip
    worker = FaceWorker(model, {"name": "centerface"}, 0.0, threads)
    for session in (worker.recognizer.model.session, worker.recognizer.detector.session):
        assert session.get_session_options().intra_op_num_threads == threads


def test_a_photo_added_to_a_folder_redoes_one_group_only(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(0, 200, 2):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))
    before = {u.key for u in plan_units(find_files([folder]), images_per_unit=8)}
    cv2.imwrite(str(folder / "101.png"), np.zeros((8, 8, 3), np.uint8))
    after = {u.key for u in plan_units(find_files([folder]), images_per_unit=8)}
    assert len(before) > 5
    assert len(before - after) == 1 and len(after - before) in (1, 2)  # 2: 101 ends a group
