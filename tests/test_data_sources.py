"""Any labelled faces in: image-folder datasets, FER+ labels, the label set in the manifest,
and reports that are byte-identical when the same data is validated again.

Real rows come from ../shared (FER2013 and FER+'s votes), as the other data tests read them.
"""

from __future__ import annotations

import csv
import io
import lzma
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import LABELS, REPO_ROOT, SPLITS
from pipeline.data.errors import DataError
from pipeline.data.ferplus import FERPLUS_LABELS
from pipeline.data.prepare import prepare_csv, validate_and_prepare
from pipeline.data.shards import label_names, load_split, load_targets, read_manifest
from pipeline.data.validation import OUTPUTS, validate_csv

SHARED = REPO_ROOT.parent / "shared" / "data"
SHARED_CSV = SHARED / "fer2013" / "fer2013.csv.xz"
SHARED_VOTES = SHARED / "ferplus" / "fer2013new.csv"
needs_shared = pytest.mark.skipif(
    not (SHARED_CSV.is_file() and SHARED_VOTES.is_file()), reason="needs ../shared (in CI)"
)
#: Real rows per Usage: the first ones of each, so the subset reads only the start of Private.
PER_USAGE = {"Training": 300, "PublicTest": 40, "PrivateTest": 40}


@pytest.fixture(scope="module")
def real_rows() -> tuple[str, list[str], list[int]]:
    """(header, lines, row indices in fer2013.csv) of the first rows of each Usage."""
    wanted, lines, rows = dict(PER_USAGE), [], []
    with lzma.open(SHARED_CSV, "rt", encoding="utf-8") as f:
        header = next(f)
        for i, line in enumerate(f):
            usage = line.rstrip("\n").rsplit(",", 1)[1]
            if wanted[usage]:
                wanted[usage] -= 1
                lines.append(line)
                rows.append(i)
            if not any(wanted.values()):
                break
    return header, lines, rows


@pytest.fixture
def real_csv(tmp_path: Path, real_rows) -> Path:
    header, lines, _ = real_rows
    path = tmp_path / "fer2013.csv"
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def real_votes(tmp_path: Path, real_rows) -> Path:
    """FER+'s rows for the same faces, in the same order."""
    _, _, rows = real_rows
    text = SHARED_VOTES.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "fer2013new.csv"
    path.write_text(text[0] + "".join(text[1 + r] for r in rows), encoding="utf-8")
    return path


