"""A straightforward interpreter: each node evaluated with its op's numpy reference
(``OpDef.ref``), one after another. It is the meaning of a graph: the reference the
compiled module is tested against, and what ``FoldConstant`` runs on constant subgraphs."""

from __future__ import annotations

import numpy as np

from .ir import (Call, Constant, Function, GraphError, Module, Tuple, TupleGetItem, Var,
                 post_order)
from .op.registry import get


def eval_call(call: Call, args: list):
    """The value of ``call`` given its arguments' values."""
    if isinstance(call.op, Function):
        return eval_nodes([call.op.body], dict(zip(call.op.params, args)))[0]
    out = get(call.op).ref(args, call.attrs)
    # the call's type decides the dtype (a Python number takes the tensor's dtype, as in
    # the computes; numpy would promote a float32 tensor times a float64 scalar)
    out = np.asarray(out).astype(call.type.dtype, copy=False)
    # (np.ascontiguousarray alone would make a 0-d value, a full reduction's, 1-d)
    return out if out.flags.c_contiguous else np.ascontiguousarray(out)


def eval_nodes(roots, env: dict) -> list:
    """The values of ``roots``; ``env`` gives the values of the variables they read."""
    values = dict(env)
    for n in post_order(roots):
        if n in values:
            continue
        if isinstance(n, Var):
            raise GraphError(f"evaluate: no value for the variable {n.name!r}")
        if isinstance(n, Constant):
            values[n] = n.data
        elif isinstance(n, Call):
            values[n] = eval_call(n, [values[a] for a in n.args])
        elif isinstance(n, Tuple):
            values[n] = tuple(values[f] for f in n.fields)
        elif isinstance(n, TupleGetItem):
            values[n] = values[n.tuple_value][n.index]
        else:
            raise GraphError(f"evaluate: cannot evaluate a {type(n).__name__}")
    return [values[r] for r in roots]


def evaluate(mod: Module, *inputs) -> list:
    """The outputs of ``mod`` for ``inputs`` (numpy arrays, in the order of ``mod.inputs``)."""
    from .executor import check_inputs
    arrays = check_inputs(mod.inputs, inputs, "evaluate")
    return eval_nodes(list(mod.outputs), dict(zip(mod.inputs, arrays)))
