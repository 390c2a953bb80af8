"""The one exception bad input raises, and how rows are named in messages.

Row convention, used in every message and report: data rows are numbered from 1 and the
header is not a row, so row N sits on line N + 1 of the file ("row 17 (line 18)"), unless a
quoted cell earlier in the file spans several lines: then the line is counted (see
`FerTable.row_ref`). The line is what an editor or `sed -n 18p file.csv` shows.
"""

from __future__ import annotations


class DataError(ValueError):
    """The raw CSV cannot be used; the message names the file, the rows and the reason."""


def row_ref(row: int, line: int | None = None) -> str:
    """'row 17 (line 18)' for the 1-based data row `row` (on line `line`, if not row + 1)."""
    return f"row {row:,} (line {row + 1 if line is None else line:,})"


def preview(text: str | bytes | None, limit: int = 24) -> str:
    """A quoted excerpt safe to put in a message: never a whole 9 kB pixel row."""
    if text is None:
        return "(empty)"
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    short = text if len(text) <= limit else text[:limit] + "..."
    return repr(short)
