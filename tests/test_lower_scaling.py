"""Compile time stays linear in the size of the computation: a long chain of inlined
element-wise stages is bound with Lets (one per stage) instead of being copied out
exponentially, and the traversal helpers visit a shared node once."""

import time

import numpy as np
import pytest

import tensorlang as tl
from benchmarks.lower_chain import chain, reference
from tensorlang.arith import free_vars, rewrite, substitute, walk
from tensorlang.te.expr import Binary, Let, Select, Var


@pytest.mark.parametrize("schedule", ["vector", "plain"])
def test_inlined_chain_of_40_stages_lowers_and_builds_fast(schedule):
    depth, n = 40, 1000         # n: not a multiple of the vector width, so there is a tail
    t0 = time.perf_counter()
    s, args = chain(depth, n, schedule)
    func = tl.lower(s, args, name="chain")
    s, args = chain(depth, n, schedule)
    mod = tl.build(s, args, name="chain")
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"lower + build of a {depth}-stage chain took {elapsed:.1f} s"
    text = str(func)
    assert len(text) < 200 * depth, "printed IR is not linear in the number of stages"
    assert text.count("let ") >= depth - 1
    a = (-np.random.default_rng(1).random(n, dtype=np.float32) * 0.5).astype("float32")
    out = np.zeros(n, "float32")
    mod(a, out)
    np.testing.assert_allclose(out, reference(a, depth), rtol=1e-5, atol=1e-6)


def test_let_stays_inside_the_branch_that_guards_its_loads():
    """B[i] is read twice in the taken branch only: its Let must not be hoisted above the
    if_then_else, where it would read A[n] (out of bounds) on the last iteration."""
    n = 33
    A = tl.placeholder((n,), name="A")
    B = tl.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    C = tl.compute((n + 1,), lambda i: tl.if_then_else(i < n, B[i] * B[i], 0.0), name="C")
    s = tl.create_schedule(C.op)
    s[B].compute_inline()
    func = tl.lower(s, [A, C])
    stores = [x for x in walk(func.body) if type(x).__name__ == "Store"]
    assert len(stores) == 1 and isinstance(stores[0].value, Select)
    assert any(isinstance(x, Let) for x in walk(stores[0].value.true_value))
    mod = tl.build(s, [A, C], bounds_check=True)
    a = np.random.default_rng(2).random(n, dtype=np.float32)
    out = np.zeros(n + 1, "float32")
    mod(a, out)
    b = a * 2 + 1
    np.testing.assert_allclose(out, np.append(b * b, 0.0), rtol=1e-6)


def test_let_inside_a_reduction_and_with_two_index_sets():
    """A producer read twice per reduction step is bound inside the reduction's source;
    reads at different indices (a stencil) are separate values."""
    A = tl.placeholder((8, 16), name="A")
    B = tl.compute((8, 16), lambda i, j: A[i, j] - 0.5, name="B")
    k = tl.reduce_axis((0, 16), name="k")
    R = tl.compute((8,), lambda i: tl.sum(B[i, k] * B[i, k] + B[i, 15 - k], axis=k), name="R")
    s = tl.create_schedule(R.op)
    s[B].compute_inline()
    text = str(tl.lower(s, [A, R]))
    assert text.count("let B = ") == 1 and "R[i] = R[i] + (let B = " in text
    mod = tl.build(s, [A, R])
    a = np.random.default_rng(3).random((8, 16), dtype=np.float32)
    out = np.zeros(8, "float32")
    mod(a, out)
    b = a - 0.5
    np.testing.assert_allclose(out, (b * b + b[:, ::-1]).sum(axis=1), rtol=1e-5)


def test_traversals_visit_a_shared_node_once():
    x, y = Var("x", "float32"), Var("y", "float32")
    e = x
    for _ in range(60):         # a DAG of 121 nodes; as a tree it would have ~3**60
        e = Binary("add", Binary("mul", e, e, "float32"), e, "float32")
    t0 = time.perf_counter()
    nodes = list(walk(e))
    assert len(nodes) == 121
    f = substitute(e, {x: y})
    assert list(free_vars(f)) == [y.uid]
    assert f.a.a is f.a.b is f.b                # sharing survives the rewrite
    calls = []
    rewrite(e, lambda n: calls.append(n))
    assert len(calls) == 121
    assert time.perf_counter() - t0 < 1.0
