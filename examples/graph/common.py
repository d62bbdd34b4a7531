"""Helpers shared by the graph examples: what a pass changed (calls, constants and their
bytes), that it kept the values (the numpy interpreter), and the built module's time."""

import time

import numpy as np

import tensorlang.graph as G


def stats(mod: G.Module) -> dict:
    nodes = mod.nodes()
    consts = [n for n in nodes if isinstance(n, G.Constant)]
    return {"nodes": len(nodes), "calls": len(mod.calls()), "constants": len(consts),
            "bytes": sum(c.data.nbytes for c in consts)}


def show(title: str, mod: G.Module) -> None:
    print(f"# {title}\n{mod}\n")


def effect(name: str, before: G.Module, after: G.Module) -> None:
    """One line per measure, ``name: before -> after``."""
    a, b = stats(before), stats(after)
    print(f"{name}: calls {a['calls']} -> {b['calls']}, nodes {a['nodes']} -> {b['nodes']}, "
          f"constants {a['constants']} ({a['bytes']} B) -> {b['constants']} ({b['bytes']} B)")


def check_values(before: G.Module, after: G.Module, inputs, rtol=1e-5) -> None:
    """The rewritten module computes what the original did (exits with an error if not)."""
    for want, got in zip(G.evaluate(before, *inputs), G.evaluate(after, *inputs)):
        if not np.allclose(got, want, rtol=rtol, atol=rtol):
            raise SystemExit(f"values differ: max error {np.abs(got - want).max()}")
    print("same values through the interpreter: yes")


def timed(mod: G.Module, inputs, repeat: int = 30) -> tuple:
    """(best seconds of ``repeat`` runs, kernel count) of ``mod`` built with ``G.build`` at
    opt level 0, so that only the passes the example ran differ."""
    lib = G.build(mod, opt_level=0)
    lib(*inputs)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        lib(*inputs)
        best = min(best, time.perf_counter() - t)
    return best, lib.kernel_count


def compare_built(before: G.Module, after: G.Module, inputs) -> None:
    (t0, k0), (t1, k1) = timed(before, inputs), timed(after, inputs)
    print(f"built: kernels {k0} -> {k1}, time {t0 * 1e6:.0f} us -> {t1 * 1e6:.0f} us")


def demonstrate(name: str, mod: G.Module, inputs, pass_=None, rtol=1e-5) -> G.Module:
    """Run the pass ``name`` (``G.transform.<name>()`` unless ``pass_`` is given) on ``mod``:
    print the IR before and after and the effect, check the values, time both builds."""
    out = (pass_ or getattr(G.transform, name)())(mod)
    show(f"before {name}", mod)
    show(f"after {name}", out)
    effect(name, mod, out)
    check_values(mod, out, inputs, rtol)
    compare_built(mod, out, inputs)
    return out
