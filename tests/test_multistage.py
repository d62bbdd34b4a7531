"""Multi-stage schedules: compute_at / compute_inline / compute_root, cache_read / cache_write,
rfactor, storage_align, set_scope and schedules with several outputs.

Every schedule that computes something is built with ``bounds_check=True`` (so an attached
buffer smaller than the region its readers touch raises instead of reading garbage), its
outputs start as NaN (so an element that is never written fails the comparison), and the
result is compared with numpy on random data. The size of attached buffers is checked in the
printed IR against the size worked out by hand in each test. Error tests check the exception
class (a ``tl.TensorlangError`` that also subclasses a builtin) and that the message names
the stages involved.
"""

import contextlib
import re

import numpy as np
import pytest

import tensorlang as tl

RTOL, ATOL = 1e-5, 1e-5


# =========================================================================== helpers

def run(s, args, *inputs):
    """Build ``s`` with bounds checks, call it on ``inputs`` followed by NaN-filled outputs
    (every argument after the inputs), and return the outputs."""
    f = tl.build(s, args, bounds_check=True)
    outs = [np.full([d.value for d in t.shape], np.nan if "float" in t.dtype else -7, t.dtype)
            for t in args[len(inputs):]]
    f(*inputs, *outs)
    return outs


def ir(s, args) -> str:
    """The printed, optimised loop IR (flattened buffers)."""
    return str(tl.lower(s, args))


def raw_ir(s, args) -> str:
    """The printed loop IR straight out of lowering (buffers keep their shapes and strides)."""
    return str(tl.lower_trace(s, args)[0][1])


def close(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=ATOL)


def allocs(text: str) -> list:
    """The ``allocate ...`` lines of printed IR, stripped."""
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("allocate ")]


@contextlib.contextmanager
def user_error(cls, *names):
    """``pytest.raises(cls)`` that also checks the error is a TensorlangError subclassing a
    builtin exception, and that its message names every stage / axis in ``names`` (as a whole
    name: ``i`` does not match inside ``i.outer``, ``B`` not inside ``B.global``)."""
    with pytest.raises(cls) as info:
        yield info
    err = info.value
    assert isinstance(err, tl.TensorlangError), f"{type(err).__mro__} is not a TensorlangError"
    assert isinstance(err, (ValueError, TypeError, IndexError, OSError)), type(err).__mro__
    for n in names:
        assert re.search(rf"(?<![\w.]){re.escape(n)}(?!\w|\.\w)", str(err)), \
            f"message does not name {n!r}: {err}"


def rand(rng, *shape, dtype="float32"):
    return rng.random(shape).astype(dtype)


def stencil3(n):
    """``C[i] = B[i] + B[i+1] + B[i+2]`` with ``B = 2*A``; returns (A, B, C, reference)."""
    A = tl.placeholder((n + 2,), name="A")
    B = tl.compute((n + 2,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i] + B[i + 1] + B[i + 2], name="C")

    def ref(a):
        b = 2 * a
        return b[:-2] + b[1:-1] + b[2:]
    return A, B, C, ref


# =========================================================================== compute_at

@pytest.mark.parametrize("n", [24, 21, 5, 1], ids=["divisible", "tail", "smaller_than_factor", "one"])
def test_compute_at_1d_stencil(rng, n):
    A, B, C, ref = stencil3(n)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    a = rand(rng, n + 2)
    c, = run(s, [A, C], a)
    close(c, ref(a))


def test_compute_at_1d_stencil_buffer_size_and_place():
    # C's loop i.outer covers 8 outputs i in [8*io, 8*io+7]; they read B[i], B[i+1], B[i+2],
    # i.e. B[8*io .. 8*io+9]: 10 elements, allocated inside i.outer (3 iterations for n = 24)
    A, B, C, _ = stencil3(24)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    text = ir(s, [A, C])
    assert "for i.outer in range(3):\n    allocate B: float32[10] on stack\n" in text, text
    assert allocs(text) == ["allocate B: float32[10] on stack"], text
    # at root (no compute_at) B is the whole 26-element tensor, allocated outside every loop
    s = tl.create_schedule(C.op)
    s[C].split(C.op.axis[0], factor=8)
    text = ir(s, [A, C])
    assert text.splitlines()[1] == "  allocate B: float32[26] on stack", text


def test_compute_at_inner_loop_of_inexact_split(rng):
    # B at the innermost loop: one output at a time needs B[i], B[i+2]: 3 elements
    n = 19
    A = tl.placeholder((n + 2,), name="A")
    B = tl.compute((n + 2,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i] + B[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xi)
    assert "allocate B: float32[3]" in raw_ir(s, [A, C])
    a = rand(rng, n + 2)
    c, = run(s, [A, C], a)
    close(c, 2 * a[:-2] + 2 * a[2:])


def test_compute_at_strided_reads(rng):
    # Z[i] = Y[2i] * Y[2i+1]: 8 outputs read Y[16*zo .. 16*zo+15]: 16 elements
    m = 19
    X = tl.placeholder((2 * m,), name="X")
    Y = tl.compute((2 * m,), lambda i: X[i] + 1.0, name="Y")
    Z = tl.compute((m,), lambda i: Y[2 * i] * Y[2 * i + 1], name="Z")
    s = tl.create_schedule(Z.op)
    zo, zi = s[Z].split(Z.op.axis[0], factor=8)
    s[Y].compute_at(s[Z], zo)
    assert "allocate Y: float32[16]" in raw_ir(s, [X, Z])
    x = rand(rng, 2 * m)
    z, = run(s, [X, Z], x)
    y = x + 1
    close(z, y[0::2] * y[1::2])


def blur_2d(H, W):
    A = tl.placeholder((H + 2, W + 2), name="A")
    B = tl.compute((H + 2, W + 2), lambda i, j: A[i, j] * A[i, j], name="B")
    ry = tl.reduce_axis((0, 3), name="ry")
    rx = tl.reduce_axis((0, 3), name="rx")
    C = tl.compute((H, W), lambda i, j: tl.sum(B[i + ry, j + rx], axis=[ry, rx]), name="C")

    def ref(a):
        b = a * a
        return sum(b[dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3))
    return A, B, C, ref


@pytest.mark.parametrize("H, W", [(16, 24), (19, 23)], ids=["divisible", "tails"])
def test_compute_at_2d_blur_at_tile(rng, H, W):
    A, B, C, ref = blur_2d(H, W)
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 8, 8)
    s[B].compute_at(s[C], xo)
    # an 8x8 tile of C reads a (8+2) x (8+2) window of B
    assert "allocate B: float32[10, 10] on stack" in raw_ir(s, [A, C])
    a = rand(rng, H + 2, W + 2)
    c, = run(s, [A, C], a)
    close(c, ref(a))


def test_compute_at_2d_blur_at_row_tile_loop(rng):
    # B computed at the *outer* tile loop yo: a 4-row strip of C reads 4+2 rows of all W+2 columns
    H, W = 11, 13
    A, B, C, ref = blur_2d(H, W)
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[B].compute_at(s[C], yo)
    assert f"allocate B: float32[6, {W + 2}] on stack" in raw_ir(s, [A, C])
    a = rand(rng, H + 2, W + 2)
    c, = run(s, [A, C], a)
    close(c, ref(a))


def test_compute_at_then_reorder_consumer(rng):
    # the attach loop stays; reordering C's loops afterwards changes what is inside it
    H, W = 11, 13
    A = tl.placeholder((H + 2, W + 2), name="A")
    B = tl.compute((H + 2, W + 2), lambda i, j: A[i, j] * 2.0, name="B")
    C = tl.compute((H, W), lambda i, j: B[i, j] + B[i + 2, j + 2] + B[i + 1, j], name="C")
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    s[B].compute_at(s[C], xo)
    s[C].reorder(yi, xo)          # loops: yo, yi, xo, xi -> one row, 4 columns per xo
    assert "allocate B: float32[3, 6]" in raw_ir(s, [A, C])
    a = rand(rng, H + 2, W + 2)
    c, = run(s, [A, C], a)
    b = 2 * a
    close(c, b[:-2, :-2] + b[2:, 2:] + b[1:-1, :-2])


def test_compute_at_transposed_producer(rng):
    H, W = 9, 11
    X = tl.placeholder((W, H), name="X")
    Y = tl.compute((W, H), lambda j, i: X[j, i] * X[j, i], name="Y")
    Z = tl.compute((H, W), lambda i, j: Y[j, i] + Y[W - 1 - j, i], name="Z")
    s = tl.create_schedule(Z.op)
    yo, xo, yi, xi = s[Z].tile(Z.op.axis[0], Z.op.axis[1], 4, 4)
    s[Z].parallel(yo)
    s[Y].compute_at(s[Z], xo)
    x = rand(rng, W, H)
    z, = run(s, [X, Z], x)
    y = x * x
    close(z, (y + y[::-1]).T)


