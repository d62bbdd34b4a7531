"""tensorlang.ops: injective, reduce, global_avg_pool2d, max_pool2d, avg_pool2d, log_softmax,
rms_norm and batch_norm against numpy, built with bounds checks and NaN-filled outputs,
under the default schedule and under non-default configs of each template; argument
errors."""

import numpy as np
import pytest

import autotune
import tensorlang as tl
from tensorlang import dispatch, ops
from tests import reference as R
from tensorlang.errors import TensorlangTypeError, TensorlangValueError
from tensorlang.ops import nn
from tensorlang.ops.injective import injective
from tensorlang.ops.pool import avg_pool2d, max_pool2d
from tensorlang.ops.reduction import global_avg_pool2d, reduce


def _shape(t):
    return tuple(int(getattr(d, "value", d)) for d in t.shape)


def _build(fn, *a, config=None, **kw):
    """``fn(*a, **kw)`` built; ``config``: a dict of knob values for its template."""
    if config is None:
        s, args = fn(*a, **kw)
    else:
        with dispatch.trace() as cap:
            fn(*a, **kw)
        name, args = cap.workloads[-1]
        space = autotune.TEMPLATES[name].space(*args)
        knobs = {**space.fallback().to_json(),       # knobs the workload lacks are ignored
                 **{k: v for k, v in config.items() if k in space.knobs}}
        with autotune.ApplyConfig(space.from_json(knobs)):
            s, args = fn(*a, **kw)
    return tl.build(s, args, bounds_check=True), args


def _call(f, args, inputs):
    out_t = args[-1]
    fill = np.nan if "float" in out_t.dtype else -7
    out = np.full(_shape(out_t), fill, dtype=out_t.dtype)
    f(*inputs, out)
    return out


def _inputs(args, rng, positive=False):
    xs = []
    for t in args[:-1]:
        if t.dtype == "int64":
            xs.append(rng.integers(-2, 9, _shape(t)).astype(np.int64))
        else:
            x = rng.standard_normal(_shape(t)).astype(t.dtype)
            xs.append(np.abs(x) + 0.1 if positive else x)
    return xs


# --------------------------------------------------------------------------- injective

def _gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


UNARY = {
    "relu": lambda x: np.maximum(x, 0),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
    "negative": np.negative,
}
BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
          "divide": np.divide, "maximum": np.maximum, "minimum": np.minimum,
          "power": np.power}


def _check_inj(op, shapes, ref, config=None, positive=False, rtol=1e-5, atol=1e-6, **attrs):
    f, args = _build(injective, op, *shapes, config=config, **attrs)
    xs = _inputs(args, np.random.default_rng(0), positive)
    out = _call(f, args, xs)
    np.testing.assert_allclose(out, ref(*[x.astype(np.float64) if x.dtype == np.float32 else x
                                          for x in xs]), rtol=rtol, atol=atol)


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", [(37,), (5, 33), (130, 257)])
def test_unary(op, shape):
    _check_inj(op, [shape], UNARY[op], positive=op in ("log", "sqrt"))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    def ref(x):
        if approximate == "none":
            return _gelu(x)
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    _check_inj("gelu", [(7, 45)], ref, rtol=1e-5, atol=1e-5, approximate=approximate)


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", [[(5, 33), (33,)], [(3, 1, 17), (4, 1)], [(19,), (19,)]])
def test_binary_broadcast(op, shapes):
    _check_inj(op, shapes, BINARY[op], positive=op == "power", rtol=2e-5)


@pytest.mark.parametrize("config", [None, {"vec": 2, "parallel": 0}, {"vec": 4, "parallel": 1}])
def test_large_paths(config):
    """Shapes past the parallel threshold; the broadcast operand and unrolled vectors."""
    _check_inj("add", [(300, 130), (130,)], np.add, config=config)
    _check_inj("relu", [(256, 256)], UNARY["relu"], config=config)


def test_clip_cast():
    _check_inj("clip", [(5, 21)], lambda x: np.clip(x, -0.5, 0.7), a_min=-0.5, a_max=0.7)
    _check_inj("clip", [(21,)], lambda x: np.maximum(x, 0.1), a_min=0.1)
    f, args = _build(injective, "cast", (6, 19), to="int32")
    x = np.random.default_rng(1).standard_normal((6, 19)).astype(np.float32) * 10
    out = np.zeros((6, 19), np.int32)
    f(x, out)
    np.testing.assert_array_equal(out, x.astype(np.int32))


