"""``G.op``: one builder per registered op (``G.op.conv2d(x, w, padding=1)`` makes a call
node, its type inferred and checked), plus composites written with them (``relu6``,
``split``, ``variance``, ``adaptive_avg_pool2d``, ``flatten``, ...).

``registry.OPS`` lists every op with its pattern kind, attributes, compute and reference.
"""

from __future__ import annotations

from ..ir import GraphError, Tuple
from . import elemwise, nn, transform  # noqa: F401  (they register their ops)
from .registry import OPS, OpDef, Pattern, get, make_call  # noqa: F401


def _builder(name: str):
    op = OPS[name]

    def build(*args, **attrs):
        return make_call(name, *args, **attrs)
    build.__name__ = build.__qualname__ = name
    attrs = ", ".join(f"{k}={d!r}" for k, (d, _) in op.attrs.items())
    build.__doc__ = (f"{name}({'inputs...' if op.arity is None else ', '.join(['x'] * op.arity)}"
                     f"{', ' + attrs if attrs else ''}): {op.pattern.name.lower()} op."
                     + (f" {op.doc}" if op.doc else ""))
    return build


for _name in OPS:
    globals()[_name] = _builder(_name)


# --------------------------------------------------------------------------- composites

def relu6(x):
    """min(max(x, 0), 6)."""
    return make_call("clip", x, a_min=0.0, a_max=6.0)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return make_call("clip", x, a_min=min_val, a_max=max_val)


def permute(x, axes):
    return make_call("transpose", x, axes=axes)


def expand(x, shape):
    """broadcast_to, with -1 keeping a dimension (torch's ``expand``)."""
    shape = tuple(shape)
    lead = len(shape) - len(x.shape)
    shape = tuple(x.shape[d - lead] if s == -1 else s for d, s in enumerate(shape))
    return make_call("broadcast_to", x, shape=shape)


def flatten(x, start_dim=1):
    shape = x.shape
    n = 1
    for d in shape[start_dim:]:
        n *= d
    return make_call("reshape", x, newshape=(*shape[:start_dim], n))


def slice_axis(x, axis, begin, end, stride=1):
    """x[..., begin:end:stride, ...] on ``axis`` only."""
    nd = len(x.shape)
    axis %= nd
    b, e, s = [0] * nd, list(x.shape), [1] * nd
    b[axis], e[axis], s[axis] = begin, end, stride
    return make_call("strided_slice", x, begin=tuple(b), end=tuple(e), strides=tuple(s))


def split(x, sections, axis=0):
    """x cut along ``axis`` into ``sections`` equal parts (an int) or at the given indices
    (a list, numpy's ``split``); a tuple node of the parts."""
    n = x.shape[axis]
    if isinstance(sections, int):
        if sections < 1 or n % sections:
            raise GraphError(f"split: {sections} sections do not divide the {n} elements of "
                             f"axis {axis} of {x.shape}")
        cuts = [n // sections * i for i in range(1, sections)]
    else:
        cuts = list(sections)
    bounds = [0, *cuts, n]
    return Tuple([slice_axis(x, axis, b, e) for b, e in zip(bounds, bounds[1:])])


def embedding(table, ids):
    """table[ids]: rows of ``table`` (V, D) gathered by the int ``ids``."""
    return make_call("take", table, ids, axis=0)


def variance(x, axis=None, keepdims=False, unbiased=False):
    """mean((x - mean(x))^2) over ``axis`` (times n / (n - 1) when ``unbiased``)."""
    m = make_call("mean", x, axis=axis, keepdims=True)
    d = make_call("subtract", x, m)
    v = make_call("mean", make_call("multiply", d, d), axis=axis, keepdims=keepdims)
    if unbiased:
        axes = range(len(x.shape)) if axis is None else [axis] if isinstance(axis, int) else axis
        n = 1
        for a in axes:
            n *= x.shape[a]
        v = make_call("multiply", v, n / (n - 1))
    return v


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to ``output_size``: the global mean for (1, 1), else windows of
    H / OH x W / OW (the sizes must divide)."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    H, W = x.shape[2:]
    if (oh, ow) == (1, 1):
        return make_call("global_avg_pool2d", x)
    if H % oh or W % ow:
        raise GraphError(f"adaptive_avg_pool2d: output size {(oh, ow)} must divide the input "
                         f"plane {(H, W)}")
    return make_call("avg_pool2d", x, kernel=(H // oh, W // ow))


def linear(x, weight, bias=None):
    """x · weightᵀ (+ bias), as ``torch.nn.functional.linear``."""
    y = make_call("dense", x, weight)
    return y if bias is None else make_call("add", y, bias)