def test_compute_at_chain_of_producers_at_same_loop(rng):
    n = 30
    A = tl.placeholder((n + 4,), name="A")
    B1 = tl.compute((n + 4,), lambda i: A[i] + 1.0, name="B1")
    B2 = tl.compute((n + 2,), lambda i: B1[i] * B1[i + 2], name="B2")
    C = tl.compute((n,), lambda i: B2[i] - B2[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B2].compute_at(s[C], xo)
    s[B1].compute_at(s[C], xo)
    # 8 outputs read B2[x .. x+9] (10); those read B1[x .. x+11] (12)
    text = raw_ir(s, [A, C])
    assert "allocate B1: float32[12]" in text and "allocate B2: float32[10]" in text, text
    # both are computed before C inside i.outer, B1 first
    assert text.index("B1[i] = ") < text.index("B2[i_1] = ") < text.index("C[i.outer"), text
    a = rand(rng, n + 4)
    c, = run(s, [A, C], a)
    b1 = a + 1
    b2 = b1[:-2] * b1[2:]
    close(c, b2[:-2] - b2[2:])


def test_compute_at_nested_attachment(rng):
    # B1 computed at B2's loop, B2 at C's loop: per element of B2, B1 needs 3 values
    n = 30
    A = tl.placeholder((n + 4,), name="A")
    B1 = tl.compute((n + 4,), lambda i: A[i] + 1.0, name="B1")
    B2 = tl.compute((n + 2,), lambda i: B1[i] * B1[i + 2], name="B2")
    C = tl.compute((n,), lambda i: B2[i] - B2[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B2].compute_at(s[C], xo)
    s[B1].compute_at(s[B2], B2.op.axis[0])
    text = raw_ir(s, [A, C])
    assert "allocate B1: float32[3]" in text and "allocate B2: float32[10]" in text, text
    a = rand(rng, n + 4)
    c, = run(s, [A, C], a)
    b1 = a + 1
    b2 = b1[:-2] * b1[2:]
    close(c, b2[:-2] - b2[2:])


def two_consumer_graph(n):
    A = tl.placeholder((n + 2,), name="A")
    P = tl.compute((n + 2,), lambda i: A[i] * 3.0, name="P")
    Q1 = tl.compute((n + 1,), lambda i: P[i] + P[i + 1], name="Q1")
    Q2 = tl.compute((n,), lambda i: P[i + 2] * 2.0, name="Q2")
    C = tl.compute((n,), lambda i: Q1[i] * Q1[i + 1] + Q2[i], name="C")

    def ref(a):
        p = a * 3
        q1 = p[:-1] + p[1:]
        return q1[:-1] * q1[1:] + p[2:] * 2
    return A, P, Q1, Q2, C, ref


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_compute_at_producer_read_by_two_consumers_at_same_loop(rng, parallel):
    n = 21
    A, P, Q1, Q2, C, ref = two_consumer_graph(n)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    if parallel:
        s[C].parallel(xo)
    for t in (P, Q1, Q2):
        s[t].compute_at(s[C], xo)
    # 4 outputs: Q1[x .. x+4] (5), Q2[x .. x+3] (4); P: Q1 reads P[x .. x+5], Q2 reads
    # P[x+2 .. x+5]; the union is 6 elements
    text = raw_ir(s, [A, C])
    for line in ("allocate P: float32[6]", "allocate Q1: float32[5]", "allocate Q2: float32[4]"):
        assert line in text, text
    if parallel:
        assert "for i.outer in parallel(" in text
    a = rand(rng, n + 2)
    c, = run(s, [A, C], a)
    close(c, ref(a))


def test_compute_at_producers_at_different_depths(rng):
    # P at C's outer loop, its reader Q1 at C's inner loop (inside P's loop): valid
    n = 19
    A = tl.placeholder((n + 2,), name="A")
    P = tl.compute((n + 2,), lambda i: A[i] + 3.0, name="P")
    Q1 = tl.compute((n,), lambda i: P[i] * P[i + 1], name="Q1")
    C = tl.compute((n,), lambda i: Q1[i] + P[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[P].compute_at(s[C], xo)
    s[Q1].compute_at(s[C], xi)
    text = raw_ir(s, [A, C])
    assert "allocate P: float32[10]" in text and "allocate Q1: float32[1]" in text, text
    a = rand(rng, n + 2)
    c, = run(s, [A, C], a)
    p = a + 3
    close(c, p[:-2] * p[1:-1] + p[2:])


def test_compute_at_halo_through_inlined_stage(rng):
    # E reads C (inlined), C reads B with a halo of 2: B's region follows through the inline
    n = 20
    X = tl.placeholder((n + 3,), name="X")
    B = tl.compute((n + 3,), lambda i: X[i] * 2.0, name="B")
    C = tl.compute((n + 1,), lambda i: B[i] + B[i + 2], name="C")
    E = tl.compute((n,), lambda i: C[i] * C[i + 1], name="E")
    s = tl.create_schedule(E.op)
    s[C].compute_inline()
    xo, xi = s[E].split(E.op.axis[0], factor=8)
    s[B].compute_at(s[E], xo)
    assert "allocate B: float32[11]" in raw_ir(s, [X, E])
    x = rand(rng, n + 3)
    e, = run(s, [X, E], x)
    b = 2 * x
    c = b[:-2] + b[2:]
    close(e, c[:-1] * c[1:])


def test_compute_at_padded_stencil_region_leaves_domain(rng):
    # C reads B[i-1] under i > 0: at i.outer = 0 the region starts at B[-1], which lowering
    # must skip (it is outside B), not compute from A[-1]
    n = 21
    A = tl.placeholder((n,), name="A")
    B = tl.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    C = tl.compute((n,), lambda i: tl.if_then_else(i > 0, B[i - 1], 0.0) + B[i]
                   + tl.if_then_else(i < n - 1, B[tl.min(i + 1, n - 1)], 0.0), name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    a = rand(rng, n)
    c, = run(s, [A, C], a)
    b = 2 * a + 1
    ref = b.copy()
    ref[1:] += b[:-1]
    ref[:-1] += b[1:]
    close(c, ref)


def test_compute_at_non_affine_and_data_dependent_reads(rng):
    # reads bound inference cannot follow exactly: it must fall back to a region that
    # covers every element read
    n = 16
    X = tl.placeholder((n,), name="X")
    I = tl.placeholder((n,), dtype="int32", name="I")
    B = tl.compute((n,), lambda i: X[i] * 3.0, name="B")
    C = tl.compute((n,), lambda i: B[I[i]] + B[i // 2] + B[(i * i) % n], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[B].compute_at(s[C], xo)
    x = rand(rng, n)
    idx = rng.permutation(n).astype("int32")
    c, = run(s, [X, I, C], x, idx)
    b = 3 * x
    k = np.arange(n)
    close(c, b[idx] + b[k // 2] + b[(k * k) % n])


def test_compute_at_fused_loop(rng):
    H, W = 5, 7
    X = tl.placeholder((H, W), name="X")
    Y = tl.compute((H, W), lambda i, j: X[i, j] + 1.0, name="Y")
    Z = tl.compute((H, W), lambda i, j: Y[i, j] * Y[i, W - 1 - j], name="Z")
    s = tl.create_schedule(Z.op)
    f = s[Z].fuse(*Z.op.axis)
    fo, fi = s[Z].split(f, factor=4)
    s[Y].compute_at(s[Z], fo)
    x = rand(rng, H, W)
    z, = run(s, [X, Z], x)
    y = x + 1
    close(z, y * y[:, ::-1])


def test_compute_at_with_vectorized_producer_and_consumer(rng):
    n = 21
    A = tl.placeholder((n,), name="A")
    B = tl.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    C = tl.compute((n - 2,), lambda i: B[i] * B[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    s[B].compute_at(s[C], xo)
    bo, bi = s[B].split(B.op.axis[0], factor=4)
    s[B].vectorize(bi)
    text = ir(s, [A, C])
    assert "ramp(" in text, text
    a = rand(rng, n)
    c, = run(s, [A, C], a)
    b = 2 * a + 1
    close(c, b[:-2] * b[2:])


def test_compute_at_producer_fused_split_vectorized(rng):
    H, W = 10, 12
    A = tl.placeholder((H + 2, W + 2), name="A")
    B = tl.compute((H + 2, W + 2), lambda i, j: A[i, j] * 2.0, name="B")
    C = tl.compute((H, W), lambda i, j: B[i, j] + B[i + 2, j + 2], name="C")
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    s[B].compute_at(s[C], xo)
    f = s[B].fuse(*B.op.axis)                          # the 6x6 region as one loop of 36
    fo, fi = s[B].split(f, factor=4)
    s[B].vectorize(fi)
    assert "allocate B: float32[6, 6]" in raw_ir(s, [A, C])
    a = rand(rng, H + 2, W + 2)
    c, = run(s, [A, C], a)
    b = 2 * a
    close(c, b[:-2, :-2] + b[2:, 2:])


@pytest.mark.parametrize("annot", ["vectorize", "unroll"])
def test_compute_at_annotated_loop(rng, annot):
    # attaching inside a vectorized / unrolled loop is allowed; the result must be right
    H, W = 11, 13
    A = tl.placeholder((H + 2, W + 2), name="A")
    B = tl.compute((H + 2, W + 2), lambda i, j: A[i, j] * 2.0, name="B")
    C = tl.compute((H, W), lambda i, j: B[i, j] + B[i + 2, j + 2] + B[i + 1, j], name="C")
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    s[B].compute_at(s[C], xi)
    getattr(s[C], annot)(xi)
    a = rand(rng, H + 2, W + 2)
    c, = run(s, [A, C], a)
    b = 2 * a
    close(c, b[:-2, :-2] + b[2:, 2:] + b[1:-1, :-2])


def test_compute_at_parallel_loop_with_nested_parallel_producer(rng):
    n = 64
    A = tl.placeholder((n + 2,), name="A")
    B = tl.compute((n + 2,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i] + B[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], nparts=4)
    s[C].parallel(xo)
    s[B].compute_at(s[C], xo)
    s[B].parallel(B.op.axis[0])
    a = rand(rng, n + 2)
    c, = run(s, [A, C], a)
    close(c, 2 * a[:-2] + 2 * a[2:])


# ------------------------------------------------------------------ reductions and attaching

def matmul_with_transformed_b(M, N, K):
    A = tl.placeholder((M, K), name="A")
    Bm = tl.placeholder((K, N), name="Bm")
    Bt = tl.compute((K, N), lambda k, j: Bm[k, j] * 2.0 + 1.0, name="Bt")
    k = tl.reduce_axis((0, K), name="k")
    C = tl.compute((M, N), lambda i, j: tl.sum(A[i, k] * Bt[k, j], axis=k), name="C")
    return A, Bm, Bt, k, C


def test_producer_at_split_reduction_axis(rng):
    M, N, K = 12, 10, 13
    A, Bm, Bt, k, C = matmul_with_transformed_b(M, N, K)
    s = tl.create_schedule(C.op)
    i, j = C.op.axis
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(i, ko, j, ki)
    s[Bt].compute_at(s[C], ko)
    # per k.outer: rows k in [4*ko, 4*ko+3] of Bt, all 10 columns
    assert "allocate Bt: float32[4, 10]" in raw_ir(s, [A, Bm, C])
    a, bm = rand(rng, M, K), rand(rng, K, N)
    c, = run(s, [A, Bm, C], a, bm)
    close(c, a @ (bm * 2 + 1))


def test_producer_at_innermost_reduction_axis(rng):
    M, N, K = 6, 5, 7
    A, Bm, Bt, k, C = matmul_with_transformed_b(M, N, K)
    s = tl.create_schedule(C.op)
    s[Bt].compute_at(s[C], k)
    assert "allocate Bt: float32[1, 1]" in raw_ir(s, [A, Bm, C])
    a, bm = rand(rng, M, K), rand(rng, K, N)
    c, = run(s, [A, Bm, C], a, bm)
    close(c, a @ (bm * 2 + 1))


def test_producer_at_data_loop_inside_reduction_loop(rng):
    # loops i, k, j: Bt at j (below k) computes one element per (k, j)
    M, N, K = 6, 5, 7
    A, Bm, Bt, k, C = matmul_with_transformed_b(M, N, K)
    s = tl.create_schedule(C.op)
    i, j = C.op.axis
    s[C].reorder(i, k, j)
    s[Bt].compute_at(s[C], j)
    a, bm = rand(rng, M, K), rand(rng, K, N)
    c, = run(s, [A, Bm, C], a, bm)
    close(c, a @ (bm * 2 + 1))


def test_attached_reduction_at_row_loop(rng):
    # softmax-like normalisation: S (a reduction) computed per row of C
    M, N = 7, 9
    A = tl.placeholder((M, N), name="A")
    k = tl.reduce_axis((0, N), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k), name="S")
    C = tl.compute((M, N), lambda i, j: A[i, j] / S[i], name="C")
    s = tl.create_schedule(C.op)
    s[S].compute_at(s[C], C.op.axis[0])
    assert "allocate S: float32[1]" in raw_ir(s, [A, C])
    a = rand(rng, M, N) + 0.5
    c, = run(s, [A, C], a)
    close(c, a / a.sum(1, keepdims=True))


def test_attached_max_reduction_stencil_with_unrolled_reduce_axis(rng):
    n = 25
    X = tl.placeholder((n + 4,), name="X")
    r = tl.reduce_axis((0, 3), name="r")
    S = tl.compute((n + 2,), lambda i: tl.max(X[i + r], axis=r), name="S")
    D = tl.compute((n,), lambda i: S[i] + S[i + 2], name="D")
    s = tl.create_schedule(D.op)
    xo, xi = s[D].split(D.op.axis[0], factor=8)
    s[S].compute_at(s[D], xo)
    s[S].unroll(r)
    s[D].parallel(xo)
    assert "allocate S: float32[10]" in raw_ir(s, [X, D])
    x = rng.standard_normal(n + 4).astype("float32")
    d, = run(s, [X, D], x)
    sm = np.maximum(np.maximum(x[:-2], x[1:-1]), x[2:])
    close(d, sm[:-2] + sm[2:])


def test_producer_read_in_where_condition_attached_at_row(rng):
    M, K = 5, 12
    A = tl.placeholder((M, K), name="A")
    Mk = tl.compute((M, K), lambda i, k: A[i, k] - 0.5, name="Mk")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k, where=Mk[i, k] > 0.0), name="S")
    s = tl.create_schedule(S.op)
    s[Mk].compute_at(s[S], S.op.axis[0])
    a = rand(rng, M, K)
    sv, = run(s, [A, S], a)
    close(sv, np.where(a > 0.5, a, 0).sum(1))


def test_producer_read_in_where_condition_attached_at_reduction_axis(rng):
    M, K = 5, 12
    A = tl.placeholder((M, K), name="A")
    Mk = tl.compute((M, K), lambda i, k: A[i, k] - 0.5, name="Mk")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k, where=Mk[i, k] > 0.0), name="S")
    s = tl.create_schedule(S.op)
    s[Mk].compute_at(s[S], k)
    a = rand(rng, M, K)
    sv, = run(s, [A, S], a)
    close(sv, np.where(a > 0.5, a, 0).sum(1))


def test_int_producer_cast_in_consumer(rng):
    n = 17
    I = tl.placeholder((n + 1,), dtype="int32", name="I")
    J = tl.compute((n + 1,), lambda i: I[i] * 3, name="J")
    F = tl.compute((n,), lambda i: J[i].astype("float64") - J[i + 1].astype("float64") / 2.0,
                   name="F")
    s = tl.create_schedule(F.op)
    xo, xi = s[F].split(F.op.axis[0], factor=4)
    s[J].compute_at(s[F], xo)
    assert "allocate J: int32[5]" in raw_ir(s, [I, F])
    iv = rng.integers(-100, 100, n + 1).astype("int32")
    f, = run(s, [I, F], iv)
    j = (iv * 3).astype("float64")
    close(f, j[:-1] - j[1:] / 2)


# ------------------------------------------------------------------ symbolic shapes

def test_compute_at_symbolic_1d(rng):
    n = tl.var("n")
    A, B, C, ref = stencil3(n)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    # the region is still 8 + 2 elements, a constant: on the stack
    assert "allocate B: float32[10] on stack" in ir(s, [A, C])
    f = tl.build(s, [A, C], bounds_check=True)
    for nv in (0, 1, 7, 8, 9, 29):
        a = rand(rng, nv + 2)
        c = np.full(nv, np.nan, "float32")
        f(a, c)
        close(c, ref(a))


def test_compute_at_symbolic_2d_blur_parallel(rng):
    h, w = tl.var("h"), tl.var("w")
    A = tl.placeholder((h + 2, w + 2), name="A")
    B = tl.compute((h + 2, w + 2), lambda i, j: A[i, j] * 0.5, name="B")
    ry = tl.reduce_axis((0, 3), name="ry")
    rx = tl.reduce_axis((0, 3), name="rx")
    C = tl.compute((h, w), lambda i, j: tl.sum(B[i + ry, j + rx], axis=[ry, rx]), name="C")
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[C].parallel(yo)
    s[B].compute_at(s[C], xo)
    assert "allocate B: float32[6, 10] on stack" in raw_ir(s, [A, C])
    f = tl.build(s, [A, C], bounds_check=True)
    for H, W in [(1, 1), (4, 8), (5, 9), (13, 17), (0, 3)]:
        a = rand(rng, H + 2, W + 2)
        c = np.full((H, W), np.nan, "float32")
        f(a, c)
        b = a * 0.5
        close(c, sum(b[dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)))


def test_compute_at_symbolic_row_buffer_on_heap(rng):
    # a row of symbolic length m: not a constant size, so "auto" puts it on the heap
    n, m = tl.var("n"), tl.var("m")
    X = tl.placeholder((n, m), name="X")
    Y = tl.compute((n, m), lambda i, j: X[i, j] + 1.0, name="Y")
    Z = tl.compute((n, m), lambda i, j: Y[i, m - 1 - j] * Y[i, j], name="Z")
    s = tl.create_schedule(Z.op)
    s[Y].compute_at(s[Z], Z.op.axis[0])
    assert re.search(r"allocate Y: float32\[[^\]]*\bm\b[^\]]*\] on heap", ir(s, [X, Z]))
    f = tl.build(s, [X, Z], bounds_check=True)
    for N, M in [(5, 7), (1, 1), (3, 40)]:
        x = rand(rng, N, M)
        z = np.full((N, M), np.nan, "float32")
        f(x, z)
        y = x + 1
        close(z, y[:, ::-1] * y)


# =========================================================================== compute_inline / compute_root

def chain_graph(n):
    A = tl.placeholder((n,), name="A")
    B1 = tl.compute((n,), lambda i: A[i] + 1.0, name="B1")
    B2 = tl.compute((n,), lambda i: B1[i] * B1[i], name="B2")
    B3 = tl.compute((n,), lambda i: B2[i] - A[i], name="B3")
    C = tl.compute((n,), lambda i: B3[i] * 2.0, name="C")
    return A, B1, B2, B3, C, (lambda a: ((a + 1) ** 2 - a) * 2)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_compute_inline_chain(rng, order):
    n = 17
    A, B1, B2, B3, C, ref = chain_graph(n)
    s = tl.create_schedule(C.op)
    for k in order:
        s[(B1, B2, B3)[k]].compute_inline()
    text = ir(s, [A, C])
    assert "allocate" not in text, text
    a = rand(rng, n)
    c, = run(s, [A, C], a)
    close(c, ref(a))


def test_compute_inline_into_reduction(rng):
    M, K = 5, 11
    X = tl.placeholder((M, K), name="X")
    E = tl.compute((M, K), lambda i, k: tl.exp(X[i, k]), name="E")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(E[i, k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    s[E].compute_inline()
    ko, ki = s[S].split(k, factor=4)
    assert "allocate" not in ir(s, [X, S])
    x = rand(rng, M, K)
    sv, = run(s, [X, S], x)
    close(sv, np.exp(x).sum(1))


def test_compute_inline_into_attached_stage(rng):
    # B1 inlined into B2, which is computed at C's loop
    n = 30
    A = tl.placeholder((n + 4,), name="A")
    B1 = tl.compute((n + 4,), lambda i: A[i] + 1.0, name="B1")
    B2 = tl.compute((n + 2,), lambda i: B1[i] * B1[i + 2], name="B2")
    C = tl.compute((n,), lambda i: B2[i] - B2[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B2].compute_at(s[C], xo)
    s[B1].compute_inline()
    assert allocs(raw_ir(s, [A, C])) == ["allocate B2: float32[10] on stack"]
    a = rand(rng, n + 4)
    c, = run(s, [A, C], a)
    b1 = a + 1
    b2 = b1[:-2] * b1[2:]
    close(c, b2[:-2] - b2[2:])


def test_compute_root_undoes_inline(rng):
    M, K = 5, 11
    X = tl.placeholder((M, K), name="X")
    E = tl.compute((M, K), lambda i, k: tl.exp(X[i, k]), name="E")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(E[i, k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    s[E].compute_inline()
    s[E].compute_root()
    assert allocs(ir(s, [X, S])) == [f"allocate E: float32[{M * K}] on stack"]
    x = rand(rng, M, K)
    sv, = run(s, [X, S], x)
    close(sv, np.exp(x).sum(1))


def test_compute_root_undoes_compute_at_and_inline(rng):
    n = 17
    A, B1, B2, B3, C, ref = chain_graph(n)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[B3].compute_at(s[C], xo)
    s[B2].compute_inline()
    s[B3].compute_root()
    s[B2].compute_root()
    text = ir(s, [A, C])
    # all three at root again: whole-tensor buffers, before C's loops
    assert allocs(text) == [f"allocate {b}: float32[{n}] on stack" for b in ("B1", "B2", "B3")]
    a = rand(rng, n)
    c, = run(s, [A, C], a)
    close(c, ref(a))


def test_last_placement_wins(rng):
    # compute_at then compute_inline: inlined; compute_inline then compute_at: attached
    n = 21
    A, B, C, ref = stencil3(n)
    a = rand(rng, n + 2)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    s[B].compute_inline()
    assert "allocate" not in ir(s, [A, C])
    close(run(s, [A, C], a)[0], ref(a))
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_inline()
    s[B].compute_at(s[C], xo)
    assert "allocate B: float32[10]" in ir(s, [A, C])
    close(run(s, [A, C], a)[0], ref(a))


def test_compute_root_on_output_is_allowed():
    A, B, C, _ = stencil3(8)
    s = tl.create_schedule(C.op)
    s[C].compute_root()
    assert s[C].attach_type == "root"


# =========================================================================== cache_read / cache_write

def matmul(M, N, K):
    A = tl.placeholder((M, K), name="A")
    B = tl.placeholder((K, N), name="B")
    k = tl.reduce_axis((0, K), name="k")
    C = tl.compute((M, N), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, k, C


def test_cache_read_at_reader_row_loop(rng):
    M, N, K = 16, 12, 20
    A, B, k, C = matmul(M, N, K)
    s = tl.create_schedule(C.op)
    AA = s.cache_read(A, "global", [C])
    assert AA.name == "A.global" and tuple(d.value for d in AA.shape) == (M, K)
    s[AA].compute_at(s[C], C.op.axis[0])
    text = raw_ir(s, [A, B, C])
    assert f"allocate A_global: float32[1, {K}]" in text, text
    a, b = rand(rng, M, K), rand(rng, K, N)
    c, = run(s, [A, B, C], a, b)
    close(c, a @ b)


def test_cache_read_both_inputs_at_k_outer(rng):
    M, N, K = 20, 12, 30
    A, B, k, C = matmul(M, N, K)
    s = tl.create_schedule(C.op)
    AA = s.cache_read(A, "global", [C])
    BB = s.cache_read(B, "global", C)          # a single reader need not be in a list
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, 8, 8)
    ko, ki = s[C].split(k, factor=8)
    s[C].reorder(io, jo, ko, ii, ki, ji)
    s[AA].compute_at(s[C], ko)
    s[BB].compute_at(s[C], ko)
    s[C].vectorize(ji)
    text = raw_ir(s, [A, B, C])
    assert "allocate A_global: float32[8, 8]" in text and "allocate B_global: float32[8, 8]" in text
    a, b = rand(rng, M, K), rand(rng, K, N)
    c, = run(s, [A, B, C], a, b)
    close(c, a @ b)


def test_cache_read_intermediate_with_two_readers(rng):
    n = 15
    P = tl.placeholder((n,), name="P")
    Q = tl.compute((n,), lambda i: P[i] + 1.0, name="Q")
    U = tl.compute((n,), lambda i: Q[i] * 2.0, name="U")
    V = tl.compute((n,), lambda i: Q[n - 1 - i] + U[i], name="V")
    s = tl.create_schedule(V.op)
    QQ = s.cache_read(Q, "global", [U.op, V])
    assert QQ.name == "Q.global"
    assert [t.name for t in s[U].op.input_tensors] == ["Q.global"]
    assert sorted(t.name for t in s[V].op.input_tensors) == ["Q.global", "U"]
    p = rand(rng, n)
    v, = run(s, [P, V], p)
    q = p + 1
    close(v, q[::-1] + 2 * q)
    # the source of the cache can itself be inlined into the copy
    s = tl.create_schedule(V.op)
    s.cache_read(Q, "global", [U, V])
    s[Q].compute_inline()
    s[U].compute_inline()
    assert allocs(ir(s, [P, V])) == [f"allocate Q_global: float32[{n}] on stack"]
    close(run(s, [P, V], p)[0], q[::-1] + 2 * q)


def test_cache_read_computed_at_an_attached_stage(rng):
    # X cached for B; B computed at E's loop; the cache at B's own split loop
    n = 20
    X = tl.placeholder((n + 2,), name="X")
    B = tl.compute((n + 2,), lambda i: X[i] * 2.0, name="B")
    E = tl.compute((n,), lambda i: B[i] + B[i + 2], name="E")
    s = tl.create_schedule(E.op)
    XX = s.cache_read(X, "global", [B])
    eo, ei = s[E].split(E.op.axis[0], factor=8)
    s[B].compute_at(s[E], eo)
    bo, bi = s[B].split(B.op.axis[0], factor=4)
    s[XX].compute_at(s[B], bo)
    text = raw_ir(s, [X, E])
    assert "allocate B: float32[10]" in text and "allocate X_global: float32[4]" in text, text
    x = rand(rng, n + 2)
    e, = run(s, [X, E], x)
    close(e, 2 * x[:-2] + 2 * x[2:])


@pytest.mark.parametrize("M, N, K", [(16, 12, 20), (13, 10, 18)], ids=["divisible", "tails"])
def test_cache_write_reduction_at_tile(rng, M, N, K):
    A, B, k, C = matmul(M, N, K)
    s = tl.create_schedule(C.op)
    CC = s.cache_write(C, "global")
    assert CC.name == "C.global"
    # the cache carries the reduction; C becomes a copy of it
    assert len(s[CC].op.reduce_axis) == 1 and not s[C].op.reduce_axis
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, 8, 4)
    s[CC].compute_at(s[C], jo)
    ci, cj = s[CC].op.axis
    kk, = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kk, factor=4)
    s[CC].reorder(ko, ci, ki, cj)
    s[CC].unroll(ki)
    s[CC].vectorize(cj)
    assert "allocate C_global: float32[8, 4]" in raw_ir(s, [A, B, C])
    text = ir(s, [A, B, C])
    assert "ramp(" in text and "for k.inner" not in text, text     # vectorized, unrolled
    a, b = rand(rng, M, K), rand(rng, K, N)
    c, = run(s, [A, B, C], a, b)
    close(c, a @ b)


def test_cache_write_elementwise_and_inline_cache(rng):
    n = 15
    P = tl.placeholder((n,), name="P")
    U = tl.compute((n,), lambda i: (P[n - 1 - i] + 1.0) * 2.0, name="U")
    p = rand(rng, n)
    s = tl.create_schedule(U.op)
    UC = s.cache_write(U, "global")
    uo, ui = s[U].split(U.op.axis[0], factor=4)
    s[UC].compute_at(s[U], uo)
    assert "allocate U_global: float32[4]" in raw_ir(s, [P, U])
    close(run(s, [P, U], p)[0], (p[::-1] + 1) * 2)
    s = tl.create_schedule(U.op)
    UC = s.cache_write(U, "global")
    s[UC].compute_inline()
    assert "allocate" not in ir(s, [P, U])
    close(run(s, [P, U], p)[0], (p[::-1] + 1) * 2)


def test_cache_write_min_reduction_with_where(rng):
    M, K = 4, 11
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    Mn = tl.compute((M,), lambda i: tl.min(A[i, k], axis=k, where=k != 2 * i), name="Mn")
    s = tl.create_schedule(Mn.op)
    MC = s.cache_write(Mn, "global")
    kk, = s[MC].op.reduce_axis
    ko, ki = s[MC].split(kk, factor=4)
    s[MC].unroll(ki)
    mo, mi = s[Mn].split(Mn.op.axis[0], factor=2)
    s[MC].compute_at(s[Mn], mo)
    a = rand(rng, M, K)
    mn, = run(s, [A, Mn], a)
    close(mn, np.array([np.delete(a[i], 2 * i).min() for i in range(M)]))


def test_cache_write_with_producer_at_cache_reduction_loop(rng):
    M, N, K = 6, 7, 9
    A, Bm, Bt, k, G = matmul_with_transformed_b(M, N, K)
    s = tl.create_schedule(G.op)
    GC = s.cache_write(G, "global")
    go, gi = s[G].split(G.op.axis[0], factor=4)
    s[GC].compute_at(s[G], go)
    kr, = s[GC].op.reduce_axis
    ko, ki = s[GC].split(kr, factor=2)
    s[GC].reorder(ko, *s[GC].op.axis, ki)
    s[Bt].compute_at(s[GC], ko)
    text = raw_ir(s, [A, Bm, G])
    assert "allocate Bt: float32[2, 7]" in text and "allocate C_global: float32[4, 7]" in text
    a, bm = rand(rng, M, K), rand(rng, K, N)
    g, = run(s, [A, Bm, G], a, bm)
    close(g, a @ (bm * 2 + 1))


# =========================================================================== rfactor

def full_sum(n):
    A = tl.placeholder((n,), name="A")
    k = tl.reduce_axis((0, n), name="k")
    S = tl.compute((1,), lambda i: tl.sum(A[k], axis=k), name="S")
    return A, k, S


@pytest.mark.parametrize("n", [48, 50], ids=["exact", "inexact"])
def test_rfactor_factor_split_inner(rng, n):
    A, k, S = full_sum(n)
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, factor=8)
    SF = s.rfactor(S, ki)
    assert SF.name == "S.rf" and tuple(d.value for d in SF.shape) == (8, 1)
    assert [st.op.name for st in s.stages] == ["A", "S.rf", "S"]
    a = rand(rng, n)
    sv, = run(s, [A, S], a)
    close(sv, [a.sum()])


def test_rfactor_nparts_outer_parallel(rng):
    n = 50
    A, k, S = full_sum(n)
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, nparts=4)
    SF = s.rfactor(S, ko)
    assert tuple(d.value for d in SF.shape) == (4, 1)
    s[SF].parallel(s[SF].op.axis[0])
    assert "parallel(" in ir(s, [A, S])
    a = rand(rng, n)
    sv, = run(s, [A, S], a)
    close(sv, [a.sum()])


def test_rfactor_vectorized(rng):
    n = 50
    A, k, S = full_sum(n)
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, factor=8)
    SF = s.rfactor(S, ki)
    s[SF].reorder(*s[SF].op.reduce_axis, s[SF].op.axis[0])
    s[SF].vectorize(s[SF].op.axis[0])
    assert "ramp(" in ir(s, [A, S])
    a = rand(rng, n)
    sv, = run(s, [A, S], a)
    close(sv, [a.sum()])


def test_rfactor_unsplit_axis_and_inline_rf(rng):
    # rfactor over the whole k: S.rf has no reduction left (it is A copied), so it can be
    # inlined back
    M, K = 6, 21
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    SF = s.rfactor(S, k)
    assert tuple(d.value for d in SF.shape) == (K, M) and not s[SF].op.reduce_axis
    a = rand(rng, M, K)
    close(run(s, [A, S], a)[0], a.sum(1))
    s[SF].compute_inline()
    assert "allocate" not in ir(s, [A, S])
    close(run(s, [A, S], a)[0], a.sum(1))


@pytest.mark.parametrize("factor_axis", [0, 1])
@pytest.mark.parametrize("which", ["inner", "outer"])
def test_rfactor_row_sums_factor_axis(rng, factor_axis, which):
    M, K = 6, 37
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, factor=5)           # 37 = 7*5 + 2: inexact
    SF = s.rfactor(S, ki if which == "inner" else ko, factor_axis=factor_axis)
    ext = 5 if which == "inner" else 8
    assert tuple(d.value for d in SF.shape) == ((ext, M) if factor_axis == 0 else (M, ext))
    # the partial results are independent: the factor dimension can run in parallel
    s[SF].parallel(s[SF].op.axis[factor_axis])
    a = rand(rng, M, K)
    sv, = run(s, [A, S], a)
    close(sv, a.sum(1))


@pytest.mark.parametrize("factor_axis", [0, 1, 2])
def test_rfactor_2d_output_any_factor_axis_with_aligned_rf(rng, factor_axis):
    X = tl.placeholder((3, 4, 13), name="X")
    k = tl.reduce_axis((0, 13), name="k")
    S = tl.compute((3, 4), lambda i, j: tl.sum(X[i, j, k] * (j + 1.0), axis=k), name="S")
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, factor=5)                   # 3 partial sums (5 + 5 + 3)
    SF = s.rfactor(S, ko, factor_axis=factor_axis)
    shape = [3, 4]
    shape.insert(factor_axis, 3)
    assert [d.value for d in SF.shape] == shape
    s[SF].storage_align(s[SF].op.axis[1], 8, 3)
    x = rand(rng, 3, 4, 13)
    sv, = run(s, [X, S], x)
    close(sv, (x * (np.arange(4)[None, :, None] + 1)).sum(2))


def test_rfactor_reduce_axis_not_starting_at_zero(rng):
    M, K = 5, 23
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((3, 20), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k), name="S")
    a = rand(rng, M, K)
    for pick in (0, 1):
        s = tl.create_schedule(S.op)
        parts = s[S].split(k, factor=5)
        s.rfactor(S, parts[pick], factor_axis=1)
        close(run(s, [A, S], a)[0], a[:, 3:20].sum(1))


def test_rfactor_with_other_reduction_axes(rng):
    Y = tl.placeholder((4, 6, 5), name="Y")
    r1 = tl.reduce_axis((0, 6), name="r1")
    r2 = tl.reduce_axis((0, 5), name="r2")
    S = tl.compute((4,), lambda i: tl.sum(Y[i, r1, r2], axis=[r1, r2]), name="S")
    y = rand(rng, 4, 6, 5)
    s = tl.create_schedule(S.op)
    SF = s.rfactor(S, r2)
    assert tuple(d.value for d in SF.shape) == (5, 4) and len(s[SF].op.reduce_axis) == 1
    close(run(s, [Y, S], y)[0], y.sum((1, 2)))
    s = tl.create_schedule(S.op)
    r1o, r1i = s[S].split(r1, factor=4)
    s.rfactor(S, r1o, factor_axis=1)
    close(run(s, [Y, S], y)[0], y.sum((1, 2)))
    s = tl.create_schedule(S.op)
    f = s[S].fuse(r1, r2)
    fo, fi = s[S].split(f, factor=7)
    s.rfactor(S, fi)
    close(run(s, [Y, S], y)[0], y.sum((1, 2)))


def test_rfactor_where_mask_on_reduction_index(rng):
    M, K = 6, 37
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k, where=(k > i)), name="S")
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, factor=8)
    s.rfactor(S, ki)
    a = rand(rng, M, K)
    sv, = run(s, [A, S], a)
    close(sv, [a[i, i + 1:].sum() for i in range(M)])


