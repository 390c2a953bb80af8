"""DVC stage `validate`: run the Great Expectations suite over `data.raw`.

Writes the reports in `paths.validation` (summary.json, summary.html, result.json,
data_docs/) and fails, naming the file, rows and reasons, if the CSV breaks any rule.
"""

from __future__ import annotations

import sys
import time

from pipeline.config import load_params, repo_path
from pipeline.data.errors import DataError
from pipeline.data.validation import validate_csv


def main() -> int:
    params = load_params()
    raw = params["data"]["raw"]
    report_dir = repo_path(params["paths"]["validation"])
    start = time.perf_counter()
    print(f"validate: checking {raw} ...", flush=True)
    try:
        summary = validate_csv(
            repo_path(raw),
            report_dir,
            duplicates=params["validate"]["duplicates"],
            source_name=raw,
            missing_class=params["validate"]["missing_class"],
        )
    except (DataError, FileNotFoundError) as e:
        print(f"validate: error: {e}", file=sys.stderr)
        return 1
    rows, dups = summary["rows"], summary["duplicates"]
    for warning in summary["warnings"]:
        print(f"validate: warning: {warning}")
    print(
        f"validate: passed: train {rows['train']:,}, val {rows['val']:,}, test {rows['test']:,} "
        f"rows; {dups['groups']:,} images appear more than once (a warning); "
        f"report in {report_dir} ({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
