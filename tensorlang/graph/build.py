"""``G.build``: optimise a graph, compile every fused group into one code module, pack the
constant weights, and make the executor's plan.

1. ``optimize`` (the default pipeline under the current ``PassContext``, or ``opt_level``);
   if the context disabled ``FuseOps`` or ``PlanMemory``, their level-0 forms still run,
   because kernels need groups and the executor needs storage.
2. Each fused call is lowered (``graph.lower``): groups that compute the same thing on the
   same shapes (the repeated blocks of a ResNet or a transformer) share one kernel.
3. All kernels, and the packing kernels of constant weights, go into one LLVM module,
   compiled once; the packing kernels then run once on the constants.
4. Every value gets a place: inputs, constants (folded and packed), outputs (fresh per
   call), intermediates at the memory plan's offsets in one arena.
"""

from __future__ import annotations

import time

import numpy as np

from .. import driver
from ..codegen.target import Target
from ..errors import TensorlangTypeError
from .executor import CompiledModule, InputSpec, OutputSpec, Step
from .ir import Call, Constant, Function, Module, Tuple, TupleGetItem, structural_key
from .lower import lower_group
from .pipeline import optimize
from .serialize import to_json
from .transform import FuseOps, PlanMemory
from .transform.plan_memory import output_nodes


def group_key(call: Call) -> tuple:
    """Equal for fused calls that compile to the same kernel: structurally equal functions
    (parameters by position and type) with the same parameters constant (a constant weight
    is packed)."""
    params = {p: f"param {i}: {p.type}" for i, p in enumerate(call.op.params)}
    return (structural_key(call.op.body, params), tuple(isinstance(a, Constant) for a in call.args))


def _resolve(n):
    """A TupleGetItem of a literal tuple is its field (what DCE does at opt level >= 1)."""
    while isinstance(n, TupleGetItem) and isinstance(n.tuple_value, Tuple):
        n = n.tuple_value.fields[n.index]
    return n


def build(mod: Module, opt_level: int | None = None, target=None,
          name: str = "graph") -> CompiledModule:
    """Compile ``mod``: returns a ``CompiledModule`` (``lib(*inputs)``, ``lib.profile``,
    ``lib.memory``, ``lib.export_library``)."""
    if not isinstance(mod, Module):
        raise TensorlangTypeError(f"build: expected a G.Module, got {type(mod).__name__}")
    if target is not None:
        with Target(target) if not isinstance(target, Target) else target:
            return build(mod, opt_level, None, name)
    t0 = time.perf_counter()
    opt = optimize(mod, opt_level)
    if any(isinstance(n, Call) and isinstance(n.op, str) for n in opt.nodes()):
        opt = FuseOps(fuse_opt_level=0)(opt)
        opt = PlanMemory()(opt)         # a plan made before the fallback fusion is stale
    if "memory_plan" not in opt.attrs:
        opt = PlanMemory()(opt)
    plan = opt.attrs["memory_plan"]

    kernels, lowered, steps_of = {}, {}, []
    for n in opt.nodes():
        if not (isinstance(n, Call) and isinstance(n.op, Function)):
            continue
        key = group_key(n)
        if key not in lowered:
            kname = f"{name}_k{len(lowered)}_{n.op.name}"
            g = lower_group(n, kname)
            lowered[key] = g
            kernels[kname] = (g.schedule, g.args)
            if g.pack is not None:
                kernels[kname + "_pack"] = (g.pack[0], g.pack[1])
        steps_of.append((n, lowered[key]))
    code = driver.build(kernels) if kernels else None

    # places: inputs, constants, outputs, arena
    refs: dict = {v: ("in", i) for i, v in enumerate(opt.inputs)}
    constants: list = []
    const_index: dict = {}

    def const_ref(c: Constant, packed=None):
        key = (c, None if packed is None else id(packed))
        if key not in const_index:
            data = c.data if packed is None else packed
            const_index[key] = len(constants)
            constants.append(np.ascontiguousarray(data))
        return ("const", const_index[key])

    flat_outputs = [_resolve(o) for o in output_nodes(opt)]
    out_specs, out_slot = [], {}
    for o in flat_outputs:
        if isinstance(o, Call) and o not in out_slot:
            out_slot[o] = len(out_slot)
    steps = []
    packed_cache: dict = {}
    for n, g in steps_of:
        args = [_resolve(a) for a in n.args]
        arg_refs = []
        for i in g.binding:
            a = args[i]
            if isinstance(a, Constant):
                if g.pack is not None and i == g.pack[2]:
                    if (a, g.name) not in packed_cache:
                        w = np.ascontiguousarray(a.data)
                        wp = np.empty([int(getattr(d, "value", d)) for d in g.pack[1][1].shape],
                                      g.pack[1][1].dtype)
                        code[g.name + "_pack"](w, wp)
                        packed_cache[(a, g.name)] = wp
                    arg_refs.append(const_ref(a, packed_cache[(a, g.name)]))
                else:
                    arg_refs.append(const_ref(a))
            elif a in refs:
                arg_refs.append(refs[a])
            else:
                raise AssertionError(f"build: no place for {a}")
        refs[n] = ("out", out_slot[n]) if n in out_slot else ("arena", plan.offsets[n])
        steps.append(Step(g.name, arg_refs + [refs[n]], n.op.name, g.ops, g.template,
                          g.dispatch))

    for o in flat_outputs:
        ref = const_ref(o) if isinstance(o, Constant) else refs[o]
        out_specs.append(OutputSpec(o.type.shape, o.type.dtype, list(ref)))
    structure, k = [], 0
    for o in opt.outputs:
        if isinstance(o, Tuple):
            structure.append(list(range(k, k + len(o.fields))))
            k += len(o.fields)
        else:
            structure.append(k)
            k += 1
    return CompiledModule(code, steps, [InputSpec(v.name, v.type.shape, v.type.dtype)
                                        for v in opt.inputs], out_specs, constants,
                          plan.arena_bytes, plan, graph_json=to_json(opt), structure=structure,
                          compile_seconds=time.perf_counter() - t0, graph=opt)
