"""Which machine made a result: CPU model, the instruction sets that change numerics, the
accelerator and the numeric libraries' versions.

Float kernels differ between CPU kinds (AVX-512 and AVX2 sum in different orders), so the
same commit trained on two kinds gives slightly different metrics, each repeated exactly on
its own kind. Every record (training run, metrics, export) carries `describe_machine()` so a
metrics diff between two machines can say so (docs/pipelines.md, "Results per CPU kind").

Plain Python (no numpy, no framework import: versions come from package metadata), so the
light app and `ferflow report` can use it too.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

#: CPU features that select different float or int8 kernels in TensorFlow, XLA and ONNX
#: Runtime (x86: vector width, FMA, VNNI dot products, AMX tiles; ARM: NEON, SVE, dot).
NUMERIC_FLAGS: tuple[str, ...] = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "sve",
)

#: The libraries whose versions change results.
NUMERIC_LIBRARIES: tuple[str, ...] = (
    "numpy",
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "onnxruntime",
)

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(path: Path = CPUINFO) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(info: dict[str, str] | None = None) -> str:
    info = _cpuinfo() if info is None else info
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags(info: dict[str, str] | None = None) -> list[str]:
    """The NUMERIC_FLAGS this CPU has, in NUMERIC_FLAGS' order."""
    info = _cpuinfo() if info is None else info
    present = set((info.get("flags") or info.get("Features") or "").split())
    return [flag for flag in NUMERIC_FLAGS if flag in present]


def cpu_kind(machine: dict[str, Any]) -> str:
    """What decides the numerics of a CPU result: architecture and numeric flags, e.g.
    `x86_64 avx2 fma avx512f avx512_vnni`. Two results with the same kind (and versions)
    repeat each other exactly; with different kinds they may differ slightly."""
    return " ".join([machine.get("arch", "?"), *machine.get("cpu_flags", [])])


def library_versions() -> dict[str, str]:
    versions = {}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_machine(accelerator: str | None = None) -> dict[str, Any]:
    """This machine, as records carry it. `accelerator` names a GPU/TPU when one ran the work
    (None: the CPU did)."""
    info = _cpuinfo()
    return {
        "cpu": cpu_model(info),
        "arch": platform.machine(),
        "cpu_flags": cpu_flags(info),
        "cores": os.cpu_count(),
        "accelerator": accelerator,
        "os": platform.system(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }


def machines_entry(stage: str, accelerator: str | None = None) -> list[dict[str, Any]]:
    """A record's `machines` entry: this machine, doing `stage`. A list on purpose: DVC's
    `metrics show` and `metrics diff` skip lists, so metric files carry it and their tables
    stay numeric (and within 120 columns)."""
    return [{"stage": stage, **describe_machine(accelerator)}]


def made_on(record: dict[str, Any] | None) -> dict[str, Any]:
    """The machine a record's last step ran on (its `machines` entry); {} when it names none
    (older records, other tools' files)."""
    machines = (record or {}).get("machines")
    if isinstance(machines, list) and machines and isinstance(machines[-1], dict):
        return machines[-1]
    return {}


def machine_line(machine: dict[str, Any] | None) -> str:
    """One line for a card or a report: `AMD EPYC (x86_64, 2 cores; avx2 fma avx512f
    avx512_vnni), no accelerator; tensorflow 2.21.0, keras 3.15.1, onnxruntime 1.32.0`."""
    if not machine:
        return "not recorded"
    flags = " ".join(machine.get("cpu_flags") or []) or "no listed numeric flags"
    accelerator = machine.get("accelerator") or "no accelerator"
    versions = ", ".join(f"{k} {v}" for k, v in (machine.get("libraries") or {}).items())
    return (
        f"{machine.get('cpu', '?')} ({machine.get('arch', '?')}, {machine.get('cores', '?')} "
        f"cores; {flags}), {accelerator}" + (f"; {versions}" if versions else "")
    )
