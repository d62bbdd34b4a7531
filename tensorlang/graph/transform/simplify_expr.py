"""SimplifyExpr: algebraic simplification, as a table of rewrite rules.

``RULES`` maps an op name to its rules; a rule is a small function ``rule(call, uses)`` that
returns the call's replacement, or None where it does not apply (``uses(node)`` is how many
nodes and outputs read ``node``, None where a rewrite made that unknown). The pass rewrites the
graph bottom-up, trying each call's rules in order, and repeats until no rule fires (at most
``MAX_ROUNDS`` rounds). Replacements are made by ``make_call``, so they are type-checked.

Rules (``x`` any node, ``c`` a Constant):

* identities, only where the result has ``x``'s exact type (a broadcast is never dropped):
  ``multiply(x, 1)``, ``multiply(1, x)``, ``add(x, 0)``, ``add(0, x)``, ``subtract(x, 0)``,
  ``divide(x, 1)`` -> ``x``;
* ``divide(x, c)`` -> ``multiply(x, 1/c)`` for a float ``c`` whose elements are all powers
  of two, so that ``1/c`` is exact and the result bit for bit the same;
* ``negative(negative(x))`` -> ``x``;
* ``transpose(transpose(x, a), b)`` -> ``transpose(x, a[b])`` (``x`` when that is the
  identity); ``transpose(x)`` with the identity permutation -> ``x``;
* ``reshape(reshape(x))`` -> ``reshape(x)``; ``reshape``, ``cast`` and ``broadcast_to`` that
  leave ``x``'s type as it is -> ``x``; ``strided_slice`` with unit strides covering all of
  ``x`` -> ``x``;
* ``add(add(x, c1), c2)`` -> ``add(x, add(c1, c2))``, ``c1`` and ``c2`` constant-valued (constants
  or calls on constants) and ``x`` not, when the inner add is read only by the outer one and
  ``c1 + c2`` is no larger than the larger of them (a folded batch norm's shift and a bias
  become one per-channel add);
* ``conv2d(pad(x, ((0, 0), (0, 0), (p, p), (q, q)), 0), W, padding=(a, b))`` ->
  ``conv2d(x, W, padding=(a + p, b + q))``: a zero pad that is symmetric on each spatial
  axis is the convolution's own padding (TensorFlow-style "same" padding, as Hugging Face's
  MobileNet-v2 writes it, pads stride-1 convolutions this way; its stride-2 pads are
  one-sided and stay);
* batch norm folding, with ``scale = gamma * rsqrt(var + epsilon)`` and
  ``shift = beta - mean * scale``:

  - ``batch_norm(conv2d(x, W), gamma, beta, mean, var)`` on axis 1, with ``W`` and the four
    vectors Constants and the conv read only by the batch norm ->
    ``add(conv2d(x, multiply(W, reshape(scale, (CO, 1, 1, 1)))), reshape(shift, (CO, 1, 1)))``;
  - the same after ``dense(x, W)`` with the batch norm on the last axis: the rows of ``W``
    are scaled, ``add(dense(x, multiply(W, reshape(scale, (N, 1)))), shift)``;
  - any other batch norm -> ``add(multiply(x, scale'), shift')``, with ``scale'`` and
    ``shift'`` reshaped to (C, 1, ..., 1) to broadcast along the axis ((C, 1, 1) for NCHW).

  ``scale`` and ``shift`` are graph ops on the constants: this pass does not evaluate them,
  ``FoldConstant`` does, which is why the pipeline runs SimplifyExpr first
  (``examples/graph/pass_ordering.py`` shows the other order).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..ir import Call, Constant, Module, children
from ..op.registry import make_call
from .pass_manager import module_pass
from .rewrite import with_args

MAX_ROUNDS = 16


# --------------------------------------------------------------------------- helpers

def is_call(n, op: str) -> bool:
    return isinstance(n, Call) and n.op == op


def all_equal(n, value) -> bool:
    """Whether ``n`` is a constant whose every element equals ``value``."""
    return isinstance(n, Constant) and n.data.size > 0 and bool(np.all(n.data == value))


def constant_valued(n) -> bool:
    """Whether ``n`` depends on constants only (a constant, or calls on constants: what
    ``FoldConstant`` turns into a constant). Stops at the first variable it meets."""
    stack, seen = [n], set()
    while stack:
        m = stack.pop()
        if isinstance(m, Constant) or m in seen:
            continue
        if not isinstance(m, Call):
            return False
        seen.add(m)
        stack.extend(m.args)
    return True


def per_channel(v, ndim: int, axis: int):
    """The vector ``v`` (C,) reshaped to (C, 1, ..., 1) so that it broadcasts along ``axis``
    of an ``ndim``-D tensor."""
    shape = (v.shape[0],) + (1,) * (ndim - 1 - axis)
    return v if v.shape == shape else make_call("reshape", v, newshape=shape)


def bn_scale_shift(bn: Call):
    """``scale`` and ``shift`` of a batch norm, as graph ops on its inputs."""
    _, gamma, beta, mean, var = bn.args
    scale = make_call("multiply", gamma,
                      make_call("rsqrt", make_call("add", var, bn.attrs["epsilon"])))
    return scale, make_call("subtract", beta, make_call("multiply", mean, scale))


def _perm(t: Call) -> tuple:
    n = len(t.args[0].shape)
    axes = t.attrs["axes"]
    return tuple(reversed(range(n))) if axes is None else tuple(a % n for a in axes)


# --------------------------------------------------------------------------- rules

def identity(const_pos: int, value):
    """op(x, value) -> x, the constant at ``const_pos``, where the result is x's type."""
    def rule(call, uses):
        c, x = call.args[const_pos], call.args[1 - const_pos]
        return x if all_equal(c, value) and call.type == x.type else None
    rule.__name__ = f"identity_{const_pos}_{value}"
    return rule


