"""Compute-only NN operators (tensorlang.ops.compute.nn) under the default schedule, against
float64 numpy / torch references, plus their argument validation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tensorlang as tl
from tensorlang.errors import TensorlangTypeError, TensorlangValueError
from tensorlang.ops.compute import nn

from . import reference

RTOL, ATOL = 1e-4, 1e-4


def _ints(shape):
    return tuple(int(getattr(d, "value", d)) for d in shape)


def run(out, inputs, dtype="float32"):
    """Build ``out`` with the default schedule and bounds checks, call it on ``inputs``
    (a list of (placeholder, array)) with a NaN-filled output; returns the output."""
    s = tl.create_schedule(out.op)
    f = tl.build(s, [t for t, _ in inputs] + [out], bounds_check=True)
    o = np.full(_ints(out.shape), np.nan if np.dtype(dtype).kind == "f" else 0, dtype=dtype)
    f(*[a for _, a in inputs], o)
    return o


def rand(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


def ph(arr, name):
    return tl.placeholder(arr.shape, name=name, dtype=str(arr.dtype))


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


# --------------------------------------------------------------------------- conv2d_nchw

CONV_CASES = [
    # N, C, H, W, CO, (KH, KW), stride, padding, dilation, groups
    (1, 3, 7, 7, 4, (3, 3), 1, 0, 1, 1),
    (2, 3, 9, 7, 5, (3, 3), 2, 1, 1, 1),
    (1, 2, 6, 5, 3, (3, 3), 1, 2, 1, 1),
    (1, 3, 9, 9, 2, (3, 3), 1, 1, 2, 1),
    (1, 4, 7, 8, 6, (3, 3), 2, 1, 1, 2),
    (1, 4, 11, 9, 4, (3, 2), (1, 2), (2, 1), (2, 1), 2),
    (1, 3, 5, 5, 4, (1, 1), 2, 0, 1, 1),
    (1, 4, 5, 7, 4, (3, 3), 1, 1, 1, 4),
]


@pytest.mark.parametrize("N,C,H,W,CO,K,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_nchw(N, C, H, W, CO, K, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x, w = rand(rng, N, C, H, W), rand(rng, CO, C // groups, *K)
    X, Wt = ph(x, "X"), ph(w, "W")
    O = nn.conv2d_nchw(X, Wt, stride, padding, dilation, groups)
    ref = F.conv2d(t64(x), t64(w), stride=stride, padding=padding, dilation=dilation,
                   groups=groups).numpy()
    assert _ints(O.shape) == ref.shape
    np.testing.assert_allclose(run(O, [(X, x), (Wt, w)]), ref, rtol=RTOL, atol=ATOL)


def test_conv2d_nchw_pad_stage_only_when_padding():
    X = tl.placeholder((1, 2, 5, 5), name="X")
    W = tl.placeholder((2, 2, 3, 3), name="W")
    assert X in nn.conv2d_nchw(X, W).op.input_tensors
    padded = nn.conv2d_nchw(X, W, padding=1)
    assert X not in padded.op.input_tensors


def test_conv2d_nchw_int32():
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 5, (1, 2, 5, 5)).astype("int32")
    w = rng.integers(-5, 5, (3, 2, 3, 3)).astype("int32")
    X, Wt = ph(x, "X"), ph(w, "W")
    O = nn.conv2d_nchw(X, Wt, padding=1)
    ref = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                   padding=1).numpy().astype("int32")
    np.testing.assert_array_equal(run(O, [(X, x), (Wt, w)], "int32"), ref)


# --------------------------------------------------------------------------- conv2d_nhwc

@pytest.mark.parametrize("N,C,H,W,CO,K,stride,padding,dilation", [
    (1, 3, 7, 7, 4, (3, 3), 1, 0, 1),
    (2, 3, 9, 7, 5, (3, 3), 2, 1, 1),
    (1, 2, 8, 9, 3, (3, 2), (2, 1), (2, 1), (1, 2)),
    (1, 3, 9, 9, 2, (3, 3), 1, 2, 2),
])
def test_conv2d_nhwc(N, C, H, W, CO, K, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x, w = rand(rng, N, H, W, C), rand(rng, *K, C, CO)
    X, Wt = ph(x, "X"), ph(w, "W")
    O = nn.conv2d_nhwc(X, Wt, stride, padding, dilation)
    ref = F.conv2d(t64(x).permute(0, 3, 1, 2), t64(w).permute(3, 2, 0, 1), stride=stride,
                   padding=padding, dilation=dilation).permute(0, 2, 3, 1).numpy()
    assert _ints(O.shape) == ref.shape
    np.testing.assert_allclose(run(O, [(X, x), (Wt, w)]), ref, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- depthwise

@pytest.mark.parametrize("N,C,H,W,M,K,stride,padding,dilation", [
    (1, 3, 7, 7, 1, (3, 3), 1, 1, 1),
    (2, 3, 9, 8, 2, (3, 3), 2, 1, 1),
    (1, 2, 9, 9, 2, (3, 3), 1, 2, 2),
    (1, 2, 7, 10, 1, (2, 3), (1, 2), (1, 0), (2, 1)),
])
def test_depthwise_conv2d_nchw(N, C, H, W, M, K, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x, w = rand(rng, N, C, H, W), rand(rng, C, M, *K)
    X, Wt = ph(x, "X"), ph(w, "W")
    O = nn.depthwise_conv2d_nchw(X, Wt, stride, padding, dilation)
    # torch groups=C: output channel j reads input channel j // M, weight row j = (c, m)
    ref = F.conv2d(t64(x), t64(w).reshape(C * M, 1, *K), stride=stride, padding=padding,
                   dilation=dilation, groups=C).numpy()
    assert _ints(O.shape) == ref.shape
    np.testing.assert_allclose(run(O, [(X, x), (Wt, w)]), ref, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- NCHWc

def test_nchwc_round_trip():
    rng = np.random.default_rng(0)
    x = rand(rng, 2, 6, 3, 5)
    X = ph(x, "X")
    Xc = nn.nchw_to_nchwc(X, 3)
    assert _ints(Xc.shape) == (2, 2, 3, 5, 3)
    blocked = run(Xc, [(X, x)])
    np.testing.assert_array_equal(blocked, x.reshape(2, 2, 3, 3, 5).transpose(0, 1, 3, 4, 2))
    np.testing.assert_array_equal(run(nn.nchwc_to_nchw(Xc), [(X, x)]), x)


def test_kernel_to_oihw_ic_oc():
    rng = np.random.default_rng(0)
    w = rand(rng, 6, 4, 3, 2)
    Wt = ph(w, "W")
    Wb = nn.kernel_to_oihw_ic_oc(Wt, 2, 3)
    ref = w.reshape(2, 3, 2, 2, 3, 2).transpose(0, 2, 4, 5, 3, 1)
    np.testing.assert_array_equal(run(Wb, [(Wt, w)]), ref)


@pytest.mark.parametrize("N,CI,H,W,CO,K,ic,oc,stride,padding,dilation", [
    (1, 4, 7, 7, 6, 3, 2, 3, 1, 1, 1),
    (2, 6, 9, 8, 4, 3, 3, 2, 2, 1, 1),
    (1, 4, 9, 9, 4, 3, 4, 4, (1, 2), (2, 1), 2),
    (1, 2, 5, 5, 2, 1, 1, 1, 1, 0, 1),
])
def test_conv2d_NCHWc_matches_nchw(N, CI, H, W, CO, K, ic, oc, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x, w = rand(rng, N, CI, H, W), rand(rng, CO, CI, K, K)
    X, Wt = ph(x, "X"), ph(w, "W")
    Oc = nn.conv2d_NCHWc(nn.nchw_to_nchwc(X, ic), nn.kernel_to_oihw_ic_oc(Wt, ic, oc),
                         stride, padding, dilation)
    O = nn.nchwc_to_nchw(Oc)
    direct = run(nn.conv2d_nchw(X, Wt, stride, padding, dilation), [(X, x), (Wt, w)])
    got = run(O, [(X, x), (Wt, w)])
    np.testing.assert_allclose(got, direct, rtol=RTOL, atol=ATOL)
    ref = F.conv2d(t64(x), t64(w), stride=stride, padding=padding, dilation=dilation).numpy()
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("shape,kernel,stride,padding", [
    ((1, 2, 6, 6), 2, None, 0),
    ((2, 3, 7, 9), 3, 2, 1),
    ((1, 2, 9, 7), (3, 2), (2, 1), (1, 1)),
    ((1, 1, 5, 5), 5, 1, 2),
])
def test_max_pool2d(shape, kernel, stride, padding):
    rng = np.random.default_rng(0)
    x = -np.abs(rand(rng, *shape)) - 1          # all negative: a zero pad would win
    X = ph(x, "X")
    O = nn.max_pool2d(X, kernel, stride, padding)
    ref = F.max_pool2d(t64(x), kernel, stride if stride is not None else kernel,
                       padding).numpy()
    assert _ints(O.shape) == ref.shape
    np.testing.assert_array_equal(run(O, [(X, x)]), ref.astype("float32"))


@pytest.mark.parametrize("phase", [None, True, False])
def test_pool_phase_formulations(phase):
    """The phase-split padded stage (the templates' formulation) equals the strided read."""
    rng = np.random.default_rng(0)
    x = rand(rng, 1, 2, 11, 13)
    X = ph(x, "X")
    got_max = run(nn.max_pool2d(X, 3, 2, 1, phase=phase), [(X, x)])
    np.testing.assert_array_equal(got_max, reference.max_pool2d(x, (3, 3), (2, 2), (1, 1)))
    got_avg = run(nn.avg_pool2d(X, 3, 2, 1, False, phase=phase), [(X, x)])
    np.testing.assert_allclose(got_avg, reference.avg_pool2d(x, (3, 3), (2, 2), (1, 1), False),
                               rtol=1e-6, atol=1e-6)


def test_max_pool2d_int32():
    x = np.arange(-50, 0, dtype="int32").reshape(1, 2, 5, 5)
    X = ph(x, "X")
    ref = F.max_pool2d(torch.tensor(x, dtype=torch.float64), 3, 2, 1).numpy().astype("int32")
    np.testing.assert_array_equal(run(nn.max_pool2d(X, 3, 2, 1), [(X, x)], "int32"), ref)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,kernel,stride,padding", [
    ((1, 2, 6, 6), 2, None, 0),
    ((2, 3, 7, 9), 3, 2, 1),
    ((1, 2, 9, 7), (3, 4), (2, 1), (1, 2)),
    ((1, 1, 5, 5), 5, 1, 2),
])
def test_avg_pool2d(shape, kernel, stride, padding, count_include_pad):
    rng = np.random.default_rng(0)
    x = rand(rng, *shape)
    X = ph(x, "X")
    O = nn.avg_pool2d(X, kernel, stride, padding, count_include_pad)
    ref = F.avg_pool2d(t64(x), kernel, stride if stride is not None else kernel, padding,
                       count_include_pad=count_include_pad).numpy()
    assert _ints(O.shape) == ref.shape
    np.testing.assert_allclose(run(O, [(X, x)]), ref, rtol=RTOL, atol=ATOL)


