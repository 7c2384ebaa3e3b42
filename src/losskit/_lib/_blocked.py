"""Row-blocked, multi-threaded execution of NumPy kernels.

A loss over an ``(N, C)`` array of logits needs only a few numbers per row. Computing them
block by block, with a scratch buffer that stays in cache, avoids ``N x C`` temporaries;
NumPy releases the GIL inside its loops, so independent blocks run in parallel threads.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["for_each_block", "num_threads"]

# A block holds about this many elements: 1 MiB of float32, which stays in a core's cache
# across the few passes a kernel makes over it, while the Python work per block (a dozen
# NumPy calls) stays small next to the arithmetic. Measured on the CE and linear-CE kernels:
# blocks a quarter this size spend about 30% more time per element.
BLOCK_ELEMENTS = 1 << 18
# Below this many elements a single thread is faster than waking the pool.
PARALLEL_THRESHOLD = 1 << 19

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def num_threads() -> int:
    """Worker threads for blocked kernels: ``LOSSKIT_NUM_THREADS`` or the usable CPU count."""
    env = os.environ.get("LOSSKIT_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            msg = f"LOSSKIT_NUM_THREADS must be a positive integer, got {env!r}"
            raise ValueError(msg) from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="losskit")
        return _pool


def _forget_pool() -> None:
    # Threads do not survive fork(); a child process must build its own pool.
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def for_each_block(
    n_rows: int,
    row_elements: int,
    kernel: Callable[[int, int, np.ndarray], None],
    *,
    scratch_dtype: np.dtype,
    min_rows: int = 1,
) -> None:
    """Call ``kernel(start, stop, scratch)`` over consecutive row blocks covering ``n_rows``.

    ``scratch`` is a C-contiguous ``(rows_per_block, row_elements)`` buffer owned by the
    calling thread; kernels write disjoint row ranges of their outputs, so blocks may run
    concurrently. ``min_rows`` raises the rows per block above what fits the cache budget:
    rows that are not contiguous in memory (a transposed matrix) are read a cache line, 16
    float32 values, at a time, so blocks of 16 rows use every byte they load.
    """
    if n_rows == 0:
        return
    rows = max(min_rows, min(n_rows, BLOCK_ELEMENTS // max(row_elements, 1)))
    rows = min(rows, n_rows)
    starts = range(0, n_rows, rows)
    workers = min(num_threads(), len(starts))
    if workers == 1 or n_rows * row_elements < PARALLEL_THRESHOLD:
        scratch = np.empty((rows, row_elements), dtype=scratch_dtype)
        for start in starts:
            kernel(start, min(start + rows, n_rows), scratch)
        return

    def work(first: int) -> None:
        scratch = np.empty((rows, row_elements), dtype=scratch_dtype)
        for start in starts[first::workers]:
            kernel(start, min(start + rows, n_rows), scratch)

    pool = _get_pool(workers)
    # Each worker runs in a copy of the caller's context, so NumPy's errstate applies there too.
    futures = [pool.submit(contextvars.copy_context().run, work, k) for k in range(workers)]
    for future in futures:
        future.result()
