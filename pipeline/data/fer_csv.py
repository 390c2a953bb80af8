"""Read and write FER2013-format CSV files (`emotion,pixels,Usage`).

`read_fer_csv` reads the whole file once: it rejects what is not a FER2013 CSV at all
(empty, binary, compressed, wrong header, rows with the wrong number of columns, a file cut
off mid-row) with a `DataError`, and otherwise returns every row, parsed, with per-row
checks that validation turns into expectations. Row numbers follow `pipeline.data.errors`.

Line ends may be LF, CRLF or, in a file without any LF, a lone CR (what some spreadsheet
programs write). Messages count lines as an editor does: by LF, or by CR in a CR-only file.
"""

from __future__ import annotations

import csv
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipeline.config import CSV_COLUMNS, LABELS, NUM_CLASSES, SPLIT_OF_USAGE, SPLITS
from pipeline.data.errors import DataError, preview, row_ref
from pipeline.data.pixels import ParsedPixels, format_pixel_rows, parse_pixel_column
from pipeline.io import atomic_path

USAGES: tuple[str, ...] = tuple(SPLIT_OF_USAGE)
_HEADER = ",".join(CSV_COLUMNS)
_BOM = b"\xef\xbb\xbf"
# pyarrow parses the file in blocks of this size on all cores, and the pixel parser works
# block by block: a few MB keeps its temporaries in cache.
_BLOCK_BYTES = 4 << 20
_COMPRESSED = {
    b"\xfd7zXZ\x00": ("xz", "xz -dk FILE"),
    b"\x1f\x8b": ("gzip", "gunzip -k FILE"),
    b"BZh": ("bzip2", "bunzip2 -k FILE"),
    b"PK\x03\x04": ("zip", "unzip FILE"),
    b"\x28\xb5\x2f\xfd": ("zstd", "zstd -d FILE"),
}


@dataclass(frozen=True)
class FerTable:
    """Every row of a FER2013 CSV, parsed; nothing is dropped, invalid rows included.

    emotion, usage: the raw cells (pyarrow strings, null where empty).
    labels: int64 (N,), the class 0-6, or -1 where `emotion` is not one of '0'..'6'.
    split_index: int8 (N,), index into SPLITS, or -1 where `Usage` is not a known value.
    """

    path: Path
    sha256: str
    size_bytes: int
    ends_with_newline: bool
    emotion: pa.ChunkedArray
    usage: pa.ChunkedArray
    pixels: pa.ChunkedArray
    parsed: ParsedPixels
    labels: np.ndarray
    split_index: np.ndarray
    #: Line on which each record starts (index 0: the header, i: data row i), where a quoted
    #: cell spans several lines; None when row i is simply on line i + 1.
    record_lines: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def names(self) -> tuple[str, ...]:
        """The label set: a FER2013 CSV's `emotion` i is FER2013's class i."""
        return LABELS

    @property
    def images(self) -> np.ndarray:
        """uint8 (N, 48, 48), zeros where a row's pixels are unusable."""
        return self.parsed.images

    @property
    def usable(self) -> np.ndarray:
        """Rows whose image could be read (whatever their label or split)."""
        return self.parsed.valid

    def row_ref(self, row: int) -> str:
        """'row 17 (line 18)' for the 1-based data row `row`, with its true line."""
        return row_ref(row, None if self.record_lines is None else int(self.record_lines[row]))

    @property
    def valid(self) -> np.ndarray:
        """Rows with a label 0-6, a known Usage and 2,304 pixel values 0-255."""
        return (self.labels >= 0) & (self.split_index >= 0) & self.parsed.valid

    def split_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """split name -> (images uint8 (N, 48, 48), labels int64 (N,)), in file order.

        Refuses a table with any invalid row or an empty split: validation should have
        stopped it, and a shard must never hold a half-understood row.
        """
        bad = np.flatnonzero(~self.valid)
        if len(bad):
            raise DataError(
                f"{self.path}: {len(bad):,} row(s) not valid FER2013 rows, the first is "
                f"{self.row_ref(int(bad[0]) + 1)}; run the validate stage for the reasons"
            )
        out = {}
        for i, split in enumerate(SPLITS):
            rows = self.split_index == i
            if not rows.any():
                raise DataError(
                    f"{self.path}: no rows with Usage {USAGES[i]}; every split needs rows"
                )
            out[split] = (self.parsed.images[rows], self.labels[rows])
        return out


