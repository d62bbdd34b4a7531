"""General epilogue fusion: random chains and DAGs of element-wise and broadcast stages over
random anchors (matrix products, convolutions), against numpy / PyTorch references; the
epilogue is evaluated where the output tile is written, and never changes the workload."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tensorlang as tl
from tensorlang import dispatch, ops, te
from tensorlang.ops import compute as C
from tests import reference as R

torch = pytest.importorskip("torch")

# One epilogue step: (name, build(y, shape, channel axis) -> (tensor, [inputs]), numpy(y, inputs))
# A step's inputs are made by the test from their shapes (see _inputs).
STEPS = {
    "bias": (lambda y, ax: _with(y, "b", ("chan",), lambda b: C.bias_add(y, b, axis=ax))),
    "scale_shift": (lambda y, ax: _scale_shift(y, ax)),
    "residual": (lambda y, ax: _with(y, "r", ("full",), lambda r: C.add(y, r))),
    "relu6": (lambda y, ax: (C.clip(y, 0.0, 6.0), [])),
    "relu_then_add": (lambda y, ax: (C.add(C.relu(y), y), [])),     # a DAG: y read twice
    "gelu": (lambda y, ax: (C.gelu(y), [])),
    "sigmoid": (lambda y, ax: (C.sigmoid(y), [])),
    "half": (lambda y, ax: (C.multiply(y, 0.5), [])),
}
NUMPY = {
    "bias": lambda y, ins, ax: y + _bcast(ins[0], y.ndim, ax),
    "scale_shift": lambda y, ins, ax: y * _bcast(ins[0], y.ndim, ax) + _bcast(ins[1], y.ndim, ax),
    "residual": lambda y, ins, ax: y + ins[0],
    "relu6": lambda y, ins, ax: R.ACTIVATIONS["relu6"](y),
    "relu_then_add": lambda y, ins, ax: np.maximum(y, 0) + y,
    "gelu": lambda y, ins, ax: R.ACTIVATIONS["gelu"](y),
    "sigmoid": lambda y, ins, ax: R.ACTIVATIONS["sigmoid"](y),
    "half": lambda y, ins, ax: y * 0.5,
}


def _with(y, name, kind, make):
    shape = tl.get_const_tuple(y.shape)
    return make(*[te.placeholder(shape if k == "full" else ("chan",), name=name) for k in kind]), None


def _scale_shift(y, ax):
    n = tl.get_const_tuple(y.shape)[ax]
    g = te.placeholder((n,), name="gamma")
    b = te.placeholder((n,), name="beta")
    t = te.compute(tl.get_const_tuple(y.shape), lambda *i: y[i] * g[i[ax]], name="scale")
    return C.bias_add(t, b, axis=ax), [g, b]


def _bcast(v, ndim, ax):
    shape = [1] * ndim
    shape[ax % ndim] = -1
    return v.reshape(shape)


def _epilogue(steps, ax, cast):
    """The epilogue function of ``steps`` (and a final cast to float64 when ``cast``)."""
    def fn(y):
        inputs = []
        for name in steps:
            if name in ("bias", "residual"):
                shape = tl.get_const_tuple(y.shape)
                p = te.placeholder((shape[ax],) if name == "bias" else shape, name=name)
                y = C.bias_add(y, p, axis=ax) if name == "bias" else C.add(y, p)
                inputs.append(p)
            else:
                y, more = STEPS[name](y, ax)
                inputs += more
        if cast:
            y = C.cast(y, "float64")
        return y, inputs
    return fn


def _anchor(kind, dims):
    """(op call with an epilogue, channel axis, numpy reference of the anchor, input arrays)."""
    rng = np.random.default_rng(sum(dims))
    f32 = lambda *s: rng.standard_normal(s, dtype=np.float32)     # noqa: E731
    if kind == "dense":
        M, N, K = dims
        x, w = f32(M, K), f32(N, K)
        return (lambda epi: ops.dense(M, N, K, epilogue=epi)), -1, R.dense(x, w), [x, w]
    if kind == "matmul":
        M, N, K = dims
        a, b = f32(M, K), f32(K, N)
        return (lambda epi: ops.matmul(M, N, K, epilogue=epi)), -1, a.astype(np.float64) @ b, [a, b]
    if kind == "batch_matmul":
        M, N, K = dims
        a, b = f32(2, M, K), f32(2, K, N)
        return (lambda epi: ops.batch_matmul(2, M, N, K, epilogue=epi)), -1, \
            a.astype(np.float64) @ b, [a, b]
    CI, H, CO = dims
    x = f32(1, CI, H, H)
    if kind == "conv2d":
        w = f32(CO, CI, 3, 3)
        ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                         padding=1).numpy()
        return (lambda epi: ops.conv2d_nchw(1, CI, H, H, CO, 3, 3, padding=1, epilogue=epi)), 1, ref, [x, w]
    w = f32(CI, 1, 3, 3)                                        # depthwise
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                     stride=2, padding=1, groups=CI).numpy()
    return (lambda epi: ops.depthwise_conv2d_nchw(1, CI, H, H, 3, 3, stride=2, padding=1,
                                                  epilogue=epi)), 1, ref, [x, w]


@settings(max_examples=14, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["dense", "matmul", "batch_matmul", "conv2d", "depthwise"]),
       dims=st.tuples(st.integers(8, 40), st.integers(5, 40), st.integers(3, 24)),
       steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=4),
       cast=st.booleans())
def test_random_epilogues_on_random_anchors_match_the_references(kind, dims, steps, cast):
    call, ax, ref, arrays = _anchor(kind, dims)
    with dispatch.trace() as plain:
        call(None)
    with dispatch.trace() as fused:
        s, args = call(_epilogue(steps, ax, cast))
    assert fused.workloads == plain.workloads               # the epilogue is not in the key
    rng = np.random.default_rng(len(steps))
    extra = []
    y = ref
    for name in steps:                                       # the reference, step by step
        ins = []
        if name in ("bias", "residual"):
            ins = [rng.standard_normal(y.shape[ax] if name == "bias" else y.shape).astype(np.float32)]
        elif name == "scale_shift":
            ins = [rng.standard_normal(y.shape[ax]).astype(np.float32) for _ in range(2)]
        extra += ins
        y = NUMPY[name](y, ins, ax)
    assert len(args) == len(arrays) + len(extra) + 1
    out = np.full(y.shape, np.nan, dtype=args[-1].dtype)
    tl.build(s, args, bounds_check=True)(*arrays, *extra, out)
    assert out.dtype == (np.float64 if cast else np.float32)
    np.testing.assert_allclose(out, y, rtol=2e-4, atol=2e-4)


def test_the_epilogue_runs_where_the_tile_is_written():
    # conv -> folded batch norm (per-channel scale and shift) -> relu6: one loop nest whose
    # output store reads the accumulator tile, not a second pass over the output
    def epi(y):
        z, ins = _scale_shift(y, 1)
        return C.clip(z, 0.0, 6.0), ins
    s, args = ops.conv2d_nchw(1, 16, 14, 14, 32, 3, 3, padding=1, epilogue=epi)
    text = str(tl.lower(s, args))
    out = args[-1].op.name
    allocs = [ln.split(":")[0].split()[-1] for ln in text.splitlines() if "allocate" in ln]
    assert not {"scale", "T_bias_add", "O", out} & set(allocs)        # only the accumulator tile
    assert "gamma[" in text and "beta[" in text and f"{out}[" in text


@pytest.mark.parametrize("epi,match", [
    (lambda y: C.sum(y, axis=1), r"dense: the epilogue's result has shape \(8,\), expected the output's \(8, 16\)"),
    (lambda y: C.add(y, C.transpose(C.transpose(y))), r"epilogue stage 'T_transpose' reads 'acc' at \[ax1, ax0\], not at its own index"),
    (lambda y: 3, r"dense: the epilogue must return a tensor"),
    ("relu", r"dense: epilogue must be a function of the output tensor"),
])
def test_an_epilogue_that_is_not_elementwise_is_refused_with_a_clear_message(epi, match):
    with pytest.raises(tl.TensorlangError, match=match):
        ops.dense(8, 16 if "16" in match else 8, 4, epilogue=epi)


def test_keywords_and_an_epilogue_function_are_exclusive():
    with pytest.raises(tl.TensorlangValueError, match="either epilogue= or the bias"):
        ops.dense(8, 16, 4, bias=True, epilogue=lambda y: C.relu(y))


# every anchor of the library, small shapes: (name, call(epilogue) -> (s, args), channel axis)
ANCHORS = {
    "matmul": (lambda e: ops.matmul(16, 40, 8, epilogue=e), -1),
    "batch_matmul": (lambda e: ops.batch_matmul(2, 16, 40, 8, epilogue=e), -1),
    "dense": (lambda e: ops.dense(16, 40, 8, epilogue=e), -1),
    "conv2d_nchw 3x3": (lambda e: ops.conv2d_nchw(1, 8, 10, 10, 16, 3, 3, padding=1, epilogue=e), 1),
    "conv2d_nchw 1x1": (lambda e: ops.conv2d_nchw(1, 8, 20, 20, 16, 1, 1, epilogue=e), 1),
    "conv2d_nhwc": (lambda e: ops.conv2d_nhwc(1, 10, 10, 8, 16, 3, 3, padding=1, epilogue=e), 3),
    "depthwise_conv2d_nchw": (lambda e: ops.depthwise_conv2d_nchw(1, 8, 12, 12, 3, 3, padding=1,
                                                                  epilogue=e), 1),
    "max_pool2d": (lambda e: ops.max_pool2d(1, 8, 12, 12, 3, 2, 1, epilogue=e), 1),
    "global_avg_pool2d": (lambda e: ops.global_avg_pool2d(1, 8, 6, 6, epilogue=e), 1),
    "reduce sum": (lambda e: ops.reduce("sum", (8, 30), 1, epilogue=e), 0),
    "softmax": (lambda e: ops.softmax(8, 40, epilogue=e), -1),
    "layer_norm": (lambda e: ops.layer_norm(8, 40, epilogue=e), -1),
    "batch_norm": (lambda e: ops.batch_norm(1, 8, 5, 5, epilogue=e), 1),
}
KINDS = {      # epilogue kind: (build over y, numpy of (y, inputs)), inputs drawn from their shapes
    "bias": (lambda y, ax: _bias(y, ax), lambda y, ins, ax: y + _bcast(ins[0], y.ndim, ax)),
    "scale+shift": (lambda y, ax: _scale_shift(y, ax),
                    lambda y, ins, ax: y * _bcast(ins[0], y.ndim, ax) + _bcast(ins[1], y.ndim, ax)),
    "residual": (lambda y, ax: _residual(y), lambda y, ins, ax: y + ins[0]),
    "relu6": (lambda y, ax: (C.clip(y, 0.0, 6.0), []), lambda y, ins, ax: np.clip(y, 0, 6)),
    "gelu": (lambda y, ax: (C.gelu(y), []), lambda y, ins, ax: R.ACTIVATIONS["gelu"](y)),
    "relu then add": (lambda y, ax: (C.add(C.relu(y), y), []), lambda y, ins, ax: np.maximum(y, 0) + y),
    "cast": (lambda y, ax: (C.cast(y, "float64"), []), lambda y, ins, ax: y),
}


def _bias(y, ax):
    b = te.placeholder((tl.get_const_tuple(y.shape)[ax],), name="b")
    return C.bias_add(y, b, axis=ax), [b]


def _residual(y):
    r = te.placeholder(tl.get_const_tuple(y.shape), name="r")
    return C.add(y, r), [r]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("anchor", sorted(ANCHORS))
def test_every_anchor_takes_every_epilogue_kind(anchor, kind):
    """The fused kernel equals the plain kernel followed by the epilogue in numpy."""
    call, ax = ANCHORS[anchor]
    build, ref = KINDS[kind]
    s0, a0 = call(None)
    s1, a1 = call(lambda y: build(y, ax))
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal(tl.get_const_tuple(t.shape)).astype(t.dtype) for t in a0[:-1]]
    if anchor == "batch_norm":                 # a variance must be positive
        inputs[-1] = np.abs(inputs[-1]) + 0.5
    plain = np.zeros(tl.get_const_tuple(a0[-1].shape), a0[-1].dtype)
    tl.build(s0, a0)(*inputs, plain)
    extra = [rng.standard_normal(tl.get_const_tuple(t.shape)).astype(t.dtype)
             for t in a1[len(a0) - 1:-1]]
    out = np.full(plain.shape, np.nan, a1[-1].dtype)
    tl.build(s1, a1, bounds_check=True)(*inputs, *extra, out)
    np.testing.assert_allclose(out, ref(plain.astype(np.float64), extra, ax), rtol=1e-5, atol=1e-5)