def test_rfactor_where_mask_nparts_vectorized(rng):
    M, K = 5, 23
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k, where=(k >= 2 * i)), name="S")
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, nparts=3)
    SF = s.rfactor(S, ko, factor_axis=1)
    s[SF].vectorize(s[SF].op.axis[1])
    a = rand(rng, M, K)
    sv, = run(s, [A, S], a)
    close(sv, [a[i, 2 * i:].sum() for i in range(M)])


def test_rfactor_max_reducer_with_where_parallel(rng):
    M, K = 6, 37
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    Mx = tl.compute((M,), lambda i: tl.max(A[i, k], axis=k, where=(k % 3 != 1)), name="Mx")
    s = tl.create_schedule(Mx.op)
    ko, ki = s[Mx].split(k, factor=4)
    SF = s.rfactor(Mx, ko, factor_axis=1)
    s[SF].parallel(s[SF].op.axis[0])
    a = rng.standard_normal((M, K)).astype("float32")
    mv, = run(s, [A, Mx], a)
    close(mv, a[:, np.arange(K) % 3 != 1].max(1))


def test_rfactor_custom_product_reducer(rng):
    prod = tl.comm_reducer(lambda x, y: x * y, lambda t: tl.const(1, t), name="prod")
    M, K = 4, 11
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    P = tl.compute((M,), lambda i: prod(A[i, k], axis=k), name="P")
    s = tl.create_schedule(P.op)
    ko, ki = s[P].split(k, factor=3)
    s.rfactor(P, ki, factor_axis=1)
    a = (rng.random((M, K)) + 0.5).astype("float32")
    close(run(s, [A, P], a)[0], a.prod(1))


