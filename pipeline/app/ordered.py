"""Work on several items at once, results in input order: how `ferflow predict` keeps every
core busy on a folder or a video.

Threads are enough: OpenCV's decoders and ONNX Runtime release the GIL while they work, and
together they are nearly all of a frame's cost. Each thread analyses whole frames (a
folder's images are decoded there too; a video is decoded in order by the calling thread,
which hands the frames out), so with one ONNX Runtime thread per network the cores never
wait for each other inside a frame, and busy threads do not outnumber the cores.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

In = TypeVar("In")
Out = TypeVar("Out")

#: Items in flight per worker: one being worked on and one queued, so a worker that finishes
#: never waits for the main thread, and memory stays bounded (a few decoded frames).
AHEAD_PER_WORKER = 2


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container may limit)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def in_order(work: Callable[[In], Out], items: Iterable[In], workers: int) -> Iterator[Out]:
    """`work(item)` for every item, on `workers` threads; results in the order of `items`.

    `items` is read lazily from the calling thread, at most `AHEAD_PER_WORKER * workers` ahead
    of the result being handed out. An exception in `work` is raised where its result would
    have been yielded, and nothing after it is yielded. With one worker, everything runs in
    the calling thread, one item after another.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        yield from map(work, items)
        return
    # Imported here: it brings in `logging`, start-up that a single photo need not pay.
    from concurrent.futures import ThreadPoolExecutor

    pending: deque[Future[Out]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="ferflow-worker") as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= AHEAD_PER_WORKER * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # Stopped early (an error, Ctrl-C, the caller gave up): queued items never start;
            # leaving the `with` waits for the few already running.
            for future in pending:
                future.cancel()
