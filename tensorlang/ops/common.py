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


def epilogue(op: str, value, shape: tuple, channel, channels: int, dtype: str,
             bias: bool = False, residual: bool = False, activation: str | None = None,
             name: str = "O"):
    """The output stage of a fused epilogue: ``O[i] = act(value(*i) + bias[channel(*i)] +
    residual[i])`` over ``shape``, with the placeholders it reads (``bias`` of shape
    (channels,), ``residual`` of the output's shape, in that order). ``channel(*i)`` is the
    output channel of index ``i``; ``activation`` a name of ``compute.ACTIVATIONS`` or None.
    A schedule computes ``value``'s stage at tiles of O, so the epilogue runs as each tile
    is written (no second pass over memory)."""
    from .. import te
    from .compute.linalg import apply_activation
    apply_activation(te.const(0.0, dtype), activation, op)         # validates the name
    extra = []
    if bias:
        b = te.placeholder((channels,), name="bias", dtype=dtype)
        extra.append(b)
    if residual:
        res = te.placeholder(shape, name="residual", dtype=dtype)
        extra.append(res)

    def body(*i):
        v = value(*i)
        if bias:
            v = v + b[channel(*i)]
        if residual:
            v = v + res[i]
        return apply_activation(v, activation, op)
    return te.compute(shape, body, name=name), extra


def output_stages(op: str, accumulate, shape: tuple, channel, channels: int, dtype: str,
                  bias: bool = False, residual: bool = False, activation: str | None = None,
                  name: str = "O"):
    """The schedule of an accumulating operator and its two stages: ``(s, out, acc, extra)``.
    ``accumulate(name)`` builds the accumulator tensor. With an epilogue (see ``epilogue``)
    ``out`` is the epilogue stage named ``name`` and ``acc`` the accumulator ("acc");
    without one, the accumulator is the output and ``acc`` its write cache. Either way the
    caller computes ``acc`` at tiles of ``out``; ``extra`` are the epilogue's inputs."""
    from ..schedule import create_schedule
    if bias or residual or activation is not None:
        acc = accumulate("acc")
        out, extra = epilogue(op, lambda *i: acc[i], shape, channel, channels, dtype,
                              bias=bias, residual=residual, activation=activation, name=name)
        return create_schedule(out.op), out, acc, extra
    out = accumulate(name)
    s = create_schedule(out.op)
    return s, out, s.cache_write(out, "global"), []
