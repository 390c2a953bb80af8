"""DVC stage `validate`: run the Great Expectations suite over `data.raw` (a FER2013 CSV,
with its FER+ votes if `data.ferplus`, or an image folder).

Writes the reports in `paths.validation` (summary.json, summary.html, result.json,
data_docs/) and fails, naming the file, rows and reasons, if the CSV breaks any rule.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import repo_path
from pipeline.data.validation import validate_csv
from pipeline.stage import run_stage


def validate(params: dict[str, Any]) -> str:
    raw, report_dir = params["data"]["raw"], params["paths"]["validation"]
    print(f"validate: checking {raw} ...", flush=True)
    summary = validate_csv(
        repo_path(raw),
        repo_path(report_dir),
        duplicates=params["validate"]["duplicates"],
        source_name=raw,
        missing_class=params["validate"]["missing_class"],
        data=params["data"],
    )
    rows, dups = summary["rows"], summary["duplicates"]
    for warning in summary["warnings"]:
        print(f"validate: warning: {warning}")
    repeated = (
        f"; {dups['groups']:,} images appear more than once (a warning)" if dups["groups"] else ""
    )
    kept, names = "", summary["labels"]
    if "ferplus" in summary:
        names = summary["ferplus"]["labels"]
        counts = {s: sum(c.values()) for s, c in summary["ferplus"]["classes"].items()}
        kept = "; FER+ labels kept for " + ", ".join(f"{s} {n:,}" for s, n in counts.items())
    return (
        f"passed: train {rows['train']:,}, val {rows['val']:,}, test {rows['test']:,} rows"
        f"{repeated}{kept}; {len(names)} classes; report in {report_dir}"
    )


if __name__ == "__main__":
    run_stage("validate", validate)
