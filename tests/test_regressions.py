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


def test_vectorized_and_whose_right_side_reads_memory_short_circuits():
    A = tl.placeholder((5,), name="A")
    C = tl.compute((8,), lambda i: tl.if_then_else(tl.all(i < 5, A[i] > 0), 1.0, 0.0), name="C")
    s = tl.create_schedule(C.op)
    s[C].vectorize(C.op.axis[0])
    a = np.array([1, -1, 2, -2, 3], np.float32)
    for bounds_check in (False, True):
        f = tl.build(s, [A, C], bounds_check=bounds_check)
        c = np.zeros(8, np.float32)
        f(a, c)
        np.testing.assert_array_equal(c, [1, 0, 1, 0, 1, 0, 0, 0])


def test_narrow_and_mixed_index_dtypes():
    for dt_, size in (("int8", 19), ("int16", 200), ("uint8", 200), ("int64", 30)):
        n = tl.var("n", dt_)
        A = tl.placeholder((n, 3), name="A")
        B = tl.compute((n, 3), lambda i, j: A[i, j] + (j % 2).astype("float32"), name="B")
        s = tl.create_schedule(B.op)
        f = s[B].fuse(*B.op.axis)
        fo, fi = s[B].split(f, factor=4)
        s[B].parallel(fo)
        k = tl.build(s, [A, B])
        a = np.arange(size * 3, dtype=np.float32).reshape(size, 3)
        b = np.zeros_like(a)
        k(a, b)
        np.testing.assert_array_equal(b, a + np.arange(3) % 2, err_msg=dt_)


def test_float_floordiv_by_zero_and_float16_floordiv_match_numpy():
    A = tl.placeholder((4,), name="A")
    B = tl.placeholder((4,), name="B")
    Q = tl.compute((4,), lambda i: A[i] // B[i], name="Q")
    a = np.array([1, -1, 2.5, 0], np.float32)
    b = np.array([0, 0, -0.0, 0], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        (q,) = build_run([Q], [A, B], [a, b], [np.float32], 4)
        np.testing.assert_array_equal(q, a // b)
    H = tl.placeholder((2,), "float16", name="H")
    G = tl.placeholder((2,), "float16", name="G")
    R = tl.compute((2,), lambda i: H[i] // G[i], name="R")
    h = np.array([-486.2, 105.8], np.float16)
    g = np.array([-0.1948, 0.02075], np.float16)
    (r,) = build_run([R], [H, G], [h, g], [np.float16], 2)
    np.testing.assert_array_equal(r, h // g)


def test_float64_to_float16_cast_in_jit():
    A = tl.placeholder((4,), "float64", name="A")
    C = tl.compute((4,), lambda i: A[i].astype("float16"), name="C")
    a = np.array([1, 2.5, -3.25, 65504], np.float64)
    (c,) = build_run([C], [A], [a], [np.float16], 4)
    np.testing.assert_array_equal(c, a.astype(np.float16))


def test_mixed_signedness_promotion_is_order_independent():
    A = tl.placeholder((2,), "int32", name="A")
    B = tl.placeholder((2,), "uint32", name="B")
    L = tl.compute((2,), lambda i: tl.if_then_else(A[i] < B[i], 1, 0), name="L")
    G = tl.compute((2,), lambda i: tl.if_then_else(B[i] > A[i], 1, 0), name="G")
    a, b = np.array([-1, 3], np.int32), np.array([1, 1], np.uint32)
    lt, gt = build_run([L, G], [A, B], [a, b], [np.int32, np.int32], 2)
    np.testing.assert_array_equal(lt, (a < b).astype(np.int32))
    np.testing.assert_array_equal(gt, (b > a).astype(np.int32))


def test_fused_empty_reduction_domains():
    n = tl.var("n")
    A = tl.placeholder((n, n), name="A")
    k0, k1 = tl.reduce_axis((1, n), "k0"), tl.reduce_axis((1, n), "k1")
    C = tl.compute((2,), lambda i: tl.sum(A[k0, k1] + 1.0, axis=[k0, k1]), name="C")
    s = tl.create_schedule(C.op)
    s[C].fuse(k0, k1)
    for bounds_check in (False, True):
        f = tl.build(s, [A, C], bounds_check=bounds_check)
        for size, want in ((0, 0.0), (1, 0.0), (3, 4.0 + 4 * 1.0)):
            a = np.ones((size, size), np.float32)
            c = np.full(2, -7, np.float32)
            f(a, c)
            np.testing.assert_array_equal(c, [want, want])


def test_names_that_clash_with_generated_symbols():
    for nm in ("t1", "err", "entry"):
        A = tl.placeholder((4,), name=nm)
        B = tl.compute((4,), lambda i: A[i] + 1.0, name="B")
        (b,) = build_run([B], [A], [np.arange(4, dtype=np.float32)], [np.float32], 4)
        np.testing.assert_array_equal(b, np.arange(4) + 1)
    import pytest
    A = tl.placeholder((4,), "float64", name="A")
    B = tl.compute((4,), lambda i: tl.exp(A[i]), name="B")
    for reserved in ("exp", "free"):
        with pytest.raises(tl.TensorlangTypeError, match="reserved"):
            tl.build(tl.create_schedule(B.op), [A, B], name=reserved)
