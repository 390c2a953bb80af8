"""FER2013 pixel strings <-> uint8 images, parsed in a few vectorised passes.

A `pixels` cell is 2,304 integers 0-255 separated by single spaces (a 48 x 48 face, row by
row). pyarrow keeps a whole column of such cells in one contiguous byte buffer plus an offset
per row, so instead of splitting 82 million substrings (the tutorial's `int()` loop, or
pyarrow's `split_pattern` + cast: 5-15 s on the real file) we look at the bytes directly:
find the spaces, derive where each number ends and how many digits it has, and gather those
digits. A file that is clean throughout takes the fast path; any block with a suspicious row
takes the general path, which also counts, per row, the values that are not integers 0-255,
so validation can name the rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.config import IMAGE_SIZE, PIXELS_PER_IMAGE

_P = PIXELS_PER_IMAGE
_SPACE = ord(" ")
_ZERO = ord("0")


@dataclass(frozen=True)
class ParsedPixels:
    """Per-row result of parsing a `pixels` column.

    images:  uint8 (N, 48, 48); all zeros for a row that is not valid.
    values:  int32 (N,), how many space-separated values the cell holds (0 for an empty cell).
    invalid: int32 (N,), how many of them are not an integer 0-255 written with 1-3 digits
             (empty values from doubled, leading or trailing spaces count too).
    """

    images: np.ndarray
    values: np.ndarray
    invalid: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """Rows that hold exactly 2,304 integers 0-255."""
        return (self.values == _P) & (self.invalid == 0)


def parse_pixel_column(
    column: pa.ChunkedArray | pa.Array | Sequence[str | None], threads: int = 1
) -> ParsedPixels:
    """Parse every cell of a `pixels` column (pyarrow strings, or any sequence of str).

    Blocks (pyarrow chunks) can be parsed on several threads (numpy releases the GIL in
    the large operations used here), but one is the default: on 2 cores the second is
    better spent elsewhere (hashing the file, importing Great Expectations), and one
    thread reuses its scratch memory best.
    """
    if not isinstance(column, pa.ChunkedArray | pa.Array):
        column = pa.array(list(column), type=pa.string())
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    chunks = [c for c in chunks if len(c)]
    n = sum(len(c) for c in chunks)
    images = np.zeros((n, _P), np.uint8)
    values = np.zeros(n, np.int32)
    invalid = np.zeros(n, np.int32)

    starts = np.cumsum([0] + [len(c) for c in chunks])
    local = threading.local()

    def work(i: int) -> None:
        if not hasattr(local, "scratch"):
            local.scratch = _Scratch()
        rows = slice(starts[i], starts[i + 1])
        _parse_block(chunks[i], images[rows], values[rows], invalid[rows], local.scratch)

    workers = max(1, min(threads, len(chunks)))
    if workers == 1:
        for i in range(len(chunks)):
            work(i)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(len(chunks))))
    return ParsedPixels(images.reshape(n, IMAGE_SIZE, IMAGE_SIZE), values, invalid)


class _Scratch:
    """Work arrays reused from block to block.

    Fresh multi-MB temporaries per block cost more in page faults (kernel time) than the
    arithmetic itself; reusing these keeps the parse at about one pass over memory.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: int | tuple[int, ...], dtype: type) -> np.ndarray:
        size = int(np.prod(shape))
        array = self._arrays.get(name)
        if array is None or array.size < size:
            array = self._arrays[name] = np.empty(size + size // 4, dtype)
        return array[:size].reshape(shape)


def _block_bytes(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's characters (uint8 view, no copy) and its row offsets rebased to 0."""
    if pa.types.is_large_string(chunk.type):
        offset_type = np.int64
    elif pa.types.is_string(chunk.type):
        offset_type = np.int32
    else:
        raise TypeError(f"pixels column must hold strings, got {chunk.type}")
    _, offsets_buf, data_buf = chunk.buffers()
    offsets = np.frombuffer(offsets_buf, offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
    offsets = offsets.astype(np.int64)
    base = offsets[0]
    data = (
        np.frombuffer(data_buf, np.uint8)[base : offsets[-1]] if data_buf else np.zeros(0, np.uint8)
    )
    return data, offsets - base


def _parse_block(
    chunk: pa.Array, images: np.ndarray, values: np.ndarray, invalid: np.ndarray, scratch: _Scratch
) -> None:
    data, offsets = _block_bytes(chunk)
    size = len(data)
    # Two bytes of padding in front let the gathers below read "the digit 1 or 2 places
    # before" through shifted views instead of building shifted index arrays.
    padded = scratch.get("padded", size + 2, np.uint8)
    padded[:2] = 0  # never read unmasked: a number has no digits before its row
    digits = padded[2:]
    np.subtract(data, np.uint8(_ZERO), out=digits)  # wraps: anything but 0-9 becomes >= 10
    is_space = np.equal(data, _SPACE, out=scratch.get("is_space", size, np.bool_))
    spaces = np.flatnonzero(is_space)
    spaces_per_row = np.diff(np.searchsorted(spaces, offsets))
    is_digit = np.less(digits, 10, out=scratch.get("is_digit", size, np.bool_))
    if (
        chunk.null_count == 0
        and (spaces_per_row == _P - 1).all()
        and np.count_nonzero(is_digit) + len(spaces) == size  # nothing but digits and spaces
        and _parse_clean_block(padded, offsets, spaces, images, scratch)
    ):
        values[:] = _P
        return
    _parse_any_block(chunk, padded, is_space, offsets, spaces_per_row, images, values, invalid)


def _number_values(padded: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """uint16 values of the numbers of 1-3 digits whose last digit is at `ends`.

    `padded` holds the digit values (c - '0') after two padding bytes.
    """
    value = padded[2:][ends].astype(np.uint16)
    value += (padded[1:][ends] * (lengths >= 2)).astype(np.uint16) * np.uint16(10)
    value += (padded[ends] * (lengths >= 3)).astype(np.uint16) * np.uint16(100)
    return value


def _parse_clean_block(
    padded: np.ndarray,
    offsets: np.ndarray,
    spaces: np.ndarray,
    images: np.ndarray,
    scratch: _Scratch,
) -> bool:
    """Fast path: every row has 2,303 single spaces and only digits and spaces.

    Works in uint8 throughout (values wrap mod 256, and a separate test catches those above
    255). Returns False, having written nothing, if a number is empty, longer than 3 digits
    or above 255: the general path then says which.
    """
    n = len(offsets) - 1
    shape = (n, _P)
    # Each number ends just before a space or at the end of its row.
    ends = scratch.get("ends", shape, np.int64)
    ends[:, : _P - 1] = spaces.reshape(n, _P - 1)
    ends[:, _P - 1] = offsets[1:]
    ends -= 1
    # The characters 0, 1 and 2 places before each end, as digit values (a space reads 240).
    units = np.take(padded[2:], ends, out=scratch.get("units", shape, np.uint8))
    tens = np.take(padded[1:], ends, out=scratch.get("tens", shape, np.uint8))
    hundreds = np.take(padded, ends, out=scratch.get("hundreds", shape, np.uint8))
    if units.max() >= 10:  # an end on a space: an empty number (doubled space)
        return False
    has_tens = np.less(tens, 10, out=scratch.get("has_tens", shape, np.bool_))
    has_hundreds = np.less(hundreds, 10, out=scratch.get("has_hundreds", shape, np.bool_))
    has_hundreds &= has_tens
    # A row's first number has the previous row's last digits before it: use its length.
    first_length = ends[:, 0] - offsets[:-1] + 1
    has_tens[:, 0] = first_length >= 2
    has_hundreds[:, 0] = first_length >= 3
    # Lengths are capped at 3 here, so a longer number shows as a row with fewer digits
    # counted than it holds.
    counted = np.count_nonzero(has_tens, axis=1) + np.count_nonzero(has_hundreds, axis=1) + _P
    if (counted != np.diff(offsets) - (_P - 1)).any():
        return False
    tens *= has_tens
    hundreds *= has_hundreds
    low = tens
    low *= np.uint8(10)
    low += units  # 0..99
    over = np.greater(hundreds, 2, out=has_tens)
    if over.any():
        return False
    at_200 = np.equal(hundreds, 2, out=has_hundreds)
    at_200 &= np.greater(low, 55, out=over)
    if at_200.any():
        return False
    hundreds *= np.uint8(100)
    np.add(hundreds, low, out=images)
    return True


def _parse_any_block(
    chunk: pa.Array,
    padded: np.ndarray,
    is_space: np.ndarray,
    offsets: np.ndarray,
    spaces_per_row: np.ndarray,
    images: np.ndarray,
    values: np.ndarray,
    invalid: np.ndarray,
) -> None:
    """General path: count each row's values and bad values; decode the rows that are valid."""
    digits = padded[2:]
    lengths_of_rows = np.diff(offsets)
    nonempty_rows = lengths_of_rows > 0
    row_first = offsets[:-1][nonempty_rows]
    row_last = offsets[1:][nonempty_rows] - 1

    # A value is a maximal run of non-space characters inside one row.
    in_value = ~is_space
    starts = in_value.copy()
    starts[1:] &= is_space[:-1]
    starts[row_first] = in_value[row_first]
    ends = in_value.copy()
    ends[:-1] &= is_space[1:]
    ends[row_last] = in_value[row_last]
    value_start = np.flatnonzero(starts)
    value_end = np.flatnonzero(ends)
    length = value_end - value_start + 1

    bad = length > 3
    others = np.flatnonzero((digits >= 10) & in_value)
    bad[np.searchsorted(value_start, others, side="right") - 1] = True
    decoded = _number_values(padded, value_end, length)
    bad |= decoded > 255

    first_value = np.searchsorted(value_start, offsets)
    nonempty_values = np.diff(first_value)
    bad_cumsum = np.concatenate([[0], np.cumsum(bad, dtype=np.int64)])
    bad_values = bad_cumsum[first_value[1:]] - bad_cumsum[first_value[:-1]]
    # `split(" ")` semantics: k spaces make k + 1 values, the empty ones included.
    count = np.where(nonempty_rows, spaces_per_row + 1, 0)
    empty_values = count - nonempty_values

    is_null = chunk.is_null().to_numpy(zero_copy_only=False)
    count[is_null] = 0
    values[:] = count
    invalid[:] = np.where(is_null, 0, bad_values + empty_values)

    ok = (values == _P) & (invalid == 0)
    if ok.any():
        images[ok] = decoded[np.repeat(ok, nonempty_values)].reshape(-1, _P)


def describe_pixel_problem(text: str | None) -> str:
    """Why one `pixels` cell is not 2,304 integers 0-255 ('' if it is fine).

    Used for the handful of rows an error message names; never the whole cell.
    """
    if not text:
        return "pixels is empty"
    reasons = []
    fields = text.split(" ")
    if len(fields) != _P:
        values = f"{len(fields):,} value{'s' if len(fields) != 1 else ''}"
        reasons.append(f"pixels has {values}, expected {_P:,} ({IMAGE_SIZE} x {IMAGE_SIZE})")
    for i, field in enumerate(fields, start=1):
        problem = _describe_value(field)
        if problem:
            reasons.append(f"pixel value {i:,} {problem}")
            break
    return "; ".join(reasons)


def _describe_value(field: str) -> str:
    shown = repr(field if len(field) <= 12 else field[:12] + "...")
    if field == "":
        return "is empty (a doubled, leading or trailing space)"
    if field.isascii() and field.isdigit():
        if len(field) > 3 or int(field) > 255:
            return f"is {shown}, above 255"
        return ""
    if field[0] == "-" and field[1:].isascii() and field[1:].isdigit():
        return f"is {shown}, negative; expected an integer 0-255"
    return f"is {shown}, not an integer; expected digits 0-9 only, 0-255"


# Text of each value 0-255 followed by a space, padded to 4 bytes, and its length.
_TOKEN_TEXT = np.zeros((256, 4), np.uint8)
_TOKEN_LEN = np.zeros(256, np.int64)
for _v in range(256):
    _t = f"{_v} ".encode()
    _TOKEN_TEXT[_v, : len(_t)] = np.frombuffer(_t, np.uint8)
    _TOKEN_LEN[_v] = len(_t)


def format_pixel_rows(images: np.ndarray) -> list[bytes]:
    """The FER2013 `pixels` text of each image (uint8 (N, 48, 48) or (N, 2304)), as bytes."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    if flat.shape[1] != _P:
        raise ValueError(f"expected images of {_P} pixels, got shape {images.shape}")
    lengths = _TOKEN_LEN[flat]
    text = _TOKEN_TEXT[flat][np.arange(4) < lengths[..., None]].tobytes()
    ends = np.cumsum(lengths.sum(axis=1))
    starts = ends - lengths.sum(axis=1)
    # Drop each row's trailing space.
    return [text[s : e - 1] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