@pytest.mark.parametrize("shape,axes", [((37, 19), None), ((130, 257), (1, 0)),
                                        ((3, 17, 21), (0, 2, 1)), ((3, 17, 21), (2, 0, 1)),
                                        ((4, 5, 33), (1, 0, 2))])
@pytest.mark.parametrize("config", [None, {"tile": 0}, {"tile": 8, "parallel": 1}])
def test_transpose(shape, axes, config):
    _check_inj("transpose", [shape], lambda x: np.transpose(x, axes), config=config,
               axes=axes)


def test_layout_ops():
    _check_inj("reshape", [(6, 35)], lambda x: x.reshape(14, 15), newshape=(14, -1))
    _check_inj("expand_dims", [(6, 35)], lambda x: x[:, None], axis=1)
    _check_inj("squeeze", [(6, 1, 35)], lambda x: x[:, 0])
    _check_inj("concatenate", [(3, 5), (3, 17), (3, 1)], lambda *x: np.concatenate(x, 1), axis=1)
    _check_inj("pad", [(5, 19)], lambda x: np.pad(x, ((1, 2), (3, 0)), constant_values=1.5),
               pad_width=((1, 2), (3, 0)), value=1.5)
    _check_inj("nchw_to_nchwc", [(2, 32, 3, 5)],
               lambda x: x.reshape(2, 2, 16, 3, 5).transpose(0, 1, 3, 4, 2), block=16)
    _check_inj("nchwc_to_nchw", [(2, 2, 3, 5, 16)],
               lambda x: x.transpose(0, 1, 4, 2, 3).reshape(2, 32, 3, 5))


@pytest.mark.parametrize("c", [8, 16])
def test_layout_transforms_with_rows_of_whole_vectors_stay_vectorized(c):
    """Rows a multiple of the vector width (W = 32): fusing every axis would put ``ch // c``
    and ``ch % c`` of a flat index into the vector loop (the store becomes a scalar loop);
    a layout_transform keeps its rows apart, so both directions stay one vector per step."""
    lanes = tl.ops.common.vector_lanes("float32")
    for op, shape, ref in [
            ("nchwc_to_nchw", (1, 4, 3, 2 * lanes, c),
             lambda x: x.transpose(0, 1, 4, 2, 3).reshape(1, 4 * c, 3, 2 * lanes)),
            ("nchw_to_nchwc", (1, 4 * c, 3, 2 * lanes),
             lambda x: x.reshape(1, 4, c, 3, 2 * lanes).transpose(0, 1, 3, 4, 2))]:
        s, args = injective(op, shape, **({"block": c} if op == "nchw_to_nchwc" else {}))
        text = str(tl.lower(s, args))
        assert "not vectorized" not in text and "ramp(" in text, text
        _check_inj(op, [shape], ref, **({"block": c} if op == "nchw_to_nchwc" else {}))


def test_take():
    def ref_axis(x, idx):
        return np.take(x, np.clip(idx, 0, x.shape[1] - 1), axis=1)
    _check_inj("take", [(5, 7), (3, 4)], ref_axis, axis=1)
    _check_inj("take", [(5, 7), (11,)], lambda x, i: np.take(x, np.clip(i, 0, 34)))


def test_injective_errors():
    with pytest.raises(TensorlangValueError, match=r"^injective: unknown op 'foo'.*relu"):
        injective("foo", (3, 4))
    with pytest.raises(TensorlangValueError, match=r"^injective: add takes 2 shape"):
        injective("add", (3, 4))
    with pytest.raises(TensorlangValueError, match=r"^injective: shapes\[0\]"):
        injective("relu", (3, 0))
    with pytest.raises(TensorlangValueError, match=r"^injective: relu takes no attribute 'axis'"):
        injective("relu", (3, 4), axis=1)
    with pytest.raises(TensorlangValueError, match=r"^transpose: axis 5 is out of range"):
        injective("transpose", (3, 4), axes=(0, 5))
    with pytest.raises(TensorlangValueError, match=r"^pad: .*negative"):
        injective("pad", (3, 4), pad_width=-1)
    with pytest.raises(TensorlangValueError, match=r"^add: shapes"):
        injective("add", (3, 4), (5,))
    with pytest.raises(TensorlangValueError, match=r"^injective: reshape needs .*newshape"):
        injective("reshape", (3, 4))


