"""Process-pool mapping with progress, used by the batch feature and quirk scans."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

ProgressFn = Callable[[int, int], None]

#: Chunks in flight per worker: enough to keep every worker busy while the caller takes
#: results, few enough that results are not held twice for long.
WINDOW = 2


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    # Each worker handles one clip at a time; letting BLAS/numba spawn their own threads
    # on top of one process per core only makes them fight.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def map_unordered(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int | None = None,
                  progress: ProgressFn | None = None, chunksize: int = 16) -> Iterator[Any]:
    """Yield ``fn(item)`` for every item, in completion order, on ``workers`` processes.

    ``fn`` must return something that identifies its item (the callers return
    ``(key, value)``). With one worker, or few items, it runs in this process: no pool
    start-up cost for a single clip. ``progress(done, total)`` is called as results arrive.
    """
    items = list(items)
    total = len(items)
    workers = cpu_count() if workers is None else max(1, int(workers))
    if not _spawn_can_start():
        workers = 1
    if progress:
        progress(0, total)
    if workers == 1 or total <= 2:
        for i, item in enumerate(items, 1):
            yield fn(item)
            if progress:
                progress(i, total)
        return
    chunks = (items[i:i + chunksize] for i in range(0, total, chunksize))
    ctx = mp.get_context("spawn")  # fork after torch/OpenMP initialised can deadlock
    done = 0
    from concurrent.futures import FIRST_COMPLETED, wait

    n_workers = min(workers, -(-total // chunksize))
    pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx,
                               initializer=_init_worker)
    # A window of chunks in flight, not all of them: a future keeps its result for as long
    # as it is referenced, so submitting every chunk at once held every result a second
    # time (beside the caller's copy) until the last one arrived. For a feature extraction
    # that is GBs, and the run was killed for memory on a 24 GiB machine.
    pending: set = set()

    def top_up() -> None:
        for chunk in chunks:
            pending.add(pool.submit(_run_chunk, fn, chunk))
            if len(pending) >= WINDOW * n_workers:
                return
    try:
        top_up()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            pending.difference_update(finished)
            while finished:
                results = finished.pop().result()
                done += len(results)
                yield from results
                del results
                if progress:
                    progress(done, total)
            top_up()
    except BaseException:
        # A failure, a cancel raised by ``progress`` or a caller that stops reading: the
        # chunks not yet started are dropped instead of all being computed first.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _spawn_can_start() -> bool:
    """Spawned workers re-import ``__main__`` from its file; code read from stdin or typed
    at a prompt has none, so such callers run serially instead of crashing the pool."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or os.path.exists(path)


def _run_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [fn(item) for item in chunk]
