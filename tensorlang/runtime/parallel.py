"""The parallel runtime's settings. Parallel loops run on tensorlang's own thread pool
(``threadpool.py``: a process-wide pool of workers that claim chunks of a loop as they
become free, spin briefly and then sleep when idle); generated code reaches it through
``tensorlang_parallel_launch``.

The thread count is a setting of the whole process, shared by every Python thread and by
the libraries ``tl.load_module`` loads (it was per Python thread with libgomp). Default: the
CPUs this process may run on, ``len(os.sched_getaffinity(0))``. Launches from two Python
threads at once do not share the pool: one of them runs its loop serially on its own thread.
"""

from __future__ import annotations

from ..errors import TensorlangValueError

_INT32_MAX = 2**31 - 1


def _pool():
    from .threadpool import pool
    return pool()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (the calling thread included) for the parallel loops launched from
    now on in this process (at most ``threadpool.MAX_WORKERS + 1`` run)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TensorlangValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _pool().set_threads(min(n, _INT32_MAX))


def get_num_threads() -> int:
    """The number of threads a parallel loop launched now would use."""
    return int(_pool().get_threads())
