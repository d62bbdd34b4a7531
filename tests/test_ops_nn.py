"""tensorlang.ops.nn: softmax, layer_norm, fused_elementwise, row_sum and row_max against
numpy, built with bounds checks and NaN-filled outputs (every element must be written); every
scheduled template of the operator library (norms, softmaxes, pools, reductions,
injective) against its compute definition under the default schedule; fused epilogues."""

import numpy as np
import pytest

import tensorlang as tl
from tensorlang.errors import TensorlangValueError
from tensorlang import dispatch, ops
from tensorlang.ops import compute, nn

from . import reference

RAGGED = [(1, 1), (1, 17), (3, 1), (5, 40), (7, 100), (2, 64), (33, 129)]


def _run(op, shape_args, inputs, out_shape, **kw):
    s, args = op(*shape_args, **kw)
    f = tl.build(s, args, bounds_check=True)
    out = np.full(out_shape, np.nan, dtype=np.float32)
    f(*inputs, out)
    return out


def _softmax(x):
    return reference.softmax(x, axis=1)


def _layer_norm(x, g, b, eps):
    return reference.layer_norm(x, g, b, eps)


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
    (lambda: nn.layer_norm(4, 4, epsilon=-1.0),
     "layer_norm: epsilon must be a finite number >= 0, got -1.0"),
    (lambda: nn.layer_norm(4, 4, epsilon="x"), "layer_norm: epsilon must be a finite number >= 0"),
    (lambda: nn.layer_norm(4, 4, epsilon=float("inf")),
     "layer_norm: epsilon must be a finite number >= 0, got inf"),
    (lambda: nn.fused_elementwise(0), "fused_elementwise: n must be a positive int, got 0"),
    (lambda: nn.fused_elementwise("16"), "fused_elementwise: n must be a positive int"),
    (lambda: nn.row_sum(4, 0), "row_sum: cols must be a positive int, got 0"),
    (lambda: nn.row_max(None, 4), "row_max: rows must be a positive int, got None"),
])
def test_bad_arguments(call, message):
    with pytest.raises(TensorlangValueError) as e:
        call()
    assert message in str(e.value)


# --------------------------------------------------------------------------- template == compute

def _shape(t):
    return tuple(int(getattr(d, "value", d)) for d in t.shape)


def _data(rng, t, positive=False):
    if "int" in t.dtype:
        return rng.integers(-3, 9, _shape(t)).astype(t.dtype)
    x = rng.standard_normal(_shape(t)).astype(t.dtype)
    return np.abs(x) + 0.1 if positive else x


def _exec(s, args, inputs):
    f = tl.build(s, args, bounds_check=True)
    out_t = args[-1]
    out = np.full(_shape(out_t), np.nan if "float" in out_t.dtype else -7, dtype=out_t.dtype)
    f(*inputs, out)
    return out


def _check_same_as_compute(rng, scheduled, definition, positive=(), rtol=1e-5, atol=1e-6):
    """The template's schedule (``scheduled``: ``(s, args)``) and ``definition(*inputs)``
    under ``tl.create_schedule`` compute the same on random inputs."""
    s, args = scheduled
    ins = args[:-1]
    data = [_data(rng, t, n in positive) for n, t in enumerate(ins)]
    got = _exec(s, args, data)
    phs = [tl.placeholder(_shape(t), name=t.op.name, dtype=t.dtype) for t in ins]
    O = definition(*phs)
    want = _exec(tl.create_schedule(O.op), phs + [O], data)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