# --------------------------------------------------------------------------- reductions

def _ref_reduce(op, x, axis, keepdims):
    if op in ("argmax", "argmin"):
        r = getattr(np, op)(x, axis=axis)
        if keepdims:
            r = np.expand_dims(r, axis) if axis is not None else r.reshape((1,) * x.ndim)
        return r
    return getattr(np, op)(x.astype(np.float64), axis=axis, keepdims=keepdims)


def _check_reduce(op, shape, axis, keepdims=False, config=None):
    f, args = _build(reduce, op, shape, axis, keepdims, config=config)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    out = _call(f, args, [x])
    np.testing.assert_allclose(out, _ref_reduce(op, x, axis, keepdims), rtol=1e-5,
                               atol=1e-5 * np.sqrt(x.size))


CASES = [((5, 37), -1), ((5, 37), 0), ((3, 4, 35), (1, 2)), ((3, 4, 35), (0, 1)),
         ((3, 4, 35), (0, 2)), ((33,), None), ((3, 17), None), ((64, 1030), 1), ((300, 130), 0)]


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "argmax", "argmin"])
def test_reduce(op):
    for shape, axis in CASES:
        if op.startswith("arg") and isinstance(axis, tuple):
            continue
        for keepdims in (False, True):
            _check_reduce(op, shape, axis, keepdims)


@pytest.mark.parametrize("config", [{"acc": 1, "parallel": 0}, {"acc": 8, "parallel": 1}])
def test_reduce_inner_configs(config):
    _check_reduce("sum", (40, 300), -1, config=config)
    _check_reduce("argmin", (40, 300), 1, config=config)


@pytest.mark.parametrize("config", [{"nv": 1, "parallel": 1}, {"nv": 2, "parallel": 0}])
def test_reduce_kept_configs(config):
    _check_reduce("max", (70, 150), 0, config=config)
    _check_reduce("mean", (3, 70, 40), (0, 1), True, config=config)


def test_argmax_ties_and_nan():
    f, args = _build(reduce, "argmax", (3, 20), -1)
    x = np.zeros((3, 20), np.float32)
    x[0, [4, 9]] = 2
    x[1, 7] = np.nan
    out = _call(f, args, [x])
    np.testing.assert_array_equal(out, np.argmax(x, axis=-1))


def test_reduce_errors():
    with pytest.raises(TensorlangValueError, match=r"^reduce: unknown op 'prod'.*argmax"):
        reduce("prod", (3, 4))
    with pytest.raises(TensorlangValueError, match=r"^reduce: sum: axis 2 is out of range"):
        reduce("sum", (3, 4), 2)
    with pytest.raises(TensorlangValueError, match=r"^reduce: shape\[1\] must be a positive"):
        reduce("sum", (3, -4))
    with pytest.raises(TensorlangTypeError, match=r"^reduce: argmax's axis must be an int"):
        reduce("argmax", (3, 4), (0, 1))
    with pytest.raises(TensorlangTypeError, match=r"^reduce: mean needs a float dtype"):
        reduce("mean", (3, 4), dtype="int32")