def same_type(call, uses):
    """reshape/cast/broadcast_to that change nothing -> x."""
    return call.args[0] if call.type == call.args[0].type else None


def exact_reciprocal(call, uses):
    x, c = call.args
    if not isinstance(c, Constant) or c.data.dtype.kind != "f" or c.data.size == 0:
        return None
    mantissa, _ = np.frexp(c.data)
    with np.errstate(divide="ignore", over="ignore"):
        inv = (1 / c.data).astype(c.data.dtype)
    if not (np.all(np.abs(mantissa) == 0.5) and np.all(np.isfinite(inv))
            and np.all(inv * c.data == 1)):
        return None
    return make_call("multiply", x, Constant(inv, c.name))


def double_negative(call, uses):
    a = call.args[0]
    return a.args[0] if is_call(a, "negative") else None


def transpose_identity(call, uses):
    p = _perm(call)
    return call.args[0] if p == tuple(range(len(p))) else None


def transpose_transpose(call, uses):
    inner = call.args[0]
    if not is_call(inner, "transpose"):
        return None
    a = _perm(inner)
    axes = tuple(a[i] for i in _perm(call))
    x = inner.args[0]
    return x if axes == tuple(range(len(axes))) else make_call("transpose", x, axes=axes)


def reshape_reshape(call, uses):
    inner = call.args[0]
    if not is_call(inner, "reshape"):
        return None
    return make_call("reshape", inner.args[0], newshape=call.attrs["newshape"])


def full_slice(call, uses):
    strides = call.attrs["strides"]
    if strides is not None and any(s != 1 for s in strides):
        return None
    return same_type(call, uses)


def merge_constant_adds(call, uses):
    inner, c2 = call.args
    if not (is_call(inner, "add") and uses(inner) == 1 and constant_valued(c2)):
        return None
    x, c1 = inner.args
    if not constant_valued(c1) or constant_valued(x):
        return None
    c = make_call("add", c1, c2)
    return make_call("add", x, c) if c.type.size <= max(c1.type.size, c2.type.size) else None