SAME_AS_COMPUTE = {
    "softmax": (lambda: nn.softmax(7, 100), compute.softmax, ()),
    "log_softmax": (lambda: nn.log_softmax(5, 33), compute.log_softmax, ()),
    "layer_norm": (lambda: nn.layer_norm(6, 70, epsilon=1e-3),
                   lambda x, g, b: compute.layer_norm(x, g, b, epsilon=1e-3), ()),
    "rms_norm": (lambda: nn.rms_norm(4, 48), compute.rms_norm, ()),
    "batch_norm": (lambda: nn.batch_norm(2, 3, 5, 7, epsilon=1e-3),
                   lambda *a: compute.batch_norm(*a, epsilon=1e-3), (4,)),
    "max_pool2d": (lambda: ops.max_pool2d(1, 3, 17, 19, 3, 2, 1),
                   lambda x: compute.max_pool2d(x, 3, 2, 1), ()),
    "max_pool2d_s1": (lambda: ops.max_pool2d(1, 2, 20, 21, 3, 1, 1),
                      lambda x: compute.max_pool2d(x, 3, 1, 1), ()),
    "avg_pool2d": (lambda: ops.avg_pool2d(1, 3, 17, 19, 3, 2, 1),
                   lambda x: compute.avg_pool2d(x, 3, 2, 1), ()),
    "avg_pool2d_exclude": (lambda: ops.avg_pool2d(1, 2, 11, 13, 5, 3, 2, count_include_pad=False),
                           lambda x: compute.avg_pool2d(x, 5, 3, 2, False), ()),
    "global_avg_pool2d": (lambda: ops.global_avg_pool2d(2, 3, 9, 7), compute.global_avg_pool2d,
                          ()),
    "reduce_sum_inner": (lambda: ops.reduce("sum", (6, 50), -1),
                         lambda x: compute.sum(x, -1), ()),
    "reduce_mean_kept": (lambda: ops.reduce("mean", (3, 40, 37), (0, 1), True),
                         lambda x: compute.mean(x, (0, 1), True), ()),
    "reduce_max_mixed": (lambda: ops.reduce("max", (4, 5, 19), (0, 2)),
                         lambda x: compute.max(x, (0, 2)), ()),
    "reduce_argmin": (lambda: ops.reduce("argmin", (7, 30), 1),
                      lambda x: compute.argmin(x, 1), ()),
    "injective_gelu": (lambda: ops.injective("gelu", (9, 35), approximate="tanh"),
                       lambda x: compute.gelu(x, approximate="tanh"), ()),
    "injective_add": (lambda: ops.injective("add", (4, 1, 33), (5, 1)), compute.add, ()),
    "injective_transpose": (lambda: ops.injective("transpose", (20, 37)), compute.transpose, ()),
}


@pytest.mark.parametrize("name", sorted(SAME_AS_COMPUTE))
def test_template_equals_compute_definition(rng, name):
    scheduled, definition, positive = SAME_AS_COMPUTE[name]
    _check_same_as_compute(rng, scheduled(), definition, positive)


# --------------------------------------------------------------------------- epilogues

def _trace(call):
    with dispatch.trace() as t:
        call()
    return t.workloads


def test_layer_norm_residual_cast_epilogue(rng):
    def epi(y):
        r = tl.placeholder(_shape(y), name="residual", dtype=y.dtype)
        return compute.cast(compute.add(y, r), "float64"), [r]
    s, args = nn.layer_norm(5, 40, epilogue=epi)
    assert [t.op.name for t in args[:-1]] == ["X", "gamma", "beta", "residual"]
    assert args[-1].dtype == "float64"
    x = rng.standard_normal((5, 40), dtype=np.float32) * 3
    g, b = rng.standard_normal((2, 40), dtype=np.float32)
    r = rng.standard_normal((5, 40), dtype=np.float32)
    out = _exec(s, args, [x, g, b, r])
    np.testing.assert_allclose(out, reference.layer_norm(x, g, b) + r, rtol=1e-4, atol=1e-4)
    # one loop nest: the norm's output and the epilogue are one stage, no buffer between
    text = str(tl.lower(s, args))
    assert "allocate layer_norm:" not in text and "allocate T_add" not in text
    assert _trace(lambda: nn.layer_norm(5, 40, epilogue=epi)) == \
        _trace(lambda: nn.layer_norm(5, 40))


def test_softmax_mask_epilogue(rng):
    def epi(y):
        mask = tl.placeholder(_shape(y), name="mask", dtype=y.dtype)
        return compute.multiply(y, mask)
    s, args = nn.softmax(6, 37, epilogue=epi)
    assert [t.op.name for t in args[:2]] == ["X", "mask"]
    x = rng.standard_normal((6, 37), dtype=np.float32)
    mask = (rng.random((6, 37)) > 0.3).astype(np.float32)
    out = _exec(s, args, [x, mask])
    np.testing.assert_allclose(out, reference.softmax(x) * mask, rtol=2e-5, atol=1e-7)
    _check_same_as_compute(rng, (s, args), lambda x, m: compute.multiply(compute.softmax(x), m))


