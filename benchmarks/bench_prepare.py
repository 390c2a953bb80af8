"""Benchmark: ferflow's validate + prepare against the tutorial's CSV loader.

    python benchmarks/bench_prepare.py /tmp/fer2013.csv

Times, in one run and on the same file:
1. ferflow's validate + prepare called in-process (`validate_and_prepare`: one parse),
   cold (this process has not imported pandas, pyarrow or Great Expectations yet: their
   imports count), then warm and step by step;
2. the tutorial's loader: the file line by line, every pixel through `int()` in a list
   comprehension (an equivalent written here), and checks both give the same arrays;
3. `dvc repro validate prepare` end to end in fresh processes (DVC start, imports, hashing
   the CSV, caching outputs), in a temporary copy of the repository whose `data.raw`
   points at the file: once fresh, once more forced (`-f`).
The speed-ups are printed as ratios of wall-clock times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def tutorial_loader(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The tutorial's way: one line at a time, one `int()` per pixel."""
    images: dict[str, list] = {u: [] for u in USAGE_TO_SPLIT}
    labels: dict[str, list] = {u: [] for u in USAGE_TO_SPLIT}
    with open(path) as f:
        next(f)  # header
        for line in f:
            emotion, pixels, usage = line.rstrip("\n").split(",")
            images[usage].append([int(p) for p in pixels.split(" ")])
            labels[usage].append(int(emotion))
    return {
        USAGE_TO_SPLIT[u]: (
            np.array(images[u], dtype=np.uint8).reshape(-1, 48, 48),
            np.array(labels[u], dtype=np.int64),
        )
        for u in USAGE_TO_SPLIT
    }


def ferflow_cold(path: Path, out: Path) -> tuple[float, dict]:
    """validate + prepare in this process, parsing once (`validate_and_prepare`), with the
    imports of pandas, pyarrow and Great Expectations counted."""
    t = time.perf_counter()
    from pipeline.data.prepare import validate_and_prepare

    summary, _ = validate_and_prepare(path, out / "reports", out / "prepared")
    return time.perf_counter() - t, summary


def ferflow_steps(path: Path, out: Path) -> dict[str, float]:
    """The same steps one after the other, timed separately (modules already imported)."""
    from pipeline.data.fer_csv import read_fer_csv
    from pipeline.data.prepare import shards_from_table
    from pipeline.data.validation import validate_table

    steps = {}
    t = time.perf_counter()
    table = read_fer_csv(path)
    steps["read + parse (+ sha256)"] = time.perf_counter() - t
    t = time.perf_counter()
    validate_table(table, out / "reports")
    steps["GX suite + reports"] = time.perf_counter() - t
    t = time.perf_counter()
    shards_from_table(table, out / "prepared")
    steps["write shards + manifest"] = time.perf_counter() - t
    return steps


def repo_copy(dest: Path, raw: Path) -> Path:
    """pipeline/, stages/, dvc.yaml and params.yaml (data.raw -> raw) in a new DVC repo."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(REPO_ROOT / "dvc.yaml", dest / "dvc.yaml")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["raw"] = str(raw.resolve())
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
    ):
        subprocess.run(cmd, cwd=dest, env=_env(dest), check=True, capture_output=True)
    return dest


def _env(repo: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(repo),
        "DVC_NO_ANALYTICS": "1",
    }


def time_dvc_repro(repo: Path, *extra: str) -> float:
    t = time.perf_counter()
    result = subprocess.run(
        ["dvc", "repro", *extra, "validate", "prepare"],
        cwd=repo,
        env=_env(repo),
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t
    if result.returncode != 0:
        sys.exit(f"dvc repro failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path, help="a FER2013-format CSV, e.g. /tmp/fer2013.csv")
    parser.add_argument("--skip-dvc", action="store_true", help="skip the `dvc repro` timing")
    args = parser.parse_args()
    path = args.csv.resolve()
    size = path.stat().st_size
    print(f"file: {path} ({size / 1e6:,.1f} MB), {os.cpu_count()} CPU cores", flush=True)
    path.read_bytes()  # every contender then starts from the page cache

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        tmp = Path(tmp)
        cold, summary = ferflow_cold(path, tmp / "cold")
        rows = summary["rows"]
        print(
            f"rows: train {rows['train']:,}, val {rows['val']:,}, test {rows['test']:,} "
            f"(validation {'passed' if summary['success'] else 'FAILED'})"
        )
        print(f"ferflow validate + prepare, in-process, cold: {cold:6.2f} s", flush=True)
        steps = ferflow_steps(path, tmp / "warm")
        warm = sum(steps.values())
        print(f"ferflow validate + prepare, warm, step by step: {warm:6.2f} s")
        for name, seconds in steps.items():
            print(f"    {name:36s} {seconds:6.2f} s")

        t = time.perf_counter()
        reference = tutorial_loader(path)
        tutorial = time.perf_counter() - t
        print(f"tutorial loader (line by line, int() per pixel): {tutorial:6.2f} s", flush=True)

        from pipeline.data.shards import load_split

        same = all(
            np.array_equal(load_split(tmp / "cold" / "prepared", s)[0], reference[s][0])
            and np.array_equal(load_split(tmp / "cold" / "prepared", s)[1], reference[s][1])
            for s in reference
        )
        print(f"same images and labels as the tutorial loader: {'yes' if same else 'NO'}")
        print(f"speed-up in-process: {tutorial / cold:.1f}x cold, {tutorial / warm:.1f}x warm")

        if not args.skip_dvc:
            repo = repo_copy(tmp / "repo", path)
            first = time_dvc_repro(repo)
            forced = time_dvc_repro(repo, "-f")
            print(f"dvc repro validate prepare, fresh repository: {first:6.2f} s")
            print(f"dvc repro -f validate prepare, again:         {forced:6.2f} s")
            print(
                f"speed-up end to end vs the tutorial loader alone: "
                f"{tutorial / first:.1f}x fresh, {tutorial / forced:.1f}x forced"
            )


if __name__ == "__main__":
    main()