def write_folder(csv_path: Path, root: Path, names: list[str] | None = None) -> Path:
    """The CSV's faces as lossless PNGs in FER2013's Usage folders, one class folder per
    label (FER2013's names unless `names` are given), files named by row."""
    with csv_path.open(encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            label = int(row["emotion"])
            name = (names or LABELS)[label]
            folder = root / row["Usage"] / name
            folder.mkdir(parents=True, exist_ok=True)
            face = np.array(row["pixels"].split(), np.uint8).reshape(48, 48)
            assert cv2.imwrite(str(folder / f"{i:05d}.png"), face)
    return root


@needs_shared
def test_a_folder_of_real_faces_gives_the_shards_of_their_csv(tmp_path, real_csv):
    """The same real faces as a CSV and as a PNG tree: the same faces in every split with
    the same class names; the folder's label set is its folder names, sorted."""
    folder = write_folder(real_csv, tmp_path / "faces")
    _, csv_manifest = validate_and_prepare(real_csv, tmp_path / "r1", tmp_path / "p1")
    summary, manifest = validate_and_prepare(folder, tmp_path / "r2", tmp_path / "p2")
    assert summary["success"] and summary["labels"] == sorted(summary["labels"])
    with real_csv.open(encoding="utf-8") as f:
        present = sorted({LABELS[int(row["emotion"])] for row in csv.DictReader(f)})
    assert manifest["labels"]["names"] == present == list(label_names(tmp_path / "p2"))
    assert csv_manifest["labels"]["names"] == list(LABELS)
    for split in SPLITS:
        csv_images, csv_labels = load_split(tmp_path / "p1", split)
        images, labels = load_split(tmp_path / "p2", split)
        # The folder lists class by class, files in row order: the CSV's rows grouped by
        # class name, each group in file order.
        csv_names = np.array(LABELS)[csv_labels]
        order = np.argsort(csv_names, kind="stable")
        assert np.array_equal(images, csv_images[order])
        assert list(np.array(present)[labels]) == list(csv_names[order])
        assert manifest["splits"][split]["rows"] == csv_manifest["splits"][split]["rows"]


def _folder(root: Path, layout: dict[str, dict[str, int]], size=(64, 80), color=True) -> Path:
    """A tree of small drawn images: {split folder: {class: count}}."""
    rng = np.random.default_rng(0)
    for split, classes in layout.items():
        for name, count in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                shape = (*size, 3) if color else size
                image = rng.integers(0, 256, shape, dtype=np.uint8)
                assert cv2.imwrite(str(folder / f"{i}.jpg"), image)
    return root


def test_without_val_a_seeded_stratified_share_of_train_is_val(tmp_path):
    layout = {"train": {"cat": 20, "dog": 10, "owl": 2}, "test": {"cat": 3, "dog": 3, "owl": 1}}
    root = _folder(tmp_path / "faces", layout)
    data = {"val_fraction": 0.2, "split_seed": 3}
    summary, manifest = validate_and_prepare(root, tmp_path / "r", tmp_path / "p", data=data)
    assert manifest["labels"]["names"] == ["cat", "dog", "owl"]
    assert manifest["splits"]["val"]["classes"] == {"cat": 4, "dog": 2, "owl": 1}
    assert manifest["splits"]["train"]["classes"] == {"cat": 16, "dog": 8, "owl": 1}
    assert summary["val_from_train"] == 7
    images, _ = load_split(tmp_path / "p", "train")
    assert images.shape[1:] == (48, 48)  # colour 64x80 JPEGs became 48x48 grey faces
    _, again = validate_and_prepare(root, tmp_path / "r2", tmp_path / "p2", data=data)
    assert again["splits"]["val"]["files"] == manifest["splits"]["val"]["files"]
    other = {**data, "split_seed": 4}
    _, moved = validate_and_prepare(root, tmp_path / "r3", tmp_path / "p3", data=other)
    assert moved["splits"]["val"]["files"] != manifest["splits"]["val"]["files"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: (r / "train" / "dog" / "0.jpg").unlink() or None, "empty class folder"),
        (lambda r: (r / "train" / "cat" / "notes.txt").write_text("x"), "not an image file"),
        (lambda r: __import__("shutil").rmtree(r / "test"), "split folder missing"),
        (
            lambda r: (
                (r / "test" / "bird").mkdir()
                or cv2.imwrite(str(r / "test" / "bird" / "b.png"), np.zeros((9, 9), np.uint8))
            ),
            "class 'bird' is in test but not in train",
        ),
        (lambda r: (r / "holdout").mkdir(), "not a split folder"),
    ],
)
def test_a_broken_layout_stops_in_one_line_naming_the_path(tmp_path, make, message):
    root = _folder(tmp_path / "faces", {"train": {"cat": 2, "dog": 1}, "test": {"cat": 1}})
    make(root)
    with pytest.raises(DataError, match=message) as error:
        validate_csv(root, tmp_path / "reports")
    assert "\n" not in str(error.value) and str(root) in str(error.value)
    assert not (tmp_path / "reports").exists()  # nothing written, not even half


def test_an_unreadable_image_fails_validation_naming_the_file(tmp_path):
    root = _folder(tmp_path / "faces", {"train": {"cat": 3}, "test": {"cat": 2}})
    (root / "train" / "cat" / "1.jpg").write_bytes(b"not really a jpeg")
    with pytest.raises(DataError, match=r"file train/cat/1\.jpg: it does not decode as an image"):
        validate_and_prepare(root, tmp_path / "r", tmp_path / "p")
    assert not (tmp_path / "p").exists()
    assert (tmp_path / "r" / "data_docs" / "index.html").is_file()  # the GX report shows it