@pytest.mark.parametrize("kind,k,st,p,phase", [("max", 3, 2, 1, 1), ("max", 3, 2, 1, 0),
                                               ("max", 2, None, 0, 1), ("avg", 3, 2, 1, 1),
                                               ("avg", 3, 1, 1, 1)])
def test_pool_relu_epilogue(rng, kind, k, st, p, phase):
    from tensorlang.dispatch import ApplyConfig, TEMPLATES
    shape = (1, 3, 17, 19)
    call = (lambda **kw: ops.max_pool2d(*shape, k, st, p, **kw)) if kind == "max" else \
        (lambda **kw: ops.avg_pool2d(*shape, k, st, p, count_include_pad=False, **kw))
    (name, wargs), = _trace(call)
    space = TEMPLATES[name].space(*wargs)
    cfg = space.from_json({**space.fallback().to_json(),
                           **({"phase": phase} if "phase" in space.knobs else {})})
    with ApplyConfig(cfg):
        s, args = call(epilogue=lambda y: compute.relu(y))
    assert len(args) == 2
    x = rng.standard_normal(shape, dtype=np.float32)
    K, S, P = (k, k), (st or k, st or k), (p, p)
    ref = reference.max_pool2d(x, K, S, P) if kind == "max" else \
        reference.avg_pool2d(x, K, S, P, count_include_pad=False)
    np.testing.assert_allclose(_exec(s, args, [x]), np.maximum(ref, 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,shape,axis,keepdims", [
    ("sum", (6, 50), -1, False), ("mean", (3, 40, 37), (0, 1), True),
    ("max", (4, 5, 19), (0, 2), False), ("min", (5, 70), None, False)])
def test_reduce_scale_epilogue(rng, op, shape, axis, keepdims):
    s, args = ops.reduce(op, shape, axis, keepdims,
                         epilogue=lambda y: compute.multiply(y, 0.5))
    x = rng.standard_normal(shape).astype(np.float32)
    ref = getattr(np, op)(x.astype(np.float64), axis=axis, keepdims=keepdims) * 0.5
    np.testing.assert_allclose(_exec(s, args, [x]), ref, rtol=1e-5, atol=1e-5)


def test_global_avg_pool2d_bias_epilogue(rng):
    def epi(y):
        b = tl.placeholder((3,), name="bias", dtype=y.dtype)
        return compute.bias_add(y, b, axis=1)
    s, args = ops.global_avg_pool2d(2, 3, 9, 7, epilogue=epi)
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    ref = x.astype(np.float64).mean(axis=(2, 3), keepdims=True) + b.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(_exec(s, args, [x, b]), ref, rtol=1e-5, atol=1e-6)


def test_norm_epilogues(rng):
    x = rng.standard_normal((4, 48)).astype(np.float32)
    g = rng.standard_normal(48).astype(np.float32)
    s, args = nn.rms_norm(4, 48, epilogue=lambda y: compute.activation(y, "relu6"))
    np.testing.assert_allclose(_exec(s, args, [x, g]),
                               np.clip(reference.rms_norm(x, g), 0, 6), rtol=1e-4, atol=1e-5)
    s, args = nn.log_softmax(4, 48, epilogue=lambda y: compute.exp(y))
    np.testing.assert_allclose(_exec(s, args, [x]), reference.softmax(x), rtol=1e-4, atol=1e-6)
    xb = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    gb, bb, mb = rng.standard_normal((3, 3)).astype(np.float32)
    vb = np.abs(rng.standard_normal(3)).astype(np.float32) + 0.1
    s, args = nn.batch_norm(2, 3, 5, 7, epilogue=compute.relu)
    np.testing.assert_allclose(_exec(s, args, [xb, gb, bb, mb, vb]),
                               np.maximum(reference.batch_norm(xb, gb, bb, mb, vb), 0),
                               rtol=1e-4, atol=1e-5)


def test_epilogue_errors():
    with pytest.raises(tl.TensorlangTypeError, match=r"^softmax: epilogue must be a function"):
        nn.softmax(4, 8, epilogue=3)
    with pytest.raises(TensorlangValueError, match=r"^layer_norm: .*reduction"):
        nn.layer_norm(4, 8, epilogue=lambda y: compute.subtract(y, compute.max(y, -1, True)))
    with pytest.raises(TensorlangValueError, match=r"^reduce: the epilogue's result has shape"):
        ops.reduce("sum", (4, 8), -1, epilogue=lambda y: compute.expand_dims(y, 0))
