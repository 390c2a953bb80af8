"""Reading FER2013 CSVs: valid spellings pass, what is not a FER2013 CSV at all is refused."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.errors import DataError
from pipeline.data.fer_csv import encode_fer_csv, read_fer_csv, write_fer_csv
from pipeline.data.pixels import format_pixel_rows

HEADER = b"emotion,pixels,Usage\n"


def lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def test_reads_every_row_in_order(small_fer_csv: Path) -> None:
    table = read_fer_csv(small_fer_csv)
    assert len(table) == 28
    assert table.valid.all()
    assert np.bincount(table.split_index).tolist() == [14, 7, 7]
    arrays = table.split_arrays()
    assert {k: len(v[1]) for k, v in arrays.items()} == {"train": 14, "val": 7, "test": 7}
    # Row 1 of the file is the first training face.
    first = lines(small_fer_csv.read_bytes())[1].split(b",")
    assert table.labels[0] == int(first[0])
    assert format_pixel_rows(table.parsed.images[:1])[0] == first[1]


@pytest.mark.parametrize(
    "spelling",
    [
        "utf-8 BOM",
        "CRLF line ends",
        "CR-only line ends",
        "every field quoted",
        "no final newline",
        "blank Windows",
    ],
)
def test_valid_csv_spellings_pass(
    tmp_path: Path, small_fer_csv_bytes: bytes, spelling: str
) -> None:
    data = small_fer_csv_bytes
    if spelling == "utf-8 BOM":
        data = b"\xef\xbb\xbf" + data
    elif spelling == "CRLF line ends":
        data = data.replace(b"\n", b"\r\n")
    elif spelling == "CR-only line ends":  # e.g. a spreadsheet program's "CSV (Macintosh)"
        data = data.replace(b"\n", b"\r")
    elif spelling == "every field quoted":
        data = b"\n".join(
            b",".join(b'"' + f + b'"' for f in line.split(b",")) if line else line
            for line in lines(data)
        )
    elif spelling == "no final newline":
        data = data.rstrip(b"\n")
    else:  # BOM, CRLF and quotes at once, as Excel on Windows might write it
        data = b"\xef\xbb\xbf" + data.replace(b",Training", b',"Training"').replace(b"\n", b"\r\n")
    path = tmp_path / "spelled.csv"
    path.write_bytes(data)
    reference = read_fer_csv_bytes(tmp_path, small_fer_csv_bytes)
    table = read_fer_csv(path)
    assert table.valid.all()
    np.testing.assert_array_equal(table.parsed.images, reference.parsed.images)
    np.testing.assert_array_equal(table.labels, reference.labels)
    np.testing.assert_array_equal(table.split_index, reference.split_index)


def read_fer_csv_bytes(tmp_path: Path, data: bytes):
    path = tmp_path / "reference.csv"
    path.write_bytes(data)
    return read_fer_csv(path)


def _truncate_mid_row(data: bytes) -> bytes:
    # Cut inside the pixels of the last row: it then has 2 of its 3 columns.
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    return data[: last_start + 500]


def _extra_column(data: bytes) -> bytes:
    rows = lines(data)
    rows[3] = rows[3] + b",extra"
    return b"\n".join(rows)


def _missing_column(data: bytes) -> bytes:
    rows = lines(data)
    rows[5] = rows[5].rsplit(b",", 1)[0]
    return b"\n".join(rows)


STRUCTURAL = {
    "empty file": (lambda d: b"", r"the file is empty \(0 bytes\)"),
    "header only": (lambda d: HEADER, "has the header but no data rows"),
    "header only, no newline": (lambda d: HEADER.strip(), "has the header but no data rows"),
    "missing header": (
        lambda d: d[len(HEADER) :],
        r"the header line is missing: line 1 looks like a data row \('\d,",
    ),
    "wrong header": (
        lambda d: d.replace(b"emotion,", b"label,", 1),
        r"line 1 is the header 'label,pixels,Usage', expected 'emotion,pixels,Usage'",
    ),
    "header with a column missing": (
        lambda d: d.replace(b"emotion,pixels,Usage", b"emotion,pixels", 1),
        "expected 'emotion,pixels,Usage'",
    ),
    "extra column": (
        _extra_column,
        r"1 row with the wrong number of columns:\n  row 3 \(line 4\) has 4 columns, expected 3",
    ),
    "missing column": (_missing_column, r"row 5 \(line 6\) has 2 columns, expected 3"),
    "file cut off mid-row": (
        _truncate_mid_row,
        r"row 28 \(line 29\) has 2 columns.*\nThe file ends in the middle of row 28 \(line 29\)",
    ),
    "binary garbage": (
        lambda d: bytes(range(1, 256)) * 2 + b"\x00" + bytes(range(256)) * 8,
        r"binary data, not a text CSV \(a NUL byte at byte 510, line 3\)",
    ),
    "binary garbage without NUL": (
        lambda d: b"\xff\xfe\x80" * 100,
        r"the header line holds bytes that are not UTF-8 text \(byte 0\)",
    ),
    "non-UTF-8 bytes in a row": (
        lambda d: d.replace(b",PublicTest", b",Public\xffTest", 1),
        r"row 15 \(line 16\) holds bytes that are not UTF-8 text",
    ),
    "xz-compressed": (lzma.compress, r"this is a xz-compressed file, not a CSV; unpack it first"),
    "CR inside the header": (
        lambda d: d.replace(b"pixels", b"pix\rels", 1),
        r"line 1 \(the header\) holds a carriage return \(\\r\) after 'emotion,pix'",
    ),
    "a 200 kB first line": (
        lambda d: b"x" * 200_000 + b"\n" + d,
        r"line 1 is 200,000 characters long \('xxxx",
    ),
    "CR-only line ends, extra column": (
        lambda d: _extra_column(d).replace(b"\n", b"\r"),
        r"row 3 \(line 4\) has 4 columns, expected 3",
    ),
    "extra column after a quoted cell spanning two lines": (
        lambda d: _quoted_newline_in_row(_extra_column(d), 1),
        # Row 1 spans lines 2-3, so row 3 is on line 5.
        r"1 row with the wrong number of columns:\n  row 3 \(line 5\) has 4 columns",
    ),
    "last row with an extra column and no final newline": (
        lambda d: d.rstrip(b"\n") + b",extra",
        r"row 28 \(line 29\) has 4 columns, expected 3 \(emotion,pixels,Usage\); it starts "
        r"'\d,[\d ]+\.\.\.'$",  # and no "cut off while copying" hint: it is not short,
    ),
}


def _quoted_newline_in_row(data: bytes, row: int) -> bytes:
    """Row `row`'s Usage quoted with a line break inside: one row on two lines."""
    rows = lines(data)
    label, pixels, usage = rows[row].split(b",")
    rows[row] = b",".join([label, pixels, b'"' + usage + b'\n"'])
    return b"\n".join(rows)


