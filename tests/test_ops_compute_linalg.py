"""ops.compute.linalg: matmul, dense (bias and activations), batch_matmul under the default
schedule against numpy; argument errors."""

import math

import numpy as np
import pytest

import tensorlang as tl
from tensorlang.ops.compute.linalg import batch_matmul, dense, matmul


def _run(out, inputs, arrays):
    f = tl.build(tl.create_schedule(out.op), [*inputs, out], bounds_check=True)
    res = np.full(tuple(int(getattr(d, "value", d)) for d in out.shape), np.nan, np.float32)
    f(*arrays, res)
    return res


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


ACTS = {None: lambda x: x, "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "tanh": np.tanh, "silu": lambda x: x / (1 + np.exp(-x)), "gelu": _gelu,
        "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))}


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("with_bias", [False, True])
def test_dense(act, with_bias):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s, dtype=np.float32) for s in ((5, 7), (3, 7), (3,)))
    X, W, B = tl.placeholder((5, 7), name="X"), tl.placeholder((3, 7), name="W"), tl.placeholder((3,), name="B")
    Y = dense(X, W, bias=B if with_bias else None, activation=act)
    got = _run(Y, [X, W, B] if with_bias else [X, W], [x, w, b] if with_bias else [x, w])
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (b if with_bias else 0)
    np.testing.assert_allclose(got, ACTS[act](ref), rtol=1e-5, atol=1e-5)


def test_matmul_and_batch_matmul():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 6), dtype=np.float32), rng.standard_normal((6, 5), dtype=np.float32)
    A, B = tl.placeholder((4, 6), name="A"), tl.placeholder((6, 5), name="B")
    np.testing.assert_allclose(_run(matmul(A, B), [A, B], [a, b]), a @ b, rtol=1e-5, atol=1e-6)
    x, y = rng.standard_normal((3, 4, 6), dtype=np.float32), rng.standard_normal((3, 6, 5), dtype=np.float32)
    X, Y = tl.placeholder((3, 4, 6), name="X"), tl.placeholder((3, 6, 5), name="Y")
    np.testing.assert_allclose(_run(batch_matmul(X, Y), [X, Y], [x, y]), x @ y, rtol=1e-5, atol=1e-6)
    yt = np.ascontiguousarray(y.transpose(0, 2, 1))
    YT = tl.placeholder((3, 5, 6), name="YT")
    np.testing.assert_allclose(_run(batch_matmul(X, YT, transpose_b=True), [X, YT], [x, yt]), x @ y,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda: matmul(tl.placeholder((4, 6)), tl.placeholder((5, 5))), r"matmul: A is 4x6 but B is 5x5"),
    (lambda: dense(tl.placeholder((4, 6)), tl.placeholder((3, 5))), r"dense: X has 6 input features but W has 5"),
    (lambda: dense(tl.placeholder((4, 6)), tl.placeholder((3, 6)), bias=tl.placeholder((4,))),
     r"dense: bias must have shape \(3,\)"),
    (lambda: dense(tl.placeholder((4, 6)), tl.placeholder((3, 6)), activation="swish"),
     r"dense: activation must be None or one of"),
    (lambda: batch_matmul(tl.placeholder((2, 4, 6)), tl.placeholder((3, 6, 5))), r"batch_matmul: batch sizes differ"),
])
def test_bad_arguments(call, match):
    with pytest.raises(tl.TensorlangError, match=match):
        call()


@pytest.mark.parametrize("batch,transpose_b,nb", [((), False, 16), ((), True, 32), ((3,), False, 64)])
def test_packed_product_equals_the_plain_one_under_the_default_schedule(batch, transpose_b, nb):
    from tensorlang.ops.compute.linalg import matmul_packed, pack_panels
    M, N, K = 9, 37, 13                             # N not a multiple of nb: a padded panel
    A = tl.placeholder((*batch, M, K), name="A")
    B = tl.placeholder((*batch, N, K) if transpose_b else (*batch, K, N), name="B")
    P = pack_panels(B, nb, transpose_b)
    C = matmul_packed(A, P, N)
    rng = np.random.default_rng(nb)
    a = rng.standard_normal((*batch, M, K)).astype(np.float32)
    b = rng.standard_normal((*batch, N, K) if transpose_b else (*batch, K, N)).astype(np.float32)
    plain = (a.astype(np.float64) @ (np.swapaxes(b, -1, -2) if transpose_b else b))
    np.testing.assert_allclose(_run(C, [A, B], [a, b]), plain, rtol=1e-5, atol=1e-5)
    ref = dense(A, B) if transpose_b and not batch else (batch_matmul(A, B) if batch else matmul(A, B))
    np.testing.assert_allclose(_run(C, [A, B], [a, b]), _run(ref, [A, B], [a, b]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op,shape", [("matmul", (20, 50, 11)), ("matmul", (3, 50, 11)),
                                      ("dense", (20, 50, 11)), ("batch_matmul", (2, 20, 50, 11))])
def test_each_gemm_template_equals_its_compute_under_the_default_schedule(op, shape):
    from tensorlang import ops
    s, args = getattr(ops, op)(*shape)
    A, B = args[0], args[1]
    ref = {"matmul": matmul, "dense": dense, "batch_matmul": batch_matmul}[op](A, B)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(tl.get_const_tuple(t.shape)).astype(np.float32) for t in (A, B)]
    out = np.full(tl.get_const_tuple(args[-1].shape), np.nan, np.float32)
    tl.build(s, args, bounds_check=True)(*arrays, out)
    np.testing.assert_allclose(out, _run(ref, [A, B], arrays), rtol=1e-5, atol=1e-5)
