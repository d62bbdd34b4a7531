"""Vector exp emitted inline (codegen/vecmath.py): accuracy against numpy, special values,
and that a vectorized exp no longer calls libm lane by lane."""

import numpy as np
import pytest

import tensorlang as tl


def _vector_kernel(n, fn, lanes=16, target=None):
    X = tl.placeholder((n,), name="X")
    Y = tl.compute((n,), lambda i: fn(X[i]), name="Y")
    s = tl.create_schedule(Y.op)
    s[Y].vectorize(s[Y].split(Y.op.axis[0], factor=lanes)[1])
    return tl.build(s, [X, Y], bounds_check=True, target=target)



def _ulps(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


@pytest.mark.parametrize("target", ["llvm", "llvm -mcpu=haswell"])   # vscalefps / exponent bits
@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_vector_exp_within_one_ulp_of_numpy(lanes, target):
    rng = np.random.default_rng(lanes)
    n = 1 << 16
    x = np.concatenate([rng.uniform(-110, 95, n // 2), rng.uniform(-1, 1, n // 4),
                        rng.standard_normal(n // 4) * 10]).astype(np.float32)
    y = np.full_like(x, np.nan)
    _vector_kernel(n, tl.exp, lanes, target)(x, y)
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64)).astype(np.float32)
    assert _ulps(y, ref).max() <= 1            # includes denormal, 0 and inf results


def test_vector_exp_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.72, 89.5, -87.3, -103.9, -200.0,
                  1e-30, -1e-30, 0.5, -0.5, 1.0, 20.0], np.float32)
    y = np.zeros_like(x)
    _vector_kernel(16, tl.exp)(x, y)
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert _ulps(y[~np.isnan(ref)], ref[~np.isnan(ref)]).max() <= 1


def test_vector_sigmoid_uses_the_vector_exp():
    n = 4096
    f = _vector_kernel(n, tl.sigmoid)
    x = np.linspace(-30, 30, n, dtype=np.float32)
    y = np.zeros_like(x)
    f(x, y)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-7)
    assert "expf" not in f.get_source("asm")


@pytest.mark.parametrize("target,ldexp", [("llvm -mcpu=skylake-avx512", True),
                                          ("llvm -mcpu=haswell", False)])
def test_vectorized_exp_calls_no_libm(target, ldexp):
    """AVX-512 scales by 2**n with vscalefps (llvm.ldexp); AVX2, where llvm.ldexp would be a
    libm call per lane, with exponent bits. Neither calls expf or ldexpf."""
    f = _vector_kernel(64, tl.exp, target=target)
    ll = f.get_source("ll_raw")
    assert ("llvm.ldexp.v16f32.v16i32" in ll) == ldexp and "llvm.exp." not in ll
    asm = f.get_source("asm")
    assert "expf" not in asm and ("vscalefps" in asm) == ldexp


def test_vector_tanh_within_one_ulp_and_odd():
    rng = np.random.default_rng(7)
    n = 1 << 15
    x = np.concatenate([rng.uniform(-10, 10, n // 2), rng.uniform(-1, 1, n // 4),
                        rng.standard_normal(n // 4) * 1e-3]).astype(np.float32)
    x[:8] = [np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 0.625, -0.625]
    y = np.full_like(x, np.nan)
    f = _vector_kernel(n, tl.tanh)
    f(x, y)
    ref = np.tanh(x.astype(np.float64)).astype(np.float32)
    assert _ulps(y, ref).max() <= 1                    # signed zeros included
    assert "tanhf" not in f.get_source("asm")
    nan = np.full(16, np.nan, np.float32)
    out = np.zeros(16, np.float32)
    _vector_kernel(16, tl.tanh)(nan, out)
    assert np.isnan(out).all()


@pytest.mark.parametrize("target", ["llvm", "llvm -mcpu=haswell"])
def test_vector_erf_close_to_math_erf_and_no_libm(target):
    import math
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-6, 6, 1 << 15), rng.uniform(-1e-3, 1e-3, 1 << 12),
                        np.array([np.inf, -np.inf, 0.0, -0.0, 50.0, -50.0] + [0.0] * 10)]
                       ).astype(np.float32)
    y = np.full_like(x, np.nan)
    f = _vector_kernel(x.size, tl.erf, 16, target)
    f(x, y)
    ref = np.array([math.erf(v) for v in x.astype(np.float64)], np.float32)
    assert _ulps(y, ref).max() <= 8          # a rational approximation: 5-6 ulp measured
    assert "erff" not in f.get_source("ll")
    nan = np.full(16, np.nan, np.float32)
    out = np.zeros(16, np.float32)
    _vector_kernel(16, tl.erf, 16, target)(nan, out)
    assert np.isnan(out).all()
