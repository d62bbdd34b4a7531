"""tensorlang.ops.nn: softmax, layer_norm, fused_elementwise, row_sum and row_max against
numpy, built with bounds checks and NaN-filled outputs (every element must be written)."""

import numpy as np
import pytest

import tensorlang as tl
from tensorlang.errors import TensorlangValueError
from tensorlang.ops import nn

RAGGED = [(1, 1), (1, 17), (3, 1), (5, 40), (7, 100), (2, 64), (33, 129)]


def _run(op, shape_args, inputs, out_shape, **kw):
    s, args = op(*shape_args, **kw)
    f = tl.build(s, args, bounds_check=True)
    out = np.full(out_shape, np.nan, dtype=np.float32)
    f(*inputs, out)
    return out


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _layer_norm(x, g, b, eps):
    x64 = x.astype(np.float64)
    m = x64.mean(axis=1, keepdims=True)
    v = x64.var(axis=1, keepdims=True)
    return (x64 - m) / np.sqrt(v + eps) * g + b


def _check_softmax(rng, rows, cols):
    x = rng.standard_normal((rows, cols), dtype=np.float32) * 4
    y = _run(nn.softmax, (rows, cols), [x], (rows, cols))
    np.testing.assert_allclose(y, _softmax(x), rtol=2e-5, atol=1e-7)


def _check_layer_norm(rng, rows, cols, eps=1e-5):
    x = rng.standard_normal((rows, cols), dtype=np.float32) * 3 + 1
    g, b = rng.standard_normal((2, cols), dtype=np.float32)
    y = _run(nn.layer_norm, (rows, cols), [x, g, b], (rows, cols), epsilon=eps)
    np.testing.assert_allclose(y, _layer_norm(x, g, b, eps), rtol=1e-4, atol=1e-4)


def _check_row(rng, op, ref, rows, cols):
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    out = _run(op, (rows, cols), [x], (rows,))
    np.testing.assert_allclose(out, ref(x.astype(np.float64), axis=1), rtol=1e-5,
                               atol=1e-5 * np.sqrt(cols))


def _check_fused(rng, n):
    a, b, c = rng.standard_normal((3, n), dtype=np.float32)
    d = _run(nn.fused_elementwise, (n,), [a, b, c], (n,))
    np.testing.assert_allclose(d, np.maximum(a * b + c, 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows,cols", RAGGED)
def test_softmax_ragged(rng, rows, cols):
    _check_softmax(rng, rows, cols)


@pytest.mark.parametrize("rows,cols", RAGGED)
def test_layer_norm_ragged(rng, rows, cols):
    _check_layer_norm(rng, rows, cols)


def test_layer_norm_constant_rows_and_epsilon(rng):
    x = np.full((3, 20), 2.5, dtype=np.float32)
    g, b = rng.standard_normal((2, 20), dtype=np.float32)
    y = _run(nn.layer_norm, (3, 20), [x, g, b], (3, 20), epsilon=0.1)
    np.testing.assert_allclose(y, np.broadcast_to(b, (3, 20)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rows,cols", RAGGED)
@pytest.mark.parametrize("op,ref", [(nn.row_sum, np.sum), (nn.row_max, np.max)],
                         ids=["row_sum", "row_max"])
def test_row_reductions_ragged(rng, op, ref, rows, cols):
    _check_row(rng, op, ref, rows, cols)


def test_row_max_all_negative():
    x = -np.arange(1, 1 + 3 * 37, dtype=np.float32).reshape(3, 37)
    out = _run(nn.row_max, (3, 37), [x], (3,))
    np.testing.assert_array_equal(out, x.max(axis=1))


@pytest.mark.parametrize("n", [1, 15, 16, 17, 1001, 4099])
def test_fused_elementwise_ragged(rng, n):
    _check_fused(rng, n)


@pytest.mark.slow
def test_softmax_benchmark_shape(rng):
    _check_softmax(rng, 4096, 1024)


@pytest.mark.slow
def test_layer_norm_benchmark_shape(rng):
    _check_layer_norm(rng, 4096, 1024)


@pytest.mark.slow
@pytest.mark.parametrize("op,ref", [(nn.row_sum, np.sum), (nn.row_max, np.max)],
                         ids=["row_sum", "row_max"])
def test_row_reductions_benchmark_shape(rng, op, ref):
    _check_row(rng, op, ref, 4096, 1024)


@pytest.mark.slow
def test_fused_elementwise_benchmark_shape(rng):
    _check_fused(rng, 16 * 1024 * 1024 + 3)


def test_softmax_float64(rng):
    s, args = nn.softmax(3, 21, dtype="float64")
    assert all(t.dtype == "float64" for t in args)
    x = rng.standard_normal((3, 21))
    y = np.full_like(x, np.nan)
    tl.build(s, args, bounds_check=True)(x, y)
    np.testing.assert_allclose(y, _softmax(x), rtol=1e-12)


@pytest.mark.parametrize("call,message", [
    (lambda: nn.softmax(0, 4), "softmax: rows must be a positive int, got 0"),
    (lambda: nn.softmax(4, -1), "softmax: cols must be a positive int, got -1"),
    (lambda: nn.layer_norm(4, 2.0), "layer_norm: cols must be a positive int, got 2.0"),
    (lambda: nn.layer_norm(True, 4), "layer_norm: rows must be a positive int, got True"),
    (lambda: nn.layer_norm(4, 4, epsilon=-1.0), "layer_norm: epsilon must be a number >= 0"),
    (lambda: nn.layer_norm(4, 4, epsilon="x"), "layer_norm: epsilon must be a number >= 0"),
    (lambda: nn.fused_elementwise(0), "fused_elementwise: n must be a positive int, got 0"),
    (lambda: nn.fused_elementwise("16"), "fused_elementwise: n must be a positive int"),
    (lambda: nn.row_sum(4, 0), "row_sum: cols must be a positive int, got 0"),
    (lambda: nn.row_max(None, 4), "row_max: rows must be a positive int, got None"),
])
def test_bad_arguments(call, message):
    with pytest.raises(TensorlangValueError) as e:
        call()
    assert message in str(e.value)
