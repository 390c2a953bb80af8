"""Records say where they were made: CPU kind from /proc/cpuinfo, and what a report does
with two different kinds."""

from __future__ import annotations

from pathlib import Path

from pipeline.machine import _cpuinfo, cpu_flags, cpu_kind, cpu_model, machine_line
from pipeline.report.markdown import machine_note

AVX512 = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile

processor\t: 1
model name\t: another core
flags\t\t: fpu
"""
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes crc32 asimddp sve
"""


def test_the_first_processors_numeric_flags_are_read(tmp_path: Path):
    (tmp_path / "cpuinfo").write_text(AVX512)
    info = _cpuinfo(tmp_path / "cpuinfo")
    assert cpu_model(info) == "AMD EPYC 9R14"
    assert cpu_flags(info) == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"]


def test_arm_features_count_as_flags(tmp_path: Path):
    (tmp_path / "cpuinfo").write_text(ARM)
    assert cpu_flags(_cpuinfo(tmp_path / "cpuinfo")) == ["asimd", "asimddp", "sve"]


def test_a_missing_cpuinfo_gives_no_flags(tmp_path: Path):
    assert _cpuinfo(tmp_path / "absent") == {}
    assert cpu_flags({}) == []


def test_kind_and_line_name_what_changes_numerics():
    machine = {"cpu": "AMD EPYC", "arch": "x86_64", "cpu_flags": ["avx2", "fma"], "cores": 2,
               "accelerator": None, "libraries": {"onnxruntime": "1.32.0"}}  # fmt: skip
    assert cpu_kind(machine) == "x86_64 avx2 fma"
    assert machine_line(machine) == (
        "AMD EPYC (x86_64, 2 cores; avx2 fma), no accelerator; onnxruntime 1.32.0"
    )
    assert machine_line(None) == "not recorded"


def test_the_report_warns_only_when_a_file_was_made_on_two_kinds():
    avx512, avx2 = "x86_64 avx2 fma avx512f", "x86_64 avx2 fma"
    same = machine_note({"reports/metrics.json": avx512}, {"reports/metrics.json": avx512})
    assert same == []
    note = machine_note(
        {"reports/metrics.json": avx512, "reports/export.json": avx2},
        {"reports/metrics.json": avx2, "reports/export.json": avx2},
    )
    assert "Made on different CPU kinds" in note[0]
    assert note[1:] == [f"> - `reports/metrics.json`: base `{avx512}`, head `{avx2}`", ""]
    # A file recorded on one side only (an older record) is no evidence of a change.
    assert machine_note({"reports/metrics.json": avx512}, {}) == []


def test_a_record_names_the_machine_of_its_last_step():
    from pipeline.machine import made_on

    train, evaluate = {"stage": "train", "cpu": "A"}, {"stage": "evaluate", "cpu": "B"}
    assert made_on({"machines": [train, evaluate]}) == evaluate
    assert made_on({"test": {"accuracy": 0.5}}) == {}
    assert made_on({"machines": "x86_64"}) == {} and made_on(None) == {}
