"""The compute-only operators (tensorlang.ops.compute) under the default schedule, against
numpy, built with bounds checks and with outputs pre-filled with a sentinel."""

import math

import numpy as np
import pytest

import tensorlang as tl
from tensorlang.errors import TensorlangTypeError, TensorlangValueError
from tensorlang.ops.compute import elemwise as E
from tensorlang.ops.compute import reduce as R
from tensorlang.ops.compute import transform as T

RNG = np.random.default_rng(0)


def shape_of(t):
    return tuple(int(getattr(d, "value", d)) for d in t.shape)


def run(out, inputs, arrays):
    """Build ``out`` with the default schedule and run it on ``arrays``."""
    f = tl.build(tl.create_schedule(out.op), list(inputs) + [out], bounds_check=True)
    dtype = np.dtype(out.dtype)
    fill = np.nan if dtype.kind == "f" else (True if dtype.kind == "b" else -12345)
    res = np.full(shape_of(out), fill, dtype)
    f(*arrays, res)
    return res


def data(shape, dtype="float32", lo=-2.0, hi=2.0):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(int(lo) * 5, int(hi) * 5 + 1, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def ph(shape, dtype="float32", name="X"):
    return tl.placeholder(shape, dtype, name)


# --------------------------------------------------------------------------- elemwise

BINARY = [(E.add, np.add), (E.subtract, np.subtract), (E.multiply, np.multiply),
          (E.maximum, np.maximum), (E.minimum, np.minimum)]


@pytest.mark.parametrize("op,ref", BINARY + [(E.divide, np.divide)])
@pytest.mark.parametrize("sa,sb", [((3, 1, 4), (5, 4)), ((4,), (2, 3, 4)), ((2, 3), (2, 3))])
def test_binary_broadcast(op, ref, sa, sb):
    A, B = ph(sa, name="A"), ph(sb, name="B")
    a, b = data(sa), data(sb, lo=0.5, hi=2.0)
    out = op(A, B)
    assert shape_of(out) == np.broadcast_shapes(sa, sb) and out.dtype == "float32"
    np.testing.assert_allclose(run(out, [A, B], [a, b]), ref(a, b), rtol=1e-6)


@pytest.mark.parametrize("op,ref", BINARY)
def test_binary_int32_and_scalars(op, ref):
    A, B = ph((3, 1), "int32", "A"), ph((4,), "int32", "B")
    a, b = data((3, 1), "int32"), data((4,), "int32")
    out = op(A, B)
    assert out.dtype == "int32"
    np.testing.assert_array_equal(run(out, [A, B], [a, b]), ref(a, b))
    left, right = op(3, B), op(A, 3)
    assert left.dtype == right.dtype == "int32"
    np.testing.assert_array_equal(run(left, [B], [b]), ref(3, b))
    np.testing.assert_array_equal(run(right, [A], [a]), ref(a, 3))


def test_binary_dtype_promotion():
    A, B = ph((2, 3), "float64", "A"), ph((3,), "int32", "B")
    a, b = data((2, 3), "float64"), data((3,), "int32")
    out = E.add(A, B)
    assert out.dtype == "float64"
    np.testing.assert_allclose(run(out, [A, B], [a, b]), a + b)
    half = E.multiply(B, 0.5)                   # a float number with an int tensor: float32
    assert half.dtype == "float32"
    np.testing.assert_allclose(run(half, [B], [b]), b * 0.5)
    third = E.divide(1.0, A)                    # float64 keeps the number's precision
    np.testing.assert_allclose(run(third, [A], [a]), 1.0 / a, rtol=1e-15)


def test_power():
    A, B = ph((3, 4), "float64", "A"), ph((4,), "float64", "B")
    a, b = data((3, 4), "float64", 0.5, 2.0), data((4,), "float64")
    np.testing.assert_allclose(run(E.power(A, B), [A, B], [a, b]), a ** b, rtol=1e-12)
    np.testing.assert_allclose(run(E.power(A, 0.3), [A], [a]), a ** 0.3, rtol=1e-12)
    np.testing.assert_allclose(run(E.power(2.0, A), [A], [a]), 2.0 ** a, rtol=1e-12)


def _gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


UNARY = [                      # (op, reference, inputs must be positive)
    (E.relu, lambda x: np.maximum(x, 0), False),
    (lambda X: E.gelu(X), lambda x: _gelu(x, "none"), False),
    (lambda X: E.gelu(X, approximate="tanh"), lambda x: _gelu(x, "tanh"), False),
    (E.silu, lambda x: x / (1 + np.exp(-x)), False),
    (E.sigmoid, lambda x: 1 / (1 + np.exp(-x)), False),
    (E.tanh, np.tanh, False), (E.exp, np.exp, False), (E.abs, np.abs, False),
    (E.negative, np.negative, False), (E.log, np.log, True), (E.sqrt, np.sqrt, True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op,ref,positive", UNARY)
def test_unary(op, ref, positive, dtype):
    x = data((3, 5), dtype, lo=0.1 if positive else -2.0)
    X = ph((3, 5), dtype)
    out = op(X)
    assert out.dtype == dtype
    tol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(run(out, [X], [x]), ref(x), rtol=tol, atol=tol)


def test_unary_int32():
    X = ph((7,), "int32")
    x = data((7,), "int32")
    for op, ref in ((E.relu, lambda v: np.maximum(v, 0)), (E.abs, np.abs), (E.negative, np.negative)):
        out = op(X)
        assert out.dtype == "int32"
        np.testing.assert_array_equal(run(out, [X], [x]), ref(x))


def test_clip_and_cast():
    X, I = ph((4, 3), "float32"), ph((6,), "int32", "I")
    x, i = data((4, 3)), data((6,), "int32")
    np.testing.assert_array_equal(run(E.clip(X, -0.5, 0.75), [X], [x]), np.clip(x, -0.5, 0.75))
    np.testing.assert_array_equal(run(E.clip(X, None, 0.0), [X], [x]), np.minimum(x, 0))
    ci = E.clip(I, -3, 4)
    assert ci.dtype == "int32"
    np.testing.assert_array_equal(run(ci, [I], [i]), np.clip(i, -3, 4))
    to_int = E.cast(X, "int32")
    assert to_int.dtype == "int32"
    np.testing.assert_array_equal(run(to_int, [X], [x * 4]), (x * 4).astype("int32"))
    np.testing.assert_array_equal(run(E.cast(I, "float64"), [I], [i]), i.astype("float64"))
    np.testing.assert_array_equal(run(E.cast(I, "bool"), [I], [i]), i.astype(bool))


def test_composed_pipeline():
    """Operators compose: relu(x * w + b) summed over rows, under one default schedule."""
    X, W, B = ph((4, 6)), ph((6,), name="W"), ph((1, 6), name="B")
    x, w, b = data((4, 6)), data((6,)), data((1, 6))
    out = R.sum(E.relu(E.add(E.multiply(X, W), B)), axis=-1)
    np.testing.assert_allclose(run(out, [X, W, B], [x, w, b]),
                               np.maximum(x * w + b, 0).sum(-1), rtol=1e-5)


# --------------------------------------------------------------------------- reductions

AXES = [None, 0, -1, (0, 2), (-1, 1), ()]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("op,ref", [(R.sum, np.sum), (R.mean, np.mean), (R.max, np.max),
                                    (R.min, np.min)])
def test_reduce(op, ref, axis, keepdims):
    X = ph((3, 4, 5), "float64")
    x = data((3, 4, 5), "float64")
    out = op(X, axis=axis, keepdims=keepdims)
    expect = ref(x, axis=axis, keepdims=keepdims)
    assert shape_of(out) == expect.shape and out.dtype == "float64"
    np.testing.assert_allclose(run(out, [X], [x]), expect, rtol=1e-12)


def test_reduce_int32():
    X = ph((4, 6), "int32")
    x = data((4, 6), "int32")
    for op, ref in ((R.sum, np.sum), (R.max, np.max), (R.min, np.min)):
        out = op(X, axis=1)
        assert out.dtype == "int32"
        np.testing.assert_array_equal(run(out, [X], [x]), ref(x, axis=1))
    mean = R.mean(X, axis=0, keepdims=True)
    assert mean.dtype == "float64"
    np.testing.assert_allclose(run(mean, [X], [x]), x.mean(axis=0, keepdims=True))


def test_max_min_float32_extremes():
    X = ph((2, 3))
    x = np.array([[-np.inf, -np.inf, -np.inf], [np.inf, 1, np.inf]], "float32")
    np.testing.assert_array_equal(run(R.max(X, 1), [X], [x]), x.max(1))
    np.testing.assert_array_equal(run(R.min(X, 1), [X], [x]), x.min(1))


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("op,ref", [(R.argmax, np.argmax), (R.argmin, np.argmin)])
def test_argmax_argmin(op, ref, axis, keepdims):
    X = ph((4, 3, 5))
    x = data((4, 3, 5))
    out = op(X, axis=axis, keepdims=keepdims)
    expect = ref(x, axis=axis, keepdims=keepdims)
    assert out.dtype == "int64" and shape_of(out) == expect.shape
    np.testing.assert_array_equal(run(out, [X], [x]), expect)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_argmax_ties_first_occurrence(axis):
    X = ph((3, 4), "int32")
    x = np.array([[1, 7, 7, 0], [7, 1, 1, 7], [0, 0, 0, 0]], "int32")
    np.testing.assert_array_equal(run(R.argmax(X, axis), [X], [x]), np.argmax(x, axis))
    np.testing.assert_array_equal(run(R.argmin(X, axis), [X], [x]), np.argmin(x, axis))


def test_argmax_nan_like_numpy():
    X = ph((2, 4), "float64")
    x = np.array([[1, np.nan, 5, np.nan], [3, 2, 9, 1]], "float64")
    np.testing.assert_array_equal(run(R.argmax(X, 1), [X], [x]), np.argmax(x, 1))
    np.testing.assert_array_equal(run(R.argmin(X, 1), [X], [x]), np.argmin(x, 1))


# --------------------------------------------------------------------------- transforms

@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, -2)])
def test_transpose(axes):
    X = ph((2, 3, 4), "float64")
    x = data((2, 3, 4), "float64")
    np.testing.assert_array_equal(run(T.transpose(X, axes), [X], [x]), np.transpose(x, axes))


