"""``tl.nd.array``: TVM's array constructor, for tutorials that wrap numpy arrays.

tensorlang kernels take numpy arrays directly; ``nd.array`` returns a numpy array (a thin
subclass with TVM's ``.numpy()``/``.asnumpy()`` methods), so ported code runs unchanged."""

import numpy as np


class NDArray(np.ndarray):
    """A numpy array with TVM's ``numpy()`` accessor."""

    def numpy(self) -> np.ndarray:
        return np.asarray(self)

    asnumpy = numpy


def array(data, device=None) -> NDArray:
    """A C-contiguous copy of ``data`` (``device`` is accepted for TVM compatibility)."""
    return np.array(data, copy=True, order="C").view(NDArray)


def empty(shape, dtype="float32", device=None) -> NDArray:
    return np.empty(shape, dtype=dtype).view(NDArray)
