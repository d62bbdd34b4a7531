"""Lowering: each fused group becomes one kernel of the operator library.

* A group with an anchor that has a tuned template (``OpDef.kernel``) is one call of that
  template, with the rest of the group as its ``epilogue`` (a function of the anchor's
  output tensor that rebuilds the group's element-wise ops with their ``compute``). The
  template runs under the current dispatch context: the records of an applied
  ``autotune.apply_history_best`` log, else the log shipped for this CPU, else its default.
  The epilogue is not part of the workload, so plain operators' records apply to fused
  kernels.
* A constant weight of such an anchor (``KernelSpec.weight``) is packed once, at build
  time, by the template's own ``weights="pack"`` kernel; the main kernel then takes the
  packed constant (``weights="prepacked"``).
* Any other group (element-wise, broadcast, injective chains; reductions without a
  template) is its ops' computes composed over placeholders, scheduled with
  ``ops.schedule_injective`` (which inlines every injective stage), so it is one loop nest.

``lower_group(call)`` returns a ``LoweredGroup``: the kernel's schedule and arguments and
which of the call's arguments each kernel parameter reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import te
from ..dispatch import trace
from ..ops import schedule_injective
from ..schedule import create_schedule
from .ir import Call, Constant, Var, post_order
from .op.registry import OPS, Pattern
from ..te.expr import get_const_tuple
from .transform.fuse_ops import kernel_view, pattern_of


@dataclass
class LoweredGroup:
    name: str
    schedule: object
    args: list              # te tensors: kernel parameters, output last
    binding: list           # for each parameter but the output: an index into call.args
    ops: list               # the op names of the group, in order
    template: str | None    # the anchor's op when a tuned template was used
    pack: tuple | None = None   # (schedule, [W, Wpacked], call arg index) to pack a weight
    dispatch: tuple | None = None   # (workload, where its config came from) of the template


def _body(fn) -> list:
    """The op calls of a fused function, in order."""
    return [n for n in post_order(fn.body) if isinstance(n, Call)]


def _value(node, env: dict, placeholder, numbers: bool):
    """The te value of a group node: computed, a parameter's placeholder, or a scalar
    constant (a number next to tensor inputs, as type inference treats it; else a 0-d
    tensor)."""
    if node in env:
        return env[node]
    if isinstance(node, Constant) and node.data.ndim == 0:
        v = node.data.item()
        if numbers:
            return v
        return te.compute((), lambda: te.const(v, node.type.dtype), name="scalar")
    if isinstance(node, Var):
        return placeholder(node)
    raise KeyError(node)


def _compose(nodes, env: dict, placeholder):
    for n in nodes:
        numbers = any(a.type.shape != () for a in n.args)
        env[n] = OPS[n.op].compute([_value(a, env, placeholder, numbers) for a in n.args],
                                   n.attrs)
    return env[nodes[-1]]


def lower_group(call: Call, name: str) -> LoweredGroup:
    """The kernel of the fused call ``call``; a templated one records its workload and
    where its config came from (an applied log, the shipped log, the default)."""
    with trace() as t:
        g = _lower(call, name)
    if g.template is not None and t.sources:
        g.dispatch = t.sources[-1]           # the kernel's own (last) template call
    return g


def _lower(call: Call, name: str) -> LoweredGroup:
    fn = call.op
    nodes = _body(fn)
    param_index = {p: i for i, p in enumerate(fn.params)}
    ops = [n.op for n in nodes]
    anchor = next((n for n in nodes if pattern_of(n) in (Pattern.OUT_FUSABLE, Pattern.REDUCTION)),
                  None)
    if anchor is not None:
        lowered = _lower_template(call, anchor, nodes, param_index, name, ops)
        if lowered is not None:
            return lowered
    # generic: compose the computes, one injective loop nest (or a default schedule)
    placeholders: dict = {}
    order: list = []

    def placeholder(p):
        if p not in placeholders:
            placeholders[p] = te.placeholder(p.type.shape, name=p.name, dtype=p.type.dtype)
            order.append(p)
        return placeholders[p]
    out = _compose(nodes, {}, placeholder)
    s = create_schedule(out.op)
    if all(pattern_of(n) <= Pattern.INJECTIVE for n in nodes):
        schedule_injective(s, out)
    else:
        for st in s.stages:
            if st.op is not out.op and isinstance(st.op, te.ComputeOp) and not st.op.reduce_axis:
                st.compute_inline()
    return LoweredGroup(name, s, [placeholders[p] for p in order] + [out],
                        [param_index[p] for p in order], ops, None)


def _lower_template(call, anchor, nodes, param_index, name, ops):
    spec = OPS[anchor.op].kernel
    types = [a.type for a in anchor.args]
    epilogue_nodes = [n for n in nodes if n is not anchor]
    out_shape = anchor.type.shape
    order: list = []

    def epilogue(y):
        placeholders: dict = {}
        order.clear()                 # (in case a template builds its epilogue twice)
        kshape = get_const_tuple(y.shape)

        def placeholder(p):
            if p not in placeholders:
                if kshape == tuple(out_shape):  # no view (batch_norm's vectors are not broadcast)
                    shape = p.type.shape
                else:
                    shape = kernel_view(p.type.shape, out_shape, kshape)
                if shape is None:
                    raise AssertionError(f"{name}: {p.type} has no view next to {kshape}")
                placeholders[p] = te.placeholder(shape, name=p.name, dtype=p.type.dtype)
                order.append(p)
            return placeholders[p]
        out = _compose(epilogue_nodes, {anchor: y}, placeholder)
        return out, [placeholders[p] for p in order]

    epi = epilogue if epilogue_nodes else None
    w = spec.weight
    pack = None
    weights = "inline"
    if w is not None and anchor.args[w] in param_index \
            and isinstance(call.args[param_index[anchor.args[w]]], Constant):
        built = spec.build(types, anchor.attrs, None, "pack")
        if built is not None:
            pack = (*built, param_index[anchor.args[w]])
            weights = "prepacked"
    built = spec.build(types, anchor.attrs, epi, weights)
    if built is None:
        if pack is None:
            return None
        pack, weights = None, "inline"
        built = spec.build(types, anchor.attrs, epi, weights)
        if built is None:
            return None
    s, args = built
    binding = [param_index[a] for a in anchor.args] + [param_index[p] for p in order]
    if len(binding) != len(args) - 1:
        raise AssertionError(f"{name}: the template gave {len(args)} arguments for "
                             f"{len(binding)} inputs")
    return LoweredGroup(name, s, list(args), binding, ops, anchor.op, pack)

