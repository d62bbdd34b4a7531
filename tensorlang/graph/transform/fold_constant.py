"""FoldConstant: evaluates what depends on constants only.

Every call whose inputs are all Constants (an op, or the call of a fused ``Function``) is
evaluated with the interpreter (``interpreter.eval_call``, the ops' numpy references) and
replaced by a Constant of exactly the call's type (the value is cast back where numpy
promoted its dtype). The new constant is named after the call's first named constant input
(``multiply(@w, ...)`` stays ``@w``), or unnamed. A call of a fused group that returns a
tuple becomes a ``Tuple`` of constants, and ``TupleGetItem`` of a tuple's constant field
becomes that constant. Bottom-up, so a whole constant subgraph folds in one pass.

Not folded: an element-wise or broadcast call (or a fused group's call) whose result is more
than ``GROWTH`` times the bytes of all its inputs together and over ``MIN_BYTES``: it grows
only by broadcasting (``broadcast_to`` of a scalar to a big shape, ``add(c[64, 1], c[1, 64])``),
and a constant that size would cost more memory than computing it does time.
"""

from __future__ import annotations

import numpy as np

from ..interpreter import eval_call
from ..ir import (Call, Constant, GraphError, Module, TensorType, Tuple, TupleGetItem, TupleType,
                  describe)
from ..op.registry import Pattern, get
from .pass_manager import module_pass
from .rewrite import rewrite

GROWTH = 4
MIN_BYTES = 1024


def grows_by_broadcast(call: Call) -> bool:
    """Whether folding ``call`` would store a constant much larger than its inputs, made
    large only by broadcasting."""
    if not isinstance(call.type, TensorType) or (
            isinstance(call.op, str) and get(call.op).pattern > Pattern.BROADCAST):
        return False
    nbytes = sum(a.data.nbytes for a in call.args)
    return call.type.nbytes > max(GROWTH * nbytes, MIN_BYTES)


def as_constant(value, type_, name: str, call: Call):
    """``value`` as a Constant (a Tuple of them for a tuple type) of exactly ``type_``."""
    if isinstance(type_, TupleType):
        return Tuple([as_constant(v, t, name, call) for v, t in zip(value, type_.fields)])
    a = np.asarray(value)
    if a.shape != type_.shape:
        raise GraphError(f"FoldConstant: {describe(call)} evaluated to shape {a.shape}, but "
                         f"its type is {type_}")
    return Constant(a.astype(type_.dtype, copy=False), name)


def fold(n):
    if isinstance(n, TupleGetItem) and isinstance(n.tuple_value, Tuple):
        field = n.tuple_value.fields[n.index]
        return field if isinstance(field, Constant) else None
    if not (isinstance(n, Call) and all(isinstance(a, Constant) for a in n.args)):
        return None
    if grows_by_broadcast(n):
        return None
    value = eval_call(n, [a.data for a in n.args])
    name = next((a.name for a in n.args if a.name), "")
    return as_constant(value, n.type, name, n)


@module_pass(opt_level=2)
def FoldConstant(mod: Module) -> Module:
    return rewrite(mod, fold)
