"""The parallel runtime: libgomp's thread team, reached from generated code through
``GOMP_parallel``. These functions set and read the team size for calls made from the
current Python thread."""

from __future__ import annotations

import ctypes

from ..errors import TensorlangValueError


def _gomp():
    from ..codegen.target import init_llvm
    return init_llvm()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for parallel loops launched from this Python thread."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TensorlangValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _gomp().omp_set_num_threads(ctypes.c_int(n))


def get_num_threads() -> int:
    """The number of threads a parallel loop launched now would use."""
    return int(_gomp().omp_get_max_threads())
