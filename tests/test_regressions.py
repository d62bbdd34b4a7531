"""Regression tests for bugs found in review: each builds a kernel and compares with numpy."""

import numpy as np

import tensorlang as tl


def build_run(outs, ins, arrays, out_dtypes, n, **kw):
    s = tl.create_schedule([o.op for o in outs])
    f = tl.build(s, ins + outs, **kw)
    res = [np.zeros(n, d) for d in out_dtypes]
    f(*arrays, *res)
    return res


def test_wrapping_integer_data_is_not_simplified_as_unbounded():
    A = tl.placeholder((4,), "int8", name="A")
    U = tl.placeholder((4,), "uint32", name="U")
    C = tl.compute((4,), lambda i: (A[i] * 2) // 2, name="C")
    D = tl.compute((4,), lambda i: (U[i] * 3 - 1) % 3, name="D")
    E = tl.compute((4,), lambda i: tl.if_then_else(U[i] - 1 < U[i], 1, 0), name="E")
    a = np.array([100, -100, 3, 64], np.int8)
    u = np.array([0, 1, 2, 5], np.uint32)
    c, d, e = build_run([C, D, E], [A, U], [a, u], [np.int8, np.uint32, np.int32], 4)
    np.testing.assert_array_equal(c, (a * np.int8(2)) // np.int8(2))
    np.testing.assert_array_equal(d, (u * np.uint32(3) - np.uint32(1)) % np.uint32(3))
    np.testing.assert_array_equal(e, (u - np.uint32(1) < u).astype(np.int32))


def test_narrowing_casts_are_not_assumed_in_range():
    C = tl.compute((300,), lambda i: tl.if_then_else(i.astype("int8") >= 0, 1, 0), name="C")
    D = tl.compute((10,), lambda i: tl.if_then_else((i - 5).astype("uint32") < 100, 1, 0), name="D")
    (c,) = build_run([C], [], [], [np.int32], 300)
    (d,) = build_run([D], [], [], [np.int32], 10)
    np.testing.assert_array_equal(c, (np.arange(300).astype(np.int8) >= 0).astype(np.int32))
    np.testing.assert_array_equal(d, [0] * 5 + [1] * 5)


def test_float_floordiv_and_mod_follow_numpy():
    A = tl.placeholder((6,), name="A")
    B = tl.placeholder((6,), name="B")
    Q = tl.compute((6,), lambda i: A[i] // B[i], name="Q")
    R = tl.compute((6,), lambda i: A[i] % B[i], name="R")
    a = np.array([1, 1, 7, 0.3, -7.5, 5], np.float32)
    b = np.array([0.1, 0.2, 0.7, 0.1, 2, -3], np.float32)
    q, r = build_run([Q, R], [A, B], [a, b], [np.float32, np.float32], 6)
    np.testing.assert_array_equal(q, a // b)
    np.testing.assert_array_equal(r, a % b)


def test_unsigned_and_narrow_indices_are_zero_or_sign_extended():
    A = tl.placeholder((300,), name="A")
    idx = tl.placeholder((4,), "uint8", name="I")
    C = tl.compute((4,), lambda i: A[idx[i]], name="C")
    a = np.arange(300, dtype=np.float32)
    ix = np.array([200, 1, 255, 128], np.uint8)
    for bounds_check in (False, True):
        (c,) = build_run([C], [A, idx], [a, ix], [np.float32], 4, bounds_check=bounds_check)
        np.testing.assert_array_equal(c, a[ix])


def test_symbolic_two_dimensional_offsets_are_int64():
    n = tl.var("n")
    A = tl.placeholder((n, n), name="A")
    B = tl.compute((n, n), lambda i, j: A[i, j] * 2.0, name="B")
    text = str(tl.lower(tl.create_schedule(B.op), [A, B]))
    assert "int64(i) * int64(n) + int64(j)" in text        # n*n may exceed 2**31


def test_vectorized_loop_of_extent_one_after_partition():
    C = tl.compute((10,), lambda i: i.astype("float32"), name="C")
    s = tl.create_schedule(C.op)
    io, ii = s[C].split(C.op.axis[0], factor=4)
    iio, iii = s[C].split(ii, factor=3)
    s[C].reorder(iio, io, iii)
    s[C].unroll(iio)
    s[C].vectorize(iii)
    f = tl.build(s, [C])
    c = np.zeros(10, np.float32)
    f(c)
    np.testing.assert_array_equal(c, np.arange(10, dtype=np.float32))


def test_nan_in_folded_min_max_and_infinite_max_identity():
    A = tl.placeholder((2, 3), name="A")
    k = tl.reduce_axis((0, 3), "k")
    M = tl.compute((2,), lambda i: tl.max(A[i, k], axis=k), name="M")
    N = tl.compute((2,), lambda i: A[i, 0] + tl.min(tl.const(1.0), tl.const(float("nan"))), name="N")
    a = np.full((2, 3), -np.inf, np.float32)
    m, nn = build_run([M, N], [A], [a], [np.float32, np.float32], 2)
    np.testing.assert_array_equal(m, [-np.inf, -np.inf])
    assert np.isnan(nn).all()


def test_bool_bytes_other_than_one_are_true():
    B = tl.placeholder((3,), "bool", name="B")
    C = tl.compute((3,), lambda i: tl.if_then_else(B[i], 1, 0), name="C")
    b = np.array([2, 1, 0], np.uint8).view(np.bool_)
    (c,) = build_run([C], [B], [b], [np.int32], 3)
    np.testing.assert_array_equal(c, [1, 1, 0])


def test_bounds_error_reports_first_violation_in_parallel_loop():
    P = tl.placeholder((64,), name="P")
    Q = tl.compute((64,), lambda i: P[i + 3], name="Q")
    s = tl.create_schedule(Q.op)
    s[Q].parallel(Q.op.axis[0])
    f = tl.build(s, [P, Q], bounds_check=True)
    import pytest
    with pytest.raises(tl.BoundsError, match=r"buffer 'P' at flat index (64|65|66)"):
        f(np.zeros(64, np.float32), np.zeros(64, np.float32))
