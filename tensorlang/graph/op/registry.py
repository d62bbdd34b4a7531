"""The op registry: what the graph knows about each operator.

An ``OpDef`` holds, for one op name:

* ``attrs``: its attributes, each with a default and a converter that checks and
  normalises the value (``stride=2`` becomes ``(2, 2)``); an unknown or bad attribute is a
  ``GraphError`` naming the op and what was expected;
* ``infer``: the type of a call from its argument types and attributes (shape and dtype
  errors name the node and both shapes);
* ``pattern``: its fusion pattern kind (``Pattern``), read by ``FuseOps``;
* ``compute``: its definition as tensor expressions, built from ``tensorlang.ops.compute``
  (what a fused kernel inlines);
* ``kernel``: for ops with a tuned template of ``tensorlang.ops``, how to instantiate it
  (see ``graph.lower``); ops without one are scheduled as injective or reductions;
* ``ref``: a straightforward numpy implementation, used by the interpreter (the reference
  the tests compare against) and by ``FoldConstant``.

``make_call(name, *args, **attrs)`` is the one constructor of op calls: every ``G.op``
builder and every pass goes through it, so every call node is type-checked when it is made.
"""

from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass, field

import numpy as np

from ... import dtype as dt
from ..ir import (Attrs, Call, Constant, GraphError, GraphTypeError, Node, TensorType,
                  describe)


class Pattern(enum.IntEnum):
    """Fusion pattern kinds, ordered as in TVM's ``OpPatternKind``: a group may take in ops
    of a kind at most its own."""
    ELEMWISE = 0        # out[i] = f(in[i])
    BROADCAST = 1       # out[i] = f(in_a[i], in_b[broadcast(i)])
    INJECTIVE = 2       # each output reads one input element (reshape, transpose, slice)
    REDUCTION = 3       # reductions and row operators (softmax, layer_norm, pools)
    OUT_FUSABLE = 4     # conv2d, dense, matmul: element-wise epilogues fuse into their output
    OPAQUE = 8          # never fused


@dataclass(frozen=True)
class OpDef:
    name: str
    pattern: Pattern
    infer: object                       # (arg types, attrs, call description) -> type
    compute: object                     # (te inputs, attrs) -> te.Tensor
    ref: object                         # (numpy arrays, attrs) -> numpy array
    attrs: dict = field(default_factory=dict)      # name -> (default, converter)
    arity: object = 1                   # number of inputs, or None for any
    kernel: object = None               # see graph.lower: the tuned template, if any
    doc: str = ""


OPS: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in OPS:
        raise GraphError(f"op {opdef.name!r} is registered twice")
    OPS[opdef.name] = opdef
    return opdef


def get(name: str) -> OpDef:
    if not isinstance(name, str) or name not in OPS:
        raise GraphError(f"unknown op {name!r}; registered ops: {', '.join(sorted(OPS))}")
    return OPS[name]


# --------------------------------------------------------------------------- attributes

def check_attrs(op: OpDef, given: dict, where: str) -> Attrs:
    unknown = sorted(set(given) - set(op.attrs))
    if unknown:
        expected = ", ".join(op.attrs) or "none"
        raise GraphError(f"{where}: unknown attribute{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; {op.name} takes: {expected}")
    out = {}
    for name, (default, conv) in op.attrs.items():
        v = given.get(name, default)
        try:
            out[name] = conv(v)
        except (TypeError, ValueError) as e:
            raise GraphError(f"{where}: attribute {name}={v!r}: {e}") from None
    return Attrs(out)


def a_int(lo: int | None = None):
    def conv(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError("expected an int")
        if lo is not None and v < lo:
            raise ValueError(f"expected an int >= {lo}")
        return int(v)
    return conv


def a_float(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("expected a number")
    return float(v)


def a_opt_float(v):
    return None if v is None else a_float(v)


def a_bool(v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError("expected True or False")
    return bool(v)


def a_pair(lo: int):
    """An int or a pair of ints, each >= lo, as a pair."""
    one = a_int(lo)

    def conv(v):
        try:
            if isinstance(v, (tuple, list)):
                if len(v) != 2:
                    raise ValueError
                return (one(v[0]), one(v[1]))
            x = one(v)
            return (x, x)
        except (TypeError, ValueError):
            raise ValueError(f"expected an int >= {lo} or a pair of them") from None
    return conv


def a_ints(v):
    """A tuple of ints (a shape, axes, begin/end lists)."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),)
    if not isinstance(v, (tuple, list)) or not all(
            isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in v):
        raise TypeError("expected a tuple of ints")
    return tuple(int(x) for x in v)


def a_opt_int(v):
    return None if v is None else a_int()(v)


def a_opt_ints(v):
    return None if v is None else a_ints(v)


def a_choice(*choices):
    def conv(v):
        if v not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}")
        return v
    return conv


def a_dtype(v):
    try:
        return dt.check(v)
    except Exception:
        raise ValueError(f"expected a dtype ({', '.join(dt.SCALAR_TYPES)})") from None


def a_str(v):
    if not isinstance(v, str):
        raise TypeError("expected a string")
    return v


# --------------------------------------------------------------------------- calls

def as_node(v, like: Node | None, what: str) -> Node:
    """``v`` as a node: nodes pass through; a Python number becomes a scalar constant of
    ``like``'s dtype (a float with an integer tensor gives float32, as ``ops.compute``)."""
    if isinstance(v, Node):
        return v
    if isinstance(v, (bool, numbers.Number)) and not isinstance(v, complex):
        if like is not None and isinstance(like.type, TensorType):
            dtype = like.dtype
            if isinstance(v, float) and not dt.is_float(dtype):
                dtype = "float32"
        else:
            dtype = "float32" if isinstance(v, float) else "int64"
        return Constant(np.array(v, dtype=dtype))
    raise GraphTypeError(f"{what}: expected a graph node or a number, got {type(v).__name__}")


def make_call(name: str, *args, **attrs) -> Call:
    """Call the registered op ``name`` on ``args`` (nodes, or numbers next to a node),
    check its attributes and infer its type: the one way op calls are made."""
    op = get(name)
    like = next((a for a in args if isinstance(a, Node)), None)
    args = tuple(as_node(a, like, name) for a in args)
    if op.arity is not None and len(args) != op.arity:
        raise GraphError(f"{name}: expected {op.arity} input{'s' if op.arity != 1 else ''}, "
                         f"got {len(args)}")
    where = f"{name}({', '.join(str(a.type) for a in args)})"
    attrs = check_attrs(op, attrs, where)
    for a in args:
        if not isinstance(a.type, TensorType):
            raise GraphTypeError(f"{where}: input {describe(a)} is a tuple; take a field with [i]")
    return Call(name, args, attrs, infer_call(op, args, attrs, where))


def infer_call(op: OpDef, args: tuple, attrs: Attrs, where: str | None = None):
    """The type of ``op`` applied to ``args``: what ``op.infer`` says, with any error
    reworded to name the node."""
    where = where or f"{op.name}({', '.join(str(a.type) for a in args)})"
    try:
        return op.infer([a.type for a in args], attrs)
    except GraphError as e:
        raise GraphError(f"{where}: {e}") from None
    except GraphTypeError as e:
        raise GraphTypeError(f"{where}: {e}") from None