@pytest.mark.parametrize("case", STRUCTURAL)
def test_structural_problems_are_refused_with_file_row_and_reason(
    tmp_path: Path, small_fer_csv_bytes: bytes, case: str
) -> None:
    make, message = STRUCTURAL[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(make(small_fer_csv_bytes))
    with pytest.raises(DataError, match=message) as error:
        read_fer_csv(path)
    text = str(error.value)
    assert text.startswith(str(path))
    assert len(text) < 1000, "never dump whole rows into a message"


def test_many_bad_rows_are_summarised(tmp_path: Path, small_fer_csv_bytes: bytes) -> None:
    rows = lines(small_fer_csv_bytes)
    rows[1:21] = [r + b",x" for r in rows[1:21]]
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(rows))
    with pytest.raises(DataError, match=r"20 rows with the wrong number of columns") as error:
        read_fer_csv(path)
    assert "... and 15 more" in str(error.value)
    assert len(str(error.value)) < 1200


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Point data.raw in params.yaml"):
        read_fer_csv(tmp_path / "nowhere.csv")


def test_a_folder_as_data_raw_is_called_a_folder(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    folder = tmp_path / "fer2013"
    folder.mkdir()
    (folder / "fer2013.csv").write_bytes(small_fer_csv_bytes)

    with pytest.raises(DataError, match=r"fer2013: this is a folder, not a file; .*fer2013.csv"):
        read_fer_csv(folder)


def test_rows_after_a_quoted_cell_spanning_lines_get_their_true_line(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    path = tmp_path / "multiline.csv"
    path.write_bytes(_quoted_newline_in_row(small_fer_csv_bytes, 2))

    table = read_fer_csv(path)

    assert len(table) == 28
    assert table.row_ref(1) == "row 1 (line 2)"
    assert table.row_ref(2) == "row 2 (line 3)"
    assert table.row_ref(3) == "row 3 (line 5)"
    assert table.row_ref(28) == "row 28 (line 30)"


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    path = write_fer_csv(
        tmp_path / "out.csv", images, [6, 0, 3], ["Training", "PublicTest", "PrivateTest"]
    )
    table = read_fer_csv(path)
    np.testing.assert_array_equal(table.parsed.images, images)
    assert table.labels.tolist() == [6, 0, 3]
    assert table.split_index.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="labels must be 0..6"):
        encode_fer_csv(images, [7, 0, 0], ["Training"] * 3)