def fold_pad_into_conv(call, uses):
    pad = call.args[0]
    if not is_call(pad, "pad") or pad.attrs["value"] != 0.0:
        return None
    (n, c, h, w) = pad.attrs["pad_width"]
    if n != (0, 0) or c != (0, 0) or h[0] != h[1] or w[0] != w[1]:
        return None
    a, b = call.attrs["padding"]
    return make_call("conv2d", pad.args[0], *call.args[1:],
                     **{**call.attrs, "padding": (a + h[0], b + w[0])})


# batch_norm after these ops folds into their weights: op -> the batch norm axis that is
# its output channel, given the output's rank
FOLDABLE = {"conv2d": lambda ndim: 1, "dense": lambda ndim: ndim - 1}


def fold_batch_norm(call, uses):
    data, *vectors = call.args
    if not (isinstance(data, Call) and data.op in FOLDABLE
            and call.attrs["axis"] == FOLDABLE[data.op](len(data.shape))
            and uses(data) == 1
            and all(isinstance(v, Constant) for v in (data.args[1], *vectors))):
        return None
    x, w = data.args
    scale, shift = bn_scale_shift(call)
    w = make_call("multiply", w, per_channel(scale, len(w.shape), 0))
    y = make_call(data.op, x, w, **data.attrs)
    return make_call("add", y, per_channel(shift, len(y.shape), call.attrs["axis"]))


def decompose_batch_norm(call, uses):
    data = call.args[0]
    if isinstance(data, Call) and data.op in FOLDABLE and uses(data) is None:
        return None         # readers unknown this round: the next one may fold it
    scale, shift = bn_scale_shift(call)
    ndim, axis = len(data.shape), call.attrs["axis"]
    return make_call("add", make_call("multiply", data, per_channel(scale, ndim, axis)),
                     per_channel(shift, ndim, axis))


RULES = {
    "multiply": [identity(1, 1), identity(0, 1)],
    "add": [identity(1, 0), identity(0, 0), merge_constant_adds],
    "subtract": [identity(1, 0)],
    "divide": [identity(1, 1), exact_reciprocal],
    "negative": [double_negative],
    "transpose": [transpose_identity, transpose_transpose],
    "reshape": [same_type, reshape_reshape],
    "cast": [same_type],
    "broadcast_to": [same_type],
    "strided_slice": [full_slice],
    "batch_norm": [fold_batch_norm, decompose_batch_norm],
    "conv2d": [fold_pad_into_conv],
}


# --------------------------------------------------------------------------- driver

def apply_rules(n, uses):
    """The replacement of ``n`` by the first of its op's rules that applies, or None."""
    if isinstance(n, Call) and isinstance(n.op, str):
        for rule in RULES.get(n.op, ()):
            r = rule(n, uses)
            if r is not None:
                return r
    return None


def simplify_round(mod: Module) -> tuple:
    """One bottom-up rewrite with ``RULES``: the new module and how many rules fired.

    ``uses`` counts the readers of each node of the new graph: a node rebuilt over new
    inputs, or a rule's new node, has the readers of the node it stands for; a node that a
    rule returned again (``x`` of ``x * 1``) gains readers, so its count is unknown (None)."""
    counts = Counter(c for n in mod.nodes() for c in children(n))
    counts.update(mod.outputs)
    memo = {v: v for v in mod.inputs}
    uses = {v: counts[v] for v in mod.inputs}
    fired = 0
    for n in mod.nodes():
        if n in memo:
            continue
        m = with_args(n, [memo[c] for c in children(n)])
        uses.setdefault(m, counts[n])
        r = apply_rules(m, uses.get)
        if r is not None:
            fired += 1
            uses[r] = None if r in uses else counts[n]
        memo[n] = m if r is None else r
    return mod.with_outputs([memo[o] for o in mod.outputs]), fired


@module_pass(opt_level=2)
def SimplifyExpr(mod: Module) -> Module:
    for _ in range(MAX_ROUNDS):
        mod, fired = simplify_round(mod)
        if not fired:
            break
    return mod
