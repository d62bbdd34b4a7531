"""Helpers shared by the operators: argument checks and the vector width."""

from __future__ import annotations

from .. import dtype as dt
from ..errors import TensorlangValueError


def check_dims(op: str, **dims) -> None:
    """Raise naming ``op`` and the argument unless every value is a positive int."""
    for name, v in dims.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise TensorlangValueError(f"{op}: {name} must be a positive int, got {v!r}")


def vector_lanes(dtype: str) -> int:
    """Elements of ``dtype`` in one 512-bit vector register."""
    return max(1, 512 // dt.bits(dtype))


def knob(cfg, name: str, values, default):
    """Define a tuning knob on ``cfg`` whose candidates include ``default`` (the value the
    untuned schedule uses, so that the fallback config is that schedule); its value."""
    cfg.define_knob(name, sorted(set(values) | {default}), default=default)
    return cfg[name].val
