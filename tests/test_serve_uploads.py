"""Uploads are sized from their header and refused before decoding when too big."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest

from pipeline.serve.uploads import ImageRejected, Limits, decode_image, image_header


def encode(image: np.ndarray, suffix: str, *params: int) -> bytes:
    ok, data = cv2.imencode(suffix, image, list(params))
    assert ok
    return data.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header (CRC fixed up, so it is a well-formed file) claims another size:
    what a decompression bomb looks like before its pixels are inflated."""
    data = bytearray(encode(np.zeros((1, 1, 3), np.uint8), ".png"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[:300, :400]


@pytest.mark.parametrize(
    ("suffix", "params", "kind"),
    [
        (".jpg", (), "JPEG"),
        (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "JPEG"),
        (".png", (), "PNG"),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "WebP"),  # lossy: VP8
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "WebP"),  # lossless: VP8L
        (".bmp", (), "BMP"),
    ],
)
def test_header_gives_the_size_of_every_accepted_format(photo, suffix, params, kind):
    data = encode(photo, suffix, *params)

    assert image_header(data) == (kind, 400, 300)
    assert decode_image(data, Limits()).shape == (300, 400, 3)


def test_webp_with_alpha_from_a_browser():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (123, 45), (10, 20, 30, 128)).save(buffer, "WEBP")  # extended: VP8X

    assert image_header(buffer.getvalue()) == ("WebP", 123, 45)


def test_a_bomb_is_refused_from_its_header_before_decoding():
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 100

    with pytest.raises(ImageRejected, match=r"100000x100000 pixels is over the limit") as e:
        decode_image(bomb, Limits(max_pixels=50_000_000), "bomb.png")
    assert e.value.status == 413
    # The same file within the limit goes on to the decoder, which finds no such pixels:
    # so the 413 above came from the header alone.
    with pytest.raises(ImageRejected) as small:
        decode_image(png_claiming(10, 10), Limits(), "bomb.png")
    assert small.value.status == 400


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty file"),
        (b"GIF89a\x01\x00\x01\x00", 415, "expected JPEG, PNG, WebP or BMP"),
        (b"%PDF-1.7 not a photo", 415, "not an image"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 400, "truncated or corrupt image header"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", 400, "truncated or corrupt image header"),
    ],
)
def test_bad_bytes_are_refused_with_a_status_and_a_reason(data, status, message):
    with pytest.raises(ImageRejected, match=message) as e:
        decode_image(data, Limits(), "upload.bin")
    assert e.value.status == status
    assert str(e.value).startswith("upload.bin: ")


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_a_truncated_image_is_refused(photo, suffix):
    data = encode(photo, suffix)
    cut = data[: len(data) * 2 // 3]

    with pytest.raises(ImageRejected, match="truncated or corrupt") as e:
        decode_image(cut, Limits(), "cut")
    assert e.value.status == 400


def test_too_many_bytes_are_refused_before_anything_else(photo):
    data = encode(photo, ".png")

    with pytest.raises(ImageRejected, match="over the 0.0 MB limit") as e:
        decode_image(data, Limits(max_bytes=1000))
    assert e.value.status == 413
