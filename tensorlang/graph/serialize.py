"""JSON serialization of graph modules (the format ``export_library`` stores).

``to_json(mod)`` gives a dict: ``inputs`` (names, shapes, dtypes), ``nodes`` (every node in
execution order, each referring to earlier nodes by index; a fused call's function is a
nested node list over its parameters), ``outputs``, and ``constants`` (name, dtype, shape;
their data go separately, as the list ``constant_arrays(mod)`` in the same order).
``from_json(d, arrays)`` rebuilds the module: op calls go through ``make_call``, so a
loaded graph is type-checked again."""

from __future__ import annotations

import numpy as np

from .ir import (Attrs, Call, Constant, Function, GraphError, Module, TensorType, Tuple,
                 TupleGetItem, Var, post_order)
from .op.registry import make_call


def _attr(v):
    return [_attr(x) for x in v] if isinstance(v, tuple) else v


def _unattr(v):
    return tuple(_unattr(x) for x in v) if isinstance(v, list) else v


class _Writer:
    def __init__(self):
        self.constants: list = []
        self.const_index: dict = {}

    def nodes(self, roots, env: dict) -> tuple:
        index = dict(env)
        out = []
        for n in post_order(roots):
            if n in index:
                continue
            if isinstance(n, Var):
                raise GraphError(f"to_json: free variable {n.name!r}")
            if isinstance(n, Constant):
                if n not in self.const_index:
                    self.const_index[n] = len(self.constants)
                    self.constants.append(n)
                d = {"const": self.const_index[n]}
            elif isinstance(n, Call) and isinstance(n.op, Function):
                fn = n.op
                penv = {p: ["param", i] for i, p in enumerate(fn.params)}
                body, (ret,) = self.nodes([fn.body], penv)
                d = {"fn": {"name": fn.name, "attrs": {k: _attr(v) for k, v in fn.attrs.items()},
                            "params": [[p.name, list(p.type.shape), p.type.dtype] for p in fn.params],
                            "nodes": body, "ret": ret},
                     "args": [index[a] for a in n.args]}
            elif isinstance(n, Call):
                d = {"op": n.op, "args": [index[a] for a in n.args],
                     "attrs": {k: _attr(v) for k, v in n.attrs.items()}}
            elif isinstance(n, Tuple):
                d = {"tuple": [index[f] for f in n.fields]}
            elif isinstance(n, TupleGetItem):
                d = {"get": index[n.tuple_value], "index": n.index}
            else:
                raise GraphError(f"to_json: cannot write a {type(n).__name__}")
            index[n] = len(out)
            out.append(d)
        return out, [index[r] for r in roots]


def to_json(mod: Module) -> dict:
    w = _Writer()
    env = {v: ["input", i] for i, v in enumerate(mod.inputs)}
    nodes, outputs = w.nodes(list(mod.outputs), env)
    return {"format": "tensorlang.graph/1",
            "inputs": [[v.name, list(v.type.shape), v.type.dtype] for v in mod.inputs],
            "nodes": nodes, "outputs": outputs,
            "constants": [[c.name, c.type.dtype, list(c.type.shape)] for c in w.constants]}


def constant_arrays(mod: Module) -> list:
    """The constants' data, in the order ``to_json`` numbers them."""
    w = _Writer()
    w.nodes(list(mod.outputs), {v: ("input", i) for i, v in enumerate(mod.inputs)})
    return [c.data for c in w.constants]


def _read(nodes, env: list, consts: list):
    values: list = []

    def ref(r):
        if isinstance(r, list):               # ("input", i) / ("param", i), as JSON lists
            return env[r[1]]
        return values[r]
    for d in nodes:
        if "const" in d:
            values.append(consts[d["const"]])
        elif "fn" in d:
            f = d["fn"]
            params = [Var(n, TensorType(tuple(s), t)) for n, s, t in f["params"]]
            fvals = _read(f["nodes"], params, consts)
            body = fvals[f["ret"]] if not isinstance(f["ret"], list) else params[f["ret"][1]]
            fn = Function(params, body, f["name"],
                          Attrs({k: _unattr(v) for k, v in f["attrs"].items()}))
            values.append(Call(fn, tuple(ref(a) for a in d["args"]), Attrs(), body.type))
        elif "op" in d:
            values.append(make_call(d["op"], *[ref(a) for a in d["args"]],
                                    **{k: _unattr(v) for k, v in d["attrs"].items()}))
        elif "tuple" in d:
            values.append(Tuple([ref(a) for a in d["tuple"]]))
        elif "get" in d:
            values.append(TupleGetItem(ref(d["get"]), d["index"]))
        else:
            raise GraphError(f"from_json: unknown node {d}")
    return values


def from_json(d: dict, arrays: list) -> Module:
    if d.get("format") != "tensorlang.graph/1":
        raise GraphError(f"from_json: not a tensorlang graph (format {d.get('format')!r})")
    inputs = [Var(n, TensorType(tuple(s), t)) for n, s, t in d["inputs"]]
    consts = [Constant(np.asarray(a), name) for (name, _, _), a in zip(d["constants"], arrays)]
    values = _read(d["nodes"], inputs, consts)
    outs = [values[o] if not isinstance(o, list) else inputs[o[1]] for o in d["outputs"]]
    return Module(inputs, outs)
