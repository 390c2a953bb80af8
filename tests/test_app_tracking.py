"""Tracking and smoothing in video: steadier labels along one face, never a mix of two faces.

Real faces: LFW photos shipped with scikit-image (`data.lfw_subset()`, 25x25 grayscale), the
astronaut photo, and the real FER2013 model shipped in models/fer2013.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data, util

from pipeline.app.detector import make_detector
from pipeline.app.emotion import load_model
from pipeline.app.recognizer import Recognizer
from pipeline.app.tracking import SceneCuts, Tracker, face_signature, hog, iou
from pipeline.config import REPO_ROOT

FACE_AT = (100, 60, 120)  # x, y, side of the pasted face in a 320x240 frame
SCENES = ("coffee", "rocket", "grass", "clock", "gravel", "moon", "hubble_deep_field", "retina")
# (No "chelsea": CenterFace also finds the cat's face, which is right, but not this test's point.)


def scene(name: str) -> np.ndarray:
    image = util.img_as_ubyte(getattr(data, name)())
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    return cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)


def lfw_face(i: int, side: int = FACE_AT[2]) -> np.ndarray:
    """Real face i of scikit-image's LFW subset (the first 100 are faces), as BGR."""
    face = util.img_as_ubyte(data.lfw_subset()[i])
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)


def paste(background: np.ndarray, face: np.ndarray, x: int, y: int) -> np.ndarray:
    frame = background.copy()
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


@pytest.fixture(scope="module")
def recognizer_factory():
    """Recognizers on the real shipped model and CenterFace, as `ferflow` builds them."""
    model = load_model(REPO_ROOT / "models" / "fer2013", threads=1)
    detector = make_detector(min_face=48, threads=1)

    def make(detect_every: int = 1) -> Recognizer:
        return Recognizer(model, detector, detect_every=detect_every)

    return make


def still_answers(recognizer: Recognizer, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame's single face's probabilities, analysed as a photo of its own."""
    answers = []
    for frame in frames:
        (face,) = recognizer(frame)
        answers.append(face.probabilities)
    return answers


# ---------------------------------------------------------------------------------------
# The face signature: OpenCV's HOG, which the thresholds were measured with, without OpenCV
# ---------------------------------------------------------------------------------------

OPENCV_HOG = cv2.HOGDescriptor((32, 32), (16, 16), (8, 8), (8, 8), 9)


def face_crops() -> list[np.ndarray]:
    """Grey crops of real photos: the astronaut's face, 40 random crops of her photo (faces,
    flat wall, edges, at 32 to 300 px) and 20 LFW faces."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    crops = [photo[30:230, 140:340]]
    rng = np.random.default_rng(0)
    for _ in range(40):
        side = int(rng.integers(32, 300))
        y, x = rng.integers(0, 512 - side, size=2)
        crops.append(photo[y : y + side, x : x + side])
    lfw = [util.img_as_ubyte(face) for face in data.lfw_subset()[:20]]
    return crops + [cv2.resize(face, (120, 120), interpolation=cv2.INTER_CUBIC) for face in lfw]


def test_hog_is_opencvs_hog():
    """Same numbers in the same order: a wrong bin, cell, block order or normalisation
    would correlate far below this (OpenCV's arctangent is approximate, hence not exact)."""
    for crop in face_crops():
        small = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA)
        ours, theirs = hog(small), OPENCV_HOG.compute(small).ravel()
        assert ours.shape == theirs.shape == (324,)
        assert np.corrcoef(ours, theirs)[0, 1] >= 0.9999
        np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_hog_of_flat_and_edge_images_is_opencvs():
    """The corner cases of the normalisation and the border: nothing to see, one edge, and
    an edge on the image's border (which OpenCV's mirrored border hides)."""
    flat = np.full((32, 32), 90, np.uint8)
    step = flat.copy()
    step[:, 13:] = 200
    border = flat.copy()
    border[:, 0] = 255
    for image in (flat, step, border, step.T.copy()):
        np.testing.assert_allclose(hog(image), OPENCV_HOG.compute(image).ravel(), atol=2e-3)


