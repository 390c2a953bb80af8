"""`ferflow predict` on several threads: the same records, messages and copies as one frame
after another (`pipeline.app.ordered`, `Recognizer.look` / `follow`)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data, util

from pipeline.app.detector import make_detector
from pipeline.app.emotion import load_model
from pipeline.app.ordered import AHEAD_PER_WORKER, in_order
from pipeline.app.recognizer import Recognizer
from pipeline.cli import main
from pipeline.config import REPO_ROOT

SHIPPED = REPO_ROOT / "models" / "fer2013"


def scene(name: str, size: tuple[int, int] = (480, 360)) -> np.ndarray:
    image = util.img_as_ubyte(getattr(data, name)())
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def with_faces(background: np.ndarray, faces: list[int], x0: int = 10, side: int = 110):
    """Real LFW faces (scikit-image's subset) pasted side by side, 40 px apart."""
    frame = background.copy()
    for k, i in enumerate(faces):
        face = cv2.resize(util.img_as_ubyte(data.lfw_subset()[i]), (side, side), cv2.INTER_CUBIC)
        x = x0 + k * (side + 40)
        frame[60 : 60 + side, x : x + side] = face[..., None]
    return frame


def video_frames() -> list[np.ndarray]:
    """Two shots: one face drifting right over a photo, then a cut to three faces."""
    first = [with_faces(scene("coffee"), [3], x0=10 + 6 * i) for i in range(8)]
    second = [with_faces(scene("rocket"), [40, 41, 42], x0=10 + 3 * i) for i in range(8)]
    return first + second


# ---------------------------------------------------------------------------------------
# in_order
# ---------------------------------------------------------------------------------------


def test_results_come_in_input_order_whatever_finishes_first():
    threads = set()

    def work(i: int) -> int:
        threads.add(threading.get_ident())
        time.sleep(0.002 * (7 - i % 8))  # early items take longest
        return i * i

    assert list(in_order(work, range(24), workers=3)) == [i * i for i in range(24)]
    assert len(threads) == 3


def test_an_error_is_raised_in_its_place_and_nothing_after_it():
    read = []

    def items():
        for i in range(100):
            read.append(i)
            yield i

    def work(i: int) -> int:
        if i == 5:
            raise ValueError("item 5")
        return i

    got = []
    with pytest.raises(ValueError, match="item 5"):
        for result in in_order(work, items(), workers=2):
            got.append(result)
    assert got == [0, 1, 2, 3, 4]
    # Items are read lazily, a bounded number ahead of the one being handed out.
    assert len(read) <= 6 + AHEAD_PER_WORKER * 2


def test_one_worker_runs_everything_in_the_calling_thread():
    caller = threading.get_ident()
    assert list(in_order(lambda i: threading.get_ident(), range(3), workers=1)) == [caller] * 3


# ---------------------------------------------------------------------------------------
# The recognizer: look on any thread + follow in order == one call per frame
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_look_on_threads_then_follow_in_order_equals_calling_the_recognizer(threads):
    """In video (tracks, smoothing, a scene cut), exactly the faces that calling the
    recognizer frame by frame gives, as `live` and `serve` do."""
    frames = video_frames()
    model = load_model(SHIPPED, threads=threads)
    recognizer = Recognizer(model, make_detector(min_face=48, threads=threads))

    recognizer.start_video(0.6)
    expected = [recognizer(frame) for frame in frames]
    recognizer.end_video()
    recognizer.start_video(0.6)
    with ThreadPoolExecutor(3) as pool:
        looks = list(pool.map(recognizer.look, frames))
    got = [recognizer.follow(frame, look) for frame, look in zip(frames, looks, strict=True)]
    recognizer.end_video()

    assert [len(faces) for faces in expected] == [1] * 8 + [3] * 8
    assert len({faces[0].track for faces in expected[:8]}) == 1
    for want, have in zip(expected, got, strict=True):
        assert [(f.box, f.label, f.score, f.track) for f in have] == [
            (f.box, f.label, f.score, f.track) for f in want
        ]
        for a, b in zip(want, have, strict=True):
            np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_follow_refuses_a_video_whose_boxes_are_reused():
    recognizer = Recognizer(load_model(SHIPPED), make_detector(), detect_every=2)
    frame = video_frames()[0]
    recognizer.start_video(0.6)
    with pytest.raises(ValueError, match="detect_every=1"):
        recognizer.follow(frame, recognizer.look(frame))


# ---------------------------------------------------------------------------------------
# ferflow predict: --workers 3 against one frame after another on every core
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of photos (faces, none, a corrupt file, a cut-off JPEG) and a short video."""
    root = tmp_path_factory.mktemp("concurrent")
    folder = root / "photos"
    folder.mkdir()
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "a_astronaut.png"), astronaut)
    cv2.imwrite(str(folder / "b_flipped.jpg"), astronaut[:, ::-1])
    cv2.imwrite(str(folder / "c_three.png"), with_faces(scene("rocket"), [1, 2, 3]))
    (folder / "d_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cv2.imwrite(str(folder / "e_nothing.jpg"), np.tile(np.arange(256, dtype=np.uint8), (200, 1)))
    ok, jpeg = cv2.imencode(".jpg", with_faces(scene("grass"), [7, 8]))
    (folder / "f_cut_off.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) * 2 // 3])
    cv2.imwrite(str(folder / "g_two.png"), with_faces(scene("coffee"), [9, 10]))
    video = root / "two_shots.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (480, 360))
    for frame in video_frames():
        writer.write(frame)
    writer.release()
    return folder, video


def predict(capfd, *args: object) -> tuple[str, list[str]]:
    """Records (stdout, as text) and the messages on stderr, less the timed summary."""
    code = main(["predict", *map(str, args)])
    out, err = capfd.readouterr()
    assert code == 0, err
    messages = [line for line in err.splitlines() if not line.startswith("ferflow predict:")]
    return out, messages


@pytest.mark.parametrize(
    "options",
    [
        [],  # the shipped int8 model and CenterFace: the defaults
        ["--precision", "float"],
        ["--detector", "haar"],  # a detector that runs on one thread at a time
        ["--detect-every", "2"],  # video: boxes reused, so its frames go in order
    ],
)
def test_records_are_the_same_on_several_threads(capfd, inputs, tmp_path, options):
    folder, video = inputs

    def run(annotated: str, *workers: str) -> tuple[str, list[str]]:
        copies = tmp_path / annotated
        return predict(
            capfd, folder, video, "--min-face", 48, "--annotate", copies, *options, *workers
        )

    sequential = run("one", "--workers", "1", "--threads", "2")
    concurrent = run("three", "--workers", "3")

    records, messages = sequential
    assert records.count("\n") > 30 and '"faces": 3' in records
    assert [m.split()[1] for m in messages] == ["skipped", "warning:"]
    assert concurrent == sequential
    for name in ("a_astronaut.png", "c_three.png", "two_shots.mp4"):
        one, three = tmp_path / "one" / name, tmp_path / "three" / name
        assert one.read_bytes() == three.read_bytes(), name