@pytest.mark.parametrize("newshape", [(4, 6), (-1,), (2, -1, 3), (24, 1), 24, (1, 2, 3, 4)])
def test_reshape(newshape):
    X = ph((2, 3, 4), "int32")
    x = np.arange(24, dtype="int32").reshape(2, 3, 4)
    np.testing.assert_array_equal(run(T.reshape(X, newshape), [X], [x]), x.reshape(newshape))


def test_reshape_of_transpose():
    X = ph((3, 4))
    x = data((3, 4))
    out = T.reshape(T.transpose(X), (2, 6))
    np.testing.assert_array_equal(run(out, [X], [x]), x.T.reshape(2, 6))


def test_concatenate():
    A, B, C = ph((2, 1, 3), name="A"), ph((2, 4, 3), name="B"), ph((2, 2, 3), name="C")
    a, b, c = data((2, 1, 3)), data((2, 4, 3)), data((2, 2, 3))
    np.testing.assert_array_equal(run(T.concatenate([A, B, C], axis=1), [A, B, C], [a, b, c]),
                                  np.concatenate([a, b, c], axis=1))
    np.testing.assert_array_equal(run(T.concatenate((A, A), axis=-1), [A], [a]),
                                  np.concatenate([a, a], axis=-1))
    I = ph((3,), "int32", "I")
    i = data((3,), "int32")
    np.testing.assert_array_equal(run(T.concatenate([I]), [I], [i]), i)


