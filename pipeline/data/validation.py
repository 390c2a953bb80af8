"""Validate a FER2013 table or a folder dataset with Great Expectations; write the reports.

Pixel cells are 9 kB strings: asking GX to regex-match 36,000 of them would take longer
than everything else here together. So the reader derives, per row and vectorised, how many
values the cell holds and how many are not integers 0-255 (`pipeline.data.pixels`), and the
suite puts its expectations on those columns next to the raw `emotion` and `Usage` cells.

A folder dataset (`pipeline.data.image_folder`) gets its own suite over one row per image
file: it decodes, its split and class are known, its image is not a duplicate; class counts
and missing classes per split are summarised as for the CSV.

Reports written into the report folder (`paths.validation`):

- summary.json   rows and classes per split, duplicates, expectation counts, problems
                 (a DVC metric: small, deterministic, diffable)
- summary.html   the same as one self-contained page, with sample faces per class
- result.json    the GX validation result
- data_docs/     GX Data Docs (offline they render unstyled: they load CSS from a CDN)

Every report is byte-identical when the same data is validated again (DVC hashes them, and
`dvc repro` must leave dvc.lock alone): GX's run times, run ids and random element ids are
replaced by fixed values (`deterministic_result`, `normalise_data_docs`).

Great Expectations takes about 2 s to import: `start_loading_gx()` begins that in a thread
so that it overlaps reading and parsing the CSV.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import NUM_CLASSES, PIXELS_PER_IMAGE, SPLITS
from pipeline.data import profile, report_html
from pipeline.data.errors import DataError, preview
from pipeline.data.fer_csv import USAGES, FerTable
from pipeline.data.ferplus import FerPlusLabels
from pipeline.data.image_folder import FolderTable
from pipeline.data.pixels import describe_pixel_problem
from pipeline.io import atomic_dir, write_json, write_text

# GX would otherwise phone home on import; this must be set before the import.
os.environ["GX_ANALYTICS_ENABLED"] = "false"

RESULT_JSON = "result.json"
SUMMARY_JSON = profile.SUMMARY_JSON
SUMMARY_HTML = "summary.html"
DATA_DOCS = "data_docs"
#: Every output the validate stage writes, relative to the report folder.
OUTPUTS: tuple[str, ...] = (RESULT_JSON, SUMMARY_JSON, SUMMARY_HTML, DATA_DOCS)

SUITE_NAME = "fer2013_csv"
FOLDER_SUITE_NAME = "image_folder"
EXAMPLE_ROWS = 5
DUPLICATE_POLICIES = ("warn", "fail")
#: `validate.missing_class`: a split without any row of a class is always reported;
#: `fail` makes it a failure for the test split, whose macro F1 it caps at 6/7.
MISSING_CLASS_POLICIES = ("warn", "fail")

_SWITCH_INTERVAL_WHILE_LOADING = 2e-4  # seconds
_gx_lock = threading.Lock()
_gx_future: Future | None = None


def start_loading_gx() -> Future:
    """Import Great Expectations in a background thread (idempotent); returns its Future."""
    global _gx_future
    with _gx_lock:
        if _gx_future is None:
            _gx_future = Future()

            def load(future: Future = _gx_future) -> None:
                # The import is pure Python and holds the GIL; the CSV parser meanwhile
                # needs it briefly between its ~2,500 numpy calls, and with the default
                # 5 ms switch interval each of those can wait 5 ms.
                previous = sys.getswitchinterval()
                sys.setswitchinterval(min(previous, _SWITCH_INTERVAL_WHILE_LOADING))
                try:
                    import great_expectations as gx
                    import great_expectations.expectations  # noqa: F401

                    future.set_result(gx)
                except BaseException as e:  # handed to the waiting thread
                    future.set_exception(e)
                finally:
                    sys.setswitchinterval(previous)

            threading.Thread(target=load, name="load-great-expectations", daemon=True).start()
        return _gx_future


def _gx() -> ModuleType:
    return start_loading_gx().result()


def validation_frame(table: FerTable, fingerprints: np.ndarray) -> pd.DataFrame:
    """One row per CSV row: its number, raw `emotion` and `Usage`, and the pixel checks."""
    usable = table.parsed.valid
    return pd.DataFrame(
        {
            "row": np.arange(1, len(table) + 1),
            "emotion": table.emotion.to_pandas(),
            "Usage": table.usage.to_pandas(),
            "pixel_values": table.parsed.values,
            "pixel_invalid_values": table.parsed.invalid,
            # Null where the pixels are unusable: the uniqueness check skips those rows.
            "image_fingerprint": pd.Series(fingerprints, dtype="Int64").mask(~usable),
        }
    )


def folder_frame(table: FolderTable, fingerprints: np.ndarray) -> pd.DataFrame:
    """One row per image file: its number, path, split, class and whether it decodes."""
    return pd.DataFrame(
        {
            "row": np.arange(1, len(table) + 1),
            "file": list(table.files),
            "split": [SPLITS[i] for i in table.split_index],
            "class": [table.names[i] for i in table.labels],
            "readable": table.usable.astype(np.int64),
            "image_fingerprint": pd.Series(fingerprints, dtype="Int64").mask(~table.usable),
        }
    )


def build_folder_suite(gx: ModuleType, names: list[str]) -> Any:
    """The folder-dataset suite: files decode, splits and classes known, no duplicates."""
    gxe = gx.expectations
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the folder has images"),
        gxe.ExpectColumnValuesToBeBetween(
            column="readable",
            min_value=1,
            max_value=1,
            description="every image file decodes (PNG, JPEG, BMP or WebP)",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="class", value_set=names, description="every class is one of train's"
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="split", value_set=list(SPLITS), description="every split has images"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="image_fingerprint",
            severity="warning",
            description="no image appears twice (a warning)",
        ),
    ]
    suite = gx.ExpectationSuite(name=FOLDER_SUITE_NAME)
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite


def build_suite(gx: ModuleType) -> Any:
    """The FER2013 suite: one expectation per rule in the issue, duplicates as a warning."""
    gxe = gx.expectations
    labels = [str(i) for i in range(NUM_CLASSES)]
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the file has data rows"),
        gxe.ExpectColumnValuesToNotBeNull(column="emotion", description="emotion is not empty"),
        gxe.ExpectColumnValuesToBeInSet(
            column="emotion", value_set=labels, description="emotion is an integer 0-6"
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="Usage", description="Usage is not empty"),
        gxe.ExpectColumnValuesToBeInSet(
            column="Usage", value_set=list(USAGES), description="Usage is a known split"
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="Usage", value_set=list(USAGES), description="every split has rows"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="pixel_values",
            min_value=PIXELS_PER_IMAGE,
            max_value=PIXELS_PER_IMAGE,
            description=f"pixels holds exactly {PIXELS_PER_IMAGE:,} values (48 x 48)",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="pixel_invalid_values",
            min_value=0,
            max_value=0,
            description="every pixel value is an integer 0-255, separated by single spaces",
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="image_fingerprint",
            severity="warning",
            description="no image appears twice (a warning: FER2013 itself has duplicates)",
        ),
    ]
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite


def run_suite(frame: pd.DataFrame, docs_dir: Path, names: list[str] | None = None) -> Any:
    """Run the suite on `frame` in an ephemeral GX context; Data Docs go to `docs_dir`.

    `names`: a folder dataset's class names (its suite); None for a FER2013 CSV."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # In-memory stores and no default docs site: only the report folder gets written.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("fer2013")
        .add_dataframe_asset("csv_rows")
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(build_suite(gx) if names is None else build_folder_suite(gx, names))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}_rows", data=batch, suite=suite)
    )
    context.add_data_docs_site(
        site_name="report",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="validate",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["report"])],
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["row"]},
        )
    )
    from great_expectations.core.run_identifier import RunIdentifier

    run_id = RunIdentifier(run_name=DOCS_RUN_NAME, run_time=DOCS_RUN_TIME)
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    normalise_data_docs(docs_dir)
    return next(iter(result.run_results.values()))


