"""PlanMemory: the arena plan of random fused graphs checked against live ranges recomputed
here (no two values live at the same step share a byte, except a recorded in-place
handover), built modules that run on the plan computing what the numpy interpreter does,
reuse and in-place on a chain, and conv2d's data input never written in place."""

import numpy as np
import pytest

import tensorlang.graph as G
from tensorlang.graph.ir import Call, Function, Tuple, TupleGetItem, post_order
from tensorlang.graph.op.registry import OPS, Pattern
from tensorlang.graph.transform.plan_memory import ALIGN, inplace_candidates

from .conftest import run_python

try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:           # pragma: no cover
    st = None

UNARY = ["relu", "tanh", "sigmoid", "negative", "abs"]
BINARY = ["add", "multiply", "subtract", "maximum"]


# --------------------------------------------------------------------------- random graphs

def random_module(draw, n_ops=8):
    """A random graph of element-wise, broadcast, reduction, injective, conv2d and dense ops
    over small shapes. ``draw(lo, hi)`` picks an int in [lo, hi] (a hypothesis draw or a
    seeded generator), so the same code makes the property test's graphs and the built ones."""
    rng = np.random.default_rng(draw(0, 2**16))

    def const(*shape, fan_in=None):
        scale = np.sqrt(fan_in or shape[-1])
        return G.const((rng.standard_normal(shape) / scale).astype(np.float32))

    four_d = draw(0, 1)
    x = G.var("x", (1, 4, 6, 6) if four_d else (3, 8))
    nodes = [x]
    for _ in range(n_ops):
        a = nodes[draw(max(0, len(nodes) - 3), len(nodes) - 1)]   # mostly recent nodes
        same = [n for n in nodes if n.shape == a.shape and n is not a]
        kind = draw(0, 8)
        if kind == 0:
            y = getattr(G.op, UNARY[draw(0, len(UNARY) - 1)])(a)
        elif kind == 1 and same:
            y = getattr(G.op, BINARY[draw(0, 3)])(a, same[draw(0, len(same) - 1)])
        elif kind == 2:
            y = getattr(G.op, BINARY[draw(0, 3)])(a, const(a.shape[-1]))   # a row broadcast
        elif kind == 3:
            y = G.op.softmax(a, axis=-1)
        elif kind == 4:
            s = G.op.sum(a, axis=-1, keepdims=True)
            y = a - s if draw(0, 1) else s
        elif kind == 5 and len(a.shape) == 4:
            f = a.shape[1] if draw(0, 1) else 2
            y = G.op.conv2d(a, const(f, a.shape[1], 3, 3, fan_in=9 * a.shape[1]), padding=1)
        elif kind == 5 and len(a.shape) == 2:
            y = G.op.dense(a, const(a.shape[1] if draw(0, 1) else 4, a.shape[1]))
        elif kind == 6 and len(a.shape) == 2:
            y = G.op.transpose(a, axes=(1, 0))
        elif kind == 6:
            y = G.op.reshape(a, newshape=(a.shape[0] * a.shape[1] * a.shape[2], a.shape[3]))
        elif kind == 7 and same:
            y = G.Tuple([a, same[draw(0, len(same) - 1)]])[draw(0, 1)]
        else:
            y = G.op.relu(a)
        nodes.append(y)
    outs = [nodes[-1]]
    if draw(0, 1):                      # an earlier value is an output too
        extra = nodes[draw(1, len(nodes) - 1)]
        outs = [G.Tuple([outs[0], extra])] if draw(0, 1) else outs + [extra]
    return G.Module([x], outs)


def seeded_draw(seed):
    rng = np.random.default_rng(seed)
    return lambda lo, hi: int(rng.integers(lo, hi + 1))


# --------------------------------------------------------------------------- the check

def values_of(n):
    """The fused calls whose storage ``n`` stands for (tuples followed), for this test."""
    if isinstance(n, Tuple):
        return [c for f in n.fields for c in values_of(f)]
    if isinstance(n, TupleGetItem):
        t = n.tuple_value
        return values_of(t.fields[n.index] if isinstance(t, Tuple) else t)
    return [n] if isinstance(n, Call) else []


def live_intervals(mod):
    """intermediate -> [first step, last step], recomputed here from the fused graph."""
    steps = [n for n in mod.nodes() if isinstance(n, Call)]
    assert all(isinstance(n.op, Function) for n in steps)
    outs = {c for o in mod.outputs for c in values_of(o)}
    where = {n: t for t, n in enumerate(steps)}
    live = {n: [t, t] for t, n in enumerate(steps) if n not in outs}
    for t, n in enumerate(steps):
        for a in n.args:
            for v in values_of(a):
                if v in live:
                    assert where[v] < t
                    live[v][1] = max(live[v][1], t)
    return live, where


