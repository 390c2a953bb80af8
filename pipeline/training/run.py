"""One training run as the `train` stage does it: data in, `model.keras` and a DVCLive log out.

    net = train_and_save(params, prepared_dir, model_path, log_dir, resume_dir)

Interrupted runs resume from their last completed epoch (see `resume.py`); a finished run
leaves the saved network, the per-epoch log and no resume state.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import keras

from pipeline.data.shards import label_names, load_split, load_targets
from pipeline.training.live_logger import LiveLogger
from pipeline.training.provenance import data_hash, describe_device, write_run_record
from pipeline.training.recipe import fit, make_net
from pipeline.training.resume import ResumeState, fingerprint
from pipeline.training.saving import save_keras


def run_fingerprint(model_params: dict[str, Any], train_params: dict[str, Any], data: str) -> str:
    """What a run's checkpoint or result is valid for: its params, its data hash, the backend."""
    return fingerprint(
        model=model_params, train=train_params, data=data, backend=keras.backend.backend()
    )


def as_float32(net: keras.Model, model_params: dict[str, Any], train_params: dict[str, Any]):
    """The same network with a float32 policy, for saving after mixed-precision training.

    Variables are float32 under either policy, but layers remember their policy, and ONNX
    export and CPU inference want float32 compute.
    """
    if not train_params.get("mixed_precision", False):
        return net
    net32 = make_net(model_params, {**train_params, "mixed_precision": False})
    net32.set_weights(net.get_weights())
    return net32


def best_epoch(live_dir: str | Path, metric: str = "val/accuracy") -> tuple[int, float] | None:
    """(epoch, value) of the highest `metric` in a DVCLive history; first one on ties."""
    tsv = Path(live_dir) / "plots" / "metrics" / f"{metric}.tsv"
    if not tsv.is_file():
        return None
    with tsv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    name = metric.rsplit("/", 1)[-1]
    best: tuple[int, float] | None = None
    for row in rows:
        value = float(row[name])
        if best is None or value > best[1]:
            best = (int(row["step"]), value)
    return best


def open_live(log_dir: str | Path, resume: bool) -> Any:
    """A `dvclive.Live` that only logs: dvc.yaml declares the plots, and `dvc exp run`
    (not DVCLive) saves experiments."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(str(log_dir), resume=resume, save_dvc_exp=False, dvcyaml=False)
    except SCMError as e:
        # DVCLive reads the current commit; a fresh `git init` has none.
        raise RuntimeError(
            f"DVCLive cannot read the git repository around {Path.cwd()} ({e}); "
            "make a first commit (`git commit`) or run outside that repository"
        ) from e


def train_and_save(
    params: dict[str, Any],
    prepared_dir: str | Path,
    model_path: str | Path,
    log_dir: str | Path,
    resume_dir: str | Path,
    verbose: str | int | None = None,
) -> keras.Model:
    """Train `params["model"]` with `params["train"]` on the prepared train/val splits.

    Writes the best-on-val network (no augmentation, float32) to `model_path` and a DVCLive
    log (per-epoch curves, params, summary) to `log_dir`, with `run.json`: what the run
    trained on and where (see `provenance.py`). Returns the network.

    `verbose=None` shows Keras' progress bar in a terminal and one line per epoch in logs
    (a redrawn bar turns into run-on text in `dvc repro`'s captured output).
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    model_params, train_params = params["model"], params["train"]
    x_train, y_train = load_split(prepared_dir, "train")
    x_val, y_val = load_split(prepared_dir, "val")

    data = data_hash(x_train, y_train, x_val, y_val)
    resume = ResumeState(resume_dir, run_fingerprint(model_params, train_params, data))
    start_epoch = resume.prepare()
    epochs = int(train_params["epochs"])
    if start_epoch:
        print(f"Resuming training at epoch {start_epoch + 1}/{epochs} from {resume.folder}")

    started = time.perf_counter()
    # One output per class of the data's label set (the prepared manifest).
    net_params = {**model_params, "num_classes": len(label_names(prepared_dir))}
    net = make_net(net_params, train_params)
    if start_epoch:
        resume.restore_log(log_dir)
    live = open_live(log_dir, resume=start_epoch > 0)
    live.log_params({"model": model_params, "train": train_params})
    # Log first, then copy the log, then checkpoint: a kill in between can only make an
    # epoch run twice (its stale log rows are dropped), never leave a gap in the curves.
    callbacks = [
        LiveLogger(live, num_train=len(x_train)),
        resume.log_snapshot(log_dir),
        resume.callback(),
    ]
    # FER+ `distribution` data: the vote distributions are the training targets.
    soft = load_targets(prepared_dir, "train")
    fit(
        net,
        (x_train, y_train) if soft is None else (x_train, y_train, soft),
        (x_val, y_val),
        train_params,
        callbacks=callbacks,
        verbose=verbose,
        state_dir=resume.best_dir,
    )

    net = as_float32(net, net_params, train_params)
    save_keras(net, model_path)
    best = best_epoch(log_dir)
    if best is not None:
        # 1-based, as Keras prints it ("Epoch 7/30"); DVCLive steps count from 0.
        live.summary["best_epoch"] = best[0] + 1
        live.summary["best_val_accuracy"] = best[1]
    live.end()
    write_run_record(
        log_dir,
        {
            "params": {"model": model_params, "train": train_params},
            "data_sha256": data,
            "device": describe_device(),
            "best_epoch": live.summary.get("best_epoch"),
            "best_val_accuracy": live.summary.get("best_val_accuracy"),
            # This process only: a resumed run does not count the epochs before the kill.
            "wall_s": round(time.perf_counter() - started, 1),
            "resumed_at_epoch": start_epoch + 1 if start_epoch else None,
        },
        model_path,
    )
    resume.clear()
    return net
