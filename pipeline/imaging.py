"""Pixel operations the app and the data stages share, on numpy and Pillow alone.

No OpenCV here: photos, `ferflow serve` and the data stages run without it, so the app's
install stays light (OpenCV is the `ferflow[video]` extra, for video files and cameras).
The arithmetic follows OpenCV's where the app used it before, so a face gives the same
numbers either way: `to_gray` is OpenCV's fixed-point BT.601 formula bit for bit, and
`resize` averages the exact area each output pixel covers when shrinking (OpenCV's
INTER_AREA) and interpolates bilinearly when enlarging (INTER_LINEAR), within one grey
level of OpenCV (tests/test_imaging.py compares them).
"""

from __future__ import annotations

import functools
import io
import threading
import warnings
from types import ModuleType

import numpy as np

#: BT.601 luma weights for B, G, R in OpenCV's 15-bit fixed point (0.114, 0.587, 0.299), as
#: a table of every weighted value: three lookups and two sums a pixel, exact, and no BLAS
#: call (numpy's matrix products start OpenBLAS threads whose spinning doubles a frame's CPU).
_GRAY_TABLE = np.arange(256, dtype=np.uint32)[None] * np.array([[3735], [19235], [9798]], np.uint32)
_GRAY_SHIFT = 15


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR (or already grey) uint8 -> grey uint8 (H, W)."""
    if image.ndim == 2:
        return image
    weighted = _GRAY_TABLE[0].take(image[..., 0])
    weighted += _GRAY_TABLE[1].take(image[..., 1])
    weighted += _GRAY_TABLE[2].take(image[..., 2])
    weighted += 1 << (_GRAY_SHIFT - 1)
    weighted >>= _GRAY_SHIFT
    return weighted.astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """BGR or grey uint8 -> RGB uint8 (H, W, 3)."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., 2::-1])


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Grey or BGR uint8 -> BGR uint8 (H, W, 3) (a copy either way: safe to draw on)."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image.copy()


def _area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (dst, k): each output pixel averages the source span
    [i * scale, (i + 1) * scale) it covers, partly covered pixels by the part covered."""
    scale = src / dst
    starts = np.arange(dst) * scale
    first = np.floor(starts).astype(np.int64)
    index = first[:, None] + np.arange(int(np.ceil(scale)) + 1)
    covered = np.minimum(index + 1, (starts + scale)[:, None]) - np.maximum(index, starts[:, None])
    weights = np.clip(covered, 0, None) / scale
    return np.clip(index, 0, src - 1), weights.astype(np.float32)


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (dst, 2) of bilinear interpolation, pixel centres aligned
    (OpenCV's and Pillow's convention), edges repeated."""
    where = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    left = np.floor(where)
    frac = (where - left).astype(np.float32)
    index = np.clip(left.astype(np.int64)[:, None] + np.arange(2), 0, src - 1)
    return index, np.stack([1 - frac, frac], axis=1)


@functools.lru_cache(maxsize=256)
def _taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    return (_area_taps if dst < src else _linear_taps)(src, dst)