#: What GX stamps on each run: the validation result's keys whose values are run times or
#: random ids, nulled in result.json. The Data Docs run is given a fixed run id instead.
_RUN_KEYS = frozenset(
    {"id", "run_time", "ge_load_time", "checkpoint_id", "validation_id", "validation_time"}
)
#: Data Docs run name and time: fixed, so the page paths and their text are too.
DOCS_RUN_NAME = "validate"
DOCS_RUN_TIME = "2013-01-01T00:00:00+00:00"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The logo URL carries the render time (`?d=20261205T061943.443213Z`); batch markers the
# load time in the same form.
_STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")


def deterministic_result(value: Any) -> Any:
    """A GX result dict with run times and random ids nulled (see `_RUN_KEYS`)."""
    if isinstance(value, dict):
        return {k: None if k in _RUN_KEYS else deterministic_result(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deterministic_result(v) for v in value]
    return value


def normalise_data_docs(docs_dir: Path) -> None:
    """Make the Data Docs pages the same on every run of the same data: random element
    ids become numbers in order of appearance, render and load times a fixed stamp."""
    fixed_stamp = DOCS_RUN_TIME[:10].replace("-", "") + "T000000.000000Z"
    for page in sorted(Path(docs_dir).rglob("*.html")):
        text = _number_ids(page.read_text(encoding="utf-8"))
        page.write_text(_STAMP.sub(fixed_stamp, text), encoding="utf-8")


def _number_ids(text: str) -> str:
    """Each distinct UUID in `text` -> id1, id2, ... in order of first appearance."""
    numbers: dict[str, str] = {}
    return _UUID.sub(lambda m: numbers.setdefault(m[0], f"id{len(numbers) + 1}"), text)


def _rows_of(result: Any) -> list[int]:
    return [int(item["row"]) for item in result.result.get("partial_unexpected_index_list") or []]


def _explain(table: FerTable, column: str, row: int) -> str:
    """Why `row` (1-based) fails the check on `column`, from its raw cell."""
    i = row - 1
    if isinstance(table, FolderTable):
        if column == "readable":
            return "it does not decode as an image (PNG, JPEG, BMP, WebP...); replace or remove it"
        return f"its {column} breaks the rule"
    if table.emotion[i].as_py() is None and table.pixels[i].as_py() is None:
        return "the line is blank; remove it"
    if column == "emotion":
        value = table.emotion[i].as_py()
        if value is None:
            return "emotion is empty"
        return f"emotion is {preview(value)}, expected an integer 0-{NUM_CLASSES - 1}"
    if column == "Usage":
        value = table.usage[i].as_py()
        if value is None:
            return "Usage is empty"
        hint = (
            " (names are case-sensitive)"
            if value.strip().lower() in {u.lower() for u in USAGES}
            else ""
        )
        return f"Usage is {preview(value)}, expected one of {', '.join(USAGES)}{hint}"
    return describe_pixel_problem(table.pixels[i].as_py())


def _looks_cut(table: FerTable, column: str, row: int) -> bool:
    """Whether `row`'s failure on `column` is what cutting the file short there would do:
    a `Usage` that stops partway, or fewer pixel values than an image has (never more)."""
    i = row - 1
    if column == "Usage":
        value = table.usage[i].as_py() or ""
        return any(usage.startswith(value) and usage != value for usage in USAGES)
    if column in ("pixel_values", "pixel_invalid_values"):
        return 0 < int(table.parsed.values[i]) < PIXELS_PER_IMAGE
    return False


def missing_classes(classes: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """split -> the classes it has no row of (splits without any rows are left out)."""
    return {
        split: [name for name, n in counts.items() if n == 0]
        for split, counts in classes.items()
        if any(counts.values())
    }


_MISSING_CLASS_EFFECT = {
    "train": "the model cannot learn it",
    "val": "model selection cannot see it",
    "test": (
        "its test F1 is 0 by definition, so macro F1 cannot exceed {cap}; set "
        "validate.missing_class: fail to stop on this"
    ),
}


def _missing_class_warnings(missing: dict[str, list[str]], classes: int) -> list[str]:
    usage_of = dict(zip(SPLITS, USAGES, strict=True))
    cap = f"{classes - 1}/{classes}"
    return [
        f"split {split} ({usage_of[split]}) has no rows of class {', '.join(names)}: "
        + _MISSING_CLASS_EFFECT[split].format(cap=cap)
        for split, names in missing.items()
        if names
    ]


def _problem(table: FerTable, result: Any) -> dict[str, Any]:
    """A failed expectation as {check, rows, examples}: what the error message shows."""
    config = result.expectation_config
    check = config.description or config.type
    column = config.kwargs.get("column", "")
    if config.type == "expect_column_distinct_values_to_contain_set" and isinstance(
        table, FolderTable
    ):
        return {"check": check, "rows": 0, "examples": ["a split has no images"]}
    if config.type == "expect_column_distinct_values_to_contain_set":
        counts = np.bincount(table.split_index[table.split_index >= 0], minlength=len(USAGES))
        missing = [u for u, n in zip(USAGES, counts, strict=True) if n == 0]
        return {
            "check": check,
            "rows": 0,
            "examples": [
                f"no rows with Usage {', '.join(missing)}; the file needs rows of each of "
                f"{', '.join(USAGES)} (they become the train, val and test splits)"
            ],
        }
    if config.type == "expect_table_row_count_to_be_between":
        return {"check": check, "rows": 0, "examples": ["the file has no data rows"]}
    rows = _rows_of(result)[:EXAMPLE_ROWS]
    examples = [f"{table.row_ref(r)}: {_explain(table, column, r)}" for r in rows]
    last_row = len(table)
    if last_row in rows and not table.ends_with_newline and _looks_cut(table, column, last_row):
        examples.append(
            f"the file ends in the middle of {table.row_ref(last_row)} (no line break after "
            "it): it was probably cut off while copying or downloading; get a complete copy"
        )
    return {
        "check": check,
        "rows": int(result.result.get("unexpected_count") or 0),
        "examples": examples,
    }


def summarize(
    table: FerTable,
    result: Any,
    fingerprints: np.ndarray,
    duplicates: str,
    source_name: str,
    missing_class: str = "warn",
    ferplus: FerPlusLabels | None = None,
) -> dict[str, Any]:
    """The deterministic summary (summary.json): no timestamps, no run ids."""
    rows, classes = profile.split_profile(table)
    folder = isinstance(table, FolderTable)
    missing = missing_classes(classes)
    dups = profile.find_duplicates(fingerprints, table.split_index, table.usable)
    failed = [r for r in result.results if not r.success]
    critical = [r for r in failed if str(r.expectation_config.severity.value) == "critical"]
    problems = [_problem(table, r) for r in critical]
    if duplicates == "fail" and dups["groups"]:
        problems.append(
            {
                "check": "no image appears twice (validate.duplicates: fail)",
                "rows": dups["repeated_rows"],
                "examples": [
                    "same image in " + ", ".join(table.row_ref(r) for r in group)
                    for group in dups["examples"]
                ],
            }
        )
    if missing_class == "fail" and missing.get("test"):
        problems.append(
            {
                "check": "every class has test rows (validate.missing_class: fail)",
                "rows": 0,
                "examples": _missing_class_warnings({"test": missing["test"]}, len(table.names)),
            }
        )
    return {
        "source": {"file": source_name, "sha256": table.sha256, "bytes": table.size_bytes},
        "success": not problems,
        "labels": list(table.names),
        "rows": rows,
        "classes": classes,
        "missing_classes": missing,
        "duplicates": dups,
        "expectations": {
            "evaluated": len(result.results),
            "failed": len(critical),
            "warnings": len(failed) - len(critical),
        },
        "problems": problems,
        "warnings": _missing_class_warnings(missing, len(table.names)),
        **({"val_from_train": int(table.from_train.sum())} if folder else {}),
        **({"ferplus": ferplus.profile(table)} if ferplus is not None else {}),
    }


def failure_message(summary: dict[str, Any], report_dir: Path) -> str:
    problems = summary["problems"]
    lines = [
        f"{summary['source']['file']}: failed {len(problems)} of "
        f"{summary['expectations']['evaluated']} checks (report: {report_dir / SUMMARY_HTML})"
    ]
    for problem in problems:
        count = (
            f" ({problem['rows']:,} row{'s' if problem['rows'] != 1 else ''})"
            if problem["rows"]
            else ""
        )
        lines.append(f"- expected: {problem['check']}{count}")
        lines.extend(f"    {example}" for example in problem["examples"])
        if problem["rows"] > len(problem["examples"]):
            lines.append(f"    ... and {problem['rows'] - len(problem['examples']):,} more rows")
    lines.append(
        "Fix or remove these rows (or point data.raw at a correct file) and run `dvc repro` again."
    )
    return "\n".join(lines)


def validate_table(
    table: FerTable | FolderTable,
    report_dir: str | Path,
    duplicates: str = "warn",
    source_name: str | None = None,
    missing_class: str = "warn",
    ferplus: FerPlusLabels | None = None,
) -> dict[str, Any]:
    """Run the suite on `table`, write the reports to `report_dir`, return the summary.

    `source_name` is how the reports name the file (default: its path as read), e.g. the
    repository-relative path from params.yaml, which keeps summary.json the same on every
    clone.

    Raises `DataError` (after writing the reports, which show the failures) if any critical
    expectation fails, on duplicate images when `duplicates` is "fail", or on a class without
    test rows when `missing_class` is "fail". Missing classes are warnings otherwise
    (`summary["warnings"]`).
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(
            f"validate.duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}"
        )
    if missing_class not in MISSING_CLASS_POLICIES:
        raise ValueError(
            f"validate.missing_class must be one of {MISSING_CLASS_POLICIES}, got {missing_class!r}"
        )
    report_dir = Path(report_dir)
    fingerprints = profile.image_fingerprints(table.images)
    folder = isinstance(table, FolderTable)
    frame = folder_frame(table, fingerprints) if folder else validation_frame(table, fingerprints)
    with atomic_dir(report_dir / DATA_DOCS) as docs_dir:
        result = run_suite(frame, docs_dir, list(table.names) if folder else None)
    name = source_name or str(table.path)
    summary = summarize(table, result, fingerprints, duplicates, name, missing_class, ferplus)
    write_json(report_dir / RESULT_JSON, deterministic_result(result.to_json_dict()))
    write_json(report_dir / SUMMARY_JSON, summary)
    write_text(report_dir / SUMMARY_HTML, report_html.render(summary, table))
    if not summary["success"]:
        raise DataError(failure_message(summary, report_dir))
    return summary


def validate_csv(
    raw: str | Path,
    report_dir: str | Path,
    duplicates: str = "warn",
    source_name: str | None = None,
    missing_class: str = "warn",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read `raw` (a CSV or an image folder; `data`: params.yaml's data section) and
    validate it (`validate_table`): what the validate stage does."""
    from pipeline.data.source import read_dataset

    start_loading_gx()  # the ~2 s import overlaps reading the data
    dataset = read_dataset(raw, data)
    return validate_table(
        dataset.table,
        report_dir,
        duplicates=duplicates,
        source_name=source_name,
        missing_class=missing_class,
        ferplus=dataset.ferplus,
    )