def test_rfactor_then_compute_at(rng):
    # S (an intermediate) reduced via S.rf; S computed per row of F, S.rf per element of S
    M, K = 6, 21
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(A[i, k] * A[i, k], axis=k), name="S")
    F = tl.compute((M,), lambda i: S[i] * 2.0 + A[i, 0], name="F")
    s = tl.create_schedule(F.op)
    ko, ki = s[S].split(k, factor=4)
    SF = s.rfactor(S, ki)
    s[S].compute_at(s[F], F.op.axis[0])
    s[SF].compute_at(s[S], S.op.axis[0])
    s[SF].vectorize(s[SF].op.axis[0])
    text = raw_ir(s, [A, F])
    assert "allocate S: float32[1]" in text and "allocate S_rf: float32[4, 1]" in text, text
    a = rand(rng, M, K)
    f, = run(s, [A, F], a)
    close(f, (a * a).sum(1) * 2 + a[:, 0])


def test_rfactor_symbolic_extent(rng):
    n = tl.var("n")
    A, k, S = full_sum(n)
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, nparts=4)
    SF = s.rfactor(S, ko)
    s[SF].parallel(s[SF].op.axis[0])
    f = tl.build(s, [A, S], bounds_check=True)
    for nv in (0, 1, 3, 5, 101):
        a = rand(rng, nv)
        sv = np.full(1, np.nan, "float32")
        f(a, sv)
        close(sv, [a.sum()])


