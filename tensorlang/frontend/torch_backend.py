"""``torch.compile(model, backend="tensorlang")``: a Dynamo backend built the way real ones
are (``torch._dynamo.backends.common.aot_autograd``).

1. Dynamo captures the Python bytecode into FX graphs (with guards; data-dependent control
   flow breaks the graph, as usual).
2. AOTAutograd functionalizes each graph, decomposes it to Core ATen, and, when gradients
   are needed, splits it into a forward and a backward graph.
3. Each ATen graph is partitioned: the maximal groups of ops the importer supports
   (``CapabilityBasedPartitioner``) are compiled by tensorlang, the rest runs in PyTorch
   (one warning names the unsupported ops and their counts; ``strict=True`` raises instead).
4. A compiled part is built on its first call, from the real input shapes (so a new batch
   size or sequence length builds again, cached by shapes, rather than giving a wrong
   result). For inference, the parameters Dynamo passes as graph inputs (AOTAutograd's
   static inputs) are lifted back into constants, so that batch-norm folding, constant
   folding and weight packing apply; a parameter changed in place (its version counter
   moved) builds again.

Options: ``torch.compile(model, backend="tensorlang", options={"opt_level": 3,
"tuning_log": "log.jsonl", "strict": False})``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import time
import warnings

import numpy as np

from ..dispatch import apply_history_best
from ..errors import TensorlangError
from .fx_importer import UnsupportedOpError, decompositions, import_graph, is_supported

OPTIONS = {"opt_level": 3, "tuning_log": None, "strict": False}


class TensorlangWarning(UserWarning):
    """Parts of a model run in PyTorch because tensorlang does not support their ops."""


def _options(options) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TensorlangError(f"torch.compile(backend='tensorlang'): unknown options {unknown}; "
                              f"known: {', '.join(OPTIONS)}")
    return {**OPTIONS, **options}


class CompiledPart:
    """An ATen FX graph run by tensorlang: built per input signature on first call."""

    def __init__(self, gm, static: set, opts: dict, name: str):
        self.gm, self.static, self.opts, self.name = gm, static, opts, name
        self.placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        self.cache: dict = {}
        self.builds: list = []            # (signature, seconds): what each (re)build cost

    def _signature(self, args) -> tuple:
        """What a build depends on: the inputs' shapes and dtypes (sizes as ints), and the
        identity and version counter of each lifted parameter (an in-place update or a
        replaced tensor builds again)."""
        import torch
        return tuple((a.shape, a.dtype, (id(a), a._version) if i in self.static else None)
                     if isinstance(a, torch.Tensor) else a for i, a in enumerate(args))

    def _build(self, args, sig):
        import torch
        from .. import graph as G
        t0 = time.perf_counter()
        constants = {p.name: a for i, (p, a) in enumerate(zip(self.placeholders, args))
                     if i in self.static and isinstance(a, torch.Tensor)}
        for p, a in zip(self.placeholders, args):          # real shapes and sizes
            p.meta["val"] = a
        imported = import_graph(self.gm, constants)
        log = self.opts["tuning_log"]
        with apply_history_best(log) if log else contextlib.nullcontext():
            lib = G.build(imported.module, opt_level=self.opts["opt_level"], name=self.name)
        index = {p: i for i, p in enumerate(self.placeholders)}
        entry = (lib, [index[p] for p in imported.inputs], imported.outputs)
        self.builds.append((sig, time.perf_counter() - t0))
        return entry

    def __call__(self, *args):
        import torch
        sig = self._signature(args)
        entry = self.cache.get(sig)
        if entry is None:
            entry = self.cache[sig] = self._build(args, sig)
        lib, inputs, outputs = entry
        arrays = [np.from_dlpack(args[i].detach()) for i in inputs]
        res = lib(*arrays)
        res = res if isinstance(res, list) else [res]
        return tuple(torch.from_numpy(res[v]) if kind == "node" else v for kind, v in outputs)


def _input_mutation(n) -> bool:
    """A ``copy_`` into a graph input: how AOTAutograd keeps an input mutation (a batch
    norm's running statistics in training) in the graph. PyTorch applies it after the
    compiled parts, as AOTAutograd expects: it is not an unsupported op."""
    import torch
    return n.target is torch.ops.aten.copy_.default and n.args[0].op == "placeholder"


def _unsupported(gm) -> collections.Counter:
    return collections.Counter(str(n.target) for n in gm.graph.nodes
                               if n.op == "call_function" and not is_supported(n)
                               and not _input_mutation(n))


def compile_graph(gm, static: set, opts: dict, name: str):
    """A callable running ``gm`` (an ATen graph): wholly by tensorlang when every op is
    supported, else partitioned."""
    missing = _unsupported(gm)
    if not missing and not any(n.op == "call_function" and _input_mutation(n)
                               for n in gm.graph.nodes):
        return CompiledPart(gm, static, opts, name)
    if missing:
        listing = ", ".join(f"{op} x{k}" for op, k in sorted(missing.items()))
        if opts["strict"]:
            raise UnsupportedOpError(f"tensorlang (strict): unsupported ops: {listing}")
        warnings.warn(f"tensorlang: these ops run in PyTorch: {listing}", TensorlangWarning,
                      stacklevel=2)
    from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
    from torch.fx.passes.operator_support import OperatorSupportBase

    class Support(OperatorSupportBase):
        def is_node_supported(self, submodules, node):
            return is_supported(node)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    static_nodes = {placeholders[i] for i in static}
    parts = CapabilityBasedPartitioner(gm, Support(), allows_single_node_partition=True
                                       ).propose_partitions()
    fused = CapabilityBasedPartitioner(gm, Support()).fuse_partitions(parts)
    for node in list(fused.graph.nodes):
        if node.op == "call_module" and node.target.startswith("fused_"):
            sub = getattr(fused, node.target)
            sub_static = {i for i, a in enumerate(node.args) if a in static_nodes}
            part = CompiledPart(sub, sub_static, opts, f"{name}_{node.target}")
            setattr(fused, node.target, _wrap(part))
    fused.recompile()
    return fused


def _wrap(part):
    """A module standing where the partitioner left the submodule ``part`` compiles."""
    import torch

    class Part(torch.nn.Module):
        def forward(self, *args):
            out = part(*args)
            return out[0] if len(out) == 1 and _single_output(part.gm) else out
    return Part()


def _single_output(gm) -> bool:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return not isinstance(out.args[0], (list, tuple))


def _static_indices() -> set:
    import torch
    ctx = torch._guards.TracingContext.try_get()
    if ctx is None or ctx.fw_metadata is None:
        return set()
    return set(ctx.fw_metadata.static_input_indices)


def torch_backend(gm, example_inputs, options=None, **_):
    """The Dynamo backend: AOTAutograd with Core ATen decompositions; the inference and
    forward/backward graphs compiled by ``compile_graph``."""
    from torch._decomp import core_aten_decompositions
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func
    opts = _options(options)
    count = itertools.count()

    def compiler(kind, lift_params):
        def compile_fn(g, inputs):
            static = _static_indices() if lift_params else set()
            return make_boxed_func(compile_graph(g, static, opts, f"{kind}{next(count)}"))
        return compile_fn
    return aot_autograd(fw_compiler=compiler("forward", False),
                        bw_compiler=compiler("backward", False),
                        inference_compiler=compiler("inference", True),
                        decompositions=decompositions(core_aten_decompositions()),
                        keep_inference_input_mutations=True)(gm, example_inputs)
