"""What an image file's bytes say before anyone decodes them, and how big an image ferflow
agrees to decode: one reader and one limit policy for `ferflow predict` and `ferflow serve`.

The header (format, width, height) is read with Pillow's lazy `Image.open`, which parses
the header only; decoding comes after (`pipeline.imaging.decode`). So an image too large
to decode safely is refused before any pixel memory is taken: a 300-byte PNG can claim
60000 x 60000 pixels (10 GB decoded), and a 47 KB all-zero PNG of 50 megapixels decodes to
150 MB.

The limit policy (`Limits`): a decoded image costs `DECODED_BYTES_PER_PIXEL` bytes a pixel
(BGR, 8 bits a channel: 16-bit and alpha images are converted while decoding), and while
it is decoded the process peaks at `DECODE_PEAK_BYTES_PER_PIXEL` (the decoder's own buffers
beside the result), so `max_pixels` sets the memory budget of one decode. WebP takes up to four
times as much to decode, so a WebP may have a quarter of `max_pixels`. Two sets of limits,
each named once:
- `FILE_LIMITS` (`ferflow predict`, the user's own files): 200 megapixels (600 MB decoded)
  lets the largest phone-camera photos through; `--max-pixels` raises it.
- `UPLOAD_LIMITS` (`ferflow serve`, bytes from the network): 20 MB encoded, 16 megapixels
  (48 MB decoded, at most 128 MB while decoding; a 12-megapixel phone photo is
  4032 x 3024). The server decodes at most one image per worker thread at a time, so its
  decode memory is bounded by that many times 128 MB.

A JPEG cut off while copying decodes without an error, its lower part grey;
`jpeg_ends_early` notices the missing end-of-image marker.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from pipeline import imaging

#: A decoded frame is BGR uint8: three bytes a pixel.
DECODED_BYTES_PER_PIXEL = 3
#: The process's peak while an image decodes, per pixel: Pillow's own pixels (4 bytes for
#: colour) beside the result (3). Measured at 4 megapixels (tests/test_serve_uploads.py):
#: 7.2 bytes for PNG (all-zero or 16-bit RGBA), 7.2 for BMP, 7.4 for JPEG.
DECODE_PEAK_BYTES_PER_PIXEL = 8
#: WebP's peak: Pillow decodes it with libwebp's animation decoder, which keeps two RGBA
#: canvases beside the image it hands back; measured 22.0 bytes a pixel at 4 megapixels and
#: 24.2 at 1 megapixel, lossy or lossless. A WebP may therefore have a quarter of the
#: pixels, which keeps its decode within the same budget.
WEBP_DECODE_PEAK_BYTES_PER_PIXEL = 32


@dataclass(frozen=True)
class Limits:
    """The largest image decoded: encoded bytes (None: any) and pixels (width x height)."""

    max_bytes: int | None
    max_pixels: int

    @property
    def decode_budget(self) -> int:
        """Bytes decoding an accepted file takes at most (its result included)."""
        return self.max_pixels * DECODE_PEAK_BYTES_PER_PIXEL


#: The user's own files (`ferflow predict`, `--max-pixels` overrides the pixels).
FILE_LIMITS = Limits(max_bytes=None, max_pixels=200_000_000)
#: Uploads to `ferflow serve` (`--max-upload-mb`, `--max-megapixels` override them).
UPLOAD_LIMITS = Limits(max_bytes=20 * 1024 * 1024, max_pixels=16_000_000)


@dataclass(frozen=True)
class Header:
    """An image's format (Pillow's name: JPEG, PNG, WEBP, BMP, GIF, TIFF, PPM...) and size."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decode_peak(self) -> int:
        """Bytes a pixel that decoding this format takes at its peak."""
        if self.format == "WEBP":
            return WEBP_DECODE_PEAK_BYTES_PER_PIXEL
        return DECODE_PEAK_BYTES_PER_PIXEL

    def pixel_limit(self, limits: Limits) -> int:
        """The most pixels an image of this format may have under `limits`: as many as fit
        in their decode budget."""
        return limits.decode_budget // self.decode_peak

    def max_pixels_needed(self) -> int:
        """The smallest `max_pixels` that lets this image through (for a hint)."""
        return -(-self.pixels * self.decode_peak // DECODE_PEAK_BYTES_PER_PIXEL)

    def too_large(self, limits: Limits) -> str:
        """Why this image is over `limits` ('' if it is not)."""
        limit = self.pixel_limit(limits)
        if self.pixels <= limit:
            return ""
        times = self.decode_peak // DECODE_PEAK_BYTES_PER_PIXEL
        costlier = (
            f" for {self.format} (decoding it takes {times} times the memory of other formats)"
            if limit < limits.max_pixels
            else ""
        )
        return (
            f"the image is {self.width:,} x {self.height:,} = {self.pixels:,} pixels, more than "
            f"the limit of {limit:,}{costlier} (about "
            f"{self.pixels * DECODED_BYTES_PER_PIXEL / 1e9:.1f} GB decoded)"
        )


def read_header(data: bytes | Path) -> Header | None:
    """The header of an image in any format Pillow knows, from its bytes or its file (read
    only as far as the header), or None (not an image Pillow recognises, or a header cut
    short: the decoder then says what is wrong)."""
    Image = imaging.pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd but readable headers
            with Image.open(data if isinstance(data, Path) else io.BytesIO(data)) as image:
                width, height = image.size
                return Header(str(image.format), width, height)
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError):
        # Pillow raises UnidentifiedImageError (an OSError) for what it does not recognise,
        # SyntaxError/struct.error from some plugins for damaged headers.
        return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None (see `read_header`)."""
    header = read_header(data)
    return None if header is None else (header.width, header.height)


_JPEG_SOS, _JPEG_EOI = 0xDA, b"\xff\xd9"
#: JPEG markers without a length field (TEM, RST0-7, SOI).
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def jpeg_ends_early(data: bytes) -> bool:
    """True for a JPEG whose compressed image data stops before its end-of-image marker.

    The segments before the image data are skipped by their lengths, so the thumbnail
    inside the EXIF block (a complete JPEG of its own) does not count; bytes after the
    marker (a phone's appended video) are allowed.
    """
    scan = _jpeg_first_scan(data)
    return scan is not None and data.find(_JPEG_EOI, scan) < 0


def _jpeg_first_scan(data: bytes) -> int | None:
    """Where the first scan's compressed data starts, or None (not a JPEG, or damaged)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_STANDALONE:
            i += 2
        else:
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker == _JPEG_SOS:
                return i + 2 + length
            i += 2 + length
    return None