# =========================================================================== storage_align

def align_graph(H=6, W=10):
    A = tl.placeholder((H, W), name="A")
    B = tl.compute((H, W), lambda i, j: A[i, j] * 2.0, name="B")
    C = tl.compute((H, W), lambda i, j: B[i, j] + B[i, W - 1 - j], name="C")
    return A, B, C, lambda a: 2 * a + 2 * a[:, ::-1]


def test_storage_align_root_buffer(rng):
    A, B, C, ref = align_graph()
    s = tl.create_schedule(C.op)
    s[B].storage_align(B.op.axis[0], 16, 1)
    # row stride 10 -> the next k*16 + 1 >= 10 is 17; the buffer holds 6 rows of 17
    assert "allocate B: float32[6, 10] strides=[17, 1]" in raw_ir(s, [A, C])
    text = ir(s, [A, C])
    assert "allocate B: float32[102]" in text and "B[i * 17 + j] = " in text, text
    a = rand(rng, 6, 10)
    close(run(s, [A, C], a)[0], ref(a))


def test_storage_align_attached_buffer(rng):
    A, B, C, ref = align_graph()
    s = tl.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[0])
    s[B].storage_align(B.op.axis[0], 4, 3)
    # region one row of 10: stride 10 -> 11 (11 % 4 == 3)
    assert "allocate B: float32[1, 10] strides=[11, 1]" in raw_ir(s, [A, C])
    a = rand(rng, 6, 10)
    close(run(s, [A, C], a)[0], ref(a))


