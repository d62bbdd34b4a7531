"""Graph capture: how one PyTorch model with control flow leaves Python as a graph.

A compiler cannot work on Python code; it needs the model as a graph of tensor operations.
PyTorch has grown five ways of getting one, and each draws the line between "graph" and
"Python" in a different place. The model below has the three kinds of control flow that
separate them: an ``if`` on a tensor's *value* (data-dependent), a ``for`` loop over a fixed
count, and an ``if`` on a tensor's *shape*.

``torch.jit.trace`` (TorchScript tracing)
    Runs the model once on example inputs and records the ATen ops that ran.
    Captures: exactly the path that this input took; loops are unrolled.
    Misses: every branch. ``bool(tensor)`` is evaluated once and the outcome frozen (with a
    ``TracerWarning``), so the trace is silently wrong for inputs that would go the other way;
    the shape test is frozen too.

``torch.jit.script`` (TorchScript scripting)
    Compiles the Python source itself (a typed subset of Python) to TorchScript IR.
    Captures: control flow as ``prim::If`` / ``prim::Loop`` blocks, both branches.
    Misses: anything outside the subset (arbitrary Python, most libraries, dynamic typing);
    it needs annotations and, like tracing, is deprecated in favour of ``torch.compile``
    and ``torch.export``.

``torch.fx.symbolic_trace`` (FX)
    Runs ``forward`` with ``Proxy`` objects and records calls at the Python level
    (``call_module``, ``call_function``, ``call_method``), not ATen ops.
    Captures: straight-line code; loops over constants are unrolled.
    Misses: any ``if`` on a proxy, which raises ``TraceError`` -- and shapes are proxies too,
    so the shape test fails as well. ``concrete_args`` fixes an argument to a constant
    (and inserts an ``_assert`` that it keeps that value), which removes the branch.

Dynamo (``torch.compile``'s front end, ``torch._dynamo``)
    Hooks CPython's frame evaluation (PEP 523) and interprets the function's *bytecode*
    symbolically, putting tensor ops into an FX graph and running everything else at
    compile time. Shapes are concrete (or symbolic with ``dynamic=True``), so the shape test
    is decided while tracing and protected by a *guard*: the compiled code runs only while
    the guards (types, object ids, tensor dtype/shape/strides, constants) still hold, and a
    failed guard means recompiling. A branch on a tensor value cannot be decided, so Dynamo
    makes a *graph break*: it compiles the graph so far, lets Python run the ``if``, and
    resumes tracing in a new function for the branch taken. Nothing is wrong, the program is
    only cut into several graphs; ``torch._dynamo.explain`` lists them with the reasons.

AOTAutograd (``torch._functorch``, between Dynamo and the backend compiler)
    Re-traces Dynamo's torch-level graph with fake tensors *below* autograd in the
    dispatcher (see ``dispatch.py``), which yields one joint ATen graph of the forward and
    the backward; a partitioner splits it into a forward graph, a backward graph, and the
    activations the forward saves for the backward. On the way it *functionalizes* the
    program (in-place ops and views become out-of-place ops, so the graph has no mutation
    or aliasing) and applies *decompositions*, lowering the ~2000 ATen operators to the
    ~180 of Core ATen (``linear`` -> ``permute`` + ``addmm``, ...), which is what a backend
    such as tensorlang has to implement.

``torch.export.export``
    Whole-program capture for deployment: Dynamo (``strict=True``) or Python-level tracing
    with fake tensors (the default, non-strict), then AOTAutograd's functionalization, giving
    an ``ExportedProgram``: one ATen graph with parameters lifted to inputs, a graph
    signature, and shape constraints. No graph breaks are allowed, so data-dependent control
    flow is an error; ``torch.cond`` is the rewrite that captures both branches as
    subgraphs. ``ep.run_decompositions()`` lowers it to Core ATen.

The last section hands what was captured to tensorlang: ``torch.compile(model,
backend="tensorlang")`` (one tensorlang build per Dynamo graph, the ``if`` left to Python)
and ``tensorlang.frontend.from_exported_program`` of the model with its branch fixed.

Run: ``python -m examples.pytorch.capture``
"""

import contextlib
import io
import logging
import warnings

import torch
from torch import nn

FEATURES, BATCH = 8, 6


