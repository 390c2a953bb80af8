"""Uploads are sized from their header and refused before decoding when too big."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import png_claiming

from pipeline.app.image_header import DECODED_BYTES_PER_PIXEL, UPLOAD_LIMITS, Limits, read_header
from pipeline.serve.uploads import ImageRejected, decode_image


def encode(image: np.ndarray, suffix: str, *params: int) -> bytes:
    ok, data = cv2.imencode(suffix, image, list(params))
    assert ok
    return data.tobytes()


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
    """Pillow's own bomb check is off in ferflow (it would refuse without naming the size), so
    only ferflow's limit stands between this file and a 1.2 GB allocation."""
    bomb = png_claiming(20_000, 20_000)
    assert len(bomb) < 100

    with pytest.raises(ImageRejected, match=r"20,000 x 20,000 = 400,000,000 pixels") as e:
        decode_image(bomb, UPLOAD_LIMITS, "bomb.png")
    assert e.value.status == 413
    # The same file within the limit goes on to the decoder, which finds no such pixels:
    # so the 413 above came from the header alone.
    with pytest.raises(ImageRejected) as small:
        decode_image(png_claiming(10, 10), UPLOAD_LIMITS, "bomb.png")
    assert small.value.status == 400


#: Measures one decode's peak memory in a fresh process: Linux's VmHWM, reset first.
DECODE_PEAK = """
import sys
from pathlib import Path
import cv2, numpy as np
from pipeline.app.image_header import Limits
from pipeline.serve.uploads import decode_image

def status(key):
    return int(Path("/proc/self/status").read_text().split(key + ":")[1].split()[0]) * 1024

data = Path(sys.argv[1]).read_bytes()
decode_image(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())  # libraries in
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
before = status("VmRSS")
image = decode_image(data, Limits(10**8, int(sys.argv[2])), "upload")
print(status("VmHWM") - before, image.nbytes)
"""


#: The decode budget these tests give: 4 megapixels of PNG/JPEG, a quarter as many of WebP.
BUDGET_LIMITS = Limits(max_bytes=UPLOAD_LIMITS.max_bytes, max_pixels=2000 * 2000)
#: The largest square WebP under BUDGET_LIMITS (1,000,000 pixels).
WEBP_SIDE = 1000


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux's /proc")
@pytest.mark.parametrize(
    ("suffix", "image", "params"),
    [
        (".png", np.zeros((2000, 2000, 3), np.uint8), ()),  # 12 KB: the cheapest file to send
        (".png", np.zeros((2000, 2000, 4), np.uint16), ()),  # 16-bit with alpha
        (".jpg", np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), np.uint8), ()),
        (
            ".webp",
            np.random.default_rng(0).integers(0, 256, (WEBP_SIDE, WEBP_SIDE, 3), np.uint8),
            (cv2.IMWRITE_WEBP_QUALITY, 101),  # lossless
        ),
    ],
    ids=["all-zero-png", "16-bit-rgba-png", "noise-jpeg", "webp"],
)
def test_the_largest_legal_upload_decodes_within_the_stated_budget(tmp_path, suffix, image, params):
    """No accepted upload costs the process more than `Limits.decode_budget` to decode."""
    limits = BUDGET_LIMITS
    data = encode(image, suffix, *params)
    header = read_header(data)
    pixels = image.shape[0] * image.shape[1]
    assert pixels <= header.pixel_limit(limits) < pixels * 1.01  # the largest one allowed
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", DECODE_PEAK, str(path), str(limits.max_pixels)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    peak, decoded = map(int, done.stdout.split())
    assert decoded == pixels * DECODED_BYTES_PER_PIXEL
    assert decoded < peak <= limits.decode_budget  # measured: the result and more


def test_a_webp_over_its_own_share_of_the_limit_is_refused_saying_why():
    side = WEBP_SIDE + 1
    data = encode(np.zeros((side, side, 3), np.uint8), ".webp")
    assert side * side < BUDGET_LIMITS.max_pixels  # within the limit of other formats

    with pytest.raises(ImageRejected, match="for WEBP \\(decoding it takes 4 times") as e:
        decode_image(data, BUDGET_LIMITS, "big.webp")
    assert e.value.status == 413


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
