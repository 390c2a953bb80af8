"""Uploaded image bytes -> a BGR frame, refusing what is too big before decoding it.

A decompression bomb is a small file whose header promises a huge image (a 47 KB all-zero
PNG decodes to 150 MB), so the size is read from the header (`pipeline.app.image_header`,
the reader and limit policy `ferflow predict` uses too) and checked first: no accepted upload
decodes to more than `Limits.decode_budget` bytes. Only JPEG, PNG, WebP and BMP are accepted:
what cameras, browsers and phones send. `ImageRejected` carries the HTTP status that fits.
"""

from __future__ import annotations

import numpy as np

from pipeline import imaging
from pipeline.app.image_header import UPLOAD_LIMITS, Limits, read_header

__all__ = ["FORMATS", "ImageRejected", "Limits", "UPLOAD_LIMITS", "decode_image"]

FORMATS = "JPEG, PNG, WebP or BMP"
#: The formats accepted, by Pillow's names, with the first bytes each file starts with: a file
#: that starts like one but whose header cannot be read is damaged (400); anything else is
#: not an image this server reads (415).
_ACCEPTED = {"JPEG": b"\xff\xd8", "PNG": b"\x89PNG\r\n\x1a\n", "WEBP": b"RIFF", "BMP": b"BM"}


class ImageRejected(ValueError):
    """An upload that is not analysed; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, limits: Limits = UPLOAD_LIMITS, name: str = "image") -> np.ndarray:
    """Check size and header, then decode to BGR uint8; ImageRejected names `name` and why."""
    if not data:
        raise ImageRejected(400, f"{name}: empty file (0 bytes)")
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise ImageRejected(
            413, f"{name}: {_mb(len(data))} is over the {_mb(limits.max_bytes)} limit"
        )
    header = read_header(data)
    if header is None:
        if any(data.startswith(start) for start in _ACCEPTED.values()):
            raise ImageRejected(400, f"{name}: truncated or corrupt image header")
        raise ImageRejected(415, f"{name}: not an image this server reads (expected {FORMATS})")
    if header.format not in _ACCEPTED:
        raise ImageRejected(415, f"{name}: a {header.format} image; this server reads {FORMATS}")
    if header.width <= 0 or header.height <= 0:
        raise ImageRejected(
            400, f"{name}: {header.format} header gives an empty image "
            f"({header.width}x{header.height})"
        )  # fmt: skip
    too_large = header.too_large(limits)
    if too_large:
        raise ImageRejected(413, f"{name}: {header.format}: {too_large}; scale it down first")
    try:
        return imaging.decode(data)
    except imaging.DecodeError as e:
        raise ImageRejected(
            400, f"{name}: not a readable {header.format} (truncated or corrupt: {e})"
        ) from None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