class Gate(nn.Module):
    """A layer with a data-dependent branch, a fixed loop and a shape-dependent branch."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(FEATURES, FEATURES)
        nn.init.zeros_(self.fc.bias)            # so that x and -x take opposite branches

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:                         # data-dependent: depends on the values
            h = torch.relu(h)
        else:
            h = torch.tanh(h)
        for _ in range(3):                      # fixed count: every method unrolls it
            h = h * 0.5 + x
        if x.shape[0] > 4:                      # shape-dependent: decided by the shape
            h = h - h.mean(dim=0, keepdim=True)
        return h


class GateFixed(nn.Module):
    """``Gate`` with both decisions made arguments, so that a tracer can fix them
    (FX's ``concrete_args``; export specializes the defaults)."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.fc = gate.fc                       # the same weights

    def forward(self, x, positive: bool = True, center: bool = True):
        h = self.fc(x)
        h = torch.relu(h) if positive else torch.tanh(h)
        for _ in range(3):
            h = h * 0.5 + x
        if center:
            h = h - h.mean(dim=0, keepdim=True)
        return h


def relu_branch(h):
    return torch.relu(h)


def tanh_branch(h):
    return torch.tanh(h)


class GateCond(nn.Module):
    """``Gate`` with the data-dependent ``if`` rewritten as ``torch.cond``: exportable."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.fc = gate.fc

    def forward(self, x):
        h = self.fc(x)
        h = torch.cond(h.sum() > 0, relu_branch, tanh_branch, (h,))
        for _ in range(3):
            h = h * 0.5 + x
        if x.shape[0] > 4:                      # static shape: export specializes it
            h = h - h.mean(dim=0, keepdim=True)
        return h


# --------------------------------------------------------------------------- helpers

def section(title: str) -> None:
    print(f"\n{'=' * 78}\n== {title}\n{'=' * 78}")


def summary(captured: str, missed: str) -> None:
    print(f"captured: {captured}")
    print(f"missed:   {missed}")


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def max_diff(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).detach().abs().max())


@contextlib.contextmanager
def quiet_failure():
    """A failed export prints the partial graph to stderr and logs warnings about the
    unbacked symbol it made for ``h.sum() > 0``; the example prints its own (shorter)
    account of the failure instead."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- the methods

def jit_trace(model, x_pos, x_neg):
    section("1. torch.jit.trace: record the ops that ran")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(model, x_pos)
    tracer_warnings = sorted({str(w.message).split(". ")[0] for w in caught
                              if w.category.__name__ == "TracerWarning"})
    for msg in tracer_warnings:
        print(f"TracerWarning: {msg}.")
    print(traced.code)
    print(f"traced on the relu branch, run on an input that takes the tanh branch: "
          f"max abs diff vs eager = {max_diff(traced(x_neg), model(x_neg)):.3f}")
    summary("the ops of the path this input took (relu branch, loop unrolled 3x, centering)",
            "both ifs: frozen as the example input decided them, silently wrong otherwise")


def jit_script(model):
    section("2. torch.jit.script: compile the source")
    scripted = torch.jit.script(model)
    print(scripted.code)
    kinds = [n.kind() for n in scripted.graph.nodes()]
    print(f"top-level prim::If nodes: {kinds.count('prim::If')}, "
          f"prim::Loop nodes: {kinds.count('prim::Loop')}")
    summary("both branches (prim::If) and the loop (prim::Loop), in TorchScript IR",
            "nothing here; in general any Python outside the TorchScript subset")


def fx_trace(model):
    section("3. torch.fx.symbolic_trace: run forward on Proxy objects")
    try:
        torch.fx.symbolic_trace(model)
    except torch.fx.proxy.TraceError as err:
        print(f"symbolic_trace(Gate) fails: {first_line(err)}")
    fixed = GateFixed(model)
    gm = torch.fx.symbolic_trace(fixed, concrete_args={"positive": True, "center": True})
    print("symbolic_trace(GateFixed, concrete_args={'positive': True, 'center': True}):")
    print(gm.code)
    summary("Python-level calls (call_module fc, torch.relu, operator.mul, ...), "
            "loop unrolled",
            "any if on a tensor, its value or its shape (TraceError); concrete_args "
            "fixes them")


def dynamo_explain(model, x_pos):
    section("4. Dynamo: symbolic bytecode execution with guards and graph breaks")
    torch._dynamo.reset()
    ex = torch._dynamo.explain(model)(x_pos)
    print(f"graph count: {ex.graph_count}")
    print(f"graph break count: {ex.graph_break_count}")
    for i, br in enumerate(ex.break_reasons):
        where = br.user_stack[-1] if br.user_stack else None
        loc = f" at line {where.lineno}: {where.line.split('#')[0].strip()}" if where else ""
        print(f"break {i}: {br.reason.splitlines()[0]}{loc}")
    for i, g in enumerate(ex.graphs):
        print(f"--- graph {i} ---{g.code}")
    shape_guards = [g for g in ex.out_guards if g.name == "L['x']"]
    print(f"guards: {len(ex.out_guards)} (on x: "
          f"{', '.join(sorted({t for g in shape_guards for t in g.guard_types or []}))}"
          " -- dtype, device, shape and strides)")
    summary("one graph per straight-line stretch; the shape test decided and guarded",
            "the value-dependent if: a graph break, Python decides it between graphs")


def aot_autograd(model, x_pos):
    section("5. AOTAutograd: forward and backward ATen graphs (functionalized, Core ATen)")
    from functorch.compile import make_boxed_func
    from torch._decomp import core_aten_decompositions
    from torch._dynamo.backends.common import aot_autograd as make_aot_backend

    def show(kind):
        def compiler(gm, example_inputs):
            ops = sorted({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
            print(f"--- {kind} graph: {len(ops)} distinct ops: {', '.join(ops)}{gm.code}")
            return make_boxed_func(gm.forward)     # AOTAutograd calls it with one list
        return compiler

    backend = make_aot_backend(fw_compiler=show("forward"), bw_compiler=show("backward"),
                               decompositions=core_aten_decompositions())
    torch._dynamo.reset()
    fixed = torch.compile(GateFixed(model), backend=backend)
    x = x_pos.clone().requires_grad_(True)
    fixed(x).sum().backward()                   # the backward graph compiles on first use
    summary("for the branch-free GateFixed: a forward graph that also returns the saved "
            "activations, and a backward graph; both Core ATen",
            "whatever Dynamo missed (it works graph by graph, after the graph breaks)")


def export(model, x_pos, x_neg):
    section("6. torch.export.export: one whole graph or an error")
    try:
        with quiet_failure():
            torch.export.export(model, (x_pos,))
    except Exception as err:                    # GuardOnDataDependentSymNode in non-strict
        print(f"export(Gate) fails: {first_line(err)}")
    try:
        with quiet_failure():
            torch.export.export(model, (x_pos,), strict=True)
    except Exception as err:                    # torch._dynamo.exc.Unsupported
        print(f"export(Gate, strict=True) fails: {first_line(err)}")
    ep = torch.export.export(GateCond(model), (x_pos,))
    print("export(GateCond), the if rewritten as torch.cond:")
    print(ep.graph_module.code)
    print(f"true branch subgraph:{ep.graph_module.true_graph_0.code}")
    print(f"false branch subgraph:{ep.graph_module.false_graph_0.code}")
    run = ep.module()
    print(f"torch.cond program vs eager: relu branch max abs diff "
          f"{max_diff(run(x_pos), model(x_pos)):.2e}, tanh branch "
          f"{max_diff(run(x_neg), model(x_neg)):.2e}")
    summary("one ATen graph, parameters lifted to inputs, both branches as cond subgraphs",
            "a plain Python if on a tensor value: an error, not a graph break")


# --------------------------------------------------------------------------- tensorlang

def tensorlang_part(model, x_pos, x_neg):
    section("7. Compiling what was captured with tensorlang")
    try:
        import tensorlang.frontend.torch_backend  # noqa: F401  (registers backend="tensorlang")
        from tensorlang.frontend import from_exported_program
        import tensorlang.graph as G
    except ImportError as err:
        print(f"tensorlang.frontend is not available ({err}): skipping the tensorlang part")
        return

    torch._dynamo.reset()
    compiled = torch.compile(model, backend="tensorlang")
    for name, x in (("relu branch", x_pos), ("tanh branch", x_neg)):
        with torch.no_grad():
            diff = max_diff(compiled(x), model(x))
        print(f"torch.compile(backend='tensorlang') vs eager, {name}: max abs diff {diff:.2e}")

    fixed = GateFixed(model)
    ep = torch.export.export(fixed, (x_pos,))   # defaults: positive=True, center=True
    mod = from_exported_program(ep)
    lib = G.build(mod)
    out = lib(x_pos.numpy())
    out = out[0] if isinstance(out, (list, tuple)) else out
    with torch.no_grad():
        diff = max_diff(out, model(x_pos))
    print(f"from_exported_program(GateFixed) + tensorlang.graph.build vs eager: "
          f"max abs diff {diff:.2e}")


def main():
    torch.manual_seed(0)
    model = Gate().eval()
    x = torch.randn(BATCH, FEATURES)
    with torch.no_grad():
        positive = bool(model.fc(x).sum() > 0)
    x_pos, x_neg = (x, -x) if positive else (-x, x)   # relu branch, tanh branch

    jit_trace(model, x_pos, x_neg)
    jit_script(model)
    fx_trace(model)
    dynamo_explain(model, x_pos)
    aot_autograd(model, x_pos)
    export(model, x_pos, x_neg)
    tensorlang_part(model, x_pos, x_neg)


if __name__ == "__main__":
    main()
