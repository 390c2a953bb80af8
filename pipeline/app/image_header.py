"""What an image file's bytes say before anyone decodes them: its size, and whether a JPEG
ends early.

The size comes from the header (PNG, JPEG, GIF, BMP, WebP, TIFF, PGM/PPM/PBM), so an image
too large to decode safely is refused before any pixel memory is taken: a 300-byte PNG can
claim 60000 x 60000 pixels (10 GB decoded). Other formats answer None and keep OpenCV's own
limit. A JPEG cut off while copying decodes without an error, its lower part grey;
`jpeg_ends_early` notices the missing end-of-image marker.
"""

from __future__ import annotations

import struct

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (C0-CF except C4 = DHT, C8 = JPG, CC = DAC) hold the size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_JPEG_SOS, _JPEG_EOI = 0xDA, b"\xff\xd9"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None if the format or header is not understood."""
    try:
        for reader in (_png, _jpeg, _gif, _bmp, _webp, _tiff, _pnm):
            size = reader(data)
            if size is not None:
                return size
    except (struct.error, ValueError, IndexError):
        return None  # a header cut short: OpenCV's decoder says what is wrong
    return None


def jpeg_ends_early(data: bytes) -> bool:
    """True for a JPEG whose compressed image data stops before its end-of-image marker.

    The markers before the image data are skipped by their lengths, so the thumbnail
    inside the EXIF block (a complete JPEG of its own) does not count; bytes after the
    marker (a phone's appended video) are allowed.
    """
    scan = _jpeg_first_scan(data)
    return scan is not None and data.find(_JPEG_EOI, scan) < 0


def _png(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg_segments(data: bytes):
    """(marker, offset of its payload, payload length) up to the first scan (SOS)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("not at a marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        yield marker, i + 4, length - 2
        if marker == _JPEG_SOS:
            return
        i += 2 + length


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    for marker, start, _ in _jpeg_segments(data):
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[start + 1 : start + 5])
            return width, height
    return None


def _jpeg_first_scan(data: bytes) -> int | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        for marker, start, length in _jpeg_segments(data):
            if marker == _JPEG_SOS:
                return start + length
    except (struct.error, ValueError):
        return None
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    return struct.unpack("<HH", data[6:10])


def _bmp(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"BM"):
        return None
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 1.x header
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return None
    ifd = struct.unpack(order + "I", data[4:8])[0]
    (entries,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found = {}
    for k in range(entries):
        tag, kind, _, value = struct.unpack(
            order + "HHI4s", data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        )
        if tag in (256, 257):
            fmt = "H" if kind == 3 else "I"
            found[tag] = struct.unpack(order + fmt, value[: struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm(data: bytes) -> tuple[int, int] | None:
    if len(data) < 2 or data[0:1] != b"P" or data[1:2] not in b"123456":
        return None
    numbers: list[int] = []
    for line in data[2:512].split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            numbers.append(int(token))
            if len(numbers) == 2:
                return numbers[0], numbers[1]
    return None
