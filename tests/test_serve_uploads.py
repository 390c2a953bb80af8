"""Uploads are sized from their header and refused before decoding when too big."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from pipeline.app.image_header import DECODED_BYTES_PER_PIXEL, UPLOAD_LIMITS, Limits, read_header
from pipeline.serve.uploads import ImageRejected, decode_image


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
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "WEBP"),  # lossy: VP8
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "WEBP"),  # lossless: VP8L
        (".bmp", (), "BMP"),
    ],
)
def test_header_gives_the_size_of_every_accepted_format(photo, suffix, params, kind):
    data = encode(photo, suffix, *params)

    header = read_header(data)
    assert (header.format, header.width, header.height) == (kind, 400, 300)
    assert decode_image(data).shape == (300, 400, 3)


def test_webp_with_alpha_from_a_browser():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (123, 45), (10, 20, 30, 128)).save(buffer, "WEBP")  # extended: VP8X

    header = read_header(buffer.getvalue())
    assert (header.format, header.width, header.height) == ("WEBP", 123, 45)


def test_a_bomb_is_refused_from_its_header_before_decoding():
    """20000 x 20000 is under OpenCV's own cap (2**30 pixels), so only ferflow's limit can
    refuse it: the decoder would try to allocate 1.2 GB."""
    bomb = png_claiming(20_000, 20_000)
    assert len(bomb) < 100 and 20_000 * 20_000 < 2**30

    with pytest.raises(ImageRejected, match=r"20,000 x 20,000 = 400,000,000 pixels") as e:
        decode_image(bomb, UPLOAD_LIMITS, "bomb.png")
    assert e.value.status == 413
    # The same file within the limit goes on to the decoder, which finds no such pixels:
    # so the 413 above came from the header alone.
    with pytest.raises(ImageRejected) as small:
        decode_image(png_claiming(10, 10), UPLOAD_LIMITS, "bomb.png")
    assert small.value.status == 400


def test_a_legal_all_zero_png_decodes_within_the_stated_budget(tmp_path):
    """The largest upload accepted, as cheap to send as it gets (a few KB of zeros), costs
    the decoding process no more than the budget the limits state (plus a little slack)."""
    limits = Limits(max_bytes=UPLOAD_LIMITS.max_bytes, max_pixels=4_000_000)
    zeros = encode(np.zeros((2000, 2000, 3), np.uint8), ".png", cv2.IMWRITE_PNG_COMPRESSION, 9)
    assert len(zeros) < 50_000
    (tmp_path / "zeros.png").write_bytes(zeros)
    script = f"""
import resource, sys
from pathlib import Path
from pipeline.app.image_header import Limits
from pipeline.serve.uploads import decode_image
data = Path({str(tmp_path / "zeros.png")!r}).read_bytes()
import cv2, numpy as np
decode_image(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())  # libraries in
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = decode_image(data, Limits({limits.max_bytes}, {limits.max_pixels}), "zeros.png")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, image.nbytes)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    grown, decoded = map(int, done.stdout.split())
    assert decoded == 2000 * 2000 * DECODED_BYTES_PER_PIXEL == limits.decode_budget
    assert grown <= limits.decode_budget * 1.25


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
        decode_image(data, UPLOAD_LIMITS, "upload.bin")
    assert e.value.status == status
    assert str(e.value).startswith("upload.bin: ")


def test_a_readable_image_of_another_format_is_named():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buffer, "GIF")

    with pytest.raises(ImageRejected, match=r"^x.gif: a GIF image; this server reads JPEG") as e:
        decode_image(buffer.getvalue(), UPLOAD_LIMITS, "x.gif")
    assert e.value.status == 415


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_a_truncated_image_is_refused(photo, suffix):
    data = encode(photo, suffix)
    cut = data[: len(data) * 2 // 3]

    with pytest.raises(ImageRejected, match="truncated or corrupt") as e:
        decode_image(cut, UPLOAD_LIMITS, "cut")
    assert e.value.status == 400


def test_too_many_bytes_are_refused_before_anything_else(photo):
    data = encode(photo, ".png")

    with pytest.raises(ImageRejected, match="over the 0.0 MB limit") as e:
        decode_image(data, Limits(max_bytes=1000, max_pixels=UPLOAD_LIMITS.max_pixels))
    assert e.value.status == 413