def test_storage_align_two_axes_3d(rng):
    A = tl.placeholder((3, 5, 7), name="A")
    B = tl.compute((3, 5, 7), lambda i, j, k: A[i, j, k] + 1.0, name="B")
    C = tl.compute((3, 5, 7), lambda i, j, k: B[i, j, k] * B[2 - i, 4 - j, 6 - k], name="C")
    s = tl.create_schedule(C.op)
    s[B].storage_align(B.op.axis[1], 8, 0)
    s[B].storage_align(B.op.axis[0], 32, 5)
    # dim 1: stride 7 -> 8; dim 0: stride 8*5 = 40 -> 69 (the next 32k + 5 >= 40)
    assert "allocate B: float32[3, 5, 7] strides=[69, 8, 1]" in raw_ir(s, [A, C])
    assert "allocate B: float32[207]" in ir(s, [A, C])
    a = rand(rng, 3, 5, 7)
    b = a + 1
    close(run(s, [A, C], a)[0], b * b[::-1, ::-1, ::-1])


def test_storage_align_already_aligned_and_last_axis(rng):
    A, B, C, ref = align_graph(4, 16)
    s = tl.create_schedule(C.op)
    s[B].storage_align(B.op.axis[0], 8, 0)        # 16 % 8 == 0 already: unchanged
    s[B].storage_align(B.op.axis[1], 4, 2)        # element stride 1 -> 2
    assert "strides=[32, 2]" in raw_ir(s, [A, C])
    a = rand(rng, 4, 16)
    close(run(s, [A, C], a)[0], ref(a))


def test_storage_align_blur_tile_with_cache(rng):
    H, W = 19, 23
    A, B, C, ref = blur_2d(H, W)
    s = tl.create_schedule(C.op)
    yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], 8, 8)
    s[B].compute_at(s[C], xo)
    s[B].storage_align(B.op.axis[0], 16, 3)
    AA = s.cache_read(A, "heap", [B])
    assert AA.name == "A.heap"
    s[AA].compute_at(s[C], xo)
    text = raw_ir(s, [A, C])
    assert "allocate B: float32[10, 10] strides=[19, 1] on stack" in text, text
    assert "allocate A_heap: float32[10, 10] on heap" in text, text
    a = rand(rng, H + 2, W + 2)
    close(run(s, [A, C], a)[0], ref(a))


def test_storage_align_symbolic_row(rng):
    n, m = tl.var("n"), tl.var("m")
    X = tl.placeholder((n, m), name="X")
    Y = tl.compute((n, m), lambda i, j: X[i, j] + 1.0, name="Y")
    Z = tl.compute((n - 1, m), lambda i, j: Y[i, m - 1 - j] * Y[i + 1, j], name="Z")
    s = tl.create_schedule(Z.op)
    zo, zi = s[Z].split(Z.op.axis[0], factor=2)
    s[Y].compute_at(s[Z], zo)
    s[Y].storage_align(Y.op.axis[0], 16, 1)
    f = tl.build(s, [X, Z], bounds_check=True)
    for N, M in [(2, 1), (5, 7), (6, 16), (9, 33)]:
        x = rand(rng, N, M)
        z = np.full((N - 1, M), np.nan, "float32")
        f(x, z)
        y = x + 1
        close(z, y[:-1, ::-1] * y[1:])


# =========================================================================== set_scope

@pytest.mark.parametrize("scope, where", [("heap", "heap"), ("stack", "stack"),
                                          ("global", "stack"), ("local", "stack")])
