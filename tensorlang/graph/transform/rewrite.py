"""Rebuilding a graph: the one helper every rewriting pass uses.

``rewrite(mod, fn)`` visits the nodes bottom-up (inputs first). Each node is first rebuilt
over its already rewritten inputs (a node whose inputs did not change is kept as it is, so
identity is preserved where nothing changed), then ``fn(node)`` may return a replacement,
or None to keep it. Calls are rebuilt through ``make_call``, so every new node is
type-checked."""

from __future__ import annotations

from ..ir import Call, Function, Module, Tuple, TupleGetItem, post_order
from ..op.registry import get, infer_call


def with_args(n, args):
    """``n`` over new inputs ``args`` (``n`` itself when they are the same nodes)."""
    if isinstance(n, Call):
        if all(a is b for a, b in zip(args, n.args)):
            return n
        if isinstance(n.op, Function):
            return Call(n.op, tuple(args), n.attrs, n.type)
        return Call(n.op, tuple(args), n.attrs, infer_call(get(n.op), tuple(args), n.attrs))
    if isinstance(n, Tuple):
        return n if all(a is b for a, b in zip(args, n.fields)) else Tuple(args)
    if isinstance(n, TupleGetItem):
        return n if args[0] is n.tuple_value else TupleGetItem(args[0], n.index)
    return n


def rewrite_nodes(roots, fn, memo: dict | None = None) -> list:
    """The rewritten ``roots`` (see the module docstring); ``memo`` maps old nodes to new."""
    from ..ir import children
    memo = {} if memo is None else memo
    for n in post_order(roots):
        if n in memo:
            continue
        m = with_args(n, [memo[c] for c in children(n)])
        r = fn(m)
        memo[n] = m if r is None else r
    return [memo[r] for r in roots]


def rewrite(mod: Module, fn) -> Module:
    """``mod`` with every node passed through ``fn`` (bottom-up)."""
    memo = {v: v for v in mod.inputs}
    return mod.with_outputs(rewrite_nodes(list(mod.outputs), fn, memo))
