"""What a training run was: its data, params, machine and model file, for outputs that travel.

The `train` stage writes `run.json` into its log folder. When training ran on another
machine (the lent GPU has no DVC), its outputs are brought back and checked here against
the local prepared data and params before `dvc commit train` records them:

    python -m stages.train --params fer2013/params.yaml --check   # then: dvc commit train
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import StageError
from pipeline.io import sha256_file, write_json
from pipeline.machine import machines_entry

RUN_FILE = "run.json"


class OutputsMismatch(StageError):
    """Brought-back training outputs do not belong to these data, params or model file."""


def data_hash(*arrays: np.ndarray) -> str:
    """sha256 over the bytes of the arrays a run trains on."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def describe_device() -> str:
    """The machine a run trained on, e.g. `1x NVIDIA H200, Keras 3.15.1 on jax 0.11.2`."""
    import keras

    backend = keras.backend.backend()
    version = getattr(__import__(backend), "__version__", "?")
    name = accelerator() or f"{platform.machine()} CPU ({os.cpu_count()} cores)"
    return f"{name}, Keras {keras.__version__} on {backend} {version}"


def accelerator() -> str | None:
    """The accelerators Keras trains on, e.g. `1x NVIDIA H200`; None on a CPU."""
    import keras

    devices = keras.distribution.list_devices()
    kind = devices[0].split(":")[0] if devices else "cpu"
    if kind == "cpu":
        return None
    if keras.backend.backend() == "jax":
        import jax

        kind = jax.devices()[0].device_kind
    return f"{len(devices)}x {kind}"


def write_run_record(
    log_dir: str | Path, record: dict[str, Any], model_path: str | Path
) -> dict[str, Any]:
    """`record` plus the model file's sha256 and the machine, as `<log_dir>/run.json`."""
    full = {
        **record,
        "model_sha256": sha256_file(model_path),
        "machines": machines_entry("train", accelerator()),
    }
    write_json(Path(log_dir) / RUN_FILE, full)
    return full


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def check_outputs(
    model_params: dict[str, Any],
    train_params: dict[str, Any],
    data_sha256: str,
    model_path: str | Path,
    log_dir: str | Path,
) -> dict[str, Any]:
    """The run record in `log_dir` if it matches these data, params and model file.

    Raises OutputsMismatch naming the file and the first thing that differs.
    """
    record_path, model_path = Path(log_dir) / RUN_FILE, Path(model_path)
    shown_record, shown_model = _shown(record_path), _shown(model_path)
    if not record_path.is_file():
        raise OutputsMismatch(
            f"{shown_record}: no run record; bring back the whole training log folder "
            f"({Path(log_dir).name}/) together with the model"
        )
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if not Path(model_path).is_file():
        raise OutputsMismatch(f"{shown_model}: model not found; bring it back from the run")
    if record.get("data_sha256") != data_sha256:
        ran = str(record.get("data_sha256"))[:12]
        raise OutputsMismatch(
            f"{shown_record}: the run trained on data sha256 {ran}..., the local prepared "
            f"shards hash to {data_sha256[:12]}...; train on the shards this pipeline prepared"
        )
    for section, local in (("model", model_params), ("train", train_params)):
        ran = record.get("params", {}).get(section, {})
        for key in sorted(set(ran) | set(local)):
            if ran.get(key) != local.get(key):
                raise OutputsMismatch(
                    f"{shown_record}: the run used {section}.{key}={ran.get(key)!r}, the params "
                    f"say {local.get(key)!r}; run it with the same parameter file"
                )
    if record.get("model_sha256") != sha256_file(model_path):
        raise OutputsMismatch(
            f"{shown_model}: not the model file that run wrote (sha256 differs from "
            f"{RUN_FILE}); bring back the run's own model"
        )
    return record