def test_face_signature_is_the_opencv_one():
    """Grey, shrunk to 32x32 and described as with OpenCV: the thresholds still hold."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for y, x, side in ((30, 140, 200), (0, 0, 512), (300, 50, 97), (100, 300, 48)):
        crop = photo[y : y + side, x : x + side]
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
        theirs = OPENCV_HOG.compute(small).ravel()
        theirs = (theirs - theirs.mean()) / np.linalg.norm(theirs - theirs.mean())
        assert float(face_signature(crop) @ theirs) >= 0.999


def test_hog_wants_the_signature_size():
    with pytest.raises(ValueError, match="32x32"):
        hog(np.zeros((31, 32), np.uint8))


# ---------------------------------------------------------------------------------------
# The tracker on its own
# ---------------------------------------------------------------------------------------


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou(a, b), [[1.0, 50 / 150, 0.0]])
    assert iou(a, np.zeros((0, 4))).shape == (1, 0)


def test_tracker_follows_faces_and_averages_their_probabilities():
    tracker = Tracker(smoothing=0.5)
    p1, p2 = np.eye(3)[0], np.eye(3)[1]
    left, right = [0, 0, 10, 10], [50, 0, 10, 10]

    ids, probs = tracker.update(np.array([left, right]), np.array([p1, p2]))
    assert ids == [0, 1]
    np.testing.assert_allclose(probs, [p1, p2])  # a new track starts at its first frame

    # Next frame: both moved a little, and their raw probabilities swapped.
    ids, probs = tracker.update(np.array([[2, 0, 10, 10], [52, 0, 10, 10]]), np.array([p2, p1]))
    assert ids == [0, 1]
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0], [0.5, 0.5, 0]])


def test_tracker_starts_new_tracks_and_forgets_lost_ones():
    tracker = Tracker(smoothing=0.9, max_missed=2)
    p = np.full((1, 7), 1 / 7)
    assert tracker.update(np.array([[0, 0, 10, 10]]), p)[0] == [0]
    assert tracker.update(np.array([[100, 100, 10, 10]]), p)[0] == [1]  # no overlap: new face
    for _ in range(2):
        tracker.update(np.zeros((0, 4)), np.zeros((0, 7)))
    assert [t.id for t in tracker.tracks] == [1]  # track 0 missed 3 frames in a row: gone
    assert tracker.update(np.array([[101, 100, 10, 10]]), p)[0] == [1]


def test_tracker_with_zero_smoothing_passes_probabilities_through():
    tracker = Tracker(smoothing=0.0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        raw = rng.dirichlet(np.ones(7), size=1)
        _, probs = tracker.update(np.array([[0, 0, 10, 10]]), raw)
        np.testing.assert_allclose(probs, raw, rtol=1e-6)


def test_smoothing_must_be_a_fraction():
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\)"):
        Tracker(smoothing=1.0)


def test_another_face_in_the_same_box_starts_a_new_track():
    """Overlap alone would join them; the signatures say they are two people."""
    tracker = Tracker(smoothing=0.6)
    box = np.array([[10, 10, 50, 50]])
    first, second = face_signature(lfw_face(0)), face_signature(lfw_face(1))
    p1, p2 = np.eye(7)[[3]], np.eye(7)[[4]]

    ids1, _ = tracker.update(box, p1, [first])
    ids2, probs = tracker.update(box, p2, [second])

    assert ids1 != ids2
    np.testing.assert_allclose(probs, p2)  # nothing inherited from the other face
    # The same face again, slightly moved and re-cropped: one track, smoothed.
    moved = face_signature(cv2.resize(lfw_face(1)[3:-2, 2:-3], (120, 120)))
    ids3, probs = tracker.update(box + [2, 1, 0, 0], p1, [moved])
    assert ids3 == ids2
    np.testing.assert_allclose(probs, 0.6 * p2 + 0.4 * p1)


def test_a_box_of_a_very_different_size_is_another_face():
    tracker = Tracker(smoothing=0.6)
    ids1, _ = tracker.update(np.array([[0, 0, 100, 100]]), np.eye(7)[[0]])
    ids2, probs = tracker.update(np.array([[0, 0, 60, 60]]), np.eye(7)[[1]])  # IoU 0.36
    assert ids1 != ids2
    np.testing.assert_allclose(probs, np.eye(7)[[1]])


def test_scene_cuts_are_new_photos_not_motion_or_exposure():
    cuts = SceneCuts()
    coffee, rocket = scene("coffee"), scene("rocket")
    wide = cv2.resize(coffee, (360, 270))
    assert not cuts.is_cut(coffee)  # the first frame
    assert not cuts.is_cut(np.clip(coffee.astype(int) + 25, 0, 255).astype(np.uint8))
    assert not cuts.is_cut(paste(coffee, lfw_face(2), *FACE_AT[:2]))  # a face walks in
    assert not cuts.is_cut(wide[10:250, 12:332])  # the camera moved a little
    assert cuts.is_cut(rocket)
    assert not cuts.is_cut(rocket)
    assert cuts.is_cut(np.zeros_like(rocket))  # a black frame between shots


# ---------------------------------------------------------------------------------------
# Whole video: the cases with the real model and detector
# ---------------------------------------------------------------------------------------


def test_every_frame_a_new_scene_gets_the_answers_of_no_smoothing(recognizer_factory):
    """A video whose every frame is a new scene, a new face in the same place: the default
    smoothing may not move any answer away from the frame's own (so its accuracy cannot fall
    below that of no smoothing), and boxes are not reused across a cut."""
    frames = [paste(scene(name), lfw_face(10 + i), *FACE_AT[:2]) for i, name in enumerate(SCENES)]
    recognizer = recognizer_factory(detect_every=2)
    own = still_answers(recognizer, frames)
    calls = []
    real_detect = recognizer.detector.detect
    recognizer.detector.detect = lambda frame: calls.append(1) or real_detect(frame)

    recognizer.start_video(0.6)
    video = [recognizer(frame) for frame in frames]
    recognizer.end_video()

    # Every new scene ran the detector despite detect_every=2 (a cut, or a reused box that
    # no longer showed its face).
    assert len(calls) == len(frames)
    assert [len(faces) for faces in video] == [1] * len(frames)
    for (face,), alone in zip(video, own, strict=True):
        np.testing.assert_allclose(face.probabilities, alone, atol=1e-5)
    assert len({faces[0].track for faces in video}) == len(frames)
    labels_alone = [int(np.argmax(p)) for p in own]
    assert [int(np.argmax(f[0].probabilities)) for f in video] == labels_alone


def test_new_faces_in_one_steady_scene_are_never_mixed(recognizer_factory):
    """No cut to reset on: the background stays, only the person in the box changes."""
    background = scene("gravel")
    frames = [paste(background, lfw_face(20 + i), *FACE_AT[:2]) for i in range(6)]
    recognizer = recognizer_factory()
    own = still_answers(recognizer, frames)

    recognizer.start_video(0.6)
    video = [recognizer(frame) for frame in frames]
    recognizer.end_video()

    for (face,), alone in zip(video, own, strict=True):
        np.testing.assert_allclose(face.probabilities, alone, atol=1e-5)


def test_smoothing_still_steadies_the_label_of_a_steady_face(recognizer_factory):
    """Real faces, camera noise on every frame: fewer label changes with smoothing."""
    rng = np.random.default_rng(0)
    background = scene("grass")
    recognizer = recognizer_factory()

    def label_changes(frames: list[np.ndarray], smoothing: float) -> int:
        recognizer.start_video(smoothing)
        (faces,) = zip(*[recognizer(frame) for frame in frames], strict=True)
        recognizer.end_video()
        assert len({face.track for face in faces}) == 1  # one face, one track throughout
        labels = [face.label for face in faces]
        return sum(a != b for a, b in zip(labels, labels[1:], strict=False))

    changes = []
    for i in range(30, 38):
        clean = paste(background, lfw_face(i), *FACE_AT[:2])
        noisy = [
            np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
            for _ in range(20)
        ]
        changes.append((label_changes(noisy, 0.0), label_changes(noisy, 0.6)))
    raw, smoothed = max(changes)  # the face whose label flickers most without smoothing
    assert raw >= 3, f"no face flickered enough to test: {changes}"
    assert smoothed < raw
    assert sum(s for _, s in changes) < sum(r for r, _ in changes)


def test_a_reused_box_that_lost_its_face_is_not_shown(recognizer_factory):
    """detect_every=3: frame 1 would reuse frame 0's box, but the face has left it: the
    detector looks again, and the face is found in its new place."""
    background = scene("rocket")
    face = lfw_face(5, side=100)
    frames = [paste(background, face, 20, 70), paste(background, face, 200, 70)]
    recognizer = recognizer_factory(detect_every=3)

    recognizer.start_video(0.6)
    video = [recognizer(frame) for frame in frames]
    recognizer.end_video()

    assert len(video[0]) == 1 and video[0][0].box[0] < 100
    assert len(video[1]) == 1 and video[1][0].box[0] > 150
    assert video[1][0].track != video[0][0].track  # 180 px apart: not taken for one face
