"""Uploaded image bytes -> a BGR frame, refusing what is too big before decoding it.

A decompression bomb is a small file whose header promises a huge image (a 40 KB PNG can
decode to gigabytes), so the pixel count is read from the header and checked first. Only
formats whose header is parsed here are accepted (JPEG, PNG, WebP, BMP): each is what
cameras, browsers and phones send. `ImageRejected` carries the HTTP status that fits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

FORMATS = "JPEG, PNG, WebP or BMP"


@dataclass(frozen=True)
class Limits:
    """The largest upload accepted: encoded bytes, and decoded pixels (width x height)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000


class ImageRejected(ValueError):
    """An upload that is not analysed; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the first bytes, without decoding any pixel."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", *_png_size(data)
    if data.startswith(b"\xff\xd8"):
        return "JPEG", *_jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP", *_webp_size(data)
    if data.startswith(b"BM"):
        return "BMP", *_bmp_size(data)
    raise ImageRejected(415, f"not an image this server reads (expected {FORMATS})")


def decode_image(data: bytes, limits: Limits, name: str = "image") -> np.ndarray:
    """Check size and header, then decode to BGR uint8; ImageRejected names `name` and why."""
    if not data:
        raise ImageRejected(400, f"{name}: empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            413, f"{name}: {_mb(len(data))} is over the {_mb(limits.max_bytes)} limit"
        )
    try:
        kind, width, height = image_header(data)
    except ImageRejected as e:
        raise ImageRejected(e.status, f"{name}: {e}") from None
    except (IndexError, struct.error):
        raise ImageRejected(400, f"{name}: truncated or corrupt image header") from None
    if width <= 0 or height <= 0:
        raise ImageRejected(400, f"{name}: {kind} header gives an empty image ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            413,
            f"{name}: {kind} of {width}x{height} pixels is over the limit of "
            f"{limits.max_pixels / 1e6:g} megapixels; scale it down first",
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageRejected(400, f"{name}: not a readable {kind} (truncated or corrupt)")
    return image


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _png_size(data: bytes) -> tuple[int, int]:
    # The first chunk is always IHDR: width and height as big-endian uint32.
    if len(data) < 24:
        raise IndexError("short PNG header")
    if data[12:16] != b"IHDR":
        raise ImageRejected(400, "PNG without its IHDR header (corrupt)")
    return struct.unpack(">II", data[16:24])


#: JPEG start-of-frame markers (they hold the size): C0-CF except DHT, JPG and DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            raise ImageRejected(400, "JPEG with a corrupt header (no marker where one belongs)")
        while data[i] == 0xFF:  # markers may be padded with fill bytes
            i += 1
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[i : i + 2])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 3 : i + 7])
            return width, height
        i += length
    raise IndexError("no JPEG frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        if len(data) < 30:
            raise IndexError("short VP8X header")
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one after a 0x2f signature
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the key frame's start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise ImageRejected(400, "WebP of an unknown kind (corrupt)")


def _bmp_size(data: bytes) -> tuple[int, int]:
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)  # a negative height means top-down rows