def test_set_scope_attached_in_parallel_loop(rng, scope, where):
    n = 37
    A = tl.placeholder((n + 2,), name="A")
    B = tl.compute((n + 2,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i] + B[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].parallel(xo)
    s[B].compute_at(s[C], xo)
    s[B].set_scope(scope)
    text = ir(s, [A, C])
    assert "for i.outer in parallel(" in text
    assert set(allocs(text)) == {f"allocate B: float32[10] on {where}"}, text
    a = rand(rng, n + 2)
    close(run(s, [A, C], a)[0], 2 * a[:-2] + 2 * a[2:])


@pytest.mark.parametrize("n, dtype, where", [(8192, "float32", "stack"), (8193, "float32", "heap"),
                                             (4096, "float64", "stack"), (4097, "float64", "heap")])
def test_auto_scope_threshold_32kib(n, dtype, where):
    A = tl.placeholder((n,), name="A", dtype=dtype)
    B = tl.compute((n,), lambda i: A[i] + tl.const(1, dtype), name="B")
    C = tl.compute((n,), lambda i: B[n - 1 - i], name="C")
    s = tl.create_schedule(C.op)
    assert allocs(ir(s, [A, C])) == [f"allocate B: {dtype}[{n}] on {where}"]


def big_reverse(n):
    A = tl.placeholder((n,), name="A")
    B = tl.compute((n,), lambda i: A[i] + 1.0, name="B")
    C = tl.compute((n,), lambda i: B[n - 1 - i] * 2.0, name="C")
    return A, B, C


def test_set_scope_large_buffers(rng):
    n = 20000                                  # 80 KB: auto -> heap, explicit stack allowed
    A, B, C = big_reverse(n)
    a = rand(rng, n)
    s = tl.create_schedule(C.op)
    assert allocs(ir(s, [A, C])) == [f"allocate B: float32[{n}] on heap"]
    close(run(s, [A, C], a)[0], (a[::-1] + 1) * 2)
    s[B].set_scope("stack")
    assert allocs(ir(s, [A, C])) == [f"allocate B: float32[{n}] on stack"]
    close(run(s, [A, C], a)[0], (a[::-1] + 1) * 2)
    # explicit stack: up to 1 MiB
    A, B, C = big_reverse(262144)
    s = tl.create_schedule(C.op)
    s[B].set_scope("stack")
    assert allocs(ir(s, [A, C])) == ["allocate B: float32[262144] on stack"]


def test_set_scope_small_buffer_on_heap(rng):
    n = 9
    A, B, C = big_reverse(n)
    s = tl.create_schedule(C.op)
    s[B].set_scope("heap")
    assert allocs(ir(s, [A, C])) == [f"allocate B: float32[{n}] on heap"]
    a = rand(rng, n)
    close(run(s, [A, C], a)[0], (a[::-1] + 1) * 2)


# =========================================================================== multiple outputs

def two_output_graph(n):
    A = tl.placeholder((n + 2,), name="A")
    T = tl.compute((n + 2,), lambda i: A[i] + 1.0, name="T")
    C = tl.compute((n + 1,), lambda i: T[i] * T[i + 1], name="C")
    U = tl.compute((n,), lambda i: A[i + 2] * 2.0, name="U")
    D = tl.compute((n,), lambda i: C[i] + C[i + 1] + U[i], name="D")

    def ref(a):
        t = a + 1
        c = t[:-1] * t[1:]
        return c, c[:-1] + c[1:] + 2 * a[2:]
    return A, T, C, U, D, ref


def test_multiple_outputs_one_feeds_the_other(rng):
    n = 22
    A, T, C, U, D, ref = two_output_graph(n)
    s = tl.create_schedule([C.op, D.op])
    assert [st.op.name for st in s.stages] == ["A", "T", "C", "U", "D"]
    a = rand(rng, n + 2)
    c, d = run(s, [A, C, D], a)
    cr, dr = ref(a)
    close(c, cr)
    close(d, dr)
    # argument order is free; listing the outputs in the other order changes nothing
    s = tl.create_schedule([D.op, C.op])
    d, c = run(s, [A, D, C], a)
    close(c, cr)
    close(d, dr)


def test_multiple_outputs_with_attached_and_inlined_stages(rng):
    n = 22
    A, T, C, U, D, ref = two_output_graph(n)
    s = tl.create_schedule([C.op, D.op])
    do, di = s[D].split(D.op.axis[0], factor=8)
    s[U].compute_at(s[D], do)
    co, ci = s[C].split(C.op.axis[0], factor=4)
    s[T].compute_at(s[C], co)
    text = raw_ir(s, [A, C, D])
    assert "allocate T: float32[5]" in text and "allocate U: float32[8]" in text, text
    a = rand(rng, n + 2)
    c, d = run(s, [A, C, D], a)
    cr, dr = ref(a)
    close(c, cr)
    close(d, dr)
    s = tl.create_schedule([C.op, D.op])
    s[U].compute_inline()
    s[T].compute_inline()
    assert "allocate" not in ir(s, [A, C, D])
    c, d = run(s, [A, C, D], a)
    close(c, cr)
    close(d, dr)


def test_multiple_outputs_cache_write_and_cache_read(rng):
    M, K = 6, 9
    A = tl.placeholder((M, K), name="A")
    k = tl.reduce_axis((0, K), name="k")
    C = tl.compute((M,), lambda i: tl.sum(A[i, k], axis=k), name="C")
    D = tl.compute((M - 1,), lambda i: C[i] * C[i + 1], name="D")
    a = rand(rng, M, K)
    cr = a.sum(1)
    dr = cr[:-1] * cr[1:]
    s = tl.create_schedule([C.op, D.op])
    s.cache_write(C, "global")
    c, d = run(s, [A, C, D], a)
    close(c, cr)
    close(d, dr)
    s = tl.create_schedule([C.op, D.op])
    CR = s.cache_read(C, "global", [D])
    do, di = s[D].split(D.op.axis[0], factor=2)
    s[CR].compute_at(s[D], do)
    assert "allocate C_global: float32[3]" in raw_ir(s, [A, C, D])
    c, d = run(s, [A, C, D], a)
    close(c, cr)
    close(d, dr)


# =========================================================================== errors

def error_graph():
    """B (halo) -> C, A -> D, C + D -> E (the output); S a reduction read by F."""
    n = 20
    g = {}
    g["A"] = A = tl.placeholder((n + 2,), name="A")
    g["B"] = B = tl.compute((n + 2,), lambda i: A[i] * 2.0, name="B")
    g["C"] = C = tl.compute((n,), lambda i: B[i] + B[i + 2], name="C")
    g["D"] = D = tl.compute((n,), lambda i: A[i] - 1.0, name="D")
    g["E"] = tl.compute((n,), lambda i: C[i] + D[i], name="E")
    k = tl.reduce_axis((0, n), name="k")
    g["k"] = k
    g["S"] = S = tl.compute((1,), lambda i: tl.sum(A[k], axis=k), name="S")
    g["F"] = tl.compute((1,), lambda i: S[i] * 2.0, name="F")
    return g


@pytest.fixture
def g():
    return error_graph()


def test_error_compute_at_stage_that_does_not_consume(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B", "D") as info:
        s[g["B"]].compute_at(s[g["D"]], g["D"].op.axis[0])
    assert "does not consume" in str(info.value)


def test_error_compute_at_own_loops(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B") as info:
        s[g["B"]].compute_at(s[g["B"]], g["B"].op.axis[0])
    assert "own loops" in str(info.value)


def test_error_compute_at_with_axis_of_another_stage():
    A = tl.placeholder((10,), name="A")
    B = tl.compute((10,), lambda b: A[b] * 2.0, name="B")
    C = tl.compute((10,), lambda c: B[c] + 1.0, name="C")
    D = tl.compute((10,), lambda d: C[d] + B[d], name="D")
    s = tl.create_schedule(D.op)
    with user_error(tl.ScheduleError, "B", "C", "d"):
        s[B].compute_at(s[C], D.op.axis[0])
    with user_error(tl.ScheduleError, "B", "C", "b"):
        s[B].compute_at(s[C], B.op.axis[0])
    with user_error(tl.ScheduleError, "B", "C"):
        s[B].compute_at(s[C], 0)
    # an axis C no longer has (it was split)
    s[C].split(C.op.axis[0], factor=4)
    with user_error(tl.ScheduleError, "B", "C", "c") as info:
        s[B].compute_at(s[C], C.op.axis[0])
    assert "c.outer" in str(info.value)          # lists the current loops


def test_error_compute_at_with_axis_of_another_stage_names_its_owner(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B", "C", "E"):
        s[g["B"]].compute_at(s[g["C"]], g["E"].op.axis[0])


def test_error_compute_at_bad_parent(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.TensorlangTypeError, "B"):
        s[g["B"]].compute_at(g["C"], g["C"].op.axis[0])          # a tensor, not s[C]
    other = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B", "C") as info:
        s[g["B"]].compute_at(other[g["C"]], g["C"].op.axis[0])
    assert "another schedule" in str(info.value)


def test_error_attach_axis_split_afterwards(g):
    s = tl.create_schedule(g["E"].op)
    C = g["C"]
    s[g["B"]].compute_at(s[C], C.op.axis[0])
    s[C].split(C.op.axis[0], factor=4)
    with user_error(tl.ScheduleError, "B", "C", "i") as info:
        tl.lower(s, [g["A"], g["E"]])
    assert "i.outer, i.inner" in str(info.value)


def test_error_attach_axis_fused_afterwards():
    A = tl.placeholder((4, 6), name="A")
    B = tl.compute((4, 6), lambda i, j: A[i, j] + 1.0, name="B")
    C = tl.compute((4, 6), lambda i, j: B[i, 5 - j], name="C")
    s = tl.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[1])
    s[C].fuse(*C.op.axis)
    with user_error(tl.ScheduleError, "B", "C", "j"):
        tl.lower(s, [A, C])


def test_error_reader_of_attached_stage_left_at_root(g):
    # B at E's loop, but B's reader C is at root (outside that loop)
    s = tl.create_schedule(g["E"].op)
    s[g["B"]].compute_at(s[g["E"]], g["E"].op.axis[0])
    with user_error(tl.ScheduleError, "B", "C", "E") as info:
        tl.lower(s, [g["A"], g["E"]])
    assert "at root" in str(info.value)
    # fixed by computing C there too, or by inlining C
    s[g["C"]].compute_at(s[g["E"]], g["E"].op.axis[0])
    tl.lower(s, [g["A"], g["E"]])
    s[g["C"]].compute_inline()
    tl.lower(s, [g["A"], g["E"]])


def test_error_reader_attached_at_an_outer_loop():
    n = 19
    A = tl.placeholder((n + 2,), name="A")
    P = tl.compute((n + 2,), lambda i: A[i] + 3.0, name="P")
    Q = tl.compute((n,), lambda i: P[i] * P[i + 1], name="Q")
    C = tl.compute((n,), lambda i: Q[i] + P[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[P].compute_at(s[C], xi)
    s[Q].compute_at(s[C], xo)               # Q reads P but runs outside P's loop
    with user_error(tl.ScheduleError, "P", "Q", "C", "i.inner", "i.outer"):
        tl.lower(s, [A, C])


def test_error_reader_of_attached_stage_is_other_output():
    n = 22
    A, T, C, U, D, ref = two_output_graph(n)
    s = tl.create_schedule([C.op, D.op])
    # U is read only by D: fine; T is read by C, so it cannot live inside D's loop
    s[T].compute_at(s[D], D.op.axis[0])
    with user_error(tl.ScheduleError, "T", "C", "D"):
        tl.lower(s, [A, C, D])


def test_error_compute_at_inlined_stage(g):
    s = tl.create_schedule(g["E"].op)
    s[g["C"]].compute_inline()
    s[g["B"]].compute_at(s[g["C"]], g["C"].op.axis[0])
    with user_error(tl.ScheduleError, "B", "C") as info:
        tl.lower(s, [g["A"], g["E"]])
    assert "inlined" in str(info.value)


def test_error_inline_stage_with_attached_producer(g):
    s = tl.create_schedule(g["E"].op)
    s[g["B"]].compute_at(s[g["C"]], g["C"].op.axis[0])
    with user_error(tl.ScheduleError, "C", "B"):
        s[g["C"]].compute_inline()


def test_error_inline_reduction(g):
    s = tl.create_schedule(g["F"].op)
    with user_error(tl.ScheduleError, "S") as info:
        s[g["S"]].compute_inline()
    assert "reduction" in str(info.value)


@pytest.mark.parametrize("prim", ["compute_inline", "compute_at"])
def test_error_place_an_output(g, prim):
    s = tl.create_schedule(g["E"].op)
    E = g["E"]
    with user_error(tl.ScheduleError, "E") as info:
        if prim == "compute_inline":
            s[E].compute_inline()
        else:
            s[E].compute_at(s[E], E.op.axis[0])
    assert "output" in str(info.value)


def test_error_place_an_output_of_a_multi_output_schedule():
    A, T, C, U, D, _ = two_output_graph(10)
    s = tl.create_schedule([C.op, D.op])
    with user_error(tl.ScheduleError, "C"):
        s[C].compute_at(s[D], D.op.axis[0])
    with user_error(tl.ScheduleError, "C"):
        s[C].compute_inline()


@pytest.mark.parametrize("prim", ["compute_inline", "compute_at", "compute_root"])
def test_error_place_a_placeholder(g, prim):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "A") as info:
        if prim == "compute_at":
            s[g["A"]].compute_at(s[g["C"]], g["C"].op.axis[0])
        else:
            getattr(s[g["A"]], prim)()
    assert "placeholder" in str(info.value)


def test_error_compute_at_into_a_placeholder(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B", "A"):
        s[g["B"]].compute_at(s[g["A"]], g["C"].op.axis[0])


@pytest.mark.parametrize("how", ["inline", "attached"])
def test_non_root_tensor_in_args_is_still_written(rng, how):
    # README: an argument computed at a loop is written region by region (the regions its
    # readers need: here all of B); an inlined one is written by a loop nest of its own
    n = 20
    A, B, C, ref = stencil3(n)
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    if how == "inline":
        s[B].compute_inline()
    else:
        s[B].compute_at(s[C], xo)
    a = rand(rng, n + 2)
    b, c = run(s, [A, B, C], a)
    close(b, 2 * a)
    close(c, ref(a))


def test_error_rfactor_data_axis(g):
    s = tl.create_schedule(g["S"].op)
    with user_error(tl.ScheduleError, "S", "i", "k") as info:
        s.rfactor(g["S"], g["S"].op.axis[0])
    assert "data axis" in str(info.value)


def test_error_rfactor_non_reduction(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "C") as info:
        s.rfactor(g["C"], g["C"].op.axis[0])
    assert "not a reduction" in str(info.value)


def test_error_rfactor_after_data_axes_scheduled():
    M2 = tl.placeholder((4, 5), name="M2")
    kk = tl.reduce_axis((0, 5), name="kk")
    R2 = tl.compute((4,), lambda i: tl.sum(M2[i, kk], axis=kk), name="R2")
    F2 = tl.compute((4,), lambda i: R2[i] + 1.0, name="F2")
    s = tl.create_schedule(F2.op)
    s[R2].split(R2.op.axis[0], factor=2)
    with user_error(tl.ScheduleError, "R2") as info:
        s.rfactor(R2, kk)
    assert "data axes" in str(info.value)
    M3 = tl.placeholder((3, 4, 5), name="M3")
    k3 = tl.reduce_axis((0, 5), name="k3")
    R3 = tl.compute((3, 4), lambda i, j: tl.sum(M3[i, j, k3], axis=k3), name="R3")
    s = tl.create_schedule(R3.op)
    s[R3].fuse(*R3.op.axis)
    with user_error(tl.ScheduleError, "R3"):
        s.rfactor(R3, k3)


def test_rfactor_of_attached_stage_keeps_its_attachment(rng):
    M, K = 4, 5
    M2 = tl.placeholder((M, K), name="M2")
    kk = tl.reduce_axis((0, K), name="kk")
    R2 = tl.compute((M,), lambda i: tl.sum(M2[i, kk], axis=kk), name="R2")
    F2 = tl.compute((M,), lambda i: R2[i] + 1.0, name="F2")
    s = tl.create_schedule(F2.op)
    s[R2].compute_at(s[F2], F2.op.axis[0])
    ko, ki = s[R2].split(kk, factor=2)
    RF = s.rfactor(R2, ki)
    assert s[R2].attach_type == "scope" and s[RF].attach_type == "root"
    text = raw_ir(s, [M2, F2])
    assert "allocate R2: float32[1]" in text and f"allocate R2_rf: float32[2, {M}]" in text, text
    m2 = rand(rng, M, K)
    close(run(s, [M2, F2], m2)[0], m2.sum(1) + 1)


def test_error_rfactor_bad_axis_or_factor_axis(g):
    S, k = g["S"], g["k"]
    s = tl.create_schedule(S.op)
    for fa in (2, -1, "0", True):
        with user_error(tl.ScheduleError, "S"):
            s.rfactor(S, k, factor_axis=fa)
    s[S].split(k, factor=4)
    with user_error(tl.ScheduleError, "S", "k") as info:     # k was split: use its parts
        s.rfactor(S, k)
    assert "k.outer" in str(info.value)


def test_error_rfactor_after_annotating_its_loops():
    A = tl.placeholder((4, 12), name="A")
    k = tl.reduce_axis((0, 12), name="k")
    S = tl.compute((4,), lambda i: tl.sum(A[i, k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, factor=4)
    s[S].unroll(ki)
    with user_error(tl.ScheduleError, "S"):
        s.rfactor(S, ko)


def test_error_cache_write_after_scheduling(g):
    M2 = tl.placeholder((4, 5), name="M2")
    kk = tl.reduce_axis((0, 5), name="kk")
    R2 = tl.compute((4,), lambda i: tl.sum(M2[i, kk], axis=kk), name="R2")
    s = tl.create_schedule(R2.op)
    s[R2].split(R2.op.axis[0], factor=2)
    with user_error(tl.ScheduleError, "R2") as info:
        s.cache_write(R2, "global")
    assert "already scheduled" in str(info.value)
    s = tl.create_schedule(g["E"].op)
    s[g["B"]].compute_at(s[g["C"]], g["C"].op.axis[0])
    with user_error(tl.ScheduleError, "B"):
        s.cache_write(g["B"], "global")


@pytest.mark.parametrize("prim", ["rfactor", "cache_write"])
def test_error_producer_attached_to_a_loop_that_rfactor_or_cache_write_removes(prim):
    # both rebuild S's loop nest: the reduction loop P was computed at (k.outer / k) no longer
    # exists in S (rfactor moves it to S.rf, cache_write to S.global); lowering must say so
    M, K = 4, 12
    A = tl.placeholder((M, K), name="A")
    P = tl.compute((M, K), lambda i, k: A[i, k] * 2.0, name="P")
    k = tl.reduce_axis((0, K), name="k")
    S = tl.compute((M,), lambda i: tl.sum(P[i, k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    if prim == "rfactor":
        ko, ki = s[S].split(k, factor=4)
        s[P].compute_at(s[S], ko)
        s.rfactor(S, ki)
    else:
        s[P].compute_at(s[S], k)
        s.cache_write(S, "global")
    with user_error(tl.ScheduleError, "P", "S"):
        tl.lower(s, [A, S])


def test_error_cache_write_placeholder(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "A"):
        s.cache_write(g["A"], "global")


def test_error_cache_read_reader_does_not_read(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "A", "C", "B") as info:
        s.cache_read(g["A"], "global", [g["C"]])
    assert "does not read" in str(info.value)
    with user_error(tl.ScheduleError, "A"):
        s.cache_read(g["A"], "global", [])
    X = tl.placeholder((3,), name="X")
    with user_error(tl.ScheduleError, "X"):
        s.cache_read(X, "global", [g["C"]])


@pytest.mark.parametrize("scope", ["shared", "warp", "local.frag", "", None, 3])
def test_error_bad_scope(g, scope):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B"):
        s[g["B"]].set_scope(scope)
    with user_error(tl.ScheduleError, "A"):
        s.cache_read(g["A"], scope, [g["D"]])
    with user_error(tl.ScheduleError, "C"):
        s.cache_write(g["C"], scope)


@pytest.mark.parametrize("call", ["set_scope", "cache_read", "cache_write"])
def test_error_unhashable_scope(g, call):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.TensorlangError, "B" if call == "set_scope" else "A" if call == "cache_read"
                    else "C"):
        if call == "set_scope":
            s[g["B"]].set_scope(["stack"])
        elif call == "cache_read":
            s.cache_read(g["A"], ["global"], [g["D"]])
        else:
            s.cache_write(g["C"], ["global"])


def test_error_set_scope_of_placeholder(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "A"):
        s[g["A"]].set_scope("stack")


@pytest.mark.parametrize("factor, offset", [(0, 0), (-4, 1), (4, 4), (4, -1), (4.5, 0),
                                            (4, 1.5), ("4", 1), (tl.var("f"), 0)])
def test_error_storage_align_bad_numbers(g, factor, offset):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B") as info:
        s[g["B"]].storage_align(g["B"].op.axis[0], factor, offset)
    assert "factor" in str(info.value)


def test_error_storage_align_bool_factor(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.TensorlangError, "B"):
        s[g["B"]].storage_align(g["B"].op.axis[0], True, 0)


def test_error_storage_align_bad_axis(g):
    s = tl.create_schedule(g["E"].op)
    with user_error(tl.ScheduleError, "B"):
        s[g["B"]].storage_align(g["C"].op.axis[0], 4, 1)       # another stage's axis
    with user_error(tl.ScheduleError, "B"):
        s[g["B"]].storage_align(0, 4, 1)                       # an int, not an axis
    s = tl.create_schedule(g["F"].op)
    with user_error(tl.ScheduleError, "S", "k"):
        s[g["S"]].storage_align(g["k"], 4, 1)                  # a reduction axis


def test_error_storage_align_on_argument(g):
    s = tl.create_schedule(g["E"].op)
    s[g["E"]].storage_align(g["E"].op.axis[0], 4, 1)
    with user_error(tl.LoweringError, "E") as info:
        tl.lower(s, [g["A"], g["E"]])
    assert "storage_align" in str(info.value)


def test_error_explicit_stack_too_large():
    A, B, C = big_reverse(262145)               # 1 MiB + 4 bytes
    s = tl.create_schedule(C.op)
    s[B].set_scope("stack")
    with user_error(tl.LoweringError, "B") as info:
        tl.lower(s, [A, C])
    assert "1048580 bytes" in str(info.value)
    s[B].set_scope("heap")
    assert allocs(ir(s, [A, C])) == ["allocate B: float32[262145] on heap"]


def test_error_explicit_stack_symbolic_size():
    n = tl.var("n")
    A, B, C = big_reverse(n)
    s = tl.create_schedule(C.op)
    s[B].set_scope("stack")
    with user_error(tl.LoweringError, "B") as info:
        tl.lower(s, [A, C])
    assert "symbolic" in str(info.value)