def test_a_class_missing_from_test_is_a_warning_by_default(tmp_path):
    root = _folder(tmp_path / "faces", {"train": {"cat": 3, "dog": 3}, "test": {"cat": 2}})
    summary = validate_csv(root, tmp_path / "r")
    assert summary["missing_classes"]["test"] == ["dog"]
    assert any("cannot exceed 1/2" in w for w in summary["warnings"])
    with pytest.raises(DataError, match="every class has test rows"):
        validate_csv(root, tmp_path / "r2", missing_class="fail")


def _report_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["csv", "folder"])
def test_validating_the_same_data_twice_writes_the_same_bytes(tmp_path, small_fer_csv, kind):
    """dvc.lock hashes every report: a rerun on the same data must not change one byte
    (GX's run times and random ids are fixed or stripped)."""
    raw = small_fer_csv if kind == "csv" else write_folder(small_fer_csv, tmp_path / "faces")
    validate_csv(raw, tmp_path / "a", source_name="raw")
    validate_csv(raw, tmp_path / "b", source_name="raw")
    first, second = _report_bytes(tmp_path / "a"), _report_bytes(tmp_path / "b")
    assert set(first) == set(second) and {o.split("/")[0] for o in first} >= set(OUTPUTS)
    assert [name for name in first if first[name] != second[name]] == []


def _majority(votes_row: list[int]) -> int | None:
    """FER+'s rule, written out plainly: single votes dropped, then more than half."""
    kept = [v if v > 1 else 0 for v in votes_row]
    best = max(range(10), key=lambda i: kept[i])
    return best if kept[best] * 2 > sum(kept) and best < 8 else None


@needs_shared
@pytest.mark.parametrize("mode", ["majority", "distribution"])
def test_ferplus_relabels_real_faces(tmp_path, real_csv, real_votes, mode):
    data = {"ferplus": str(real_votes), "ferplus_mode": mode}
    summary, manifest = validate_and_prepare(real_csv, tmp_path / "r", tmp_path / "p", data=data)
    assert manifest["labels"]["names"] == list(FERPLUS_LABELS)
    assert summary["ferplus"]["mode"] == mode and manifest["source"]["ferplus"]["mode"] == mode
    rows = list(csv.reader(io.StringIO(real_votes.read_text())))[1:]
    usage_rows = {u: [r for r in rows if r[0] == u] for u in PER_USAGE}
    for split, usage in zip(SPLITS, PER_USAGE, strict=True):
        expected = [_majority([int(v) for v in r[2:]]) if r[1] else None for r in usage_rows[usage]]
        images, labels = load_split(tmp_path / "p", split)
        assert labels.tolist() == [e for e in expected if e is not None]
        dropped = summary["ferplus"]["dropped"][split]
        assert sum(dropped.values()) == expected.count(None) == PER_USAGE[usage] - len(labels)
        targets = load_targets(tmp_path / "p", split)
        if mode == "majority":
            assert targets is None
        else:
            assert targets.shape == (len(labels), 8)
            assert np.allclose(targets.sum(axis=1), 1.0)
            assert (targets.argmax(axis=1) == labels).all()  # scored against the majority
    # The prepare stage alone, after validation, writes the same shards.
    prepare_csv(real_csv, tmp_path / "r", tmp_path / "p2", data=data)
    assert read_manifest(tmp_path / "p2") == manifest


@needs_shared
def test_a_votes_file_that_does_not_match_the_csv_stops_in_one_line(tmp_path, real_csv, real_votes):
    lines = real_votes.read_text().splitlines(keepends=True)
    short = tmp_path / "short.csv"
    short.write_text("".join(lines[:-1]))
    with pytest.raises(DataError, match=r"short\.csv: 379 rows but .* has 380"):
        validate_csv(real_csv, tmp_path / "r", data={"ferplus": str(short)})
    swapped = tmp_path / "swapped.csv"
    lines[5] = lines[5].replace("Training", "PublicTest", 1)
    swapped.write_text("".join(lines))
    with pytest.raises(DataError, match=r"swapped\.csv: row 5 has Usage 'PublicTest'"):
        validate_csv(real_csv, tmp_path / "r", data={"ferplus": str(swapped)})
    assert not (tmp_path / "r").exists()
