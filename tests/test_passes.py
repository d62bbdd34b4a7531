"""Before/after tests of each loop-IR pass, and of the verifier and the IR dump."""

import os

import numpy as np
import pytest

import tensorlang as tl
from tensorlang.arith import simplify
from tensorlang.te.expr import Binary, Const, Var
from tensorlang.tir import For, IfThenElse, Load, PrimFunc, Ramp, Store
from tensorlang.tir.nodes import Buffer
from tensorlang.tir.passes import (loop_partition, storage_flatten, unroll_loops,
                                   vectorize_loops, verify)
from tensorlang.tir.passes import simplify as simplify_pass


def stages(s, args):
    return dict(tl.lower_trace(s, args, name="f"))


def nodes(func, kind):
    from tensorlang.arith import walk
    return [n for n in walk(func.body) if isinstance(n, kind)]


# ----------------------------------------------------------------------------- simplify

def test_simplify_undoes_split_arithmetic():
    i, j = Var("i"), Var("j")
    env = {j.uid: (0, 31)}
    assert str(simplify((i * 32 + j) // 32, env)) == "i"
    assert str(simplify((i * 32 + j) % 32, env)) == "j"
    assert str(simplify((i * 32 + j) // 32, {})) == "i + j // 32"   # j unbounded: kept


def test_simplify_folds_fused_index_and_constants():
    f = Var("f")
    assert str(simplify(f // 9 * 9 + f % 9)) == "f"
    assert str(simplify((Const(3, "int32") + 4) * 2)) == "14"
    assert str(simplify(f * 1 + 0 - f)) == "0"
    # a constant offset past the modulus is reduced in both halves, so they still pair up
    # (a fused pixel index in a tile that starts mid-row: p = 32 + i on 7-wide rows)
    assert str(simplify((f + 32) % 7)) == "(f + 4) % 7"
    assert str(simplify((f + 32) // 7 * 7 + (f + 32) % 7)) == "f + 32"


def test_simplify_decides_comparisons_from_ranges():
    i = Var("i")
    assert simplify(i < 10, {i.uid: (0, 9)}) == Const(True, "bool")
    assert simplify(i >= 10, {i.uid: (0, 9)}) == Const(False, "bool")
    assert isinstance(simplify(i < 5, {i.uid: (0, 9)}), Binary)


def test_simplify_pass_drops_exact_guards_and_unit_loops():
    A = tl.placeholder((64,), name="A")
    B = tl.compute((64,), lambda i: A[i] + 1.0, name="B")
    s = tl.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=64)       # outer loop of extent 1
    after = stages(s, [A, B])["simplify"]
    assert not nodes(after, IfThenElse)
    assert [f.var.name for f in nodes(after, For)] == ["i.inner"]


# ----------------------------------------------------------------------------- partition

def guarded():
    A = tl.placeholder((100,), name="A")
    B = tl.compute((100,), lambda i: A[i] * 2.0, name="B")
    s = tl.create_schedule(B.op)
    s[B].split(B.op.axis[0], factor=16)
    return s, [A, B]


def test_lowering_guards_inexact_split():
    before = stages(*guarded())["simplify"]
    (guard,) = nodes(before, IfThenElse)
    assert str(guard.cond) == "i.outer * 16 + i.inner < 100"


def test_loop_partition_moves_guard_to_tail():
    before = stages(*guarded())["simplify"]
    after = loop_partition(before)
    main, tail = after.body.stmts
    assert isinstance(main, For) and str(main.extent) == "6"
    assert not nodes(PrimFunc("m", (), (), main), IfThenElse)     # clean main body
    assert isinstance(tail, For) and str(tail.extent) == "4"       # 100 - 96 elements, no guard left
    assert "if" not in str(after)


def test_loop_partition_symbolic_tail_is_bounded_exactly():
    n = tl.var("n")
    A = tl.placeholder((n,), name="A")
    B = tl.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = tl.create_schedule(B.op)
    s[B].split(B.op.axis[0], factor=16)
    text = str(stages(s, [A, B])["loop_partition"])
    assert "for i.outer in range(n // 16):" in text
    assert "for i.inner in range(max(0, min(n - i.outer * 16, 16))):" in text   # the tail
    assert "if " not in text                   # the guard is exact: true before, false after
    f = tl.build(s, [A, B])
    for size in (0, 5, 16, 37):
        a = np.arange(size, dtype=np.float32)
        b = np.zeros_like(a)
        f(a, b)
        np.testing.assert_array_equal(b, a * 2)


def test_loop_partition_inexact_guard_is_partitioned_again_in_the_tail():
    A = tl.placeholder((100,), name="A")
    B = tl.compute((100,), lambda i: A[i] + 1.0, name="B")
    s = tl.create_schedule(B.op)
    io, ii = s[B].split(B.op.axis[0], factor=16)
    s[B].reorder(ii, io)                       # the guard's other variable is an inner loop
    after = stages(s, [A, B])["loop_partition"]
    main, tail = after.body.stmts
    assert not nodes(PrimFunc("m", (), (), main), IfThenElse)
    # the guard was not exact at i.inner (it also reads the inner i.outer), so the tail keeps
    # it until i.outer is partitioned in turn, with an extent that depends on i.inner
    assert str(tail.body.extent) == "(3 - i.inner) // 16 + 7"
    f = tl.build(s, [A, B])
    a = np.arange(100, dtype=np.float32)
    b = np.zeros_like(a)
    f(a, b)
    np.testing.assert_array_equal(b, a + 1)


# ----------------------------------------------------------------------------- flatten/unroll/vectorize

def test_storage_flatten_makes_one_index():
    A = tl.placeholder((4, 5), name="A")
    B = tl.compute((4, 5), lambda i, j: A[i, j], name="B")
    s = tl.create_schedule(B.op)
    before = stages(s, [A, B])["loop_partition"]
    assert all(len(x.indices) == 2 for x in nodes(before, Store))
    after = storage_flatten(before)
    (st,) = nodes(after, Store)
    assert len(st.indices) == 1 and str(st.indices[0]) == "i * 5 + j"
    verify(after, flat=True)


def test_unroll_replaces_loop_by_iterations():
    A = tl.placeholder((8,), name="A")
    B = tl.compute((8,), lambda i: A[i] + 1.0, name="B")
    s = tl.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=4)
    s[B].unroll(xi)
    before = stages(s, [A, B])["storage_flatten"]
    after = simplify_pass(unroll_loops(before))
    (loop,) = nodes(after, For)
    assert loop.var.name == "i.outer"
    assert [str(x.indices[0]) for x in nodes(after, Store)] == [
        "i.outer * 4", "i.outer * 4 + 1", "i.outer * 4 + 2", "i.outer * 4 + 3"]


def test_vectorize_turns_loop_into_ramps():
    A = tl.placeholder((64,), name="A")
    B = tl.compute((64,), lambda i: A[i] * 3.0, name="B")
    s = tl.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=16)
    s[B].vectorize(xi)
    before = stages(s, [A, B])["unroll"]
    after = vectorize_loops(before)
    (st,) = nodes(after, Store)
    assert isinstance(st.indices[0], Ramp) and st.indices[0].lanes == 16
    assert st.value.dtype == "float32x16"
    assert [f.var.name for f in nodes(after, For)] == ["i.outer"]


def test_vectorize_reduction_axis_falls_back_with_note():
    A = tl.placeholder((8, 16), name="A")
    k = tl.reduce_axis((0, 16), name="k")
    R = tl.compute((8,), lambda i: tl.sum(A[i, k], axis=k), name="R")
    s = tl.create_schedule(R.op)
    s[R].vectorize(k)
    func = tl.lower(s, [A, R])
    assert "not vectorized: every lane stores to the same element" in str(func)
    f = tl.build(func)
    a = np.random.default_rng(1).random((8, 16), dtype=np.float32)
    r = np.zeros(8, np.float32)
    f(a, r)
    np.testing.assert_allclose(r, a.sum(1), rtol=1e-5)


# ----------------------------------------------------------------------------- verifier, dumps

def test_verifier_rejects_unbound_variable():
    buf = Buffer.make("X", "float32", (Const(4, "int32"),))
    ghost = Var("ghost")
    bad = PrimFunc("bad", (buf,), (), Store(buf, (ghost,), Const(1.0, "float32")))
    with pytest.raises(tl.IRVerifyError, match="ghost"):
        verify(bad)


def test_verifier_rejects_dtype_mismatch():
    buf = Buffer.make("X", "float32", (Const(4, "int32"),))
    i = Var("i")
    body = For(i, Const(0, "int32"), Const(4, "int32"), "serial",
               Store(buf, (i,), Load(buf, (i,), "float32") + Const(1.0, "float64")))
    with pytest.raises(tl.IRVerifyError, match="float32 and float64|float64"):
        verify(PrimFunc("bad", (buf,), (), body))


def test_every_pass_output_is_printable_and_dumped(tmp_path):
    s, args = guarded()
    tl.lower(s, args, name="g", dump_ir=str(tmp_path))
    files = sorted(os.listdir(tmp_path))
    assert files[0] == "00_lower.txt" and any("vectorize" in f for f in files)
    assert len(files) == 7
    for f in files:
        assert (tmp_path / f).read_text().startswith("def g(")


def test_structural_equality():
    i = Var("i")
    a = i * 2 + 1
    b = i * 2 + 1
    assert a == b and tl.structural_equal(a, b)
    assert not tl.structural_equal(a, i * 2 + 2)
    assert not tl.structural_equal(Var("i"), Var("i"))      # distinct variables
