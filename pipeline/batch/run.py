"""Ray Data drives the work: units in, one actor pool of recognizers, whole files out.

The driver plans the units, starts (or joins) Ray, and streams the actors' results back,
writing each finished unit's Parquet file as soon as it arrives: Ray Data's own
`write_parquet` names files by block and writes them in place, so a killed run would leave
partial files and no way to tell which source is complete. Results are small (a few hundred
bytes a face), so only the driver needs the output folder; the actors need the sources.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.app.errors import AppError
from pipeline.batch.plan import Unit
from pipeline.batch.store import write_unit

#: What each actor asks Ray for, per thread it runs: a little less than a CPU, so that Ray
#: Data's own small tasks still find room. On 2 cores, actors taking both whole CPUs left
#: nothing for the read task and the run made no progress (shared/NOTES.md, Ray 2.60).
ACTOR_CPU_SHARE = 0.9
#: Seconds to wait for a cluster address to answer before giving up with one line.
CONNECT_TIMEOUT = 5.0


@dataclass
class Totals:
    units: int = 0
    frames: int = 0
    faces: int = 0
    failed_units: int = 0
    seconds: float = 0.0


def ray_address(address: str | None) -> str | None:
    """The cluster to join: --address, else RAY_ADDRESS, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str) -> None:
    """One line, at once, when nothing answers at a host:port address (ray.init would retry
    for a minute first). `auto` and addresses without a port are left to Ray."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT).close()
    except OSError as e:
        raise AppError(
            f"Ray cluster {address}: unreachable ({e.strerror or e}); start it with "
            "`ray start --head` there, check the address and port, or leave out --address "
            "(and RAY_ADDRESS) to run on this machine"
        ) from None


def start_ray(address: str | None, *, quiet: bool) -> bool:
    """Join the cluster at `address`, or start a local Ray with this machine's cores; returns
    whether this call started it (and so must shut it down)."""
    import ray

    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR"}
    if address is not None:
        kwargs["address"] = address
    else:
        kwargs.update(address="local", num_cpus=os.cpu_count() or 1)
    if quiet:
        kwargs["log_to_driver"] = False

    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or "a local Ray"
        raise AppError(f"Ray cluster {where}: could not connect or start ({e})") from None
    return True


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def run_units(
    units: list[Unit],
    out: Path,
    *,
    worker_args: dict[str, Any],
    workers: int,
    threads: int,
    progress: bool,
) -> Totals:
    """Every unit through an actor pool of `workers` recognizers; each result written whole
    to `out` as it arrives."""
    import ray
    import ray.data

    from pipeline.batch.worker import FaceWorker

    # Ray Data's own INFO lines and its "progress bars disabled" warning; its bars stay.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = False
    totals = Totals()
    if not units:
        return totals
    # The model's bytes go to the object store once, by reference: constructor arguments
    # that large would be stored there anyway, and Ray warns at every actor start.
    worker_args = {**worker_args, "model": ray.put(worker_args["model"])}
    items = [{"key": u.key, "items": u.to_json()} for u in units]
    # One block per unit: a unit is the smallest piece an actor can take.
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    # One unit in flight per actor: units are coarse (seconds of work each), so a queue per
    # actor would leave one busy with a backlog at the end while another idles.
    results = dataset.map_batches(
        FaceWorker,
        fn_constructor_kwargs=worker_args,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=threads * ACTOR_CPU_SHARE,
        batch_format="numpy",
    )
    start = time.perf_counter()
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        for i, key in enumerate(batch["key"]):
            failures = bytes(batch["failures"][i]) or None
            write_unit(out, str(key), bytes(batch["table"][i]), failures)
            totals.units += 1
            totals.frames += int(batch["frames"][i])
            totals.faces += int(batch["faces"][i])
            totals.failed_units += failures is not None
    totals.seconds = time.perf_counter() - start
    return totals
