"""``var`` and ``const``: the leaves of a graph."""

from __future__ import annotations

import numpy as np

from .. import dtype as dt
from .ir import Constant, GraphError, TensorType, Var


def var(name: str, shape, dtype: str = "float32") -> Var:
    """An input of the graph called ``name`` with a fixed ``shape`` (ints) and ``dtype``."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape):
        raise GraphError(f"var {name!r}: shape must be a tuple of positive ints, got {shape!r}")
    return Var(name, TensorType(tuple(shape), dt.check(dtype)))


def const(value, name: str = "", dtype: str | None = None) -> Constant:
    """A constant tensor (weights): ``value`` (a numpy array or anything ``np.asarray`` takes)
    copied into a read-only array; ``name`` shows in the printed graph and in errors."""
    if not isinstance(name, str):
        raise GraphError(f"const: name must be a string, got {name!r}")
    a = np.asarray(value, dtype=None if dtype is None else dt.check(dtype))
    return Constant(a, name)