def aligned(n):
    return -(-n.type.nbytes // ALIGN) * ALIGN


def check_plan(mod):
    plan = mod.attrs["memory_plan"]
    live, where = live_intervals(mod)
    assert set(plan.offsets) == set(live)
    assert plan.naive_bytes == sum(aligned(n) for n in live)
    assert plan.arena_bytes <= plan.naive_bytes
    for n, off in plan.offsets.items():
        assert off % ALIGN == 0 and 0 <= off and off + n.type.nbytes <= plan.arena_bytes
    pairs = set(plan.inplace)
    for n, src in pairs:       # the handover: src read last by n, same type, same bytes
        assert src in live and n in live and live[src][1] == where[n]
        assert src.type == n.type and plan.offsets[src] == plan.offsets[n]
        fn = n.op
        for i, a in enumerate(n.args):
            if src in values_of(a):
                p = fn.params[i]
                readers = [m for m in post_order(fn.body) if isinstance(m, Call) and p in m.args]
                assert all(OPS[m.op].pattern <= Pattern.BROADCAST for m in readers)
    items = sorted(live.items(), key=lambda kv: where[kv[0]])
    for i, (a, (sa, ea)) in enumerate(items):
        for b, (sb, eb) in items[i + 1:]:
            if sb > ea:                 # b starts after a's last reader: no overlap in time
                continue
            lo_a, lo_b = plan.offsets[a], plan.offsets[b]
            if (b, a) in pairs:
                assert sb == ea         # the ranges meet only at the handover step
                continue
            assert lo_a + a.type.nbytes <= lo_b or lo_b + b.type.nbytes <= lo_a, \
                f"{a} [{sa},{ea}] and {b} [{sb},{eb}] share bytes"
    takers = {n for n, _ in pairs}          # at the handover step, one block for two values
    peak = max((sum(aligned(n) for n, (s, e) in items if s <= t <= e
                    and not (n in takers and t == s)) for t in range(len(where))), default=0)
    assert plan.peak_live_bytes == peak <= plan.arena_bytes
    return plan


# --------------------------------------------------------------------------- tests

if st is not None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data(), st.integers(0, 3))
    def test_plan_never_overlaps_live_values(data, level):
        mod = random_module(lambda lo, hi: data.draw(st.integers(lo, hi)),
                            n_ops=data.draw(st.integers(1, 12)))
        check_plan(G.optimize(mod, opt_level=level))
else:                           # pragma: no cover
    @pytest.mark.parametrize("level", range(4))
    def test_plan_never_overlaps_live_values(level):
        for seed in range(60):
            check_plan(G.optimize(random_module(seeded_draw(seed), 1 + seed % 12), opt_level=level))


def test_random_graphs_reuse_memory_somewhere():
    """Over many random graphs, the plan reuses blocks and writes in place (the property
    test would pass vacuously if it never did)."""
    reused = inplace = 0
    for seed in range(40):
        plan = G.optimize(random_module(seeded_draw(seed), 10), opt_level=0).attrs["memory_plan"]
        reused += plan.arena_bytes < plan.naive_bytes
        inplace += len(plan.inplace)
    assert reused >= 10 and inplace >= 10


BUILD_CASES = [(3, 0), (5, 0), (11, 2), (17, 3)]