@pytest.mark.parametrize("shape", [(1, 3, 7, 7), (2, 19, 5, 9), (1, 64, 14, 14)])
@pytest.mark.parametrize("config", [None, {"acc": 4, "parallel": 1}, {"acc": 1, "parallel": 0}])
def test_global_avg_pool2d(shape, config):
    f, args = _build(global_avg_pool2d, *shape, config=config)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    out = _call(f, args, [x])
    np.testing.assert_allclose(out, x.astype(np.float64).mean((2, 3), keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_global_avg_pool2d_errors():
    with pytest.raises(TensorlangValueError, match=r"^global_avg_pool2d: H must be"):
        global_avg_pool2d(1, 3, 0, 4)
    with pytest.raises(TensorlangTypeError, match=r"^global_avg_pool2d: dtype"):
        global_avg_pool2d(1, 3, 4, 4, dtype="int32")


# --------------------------------------------------------------------------- pooling

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


POOLS = [((1, 3, 17, 19), 3, 2, 1), ((2, 3, 20, 21), 3, 1, 1), ((1, 2, 9, 9), 2, None, 0),
         ((1, 4, 30, 33), (3, 2), (2, 1), (1, 1)), ((1, 2, 11, 13), 5, 3, 2),
         ((1, 16, 56, 56), 3, 2, 1)]


@pytest.mark.parametrize("shape,k,s,p", POOLS)
@pytest.mark.parametrize("config", [None, {"phase": 0, "nv": 2, "parallel": 0}])
def test_max_pool2d(shape, k, s, p, config):
    f, args = _build(max_pool2d, *shape, k, s, p, config=config)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    out = _call(f, args, [x])
    K, S, P = _pair(k), _pair(s or k), _pair(p)
    np.testing.assert_array_equal(out, R.pool_windows(x, K, S, P, -np.inf).max(-1))


@pytest.mark.parametrize("shape,k,s,p", POOLS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(shape, k, s, p, count_include_pad):
    f, args = _build(avg_pool2d, *shape, k, s, p, count_include_pad=count_include_pad)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    out = _call(f, args, [x])
    K, S, P = _pair(k), _pair(s or k), _pair(p)
    total = R.pool_windows(x.astype(np.float64), K, S, P, 0).sum(-1)
    count = K[0] * K[1] if count_include_pad else \
        R.pool_windows(np.ones_like(x), K, S, P, 0).sum(-1)
    np.testing.assert_allclose(out, total / count, rtol=1e-5, atol=1e-6)


def test_avg_pool2d_config():
    f, args = _build(avg_pool2d, 1, 3, 17, 19, 3, 2, 1, count_include_pad=False,
                     config={"phase": 0, "nv": 4, "parallel": 1})
    x = np.random.default_rng(6).standard_normal((1, 3, 17, 19)).astype(np.float32)
    out = _call(f, args, [x])
    total = R.pool_windows(x.astype(np.float64), (3, 3), (2, 2), (1, 1), 0).sum(-1)
    count = R.pool_windows(np.ones_like(x), (3, 3), (2, 2), (1, 1), 0).sum(-1)
    np.testing.assert_allclose(out, total / count, rtol=1e-5, atol=1e-6)


def test_pool_errors():
    with pytest.raises(TensorlangValueError, match=r"^max_pool2d: padding 2x2 must be at most"):
        max_pool2d(1, 3, 8, 8, 3, 1, 2)
    with pytest.raises(TensorlangValueError, match=r"^avg_pool2d: padding must be >= 0"):
        avg_pool2d(1, 3, 8, 8, 3, 1, -1)
    with pytest.raises(TensorlangValueError, match=r"^max_pool2d: kernel must be >= 1"):
        max_pool2d(1, 3, 8, 8, 0)
    with pytest.raises(TensorlangValueError, match=r"^max_pool2d: output size"):
        max_pool2d(1, 3, 2, 2, 3)
    with pytest.raises(TensorlangValueError, match=r"^avg_pool2d: count_include_pad"):
        avg_pool2d(1, 3, 8, 8, 2, count_include_pad=1)
    with pytest.raises(TensorlangValueError, match=r"^max_pool2d: C must be a positive"):
        max_pool2d(1, 0, 8, 8, 2)


# --------------------------------------------------------------------------- normalization

ROWS = [(1, 1), (3, 17), (33, 129), (64, 1024)]


@pytest.mark.parametrize("rows,cols", ROWS)
@pytest.mark.parametrize("config", [None, {"acc": 1}])
def test_log_softmax(rows, cols, config):
    f, args = _build(nn.log_softmax, rows, cols, config=config)
    x = np.random.default_rng(7).standard_normal((rows, cols)).astype(np.float32) * 4
    out = _call(f, args, [x])
    x64 = x.astype(np.float64)
    m = x64.max(1, keepdims=True)
    np.testing.assert_allclose(out, x64 - m - np.log(np.exp(x64 - m).sum(1, keepdims=True)),
                               rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("rows,cols", ROWS)
@pytest.mark.parametrize("config", [None, {"acc": 8}])
def test_rms_norm(rows, cols, config):
    eps = 1e-6 if config is None else 0.5
    f, args = _build(nn.rms_norm, rows, cols, epsilon=eps, config=config)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((rows, cols)).astype(np.float32) * 3
    g = rng.standard_normal(cols).astype(np.float32)
    out = _call(f, args, [x, g])
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(out, x64 / np.sqrt((x64 ** 2).mean(1, keepdims=True) + eps) * g,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 19, 13, 16), (1, 64, 56, 56)])
@pytest.mark.parametrize("config", [None, {"vec": 4, "parallel": 1}, {"vec": 2, "parallel": 0}])
def test_batch_norm(shape, config):
    f, args = _build(nn.batch_norm, *shape, epsilon=1e-3, config=config)
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    g, b, m = rng.standard_normal((3, shape[1])).astype(np.float32)
    v = rng.random(shape[1]).astype(np.float32)
    out = _call(f, args, [x, g, b, m, v])

    def c(t):
        return t[None, :, None, None].astype(np.float64)
    np.testing.assert_allclose(out, (x - c(m)) / np.sqrt(c(v) + 1e-3) * c(g) + c(b),
                               rtol=1e-4, atol=1e-5)


def test_nn_errors():
    with pytest.raises(TensorlangValueError, match=r"^rms_norm: epsilon must be"):
        nn.rms_norm(4, 8, epsilon=-1)
    with pytest.raises(TensorlangValueError, match=r"^batch_norm: epsilon must be"):
        nn.batch_norm(1, 4, 8, 8, epsilon=float("inf"))
    with pytest.raises(TensorlangValueError, match=r"^batch_norm: C must be a positive"):
        nn.batch_norm(1, 0, 8, 8)
    with pytest.raises(TensorlangValueError, match=r"^log_softmax: cols must be a positive"):
        nn.log_softmax(4, 0)


def test_defaults_are_the_fallback_configs():
    """The untuned schedule is the template's fallback config (for each template)."""
    for fn, a in [(injective, ("transpose", (40, 50))), (reduce, ("sum", (40, 50), 0)),
                  (global_avg_pool2d, (1, 4, 5, 5)), (max_pool2d, (1, 2, 9, 9, 3, 2, 1)),
                  (nn.log_softmax, (4, 40)), (nn.rms_norm, (4, 40)),
                  (nn.batch_norm, (1, 4, 5, 5))]:
        s0, a0 = fn(*a)
        with dispatch.trace() as cap:
            fn(*a)
        name, args = cap.workloads[-1]
        space = autotune.TEMPLATES[name].space(*args)
        with autotune.ApplyConfig(space.fallback()):
            s1, a1 = fn(*a)
        assert str(tl.lower(s0, a0)) == str(tl.lower(s1, a1))


def test_every_call_reports_one_canonical_workload():
    # the same call always gives the same key, with no optional tail
    with dispatch.trace() as t:
        ops.conv2d_nchw(1, 8, 10, 10, 16, 3, 3, padding=1)
        ops.conv2d_nchw(1, 8, 10, 10, 16, 3, 3, padding=1, activation="relu")
        ops.dense(4, 32, 16, bias=True)
    assert t.workloads == [["ops/conv2d_nchw", [1, 8, 10, 10, 16, 3, 3, 1, 1, "float32", 1, 1]]] * 2 \
        + [["ops/dense", [4, 32, 16, "float32"]]]
    task = autotune.create_task(*t.workloads[0])
    assert task.workload == t.workloads[0]


def test_a_record_in_the_old_conv2d_key_form_still_applies(tmp_path):
    from autotune.measure import MeasureResult
    from tensorlang.dispatch import record
    args = [1, 8, 10, 10, 16, 3, 3, 1, 1, "float32", 1, 1]
    task = autotune.create_task("ops/conv2d_nchw", args)
    cfg = task.config_space.from_json({**task.config_space.fallback().to_json(), "xb": 4})
    rec = record.make_record(task, cfg, MeasureResult([1e-6]))
    rec["workload"] = ["ops/conv2d_nchw", args[:10]]          # written before dilation/groups
    log = tmp_path / "old.jsonl"
    record.append(log, rec)
    with autotune.apply_history_best(log):
        s, a = ops.conv2d_nchw(1, 8, 10, 10, 16, 3, 3, padding=1)
    with autotune.ApplyConfig(cfg):
        s1, a1 = task.instantiate(cfg)
    assert str(tl.lower(s, a)) == str(tl.lower(s1, a1)) != str(tl.lower(*ops.conv2d_nchw(
        1, 8, 10, 10, 16, 3, 3, padding=1)))