def _resize_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    src = image.shape[axis]
    if size == src:
        return image
    index, weights = _taps(src, size)
    shape = [1] * image.ndim
    shape[axis] = size
    out = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1 :], np.float32)
    for k in range(index.shape[1]):  # a few taps each, never a dense (dst x src) product
        out += np.take(image, index[:, k], axis=axis) * weights[:, k].reshape(shape)
    return out


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 image (H, W) or (H, W, C) -> (height, width) of `size` = (width, height).

    Each axis on its own: shrinking averages (aliasing-free), enlarging interpolates.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}: both sides must be at least 1")
    src_height, src_width = image.shape[:2]
    if (src_height, src_width) == (height, width):
        return image
    if src_height % height == 0 and src_width % width == 0 and image.shape[2:] in ((), (3,)):
        # Whole factors (a photo halved for the detector): the plain block average, which
        # Pillow's reduce() computes in C some 50 times faster than the general path.
        factors = (src_width // width, src_height // height)
        return np.array(pillow().fromarray(np.ascontiguousarray(image)).reduce(factors))
    out = _resize_axis(_resize_axis(image, height, 0), width, 1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# Files: decoding and encoding with Pillow
# ---------------------------------------------------------------------------------------


@functools.cache
def pillow() -> ModuleType:
    """`PIL.Image`, imported at first use (~50 ms; a video needs none of it), with Pillow's
    global decompression-bomb check turned off once for the process: ferflow checks every
    header against its own limits before decoding (pipeline/app/image_header.py) and names
    the size when it refuses; Pillow's check (an error past 179 megapixels) would refuse
    first, without it."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


#: Pillow reads a JPEG that ends early only while this global flag is set; it is set
#: around one decode at a time (`decode(..., truncated_ok=True)`), never left on.
_TRUNCATED_LOCK = threading.Lock()
#: Pillow modes holding 16 bits a sample: scaled to 8 by their high byte (as OpenCV does).
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class DecodeError(ValueError):
    """Bytes that are not an image Pillow can decode; the message says Pillow's reason."""


def decode(data: bytes, *, gray: bool = False, truncated_ok: bool = False) -> np.ndarray:
    """Image file bytes -> BGR uint8 (H, W, 3), or grey (H, W) with `gray`; DecodeError if
    they do not decode. EXIF orientation is applied (a phone's portrait photo stands up),
    alpha is dropped, 16-bit samples keep their high byte.

    `truncated_ok`: a JPEG cut off while copying decodes with its missing part grey instead
    of failing (the caller should say so: `image_header.jpeg_ends_early`).
    """
    from PIL import ImageFile

    Image = pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as opened:
                orientation = _orientation(opened)
                if truncated_ok:
                    with _TRUNCATED_LOCK:
                        ImageFile.LOAD_TRUNCATED_IMAGES = True
                        try:
                            opened.load()
                        finally:
                            ImageFile.LOAD_TRUNCATED_IMAGES = False
                else:
                    opened.load()
                pixels = _pixels(opened, gray)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as e:
        reason = str(e).strip() or type(e).__name__
        if reason.startswith("cannot identify image file"):  # it names the in-memory buffer
            reason = "no image format Pillow knows"
        raise DecodeError(reason) from None
    return _oriented(pixels, orientation)


#: Rows converted at a time: about 256 KB of Pillow's pixels, so the conversion costs the
#: process nothing beside the decoded image and the result.
_BAND_BYTES = 1 << 18


def _pixels(image, gray: bool) -> np.ndarray:
    """A loaded Pillow image -> BGR or grey uint8, band by band into the result, so the
    process holds Pillow's pixels (4 bytes a pixel for colour) and the result (3) and never
    a whole-image copy between them (the decode budget in pipeline/app/image_header.py
    counts on it)."""
    width, height = image.size
    out = np.empty((height, width) if gray else (height, width, 3), np.uint8)
    wide = image.mode in _WIDE_MODES
    # 16-bit samples keep their high byte only where the image uses more than 8 bits.
    shift = 8 if wide and image.getextrema()[1] > 255 else 0
    rows = max(1, _BAND_BYTES // max(1, 4 * width))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band = image if rows >= height else image.crop((0, top, width, bottom))
        if wide:
            grey = (np.asarray(band) >> shift).astype(np.uint8)
            out[top:bottom] = grey if gray else grey[..., None]
            continue
        if band.mode not in ("L", "RGB") or (band.mode == "L" and not gray):
            band = band.convert("RGB")
        # Pillow's raw encoder writes BGR itself, several times faster than reversing the
        # channels in numpy.
        raw = band.tobytes("raw", "L" if band.mode == "L" else "BGR")
        pixels = np.frombuffer(raw, np.uint8).reshape(bottom - top, width, -1)
        if gray:
            out[top:bottom] = pixels[..., 0] if band.mode == "L" else to_gray(pixels)
        else:
            out[top:bottom] = pixels
    image.close()
    return out


def _orientation(image) -> int:
    """The EXIF orientation (1-8; 1: as stored), read before decoding."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the photo as stored
        return 1
    return value if value in range(1, 9) else 1


def _oriented(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels turned as EXIF `orientation` says (what Pillow's exif_transpose does), done
    on the result after Pillow's copy is freed: one more copy, of 3 bytes a pixel."""
    if orientation == 1:
        return pixels
    if orientation in (5, 6, 7, 8):  # the stored rows are the photo's columns
        pixels = pixels.swapaxes(0, 1)
    flips = {2: (1,), 3: (0, 1), 4: (0,), 5: (), 6: (1,), 7: (0, 1), 8: (0,)}[orientation]
    return np.ascontiguousarray(np.flip(pixels, flips))


def format_for(suffix: str) -> str | None:
    """Pillow's name for the format a file suffix ('.jpg') names, or None if it writes none."""
    Image = pillow()
    Image.init()
    name = Image.registered_extensions().get(suffix.lower())
    return name if name in Image.SAVE else None


#: Lossy formats are written at the quality OpenCV's writer used (95), not Pillow's 75: an
#: annotated copy should look like its photo.
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


def encode(image: np.ndarray, suffix: str) -> bytes:
    """BGR or grey uint8 -> file bytes in the format `suffix` names; ValueError if Pillow
    writes no such format or not this kind of image (grey-only formats hold no colour)."""
    fmt = format_for(suffix)
    if fmt is None:
        raise ValueError(f"no image format is written for the suffix {suffix!r}")
    pixels = image if image.ndim == 2 else to_rgb(image)
    buffer = io.BytesIO()
    try:
        pillow().fromarray(np.ascontiguousarray(pixels, np.uint8)).save(
            buffer, format=fmt, **_SAVE_OPTIONS.get(fmt, {})
        )
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot write this image as {fmt} ({e})") from None
    return buffer.getvalue()
