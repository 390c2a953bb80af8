"""pipeline.imaging: the app's pixel arithmetic without OpenCV gives OpenCV's numbers (the dev
install has OpenCV, so it is the reference here), and files decode as OpenCV decoded them."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from pipeline import imaging

RNG = np.random.default_rng(0)


def test_grey_is_opencvs_bit_for_bit():
    image = RNG.integers(0, 256, (120, 160, 3), np.uint8)
    assert np.array_equal(imaging.to_gray(image), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert imaging.to_gray(image[..., 0]) is not None  # grey stays grey
    assert np.array_equal(imaging.to_rgb(image), cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((131, 131), (48, 48)),  # a face crop shrunk for the model (two matrix products)
        ((300, 300), (48, 48)),  # a large grey crop (taps)
        ((131, 131, 3), (48, 48)),  # a colour crop for an RGB model
        ((480, 640, 3), (427, 320)),  # the detector's copy, not a whole factor
        ((480, 640, 3), (320, 240)),  # halved: the whole-factor path
        ((1080, 1920, 3), (640, 360)),
        ((30, 30), (48, 48)),  # a small face enlarged
        ((40, 100), (48, 48)),  # one side shrinks, the other grows
    ],
)
def test_resize_is_within_one_grey_level_of_opencv(shape, size):
    image = RNG.integers(0, 256, shape, np.uint8)
    shrinking = shape[0] > size[1] or shape[1] > size[0]
    reference = cv2.resize(
        image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    if shape == (40, 100):  # OpenCV's INTER_AREA enlarging an axis is its own blend
        reference = cv2.resize(cv2.resize(image, (48, 40), interpolation=cv2.INTER_AREA), size)
    resized = imaging.resize(image, size)
    assert resized.shape == reference.shape and resized.dtype == np.uint8
    assert np.abs(resized.astype(int) - reference).max() <= 1


def test_whole_factor_path_matches_the_general_one():
    image = RNG.integers(0, 256, (96, 144, 3), np.uint8)
    fast = imaging.resize(image, (48, 32))
    general = imaging._resize_axis(imaging._resize_axis(image, 32, 0), 48, 1)
    assert np.abs(fast.astype(int) - np.rint(general)).max() <= 1
    fast[0, 0] = 0  # callers may draw on what they get back


def test_resize_refuses_an_empty_size():
    with pytest.raises(ValueError, match="at least 1"):
        imaging.resize(np.zeros((4, 4), np.uint8), (0, 3))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".ppm", ".webp"])
def test_lossless_formats_round_trip_and_decode_as_opencv_does(suffix):
    image = RNG.integers(0, 256, (37, 53, 3), np.uint8)
    if suffix == ".webp":  # lossy unless asked otherwise: compare with OpenCV's decode
        data = imaging.encode(image, suffix)
        reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert np.abs(imaging.decode(data).astype(int) - reference).max() <= 1
        return
    data = imaging.encode(image, suffix)
    assert np.array_equal(imaging.decode(data), image)
    assert np.array_equal(imaging.decode(data, gray=True), imaging.to_gray(image))


def test_sixteen_bit_and_alpha_keep_the_high_byte_as_opencv_does():
    wide = RNG.integers(0, 65536, (20, 30, 4), np.uint16)
    ok, png = cv2.imencode(".png", wide)
    assert ok
    assert np.array_equal(imaging.decode(png.tobytes()), cv2.imdecode(png, cv2.IMREAD_COLOR))
    grey = RNG.integers(0, 65536, (20, 30), np.uint16)
    ok, png = cv2.imencode(".png", grey)
    assert np.array_equal(imaging.decode(png.tobytes(), gray=True), (grey >> 8).astype(np.uint8))


def test_exif_orientation_stands_a_portrait_photo_up():
    image = Image.fromarray(RNG.integers(0, 256, (20, 40, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert imaging.decode(buffer.getvalue()).shape == (40, 20, 3)


def test_a_cut_jpeg_decodes_only_when_asked_and_the_flag_is_put_back():
    data = imaging.encode(RNG.integers(0, 256, (64, 64, 3), np.uint8), ".jpg")
    cut = data[: len(data) // 2]
    with pytest.raises(imaging.DecodeError, match="truncated"):
        imaging.decode(cut)
    assert imaging.decode(cut, truncated_ok=True).shape == (64, 64, 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_what_is_not_an_image_says_so_without_naming_a_buffer():
    with pytest.raises(imaging.DecodeError) as e:
        imaging.decode(b"just text")
    assert str(e.value) == "no image format Pillow knows"


def test_encode_names_a_suffix_it_cannot_write():
    with pytest.raises(ValueError, match="'.xyz'"):
        imaging.encode(np.zeros((2, 2, 3), np.uint8), ".xyz")
