"""Cost-model features (autotune/features.py): fixed length, finite, deterministic, and
sensitive to the schedule; a stride checked by hand."""

import math
import time

import numpy as np
import pytest

import tensorlang as tl
from autotune.features import (
    FEATURE_LEN,
    GLOBAL_NAMES,
    LOOP_LEN,
    MAX_LOOPS,
    curve_features,
    itervar_features,
)
from tensorlang.tir.lower import lower_schedule

N = 64


def _gemm(n=N, tile=None, vec=False, par=False, unroll=False):
    A = tl.placeholder((n, n), name="A")
    B = tl.placeholder((n, n), name="B")
    k = tl.reduce_axis((0, n), name="k")
    C = tl.compute((n, n), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tl.create_schedule(C.op)
    if tile:
        yo, xo, yi, xi = s[C].tile(C.op.axis[0], C.op.axis[1], *tile)
        ko, ki = s[C].split(C.op.reduce_axis[0], 4)
        s[C].reorder(yo, xo, ko, yi, ki, xi)
        if vec:
            s[C].vectorize(xi)
        if par:
            s[C].parallel(yo)
        if unroll:
            s[C].unroll(ki)
    return lower_schedule(s, [A, B, C], "main")


def _pipeline():
    A = tl.placeholder((N, N), name="A")
    B = tl.compute((N, N), lambda i, j: A[i, j] * 2, name="B")
    C = tl.compute((N, N), lambda i, j: B[i, j] + 1, name="C")
    s = tl.create_schedule(C.op)
    xo, _xi = s[C].split(C.op.axis[0], 8)
    s[B].compute_at(s[C], xo)
    return lower_schedule(s, [A, C], "main")


def _rfactor():
    A = tl.placeholder((1024,), name="A")
    k = tl.reduce_axis((0, 1024), name="k")
    S = tl.compute((1,), lambda i: tl.sum(A[k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    _ko, ki = s[S].split(S.op.reduce_axis[0], 16)
    s.rfactor(S, ki)
    return lower_schedule(s, [A, S], "main")


def _fused():
    A = tl.placeholder((N, N), name="A")
    B = tl.compute((N, N), lambda i, j: tl.exp(A[i, j]), name="B")
    s = tl.create_schedule(B.op)
    f = s[B].fuse(B.op.axis[0], B.op.axis[1])
    fo, fi = s[B].split(f, 8)
    s[B].parallel(fo)
    s[B].vectorize(fi)
    return lower_schedule(s, [A, B], "main")


def _symbolic():
    n = tl.var("n")
    A = tl.placeholder((n, n), name="A")
    B = tl.compute((n, n), lambda i, j: A[i, j] * 2, name="B")
    s = tl.create_schedule(B.op)
    return lower_schedule(s, [A, B], "main")


CASES = {
    "gemm_naive": lambda: _gemm(),
    "gemm_tiled": lambda: _gemm(tile=(8, 16)),
    "gemm_vec_par_unroll": lambda: _gemm(tile=(8, 16), vec=True, par=True, unroll=True),
    "pipeline_compute_at": _pipeline,
    "rfactor": _rfactor,
    "fused_parallel_vector": _fused,
    "symbolic": _symbolic,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixed_length_and_finite(name):
    f = CASES[name]()
    for kind, fn in (("itervar", itervar_features), ("curve", curve_features)):
        v = fn(f)
        assert isinstance(v, np.ndarray) and v.dtype == np.float32
        assert v.shape == (FEATURE_LEN[kind],)
        assert np.all(np.isfinite(v))
        assert np.any(v != 0)


def test_layout_constants():
    assert FEATURE_LEN["itervar"] == MAX_LOOPS * LOOP_LEN + len(GLOBAL_NAMES)
    assert FEATURE_LEN["curve"] == 72


def test_symbolic_flagged():
    v = itervar_features(_symbolic())
    assert v[MAX_LOOPS * LOOP_LEN + GLOBAL_NAMES.index("has_symbolic")] == 1.0
    v = itervar_features(_gemm())
    assert v[MAX_LOOPS * LOOP_LEN + GLOBAL_NAMES.index("has_symbolic")] == 0.0


def test_deterministic_and_schedule_sensitive():
    cfgs = [{}, {"tile": (8, 16)}, {"tile": (16, 8)}, {"tile": (8, 16), "vec": True},
            {"tile": (8, 16), "vec": True, "par": True, "unroll": True}]
    for fn in (itervar_features, curve_features):
        vecs = [fn(_gemm(**c)) for c in cfgs]
        # identical schedules (built separately: fresh variables) give identical vectors
        for c, v in zip(cfgs, vecs):
            np.testing.assert_array_equal(fn(_gemm(**c)), v)
        if fn is itervar_features:      # every schedule differs from every other
            for a in range(len(vecs)):
                for b in range(a + 1, len(vecs)):
                    assert not np.array_equal(vecs[a], vecs[b]), (cfgs[a], cfgs[b])
        else:                           # annotations do not change footprints; tiles do
            assert not np.array_equal(vecs[0], vecs[1])
            assert not np.array_equal(vecs[1], vecs[2])


def _slot(v, level, field):
    return v[level * LOOP_LEN + field]


def test_stride_by_hand():
    # naive GEMM: loops i, j, k; C[i, j] += A[i, k] * B[k, j]; buffer slots A=0, B=1, C=2
    v = itervar_features(_gemm())
    stride = lambda level, buf: _slot(v, level, 6 + 3 * buf)
    lg = lambda x: math.log2(x + 1)
    i, j, k = 0, 1, 2
    A, B, C = 0, 1, 2
    assert stride(j, B) == pytest.approx(lg(1))
    assert stride(k, B) == pytest.approx(lg(N))
    assert stride(i, A) == pytest.approx(lg(N))
    assert stride(k, A) == pytest.approx(lg(1))
    assert stride(j, A) == 0 and stride(k, C) == 0
    assert stride(i, C) == pytest.approx(lg(N))
    # extents, kinds, touch count of the k loop, bytes of B touched inside k: N floats
    assert _slot(v, k, 0) == pytest.approx(lg(N))
    assert _slot(v, k, 1) == 1.0                       # serial
    assert _slot(v, k, 5) == pytest.approx(lg(N))
    assert _slot(v, k, 7 + 3 * B) == pytest.approx(lg(4 * N))
    assert _slot(v, 3, 0) == 0                         # padding slots are zero


def test_tiled_strides_and_vector_globals():
    # loops yo, xo, ko, yi, ki, xi(vectorized); B[ko*4 + ki, xo*16 + xi]
    v = itervar_features(_gemm(tile=(8, 16), vec=True))
    lg = lambda x: math.log2(x + 1)
    ko, ki, xi = 2, 4, 5
    assert _slot(v, ko, 6 + 3 * 1) == pytest.approx(lg(4 * N))
    assert _slot(v, ki, 6 + 3 * 1) == pytest.approx(lg(N))
    assert _slot(v, xi, 6 + 3 * 1) == pytest.approx(lg(1))
    assert _slot(v, xi, 3) == 1.0                      # vectorized one-hot
    g = lambda name: v[MAX_LOOPS * LOOP_LEN + GLOBAL_NAMES.index(name)]
    assert g("has_vectorized") == 1 and g("vectorized_is_innermost") == 1
    assert g("vector_all_contig") == 1
    assert g("log2_vector_extent") == pytest.approx(lg(16))
    assert g("log2_total_ops") == pytest.approx(lg(2 * N ** 3))


def test_fused_index_stride_probed():
    # B[(fo*8 + fi) // 64, (fo*8 + fi) % 64]: flattened, the stride is 8 for fo and 1 for fi
    v = itervar_features(_fused())
    assert _slot(v, 0, 6) == pytest.approx(math.log2(9))     # A w.r.t. fo
    assert _slot(v, 1, 6) == pytest.approx(math.log2(2))     # A w.r.t. fi
    assert _slot(v, 1, 9) == pytest.approx(math.log2(2))     # B w.r.t. fi


def test_extraction_is_fast():
    f = _gemm(n=1024, tile=(8, 16), vec=True, par=True, unroll=True)
    itervar_features(f)
    t = time.perf_counter()
    for _ in range(20):
        itervar_features(f)
        curve_features(f)
    per = (time.perf_counter() - t) / 20
    assert per < 0.01          # ~0.25 ms measured; generous bound for loaded machines
