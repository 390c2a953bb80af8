"""The vectorised pixel parser against a plain Python reference, on clean and broken cells."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline.data.pixels import describe_pixel_problem, format_pixel_rows, parse_pixel_column

P = 48 * 48


def reference(cell: str | None) -> tuple[int, int, np.ndarray | None]:
    """(values, invalid values, image or None), the slow obvious way."""
    if not cell:
        return 0, 0, None
    fields = cell.split(" ")
    bad = sum(not (f.isascii() and f.isdigit() and len(f) <= 3 and int(f) <= 255) for f in fields)
    image = None
    if len(fields) == P and bad == 0:
        image = np.array([int(f) for f in fields], np.uint8).reshape(48, 48)
    return len(fields), bad, image


def random_cells(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    # Every width of number (1, 2 and 3 digits) and the extremes 0 and 255.
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    images[:, 0, :4] = [0, 9, 10, 255]
    return images, [" ".join(str(v) for v in img.ravel()) for img in images]


def check_against_reference(cells: list[str | None], **kwargs) -> None:
    parsed = parse_pixel_column(cells, **kwargs)
    for i, cell in enumerate(cells):
        values, bad, image = reference(cell)
        assert parsed.values[i] == values, f"cell {i}"
        assert parsed.invalid[i] == bad, f"cell {i}"
        assert parsed.valid[i] == (image is not None), f"cell {i}"
        if image is not None:
            np.testing.assert_array_equal(parsed.images[i], image)
        else:
            assert not parsed.images[i].any()


def test_clean_cells_parse_exactly() -> None:
    images, cells = random_cells(np.random.default_rng(0), 20)
    parsed = parse_pixel_column(cells)
    np.testing.assert_array_equal(parsed.images, images)
    assert parsed.valid.all()
    assert (parsed.values == P).all() and (parsed.invalid == 0).all()


def _replace(cell: str, index: int, value: str) -> str:
    fields = cell.split(" ")
    fields[index] = value
    return " ".join(fields)


BROKEN = {
    "one value short": lambda c: c.rsplit(" ", 1)[0],
    "one value too many": lambda c: c + " 7",
    "above 255": lambda c: _replace(c, 5, "256"),
    "far above 255": lambda c: _replace(c, 5, "999"),
    "four digits": lambda c: _replace(c, 5, "0012"),
    "negative": lambda c: _replace(c, 0, "-3"),
    "not a number": lambda c: _replace(c, 9, "abc"),
    "decimal": lambda c: _replace(c, P - 1, "1.5"),
    "doubled space": lambda c: c.replace(" ", "  ", 1),
    "leading space": lambda c: " " + c,
    "trailing space": lambda c: c + " ",
    "tab separated": lambda c: c.replace(" ", "\t", 3),
    "a single value": lambda c: "7",
    "comma separated": lambda c: c.replace(" ", ",", 2),
    "empty": lambda c: "",
    "only spaces": lambda c: "   ",
    "non-ASCII digit": lambda c: _replace(c, 3, "\u0663"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_cell_is_counted_and_neighbours_still_parse(name: str) -> None:
    # One broken cell among clean ones sends the block down the general path: the clean
    # rows around it must come out exactly as on the fast path.
    _, cells = random_cells(np.random.default_rng(1), 5)
    cells[2] = BROKEN[name](cells[2])
    check_against_reference(cells)
    parsed = parse_pixel_column(cells)
    assert not parsed.valid[2]
    assert parsed.valid[[0, 1, 3, 4]].all()


def test_null_cells_count_as_empty() -> None:
    _, cells = random_cells(np.random.default_rng(2), 3)
    cells[1] = None
    parsed = parse_pixel_column(cells)
    assert parsed.values.tolist() == [P, 0, P]
    assert parsed.valid.tolist() == [True, False, True]


def test_many_chunks_and_sliced_arrays_match_one_array() -> None:
    rng = np.random.default_rng(3)
    images, cells = random_cells(rng, 12)
    cells[7] = BROKEN["above 255"](cells[7])
    whole = pa.array(cells, type=pa.string())
    # Slices keep their parent's buffers and start at an offset into them.
    chunked = pa.chunked_array([whole.slice(0, 5), whole.slice(5, 4), whole.slice(9)])
    for threads in (1, 2):
        parsed = parse_pixel_column(chunked, threads=threads)
        assert parsed.valid.tolist() == [i != 7 for i in range(12)]
        np.testing.assert_array_equal(parsed.images[parsed.valid], images[parsed.valid])
    large = parse_pixel_column(whole.cast(pa.large_string()))
    np.testing.assert_array_equal(large.images, parse_pixel_column(whole).images)


def test_format_round_trips() -> None:
    images, cells = random_cells(np.random.default_rng(4), 4)
    assert [row.decode() for row in format_pixel_rows(images)] == cells
    assert [row.decode() for row in format_pixel_rows(images.reshape(4, -1))] == cells
    with pytest.raises(ValueError, match="2304 pixels"):
        format_pixel_rows(np.zeros((1, 10), np.uint8))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("one value short", "pixels has 2,303 values, expected 2,304"),
        ("one value too many", "pixels has 2,305 values"),
        ("above 255", "pixel value 6 is '256', above 255"),
        ("negative", "pixel value 1 is '-3', negative"),
        ("not a number", "pixel value 10 is 'abc', not an integer"),
        ("doubled space", "pixel value 2 is empty"),
        ("empty", "pixels is empty"),
        ("a single value", "pixels has 1 value, expected 2,304"),
    ],
)
def test_describe_names_the_value_and_the_reason(name: str, expected: str) -> None:
    _, cells = random_cells(np.random.default_rng(5), 1)
    assert expected in describe_pixel_problem(BROKEN[name](cells[0]))


def test_describe_never_dumps_a_whole_cell() -> None:
    _, cells = random_cells(np.random.default_rng(6), 1)
    message = describe_pixel_problem(_replace(cells[0], 0, "x" * 500))
    assert len(message) < 120
    assert describe_pixel_problem(cells[0]) == ""