@pytest.mark.parametrize("pad_width", [1, (1, 2), ((0, 1), (2, 0)), ((2, 3),), ((0, 0), (1, 1))])
def test_pad(pad_width):
    X = ph((3, 4), "float64")
    x = data((3, 4), "float64")
    np.testing.assert_array_equal(run(T.pad(X, pad_width, value=-7.5), [X], [x]),
                                  np.pad(x, pad_width, constant_values=-7.5))


def test_pad_int32_default_value():
    X = ph((2, 3), "int32")
    x = data((2, 3), "int32")
    out = T.pad(X, ((1, 0), (0, 2)))
    assert out.dtype == "int32"
    np.testing.assert_array_equal(run(out, [X], [x]), np.pad(x, ((1, 0), (0, 2))))


@pytest.mark.parametrize("idx_dtype", ["int32", "int64"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_take(axis, idx_dtype):
    X = ph((3, 4, 5))
    x = data((3, 4, 5))
    I = ph((2, 3), idx_dtype, "I")
    n = x.size if axis is None else x.shape[axis]
    i = RNG.integers(0, n, size=(2, 3)).astype(idx_dtype)
    np.testing.assert_array_equal(run(T.take(X, I, axis), [X, I], [x, i]), np.take(x, i, axis))


def test_take_clips_out_of_range_indices():
    X = ph((3, 4), "int32")
    x = np.arange(12, dtype="int32").reshape(3, 4)
    I = ph((4,), "int64", "I")
    i = np.array([-5, 0, 3, 100])
    np.testing.assert_array_equal(run(T.take(X, I, axis=1), [X, I], [x, i]),
                                  np.take(x, i, axis=1, mode="clip"))
    np.testing.assert_array_equal(run(T.take(X, I), [X, I], [x, i]), np.take(x, i, mode="clip"))


def test_expand_dims_squeeze():
    X = ph((3, 1, 4))
    x = data((3, 1, 4))
    for axis in (0, 3, -1, -4, (0, 2)):
        np.testing.assert_array_equal(run(T.expand_dims(X, axis), [X], [x]),
                                      np.expand_dims(x, axis))
    for axis in (None, 1, -2, (1,)):
        np.testing.assert_array_equal(run(T.squeeze(X, axis), [X], [x]), np.squeeze(x, axis))
    Y = ph((1, 1))
    out = T.squeeze(Y)
    assert shape_of(out) == ()
    np.testing.assert_array_equal(run(out, [Y], [np.array([[2.5]], "float32")]), 2.5)


# --------------------------------------------------------------------------- validation

X34 = tl.placeholder((3, 4), "float32", "X")
I34 = tl.placeholder((3, 4), "int32", "I")


@pytest.mark.parametrize("call,error,match", [
    (lambda: E.add(X34, tl.placeholder((5,), "float32", "B")), TensorlangValueError,
     r"^add: shapes \(3, 4\) and \(5,\) do not broadcast"),
    (lambda: E.add(1, 2), TensorlangTypeError, r"^add: needs at least one tensor"),
    (lambda: E.multiply(X34, "2"), TensorlangTypeError, r"^multiply: the second operand must be"),
    (lambda: E.divide(I34, I34), TensorlangTypeError, r"^divide: .*divides integers"),
    (lambda: E.power(I34, 2), TensorlangTypeError, r"^power: .*float"),
    (lambda: E.exp(I34), TensorlangTypeError, r"^exp: X must be a float tensor, got int32"),
    (lambda: E.sqrt(np.ones(3)), TensorlangTypeError, r"^sqrt: X must be a tensor"),
    (lambda: E.gelu(X34, approximate="fast"), TensorlangValueError, r"^gelu: approximate"),
    (lambda: E.clip(X34, None, None), TensorlangValueError, r"^clip: a_min and a_max"),
    (lambda: E.clip(X34, 2.0, 1.0), TensorlangValueError, r"^clip: a_min 2.0 is greater"),
    (lambda: E.clip(I34, 0.5, 3), TensorlangTypeError, r"^clip: a_min"),
    (lambda: E.cast(X34, "float128"), TensorlangTypeError, r"^cast: dtype"),
    (lambda: R.sum(X34, 2), TensorlangValueError,
     r"^sum: axis 2 is out of range for a 2-D tensor"),
    (lambda: R.max(X34, (0, -2)), TensorlangValueError, r"^max: axis 0 is repeated"),
    (lambda: R.mean(X34, 1.0), TensorlangTypeError, r"^mean: axis must be an int"),
    (lambda: R.min(tl.placeholder((0, 3), "float32", "Z"), 0), TensorlangValueError,
     r"^min: cannot reduce the empty axis"),
    (lambda: R.argmax(X34, (0, 1)), TensorlangTypeError, r"^argmax: axis must be an int or None"),
    (lambda: R.argmin(X34, -3), TensorlangValueError, r"^argmin: axis -3 is out of range"),
    (lambda: T.transpose(X34, (0,)), TensorlangValueError, r"^transpose: axes \(0,\) do not"),
    (lambda: T.transpose(X34, (1, 1)), TensorlangValueError, r"^transpose: axis 1 is repeated"),
    (lambda: T.reshape(X34, (5, 3)), TensorlangValueError,
     r"^reshape: cannot reshape 12 elements into \(5, 3\)"),
    (lambda: T.reshape(X34, (-1, 5)), TensorlangValueError, r"^reshape: cannot reshape 12"),
    (lambda: T.reshape(X34, (-1, -1)), TensorlangValueError, r"^reshape: only one -1"),
    (lambda: T.reshape(X34, (2.0, 6)), TensorlangTypeError, r"^reshape: newshape entry"),
    (lambda: T.concatenate([]), TensorlangValueError, r"^concatenate: tensors must be"),
    (lambda: T.concatenate([X34, tl.placeholder((2, 4), "float32", "B")], axis=1),
     TensorlangValueError, r"^concatenate: tensors\[1\] has shape \(2, 4\)"),
    (lambda: T.concatenate([X34, X34], axis=2), TensorlangValueError,
     r"^concatenate: axis 2 is out of range"),
    (lambda: T.pad(X34, ((1, -1), (0, 0))), TensorlangValueError,
     r"^pad: pad_width .* negative"),
    (lambda: T.pad(X34, ((1, 1), (0, 0), (2, 2))), TensorlangValueError,
     r"^pad: pad_width has 3 pairs for a 2-D tensor"),
    (lambda: T.pad(X34, 1, value="x"), TensorlangTypeError, r"^pad: value must be a number"),
    (lambda: T.take(X34, X34), TensorlangTypeError, r"^take: indices must be an integer"),
    (lambda: T.take(X34, I34, axis=2), TensorlangValueError, r"^take: axis 2 is out of range"),
    (lambda: T.take(X34, [0, 1]), TensorlangTypeError, r"^take: indices must be a tensor"),
    (lambda: T.expand_dims(X34, 3), TensorlangValueError, r"^expand_dims: axis 3 is out of range"),
    (lambda: T.squeeze(X34, 0), TensorlangValueError, r"^squeeze: axis 0 has length 3, not 1"),
])
def test_validation(call, error, match):
    with pytest.raises(error, match=match):
        call()
