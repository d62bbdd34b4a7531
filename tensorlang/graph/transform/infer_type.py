"""InferType: re-infers the type of every call from its inputs and attributes.

Every node already carries its type (``make_call`` infers it when the node is made), so on
a graph built through ``G.op`` this pass changes nothing; it checks a graph that came from
elsewhere (JSON, a front end) and raises, naming the node, where a stored type is wrong."""

from __future__ import annotations

from ..ir import Call, GraphError, Module, describe
from ..op.registry import get, infer_call
from .pass_manager import module_pass


@module_pass(opt_level=0)
def InferType(mod: Module) -> Module:
    for n in mod.nodes():
        if isinstance(n, Call) and isinstance(n.op, str):
            t = infer_call(get(n.op), n.args, n.attrs)
            if t != n.type:
                raise GraphError(f"InferType: {describe(n)} is typed {n.type} but its inputs "
                                 f"and attributes give {t}")
    return mod