@pytest.mark.parametrize("seed,level", BUILD_CASES)
def test_built_random_graph_matches_interpreter(seed, level):
    """The compiled module runs on the planned arena: a plan that let a kernel overwrite a
    live value would change the outputs."""
    mod = random_module(seeded_draw(seed), n_ops=7)
    lib = G.build(mod, opt_level=level)
    check_plan(lib.graph)
    xv = np.random.default_rng(seed).standard_normal(mod.inputs[0].shape).astype(np.float32)
    got, want = lib(xv), G.evaluate(mod, xv)
    got = got if isinstance(got, list) else [got]
    flat = lambda vs: [a for v in vs for a in (v if isinstance(v, tuple) else (v,))]
    for g, w in zip(flat(got), flat(want)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_build_cases_exercise_reuse_and_inplace():
    plans = [G.optimize(random_module(seeded_draw(s), 7), opt_level=k).attrs["memory_plan"]
             for s, k in BUILD_CASES]
    assert any(p.inplace for p in plans)
    assert any(p.arena_bytes < p.naive_bytes for p in plans)


def chain():
    x = G.var("x", (16, 32))
    a = G.op.relu(x)                        # 2 KiB each
    b = G.op.exp(a)
    c = b + G.op.tanh(b)
    d = G.op.sigmoid(G.op.transpose(c, axes=(1, 0)))
    return G.Module([x], G.op.sum(d, axis=1))


def test_chain_reuses_blocks_and_writes_in_place():
    mod = G.optimize(chain(), opt_level=0)           # one op per group
    plan = check_plan(mod)
    names = {n: n.op.name for n in plan.offsets}
    # relu, exp, tanh, add, transpose, sigmoid: 6 x 2 KiB naive; at most 2 live at once
    assert plan.naive_bytes == 6 * 2048
    assert plan.arena_bytes == plan.peak_live_bytes == 2 * 2048
    pairs = {(names[n], names[s]) for n, s in plan.inplace}
    # exp takes relu's block, add takes exp's (read last by it) or tanh's; sigmoid takes
    # the transpose's; the transpose never takes the add's (it reads across indices)
    assert ("fused_exp", "fused_relu") in pairs and ("fused_sigmoid", "fused_transpose") in pairs
    assert any(n == "fused_add" for n, _ in pairs)
    assert not any(n == "fused_transpose" for n, _ in pairs)
    assert "# memory_plan: planned 4.00 KiB (arena) vs naive 12.00 KiB" in str(mod)


def test_chain_built_in_place_matches_interpreter():
    mod = chain()
    lib = G.build(mod, opt_level=0)
    assert lib.memory.inplace and lib.arena_bytes == 4096
    xv = np.random.default_rng(1).standard_normal((16, 32)).astype(np.float32)
    np.testing.assert_allclose(lib(xv), G.evaluate(mod, xv)[0], rtol=1e-5, atol=1e-5)


def conv_residual(tail=False):
    """y = relu(x); z = conv2d(y) + r, with y and r intermediates of the conv's output type,
    both read last by the conv's group; ``tail``: a softmax reads the conv's group (which
    is then an intermediate too)."""
    rng = np.random.default_rng(0)
    x = G.var("x", (1, 4, 6, 6))
    y = G.op.relu(x)
    r = G.op.tanh(x)
    w = G.const((rng.standard_normal((4, 4, 3, 3)) / 6).astype(np.float32), "w")
    z = G.op.conv2d(y, w, padding=1)
    out = G.op.sigmoid(z + r)
    return G.Module([x], G.op.softmax(out, axis=-1) if tail else out)


@pytest.mark.parametrize("level", [0, 1, 3])
def test_conv2d_data_input_is_never_in_place(level):
    mod = G.optimize(conv_residual(), opt_level=level)
    plan = check_plan(mod)
    for n in mod.nodes():
        if isinstance(n, Call) and n.op.attrs.get("anchor", "").startswith("conv2d"):
            fn = n.op
            anchor = next(m for m in post_order(fn.body)
                          if isinstance(m, Call) and m.op.startswith("conv2d"))
            data = fn.params.index(anchor.args[0])
            assert data not in inplace_candidates(n)
            assert all(s not in values_of(n.args[data]) for m, s in plan.inplace if m is n)


def test_conv2d_epilogue_input_is_in_place():
    """At opt level 1 the conv takes its epilogue (+ r, sigmoid): r's block is handed over
    (read only at the output's index), y's (the conv's data) is not."""
    mod = G.optimize(conv_residual(), opt_level=1)
    conv = next(n for n in mod.nodes() if isinstance(n, Call) and "anchor" in n.op.attrs)
    ops = [m.op for m in post_order(conv.op.body) if isinstance(m, Call)]
    assert ops == ["conv2d", "add", "sigmoid"]
    assert inplace_candidates(conv) == [2]            # (data, weight, r)
    assert mod.attrs["memory_plan"].inplace == ()    # the conv's result is an output
    plan = check_plan(G.optimize(conv_residual(tail=True), opt_level=1))
    assert [(n.op.name, s.op.name) for n, s in plan.inplace] == \
        [("fused_conv2d_add_sigmoid", "fused_tanh")]
    mod = conv_residual(tail=True)          # the template's epilogue reads r where it writes
    lib = G.build(mod, opt_level=1)
    assert len(lib.memory.inplace) == 1
    xv = np.random.default_rng(2).standard_normal((1, 4, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(lib(xv), G.evaluate(mod, xv)[0], rtol=1e-5, atol=1e-6)


def test_example_runs():
    r = run_python("import runpy; runpy.run_module('examples.graph.memory_planning', "
                   "run_name='__main__')", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# memory_plan: planned" in r.stdout
    assert "in place:" in r.stdout and "max |error|" in r.stdout


def test_check_catches_a_plan_that_overlaps_live_values():
    """The check above is not vacuous: every intermediate at offset 0 fails it."""
    from tensorlang.graph.transform.plan_memory import MemoryPlan
    mod = G.optimize(chain(), opt_level=0)
    plan = mod.attrs["memory_plan"]
    bad = MemoryPlan({n: 0 for n in plan.offsets}, plan.arena_bytes, plan.naive_bytes,
                     (), plan.peak_live_bytes)
    with pytest.raises(AssertionError, match="share bytes"):
        check_plan(mod.with_attrs(memory_plan=bad))
