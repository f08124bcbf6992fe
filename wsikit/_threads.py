"""One process-wide thread pool for CPU work that releases the GIL (compiled kernels, tile decoding).

Twice as many threads as the CPUs this process may use (so that a split into more parts than cores, such
as three tile columns on two cores, finishes in 1.5 parts' time instead of 2); callers decide how many tasks
to submit, most as many as there are cores. After ``fork()`` the child
has none of the parent's threads, so it starts a pool of its own on first use instead of queueing work that
no thread would ever run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["cpu_count", "worker_pool", "run_parallel"]

_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def worker_pool() -> ThreadPoolExecutor:
    """The shared pool (created on first use)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2 * cpu_count(), thread_name_prefix="wsikit")
        return _POOL


_T = TypeVar("_T")


def run_parallel(calls: Sequence[Callable[[], _T]]) -> list[_T]:
    """Run each call on the shared pool (a single one on the calling thread); their results in order, the first
    exception raised after all have finished or failed."""
    if len(calls) == 1:
        return [calls[0]()]
    pool = worker_pool()
    futures = [pool.submit(call) for call in calls]
    return [f.result() for f in futures]


def _forget_pool() -> None:
    global _POOL, _LOCK
    _POOL, _LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)