def test_global_avg_pool2d():
    rng = np.random.default_rng(0)
    x = rand(rng, 2, 3, 5, 7)
    X = ph(x, "X")
    O = nn.global_avg_pool2d(X)
    assert _ints(O.shape) == (2, 3, 1, 1)
    ref = x.astype("float64").mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(run(O, [(X, x)]), ref, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- softmax

_softmax, _log_softmax = reference.softmax, reference.log_softmax


@pytest.mark.parametrize("shape,axis", [
    ((3, 7), -1), ((3, 7), 0), ((2, 5, 3), 1), ((2, 5, 3), -2), ((2, 5, 3), 0), ((9,), 0),
])
@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax(which, shape, axis):
    rng = np.random.default_rng(0)
    x = rand(rng, *shape) * 4 + 20            # large values: needs the max subtraction
    X = ph(x, "X")
    O = getattr(nn, which)(X, axis=axis)
    ref = (_softmax if which == "softmax" else _log_softmax)(x.astype("float64"), axis)
    np.testing.assert_allclose(run(O, [(X, x)]), ref, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- norms

@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((4, 7), 0), ((2, 5, 3), 1),
                                        ((2, 5, 3), -3)])
def test_layer_norm(shape, axis):
    rng = np.random.default_rng(0)
    x = rand(rng, *shape) * 3 + 1
    g, b = rand(rng, shape[axis]), rand(rng, shape[axis])
    X, G, B = ph(x, "X"), ph(g, "gamma"), ph(b, "beta")
    O = nn.layer_norm(X, G, B, axis=axis, epsilon=1e-5)
    x64 = x.astype("float64")
    bshape = [1] * len(shape)
    bshape[axis] = shape[axis]
    mean = x64.mean(axis=axis, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axis, keepdims=True)
    ref = (x64 - mean) / np.sqrt(var + 1e-5) * g.reshape(bshape) + b.reshape(bshape)
    np.testing.assert_allclose(run(O, [(X, x), (G, g), (B, b)]), ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((4, 7), 0), ((2, 5, 3), -2)])
