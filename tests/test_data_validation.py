"""The Great Expectations suite and the prepare step on good and bad CSVs.

Every bad input must fail with the file, the rows and the reason, and leave any earlier
shards exactly as they were.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data.errors import DataError
from pipeline.data.fer_csv import read_fer_csv
from pipeline.data.prepare import prepare_csv, validate_and_prepare
from pipeline.data.shards import SHARD_FILES, load_split, read_manifest
from pipeline.data.validation import OUTPUTS, validate_csv


def edit_row(data: bytes, row: int, column: int, value: bytes) -> bytes:
    """Replace one cell of data row `row` (1-based, header is row 0)."""
    lines = data.split(b"\n")
    cells = lines[row].split(b",")
    cells[column] = value
    lines[row] = b",".join(cells)
    return b"\n".join(lines)


def edit_pixel(data: bytes, row: int, index: int, value: bytes) -> bytes:
    pixels = data.split(b"\n")[row].split(b",")[1].split(b" ")
    pixels[index] = value
    return edit_row(data, row, 1, b" ".join(pixels))


def drop_usage(data: bytes, usage: bytes) -> bytes:
    return b"\n".join(line for line in data.split(b"\n") if not line.endswith(b"," + usage))


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# case -> (edit of the valid CSV, the expectation that fails, text naming row and reason)
BAD_VALUES = {
    "pixel row one short": (
        lambda d: edit_row(d, 3, 1, d.split(b"\n")[3].split(b",")[1].rsplit(b" ", 1)[0]),
        "pixels holds exactly 2,304 values (48 x 48)",
        r"row 3 \(line 4\): pixels has 2,303 values, expected 2,304",
    ),
    "pixel row one long": (
        lambda d: edit_row(d, 4, 1, d.split(b"\n")[4].split(b",")[1] + b" 17"),
        "pixels holds exactly 2,304 values (48 x 48)",
        r"row 4 \(line 5\): pixels has 2,305 values",
    ),
    "pixel above 255": (
        lambda d: edit_pixel(d, 6, 100, b"256"),
        "every pixel value is an integer 0-255, separated by single spaces",
        r"row 6 \(line 7\): pixel value 101 is '256', above 255",
    ),
    "negative pixel": (
        lambda d: edit_pixel(d, 2, 0, b"-1"),
        "every pixel value is an integer 0-255, separated by single spaces",
        r"row 2 \(line 3\): pixel value 1 is '-1', negative",
    ),
    "pixel not a number": (
        lambda d: edit_pixel(d, 9, 2303, b"NaN"),
        "every pixel value is an integer 0-255, separated by single spaces",
        r"row 9 \(line 10\): pixel value 2,304 is 'NaN', not an integer",
    ),
    "empty pixels": (
        lambda d: edit_row(d, 11, 1, b""),
        "pixels holds exactly 2,304 values (48 x 48)",
        r"row 11 \(line 12\): pixels is empty",
    ),
    "label 7": (
        lambda d: edit_row(d, 5, 0, b"7"),
        "emotion is an integer 0-6",
        r"row 5 \(line 6\): emotion is '7', expected an integer 0-6",
    ),
    "label -1": (
        lambda d: edit_row(d, 5, 0, b"-1"),
        "emotion is an integer 0-6",
        r"row 5 \(line 6\): emotion is '-1'",
    ),
    "label not a number": (
        lambda d: edit_row(d, 8, 0, b"happy"),
        "emotion is an integer 0-6",
        r"row 8 \(line 9\): emotion is 'happy'",
    ),
    "label empty": (
        lambda d: edit_row(d, 8, 0, b""),
        "emotion is not empty",
        r"row 8 \(line 9\): emotion is empty",
    ),
    "unknown Usage": (
        lambda d: edit_row(d, 20, 2, b"Validation"),
        "Usage is a known split",
        r"row 20 \(line 21\): Usage is 'Validation', expected one of Training, PublicTest, "
        "PrivateTest",
    ),
    "Usage in the wrong case": (
        lambda d: edit_row(d, 1, 2, b"training"),
        "Usage is a known split",
        r"Usage is 'training', .*\(names are case-sensitive\)",
    ),
    "empty Usage": (
        lambda d: edit_row(d, 27, 2, b""),
        "Usage is not empty",
        r"row 27 \(line 28\): Usage is empty",
    ),
    "blank line": (
        lambda d: d.replace(b"\n", b"\n\n", 2).replace(b"\n\n", b"\n", 1),
        "emotion is not empty",
        r"row 2 \(line 3\): the line is blank; remove it",
    ),
    "a split with no rows": (
        lambda d: drop_usage(d, b"PublicTest"),
        "every split has rows",
        "no rows with Usage PublicTest",
    ),
    "file cut off in the last cell": (
        lambda d: d.rstrip(b"\n")[:-4],
        "Usage is a known split",
        r"row 28 \(line 29\): Usage is 'Private',.*\n.*the file ends in the middle of row 28",
    ),
}


def test_rows_after_a_quoted_cell_spanning_two_lines_are_named_by_their_true_line(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    data = edit_row(small_fer_csv_bytes, 5, 0, b"9")
    path = tmp_path / "multiline.csv"
    path.write_bytes(data.replace(b",Training\n", b',"Train\ning"\n', 1))  # row 1: lines 2-3

    with pytest.raises(DataError) as error:
        validate_csv(path, tmp_path / "reports")

    assert "row 1 (line 2): Usage is 'Train\\ning'" in str(error.value)
    assert "row 5 (line 7): emotion is '9'" in str(error.value)


def test_too_many_values_in_the_last_row_is_no_sign_of_a_cut(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    """Only a row that is short where the file ends gets the "cut off while copying" hint."""
    data = small_fer_csv_bytes.rstrip(b"\n")
    last = data.rsplit(b"\n", 1)[1]
    label, pixels, usage = last.split(b",")
    path = tmp_path / "long_last_row.csv"
    path.write_bytes(data[: -len(last)] + b",".join([label, pixels + b" 17", usage]))

    with pytest.raises(DataError, match=r"row 28 \(line 29\): pixels has 2,305 values") as e:
        validate_csv(path, tmp_path / "reports")
    assert "cut off" not in str(e.value) and "ends in the middle" not in str(e.value)


def without_test_rows_of(data: bytes) -> tuple[bytes, str]:
    """The CSV with the test split's only face of one class relabelled; returns that class."""
    from pipeline.config import LABELS

    lines = data.split(b"\n")
    first_test = next(i for i, line in enumerate(lines) if line.endswith(b",PrivateTest"))
    label = int(lines[first_test].split(b",")[0])
    lines[first_test] = b"%d" % ((label + 1) % 7) + lines[first_test][1:]
    return b"\n".join(lines), LABELS[label]