def read_fer_csv(path: str | Path) -> FerTable:
    """Read and parse a FER2013 CSV; raise `DataError` if it is not one at all."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.csv"))[:3]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise DataError(
            f"{path}: this is a folder, not a file; point data.raw in params.yaml at the "
            f"FER2013 CSV file itself{hint}"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file. Point data.raw in params.yaml at a FER2013 CSV, or run "
            "`dvc repro synthesize` to draw the built-in synthetic one"
        )
    raw = path.read_bytes()
    # Hashing runs beside the parse; hashlib releases the GIL on large buffers.
    with ThreadPoolExecutor(1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(raw).hexdigest())
        _check_is_text(path, raw)
        _check_header(path, raw)
        columns = _read_columns(path, raw)
        parsed = parse_pixel_column(columns["pixels"])
        sha256 = digest.result()
    labels = _index_in(columns["emotion"], [str(i) for i in range(NUM_CLASSES)]).astype(np.int64)
    split_index = _index_in(columns["Usage"], USAGES).astype(np.int8)
    return FerTable(
        path=path,
        sha256=sha256,
        size_bytes=len(raw),
        ends_with_newline=raw.endswith((b"\n", b"\r")),
        emotion=columns["emotion"],
        usage=columns["Usage"],
        pixels=columns["pixels"],
        parsed=parsed,
        labels=labels,
        split_index=split_index,
        record_lines=_record_lines(raw, len(labels)),
    )


def _index_in(column: pa.ChunkedArray, values: list[str] | tuple[str, ...]) -> np.ndarray:
    """Position of each cell in `values` (exact match), -1 if absent or null."""
    index = pc.index_in(column, value_set=pa.array(list(values), type=pa.string()))
    return pc.fill_null(index, -1).to_numpy(zero_copy_only=False)


def _line_end(raw: bytes) -> bytes:
    """The byte that ends a line: LF (CRLF included), or CR in a file without any LF."""
    return b"\n" if b"\n" in raw or b"\r" not in raw else b"\r"


def _line_of(raw: bytes, offset: int) -> int:
    """The line holding byte `offset`."""
    return raw.count(_line_end(raw), 0, offset) + 1


def _record_lines(raw: bytes, rows: int) -> np.ndarray | None:
    """The line each record starts on (0: the header), if a quoted cell spans lines; else None.

    Only a file with quotes can have such a cell, and only one with more line ends than
    records does: the check costs a scan for a quote in the usual file.
    """
    if b'"' not in raw:
        return None
    end = _line_end(raw)
    ends = np.array([m.start() for m in re.finditer(re.escape(end), raw)], np.int64)
    if len(ends) <= rows + 1:
        return None
    quotes = np.array([m.start() for m in re.finditer(rb'"', raw)], np.int64)
    # A line end inside quotes has an odd number of quotes before it ("" escapes keep parity).
    record_ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
    return np.concatenate([[1], np.searchsorted(ends, record_ends, side="right") + 1])


def _check_is_text(path: Path, raw: bytes) -> None:
    if not raw:
        raise DataError(
            f"{path}: the file is empty (0 bytes); expected a FER2013 CSV: the header line "
            f"'{_HEADER}' and one row per face"
        )
    for magic, (kind, command) in _COMPRESSED.items():
        if raw.startswith(magic):
            raise DataError(
                f"{path}: this is a {kind}-compressed file, not a CSV; unpack it first "
                f"(`{command.replace('FILE', path.name)}`) and point data.raw at the result"
            )
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{path}: binary data, not a text CSV (a NUL byte at byte {nul:,}, line "
            f"{_line_of(raw, nul):,}); the file is corrupt or not a FER2013 CSV"
        )


def _not_utf8(path: Path, raw: bytes, error: UnicodeDecodeError, start: int = 0) -> DataError:
    offset = start + error.start
    line = _line_of(raw, offset)
    where = "the header line" if line == 1 else _row_on_line(raw, line)
    return DataError(
        f"{path}: {where} holds bytes that are not UTF-8 text (byte {offset:,}); the file "
        "is corrupt (binary data?) or not a FER2013 CSV"
    )


def _row_on_line(raw: bytes, line: int) -> str:
    records = _record_lines(raw, 0)
    if records is None:
        return row_ref(line - 1)
    row = int(np.searchsorted(records, line, side="right")) - 1
    return f"row {row:,} (line {line:,})"


def _check_header(path: Path, raw: bytes) -> None:
    end = raw.find(_line_end(raw))
    end = end if end >= 0 else len(raw)
    first = raw[:end]
    start = len(_BOM) if first.startswith(_BOM) else 0
    try:
        text = first[start:].decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, raw, e, start) from None
    if "\r" in text:
        # csv would fail on it, and pyarrow would start a new row there.
        raise DataError(
            f"{path}: line 1 (the header) holds a carriage return (\\r) after "
            f"{preview(text[: text.index(chr(13))], 40)}; the header must be the line "
            f"'{_HEADER}' and nothing else"
        )
    if len(text) > 200 and not text[:1].isdigit():  # a data row is the case below
        raise DataError(
            f"{path}: line 1 is {len(text):,} characters long ({preview(text)}), not the "
            f"header; expected the line '{_HEADER}' at the top"
        )
    try:
        # The first 200 characters hold any header; csv refuses a cell over 128 kB.
        header = tuple(next(csv.reader([text[:200]]), []))
    except csv.Error as e:
        raise DataError(f"{path}: line 1 is not a CSV header ({e}); expected '{_HEADER}'") from None
    if header != CSV_COLUMNS:
        if header and header[0].strip().isdigit():
            raise DataError(
                f"{path}: the header line is missing: line 1 looks like a data row "
                f"({preview(text)}); add the line '{_HEADER}' at the top"
            )
        raise DataError(
            f"{path}: line 1 is the header {preview(text, 60)}, expected '{_HEADER}' "
            "(these names, in this order)"
        )
    rest = raw[end + 1 : end + 1 + 4096]
    if len(raw) <= end + 1 + 4096 and not rest.strip():
        raise DataError(
            f"{path}: the file has the header but no data rows; expected one row per face"
        )


def _read_columns(path: Path, raw: bytes) -> dict[str, pa.ChunkedArray]:
    wrong_shape: list[int] = []

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        wrong_shape.append(row.actual_columns)
        return "skip"

    try:
        table = _pyarrow_read(raw, on_invalid_row, use_threads=True)
    except pa.ArrowInvalid as e:
        message = str(e)
        if "UTF8" in message:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as u:
                raise _not_utf8(path, raw, u) from None
        raise DataError(f"{path}: not a readable CSV: {message[:200]}") from None
    if wrong_shape:
        raise _wrong_column_count(path, raw)
    return {name: table.column(name) for name in CSV_COLUMNS}


def _pyarrow_read(raw: bytes, on_invalid_row, use_threads: bool) -> pa.Table:
    return pcsv.read_csv(
        pa.py_buffer(raw),
        read_options=pcsv.ReadOptions(
            skip_rows=1,
            column_names=list(CSV_COLUMNS),
            block_size=_BLOCK_BYTES,
            use_threads=use_threads,
        ),
        # Blank lines stay rows (of empty cells) so that row N is always line N + 1.
        parse_options=pcsv.ParseOptions(
            invalid_row_handler=on_invalid_row, ignore_empty_lines=False
        ),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in CSV_COLUMNS},
            strings_can_be_null=True,
            null_values=[""],
        ),
    )


def _wrong_column_count(path: Path, raw: bytes, shown: int = 5) -> DataError:
    # Only a single-threaded read knows line numbers; this runs on the error path only.
    found: list[tuple[int, int, str]] = []

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        found.append((row.number, row.actual_columns, row.text))
        return "skip"

    _pyarrow_read(raw, on_invalid_row, use_threads=False)
    # pyarrow numbers records (the header is 1), not lines: they differ after a quoted
    # cell that spans lines.
    records = _record_lines(raw, 0)

    def ref(record: int) -> str:
        return row_ref(record - 1, None if records is None else int(records[record - 1]))

    lines = []
    for record, columns, text in found[:shown]:
        lines.append(
            f"  {ref(record)} has {columns} column{'s' if columns != 1 else ''}, "
            f"expected {len(CSV_COLUMNS)} ({_HEADER}); it starts {preview(text)}"
        )
    last_record = len(records) if records is not None else _line_of(raw, len(raw.rstrip(b"\r\n")))
    hint = ""
    if (
        not raw.endswith((b"\n", b"\r"))
        and found
        and found[-1][0] == last_record
        and found[-1][1] < len(CSV_COLUMNS)  # too many columns is no sign of a cut
    ):
        hint = (
            f"\nThe file ends in the middle of {ref(last_record)} (no line break after "
            "it): it was probably cut off while copying or downloading; get a complete copy."
        )
    more = f"\n  ... and {len(found) - shown:,} more" if len(found) > shown else ""
    return DataError(
        f"{path}: {len(found):,} row{'s' if len(found) != 1 else ''} with the wrong number "
        f"of columns:\n" + "\n".join(lines) + more + hint
    )


def encode_fer_csv(images: np.ndarray, labels: np.ndarray, usages: np.ndarray | list[str]) -> bytes:
    """The bytes of a FER2013 CSV holding these rows (LF line ends, no quoting)."""
    labels = np.asarray(labels)
    if not (len(images) == len(labels) == len(usages)):
        raise ValueError(
            f"expected as many labels and usages as images ({len(images)}), "
            f"got {len(labels)} and {len(usages)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(LABELS)):
        raise ValueError(f"labels must be 0..{len(LABELS) - 1}, got {labels.min()}..{labels.max()}")
    rows = format_pixel_rows(images)
    out = [_HEADER.encode() + b"\n"]
    for label, pixels, usage in zip(labels.tolist(), rows, list(usages), strict=True):
        out.append(b"%d,%s,%s\n" % (label, pixels, usage.encode()))
    return b"".join(out)


def write_fer_csv(
    path: str | Path, images: np.ndarray, labels: np.ndarray, usages: np.ndarray | list[str]
) -> Path:
    """Write rows as a FER2013 CSV, atomically."""
    path = Path(path)
    data = encode_fer_csv(images, labels, usages)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