def test_rms_norm(shape, axis):
    rng = np.random.default_rng(0)
    x, g = rand(rng, *shape), rand(rng, shape[axis])
    X, G = ph(x, "X"), ph(g, "gamma")
    O = nn.rms_norm(X, G, axis=axis)
    x64 = x.astype("float64")
    bshape = [1] * len(shape)
    bshape[axis] = shape[axis]
    ref = x64 / np.sqrt((x64 ** 2).mean(axis=axis, keepdims=True) + 1e-6) * g.reshape(bshape)
    np.testing.assert_allclose(run(O, [(X, x), (G, g)]), ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), 1), ((5, 3), -1), ((2, 3, 4, 5), -1)])
def test_batch_norm(shape, axis):
    rng = np.random.default_rng(0)
    x = rand(rng, *shape)
    n = shape[axis]
    g, b, m = rand(rng, n), rand(rng, n), rand(rng, n)
    v = np.abs(rand(rng, n)) + 0.1
    X = ph(x, "X")
    G, B, M, V = ph(g, "gamma"), ph(b, "beta"), ph(m, "mean"), ph(v, "var")
    O = nn.batch_norm(X, G, B, M, V, axis=axis, epsilon=1e-5)
    bshape = [1] * len(shape)
    bshape[axis] = n
    r = lambda a: a.astype("float64").reshape(bshape)
    ref = (x - r(m)) / np.sqrt(r(v) + 1e-5) * r(g) + r(b)
    got = run(O, [(X, x), (G, g), (B, b), (M, m), (V, v)])
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_composes_into_pipeline():
    """conv -> batch_norm -> max_pool -> global_avg_pool -> softmax, one default schedule."""
    rng = np.random.default_rng(0)
    x, w = rand(rng, 1, 3, 8, 8), rand(rng, 4, 3, 3, 3)
    g, b, m = rand(rng, 4), rand(rng, 4), rand(rng, 4)
    v = np.abs(rand(rng, 4)) + 0.5
    X, Wt = ph(x, "X"), ph(w, "W")
    G, B, M, V = ph(g, "gamma"), ph(b, "beta"), ph(m, "mean"), ph(v, "var")
    y = nn.conv2d_nchw(X, Wt, padding=1)
    y = nn.batch_norm(y, G, B, M, V)
    y = nn.max_pool2d(y, 2)
    y = nn.global_avg_pool2d(y)
    y = nn.softmax(y, axis=1)
    got = run(y, [(X, x), (Wt, w), (G, g), (B, b), (M, m), (V, v)])
    r = lambda a: t64(a).reshape(1, 4, 1, 1)
    t = F.conv2d(t64(x), t64(w), padding=1)
    t = (t - r(m)) / torch.sqrt(r(v) + 1e-5) * r(g) + r(b)
    t = F.max_pool2d(t, 2).mean(dim=(2, 3), keepdim=True).softmax(dim=1)
    np.testing.assert_allclose(got, t.numpy(), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- validation

def P(shape, dtype="float32", name="X"):
    return tl.placeholder(shape, name=name, dtype=dtype)


X4 = (1, 4, 6, 6)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3), name="W")), TensorlangValueError,
     r"^conv2d_nchw: W must be 4-D"),
    (lambda: nn.conv2d_nchw(P((4, 6, 6)), P((2, 4, 3, 3), name="W")), TensorlangValueError,
     r"^conv2d_nchw: X must be 4-D"),
    (lambda: nn.conv2d_nchw(P((1, 64, 6, 6)), P((2, 32, 3, 3), name="W")), TensorlangValueError,
     r"^conv2d_nchw: W has 32 input channels per group, X has 64 channels \(groups=1\)"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), groups=3), TensorlangValueError,
     r"^conv2d_nchw: groups=3 must divide X's 4 channels"),
    (lambda: nn.conv2d_nchw(P(X4), P((3, 2, 3, 3), name="W"), groups=2), TensorlangValueError,
     r"^conv2d_nchw: groups=2 must divide W's 3 output channels"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), groups=0), TensorlangValueError,
     r"^conv2d_nchw: groups must be >= 1, got 0"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), stride=0), TensorlangValueError,
     r"^conv2d_nchw: stride must be >= 1, got 0"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), padding=-1), TensorlangValueError,
     r"^conv2d_nchw: padding must be >= 0, got -1"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), padding=(1, 2, 3)),
     TensorlangValueError, r"^conv2d_nchw: padding must be an int or a pair of ints"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), dilation=(1, 0)),
     TensorlangValueError, r"^conv2d_nchw: dilation must be >= 1, got \(1, 0\)"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), stride=1.5),
     TensorlangValueError, r"^conv2d_nchw: stride must be an int or a pair of ints"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 7, 7), name="W")), TensorlangValueError,
     r"^conv2d_nchw: output size 0x0 must be positive"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), name="W"), dilation=3), TensorlangValueError,
     r"^conv2d_nchw: output size 0x0 must be positive"),
    (lambda: nn.conv2d_nchw(P(X4), P((2, 4, 3, 3), "float64", name="W")), TensorlangTypeError,
     r"^conv2d_nchw: W has dtype float64 but X has dtype float32"),
    (lambda: nn.conv2d_nchw(np.zeros(X4), P((2, 4, 3, 3), name="W")), TensorlangTypeError,
     r"^conv2d_nchw: X must be a tensor"),
    (lambda: nn.conv2d_nhwc(P((1, 6, 6, 4)), P((3, 3, 3, 2), name="W")), TensorlangValueError,
     r"^conv2d_nhwc: W has 3 input channels, X has 4 channels"),
    (lambda: nn.conv2d_nhwc(P((1, 6, 6, 4)), P((3, 3, 4, 2), name="W"), stride=(1, -1)),
     TensorlangValueError, r"^conv2d_nhwc: stride must be >= 1"),
    (lambda: nn.conv2d_nhwc(P((1, 2, 2, 4)), P((3, 3, 4, 2), name="W")), TensorlangValueError,
     r"^conv2d_nhwc: output size 0x0 must be positive"),
    (lambda: nn.depthwise_conv2d_nchw(P(X4), P((3, 1, 3, 3), name="W")), TensorlangValueError,
     r"^depthwise_conv2d_nchw: W has 3 channels, X has 4 channels"),
    (lambda: nn.depthwise_conv2d_nchw(P(X4), P((4, 1, 3, 3), name="W"), padding=-2),
     TensorlangValueError, r"^depthwise_conv2d_nchw: padding must be >= 0, got -2"),
    (lambda: nn.nchw_to_nchwc(P(X4), 3), TensorlangValueError,
     r"^nchw_to_nchwc: X's 4 channels are not divisible by c=3"),
    (lambda: nn.nchw_to_nchwc(P(X4), 0), TensorlangValueError,
     r"^nchw_to_nchwc: c must be >= 1, got 0"),
    (lambda: nn.nchwc_to_nchw(P(X4)), TensorlangValueError, r"^nchwc_to_nchw: X must be 5-D"),
    (lambda: nn.kernel_to_oihw_ic_oc(P((4, 6, 3, 3), name="W"), 4, 2), TensorlangValueError,
     r"^kernel_to_oihw_ic_oc: W's 6 input channels are not divisible by ic=4"),
    (lambda: nn.kernel_to_oihw_ic_oc(P((6, 4, 3, 3), name="W"), 2, 4), TensorlangValueError,
     r"^kernel_to_oihw_ic_oc: W's 6 output channels are not divisible by oc=4"),
    (lambda: nn.conv2d_NCHWc(P((1, 2, 6, 6, 2)), P((1, 2, 3, 3, 4, 2), name="W")),
     TensorlangValueError, r"^conv2d_NCHWc: W has 2x4 input channel blocks, X has 2x2"),
    (lambda: nn.conv2d_NCHWc(P((1, 2, 6, 6, 2)), P((1, 2, 3, 3, 2), name="W")),
     TensorlangValueError, r"^conv2d_NCHWc: W must be 6-D"),
    (lambda: nn.max_pool2d(P(X4), 3, padding=-1), TensorlangValueError,
     r"^max_pool2d: padding must be >= 0, got -1"),
    (lambda: nn.max_pool2d(P(X4), 0), TensorlangValueError,
     r"^max_pool2d: kernel must be >= 1, got 0"),
    (lambda: nn.max_pool2d(P(X4), 2, stride=0), TensorlangValueError,
     r"^max_pool2d: stride must be >= 1, got 0"),
    (lambda: nn.max_pool2d(P(X4), 3, padding=2), TensorlangValueError,
     r"^max_pool2d: padding 2x2 must be at most half the 3x3 kernel"),
    (lambda: nn.max_pool2d(P(X4), 7), TensorlangValueError,
     r"^max_pool2d: output size 0x0 must be positive"),
    (lambda: nn.avg_pool2d(P(X4, "int32"), 2), TensorlangTypeError,
     r"^avg_pool2d: X must have a float dtype, got int32"),
    (lambda: nn.avg_pool2d(P(X4), 2, count_include_pad=1), TensorlangValueError,
     r"^avg_pool2d: count_include_pad must be a bool"),
    (lambda: nn.max_pool2d(P(X4), 2, phase=1), TensorlangValueError,
     r"^max_pool2d: phase must be a bool or None, got 1"),
    (lambda: nn.avg_pool2d(P(X4), (2, 2, 2)), TensorlangValueError,
     r"^avg_pool2d: kernel must be an int or a pair of ints"),
    (lambda: nn.global_avg_pool2d(P((4, 6, 6))), TensorlangValueError,
     r"^global_avg_pool2d: X must be 4-D"),
    (lambda: nn.softmax(P((3, 4)), axis=2), TensorlangValueError,
     r"^softmax: axis 2 is out of range for a 2-D X"),
    (lambda: nn.log_softmax(P((3, 4)), axis=-3), TensorlangValueError,
     r"^log_softmax: axis -3 is out of range"),
    (lambda: nn.softmax(P((3, 4), "int32")), TensorlangTypeError,
     r"^softmax: X must have a float dtype"),
    (lambda: nn.layer_norm(P((3, 4)), P((3,), name="g"), P((4,), name="b")),
     TensorlangValueError, r"^layer_norm: gamma must have shape \(4,\)"),
    (lambda: nn.layer_norm(P((3, 4)), P((4,), name="g"), P((3,), name="b"), axis=1),
     TensorlangValueError, r"^layer_norm: beta must have shape \(4,\)"),
    (lambda: nn.layer_norm(P((3, 4)), P((4,), name="g"), P((4,), name="b"), epsilon=-1),
     TensorlangValueError, r"^layer_norm: epsilon must be a finite number >= 0"),
    (lambda: nn.layer_norm(P((3, 4)), P((4,), "float64", "g"), P((4,), name="b")),
     TensorlangTypeError, r"^layer_norm: gamma has dtype float64"),
    (lambda: nn.rms_norm(P((3, 4)), P((4,), name="g"), axis=0), TensorlangValueError,
     r"^rms_norm: gamma must have shape \(3,\)"),
    (lambda: nn.rms_norm(P((3, 4)), P((4,), name="g"), axis=5), TensorlangValueError,
     r"^rms_norm: axis 5 is out of range"),
    (lambda: nn.batch_norm(P(X4), *[P((4,), name=n) for n in "gbm"], P((6,), name="v")),
     TensorlangValueError, r"^batch_norm: var must have shape \(4,\)"),
    (lambda: nn.batch_norm(P(X4), *[P((4,), name=n) for n in "gbmv"], axis=-1),
     TensorlangValueError, r"^batch_norm: gamma must have shape \(6,\)"),
    (lambda: nn.batch_norm(P(X4), *[P((4,), name=n) for n in "gbmv"], epsilon=float("nan")),
     TensorlangValueError, r"^batch_norm: epsilon must be a finite number >= 0"),
])
def test_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