def test_a_class_missing_from_the_test_split_warns_and_fails_on_request(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    data, missing = without_test_rows_of(small_fer_csv_bytes)
    path = tmp_path / "no_class.csv"
    path.write_bytes(data)

    summary = validate_csv(path, tmp_path / "warn")

    assert summary["success"]
    assert summary["missing_classes"] == {"train": [], "val": [], "test": [missing]}
    (warning,) = summary["warnings"]
    assert warning.startswith(f"split test (PrivateTest) has no rows of class {missing}: ")
    assert "macro F1 cannot exceed 6/7" in warning
    assert warning in (tmp_path / "warn" / "summary.html").read_text()
    with pytest.raises(
        DataError, match=f"split test \\(PrivateTest\\) has no rows of class {missing}"
    ):
        validate_csv(path, tmp_path / "fail", missing_class="fail")
    with pytest.raises(ValueError, match="validate.missing_class must be one of"):
        validate_csv(path, tmp_path / "x", missing_class="ignore")


def test_a_class_missing_from_train_only_warns_even_with_fail(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    from pipeline.config import LABELS

    lines = small_fer_csv_bytes.split(b"\n")
    train = [i for i, line in enumerate(lines) if line.endswith(b",Training")]
    gone = int(lines[train[0]].split(b",")[0])
    for i in train:
        if int(lines[i].split(b",")[0]) == gone:
            lines[i] = b"%d" % ((gone + 1) % 7) + lines[i][1:]
    path = tmp_path / "no_class.csv"
    path.write_bytes(b"\n".join(lines))

    summary = validate_csv(path, tmp_path / "reports", missing_class="fail")

    assert summary["success"]
    assert summary["missing_classes"]["train"] == [LABELS[gone]]
    assert "the model cannot learn it" in summary["warnings"][0]


@pytest.fixture(scope="session")
def good_run(tmp_path_factory: pytest.TempPathFactory, small_fer_csv_bytes: bytes) -> Path:
    """Reports and shards of one good run (read-only: `earlier_shards` hands out copies)."""
    root = tmp_path_factory.mktemp("good_run")
    (root / "fer2013.csv").write_bytes(small_fer_csv_bytes)
    validate_csv(root / "fer2013.csv", root / "reports")
    prepare_csv(root / "fer2013.csv", root / "reports", root / "prepared")
    return root


@pytest.fixture
def earlier_shards(tmp_path: Path, good_run: Path) -> tuple[Path, Path, dict[str, str]]:
    """A report folder and prepared shards from a good run, and the shards' digests."""
    reports, prepared = tmp_path / "reports", tmp_path / "prepared"
    shutil.copytree(good_run / "reports", reports)
    shutil.copytree(good_run / "prepared", prepared)
    return reports, prepared, folder_digest(prepared)


@pytest.mark.parametrize("case", BAD_VALUES)
def test_bad_values_fail_validation_and_leave_shards_intact(
    tmp_path: Path, small_fer_csv_bytes: bytes, earlier_shards, case: str
) -> None:
    reports, prepared, digest = earlier_shards
    edit, check, where = BAD_VALUES[case]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(edit(small_fer_csv_bytes))

    with pytest.raises(DataError, match=where) as error:
        validate_csv(bad, reports)
    message = str(error.value)
    assert message.startswith(f"{bad}: failed ")
    assert f"- expected: {check}" in message
    assert len(message) < 1500, "never dump whole rows into a message"

    summary = json.loads((reports / "summary.json").read_text())
    assert summary["success"] is False
    checks = [p["check"] for p in summary["problems"]]
    # A blank line empties all three cells; every other case breaks exactly one rule.
    assert checks == [check] or (case == "blank line" and check in checks and len(checks) == 3)

    with pytest.raises(DataError, match="failed validation"):
        prepare_csv(bad, reports, prepared)
    assert folder_digest(prepared) == digest


def test_good_file_passes_and_writes_every_report(small_fer_csv: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    summary = validate_csv(small_fer_csv, reports, source_name="data/fer2013.csv")
    assert summary["success"] and summary["problems"] == []
    assert summary["rows"] == {"total": 28, "train": 14, "val": 7, "test": 7}
    assert all(n == 1 for n in summary["classes"]["val"].values())
    assert summary["source"]["file"] == "data/fer2013.csv"
    assert summary["source"]["sha256"] == hashlib.sha256(small_fer_csv.read_bytes()).hexdigest()
    assert sorted(p.name for p in reports.iterdir()) == sorted(OUTPUTS)
    assert (reports / "data_docs" / "index.html").is_file()
    result = json.loads((reports / "result.json").read_text())
    assert result["success"] is True and len(result["results"]) == 9
    html = (reports / "summary.html").read_text()
    assert "Passed every check" in html
    assert "https://" not in html, "the summary page must work offline"

    # The sample faces: row c holds the first faces of class c in file order, blank after.
    (encoded,) = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    grid = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_UNCHANGED)
    assert grid.shape == (7 * 48, 10 * 48) and grid.dtype == np.uint8
    rows = [line.split(",") for line in small_fer_csv.read_text().splitlines()[1:]]
    for c in range(7):
        faces = [np.array(p.split(), np.uint8).reshape(48, 48) for e, p, _ in rows if int(e) == c]
        strip = grid[48 * c : 48 * (c + 1)]
        for j, face in enumerate(faces):
            np.testing.assert_array_equal(strip[:, 48 * j : 48 * (j + 1)], face)
        assert (strip[:, 48 * len(faces) :] == 255).all()


def test_summary_is_deterministic(small_fer_csv: Path, tmp_path: Path) -> None:
    # summary.json is a DVC metric and a dependency of prepare: reruns must not change it.
    validate_csv(small_fer_csv, tmp_path / "a")
    validate_csv(small_fer_csv, tmp_path / "b")
    assert (tmp_path / "a" / "summary.json").read_bytes() == (
        tmp_path / "b" / "summary.json"
    ).read_bytes()


def test_duplicates_warn_by_default_and_fail_on_request(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    lines = small_fer_csv_bytes.split(b"\n")
    # Row 20 (PublicTest) gets the image of row 2 (Training): a leak across splits.
    lines[20] = b",".join([lines[20].split(b",")[0], lines[2].split(b",")[1], b"PublicTest"])
    path = tmp_path / "dups.csv"
    path.write_bytes(b"\n".join(lines))

    summary = validate_csv(path, tmp_path / "warn")
    assert summary["success"]
    assert summary["expectations"]["warnings"] == 1
    assert summary["duplicates"] == {
        "groups": 1,
        "repeated_rows": 1,
        "groups_across_splits": 1,
        "examples": [[2, 20]],
    }
    with pytest.raises(DataError, match=r"same image in row 2 \(line 3\), row 20 \(line 21\)"):
        validate_csv(path, tmp_path / "fail", duplicates="fail")
    with pytest.raises(ValueError, match="validate.duplicates must be one of"):
        validate_csv(path, tmp_path / "x", duplicates="ignore")


def test_prepare_writes_shards_and_manifest(earlier_shards, small_fer_csv: Path) -> None:
    _, prepared, _ = earlier_shards
    table = read_fer_csv(small_fer_csv)
    manifest = read_manifest(prepared)
    assert manifest["source"]["sha256"] == table.sha256
    assert manifest["source"]["rows"] == 28
    for index, split in enumerate(("train", "val", "test")):
        images, labels = load_split(prepared, split)
        rows = table.split_index == index
        np.testing.assert_array_equal(images, table.parsed.images[rows])
        np.testing.assert_array_equal(labels, table.labels[rows])
        entry = manifest["splits"][split]
        assert entry["rows"] == len(labels)
        assert sum(entry["classes"].values()) == len(labels)
        for name in SHARD_FILES:
            data = (prepared / split / name).read_bytes()
            assert entry["files"][name] == {
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }


def test_prepare_refuses_a_file_validated_under_another_hash(
    earlier_shards, tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    reports, prepared, digest = earlier_shards
    other = tmp_path / "other.csv"
    other.write_bytes(small_fer_csv_bytes.replace(b"\n0,", b"\n1,", 1))
    with pytest.raises(DataError, match="describes another file .* run `dvc repro validate`"):
        prepare_csv(other, reports, prepared)
    assert folder_digest(prepared) == digest


def test_prepare_needs_a_validation_summary(small_fer_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run `dvc repro validate` first"):
        prepare_csv(small_fer_csv, tmp_path / "no_reports", tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_shards_refuse_invalid_rows_even_if_a_summary_says_otherwise(
    tmp_path: Path, small_fer_csv_bytes: bytes
) -> None:
    # Belt and braces: prepare never converts a row it cannot read, whatever the report says.
    bad = tmp_path / "bad.csv"
    bad.write_bytes(edit_pixel(small_fer_csv_bytes, 3, 0, b"300"))
    message = r"1 row\(s\) not valid FER2013 rows, the first is row 3 \(line 4\)"
    with pytest.raises(DataError, match=message):
        read_fer_csv(bad).split_arrays()


def test_validate_and_prepare_in_one_process(good_run: Path, tmp_path: Path) -> None:
    summary, manifest = validate_and_prepare(
        good_run / "fer2013.csv", tmp_path / "reports", tmp_path / "prepared"
    )
    assert summary["success"]
    assert folder_digest(tmp_path / "prepared") == folder_digest(good_run / "prepared")
    assert manifest == read_manifest(good_run / "prepared")


@pytest.mark.parametrize("case", ["pixel above 255", "a split with no rows"])
def test_validate_and_prepare_keeps_earlier_shards_on_failure(
    tmp_path: Path, small_fer_csv_bytes: bytes, earlier_shards, case: str
) -> None:
    reports, prepared, digest = earlier_shards
    edit, _, where = BAD_VALUES[case]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(edit(small_fer_csv_bytes))
    with pytest.raises(DataError, match=where):
        validate_and_prepare(bad, reports, prepared)
    assert folder_digest(prepared) == digest
    assert not [p for p in prepared.parent.iterdir() if p.name.startswith(".prepared")]
