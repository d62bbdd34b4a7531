"""TVM tutorials port by changing the import: ``import tensorlang as tvm; from tensorlang import te``."""

import numpy as np
import pytest

import tensorlang as tvm
from tensorlang import te


def test_get_started_vector_add_as_written_for_tvm(tmp_path):
    # tensor_expr_get_started, with only the import changed
    tgt = tvm.target.Target(target="llvm", host="llvm")
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute(A.shape, lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C.op)
    outer, inner = s[C].split(C.op.axis[0], factor=4)
    s[C].parallel(outer)
    s[C].vectorize(inner)
    fadd = tvm.build(s, [A, B, C], tgt, name="myadd")
    dev = tvm.device(tgt.kind.name, 0)
    size = 1024
    a = tvm.nd.array(np.random.uniform(size=size).astype(A.dtype), dev)
    b = tvm.nd.array(np.random.uniform(size=size).astype(B.dtype), dev)
    c = tvm.nd.array(np.zeros(size, dtype=C.dtype), dev)
    fadd(a, b, c)
    tvm.testing.assert_allclose(c.numpy(), a.numpy() + b.numpy())
    evaluator = fadd.time_evaluator(fadd.entry_name, dev, number=10)
    assert evaluator(a, b, c).mean > 0
    fadd.export_library(str(tmp_path / "myadd.so"))
    loaded = tvm.load_module(str(tmp_path / "myadd.so"))
    c2 = tvm.nd.array(np.zeros(size, dtype=C.dtype), dev)
    loaded(a, b, c2)
    tvm.testing.assert_allclose(c2.numpy(), c.numpy())


def test_opt_gemm_packing_with_float_shapes_and_indexmod():
    # opt_gemm's array packing writes shapes as N / bn (a float) and uses tvm.tir.indexmod
    M = K = N = 64
    bn = 16
    k = te.reduce_axis((0, K), "k")
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    packedB = te.compute((N / bn, K, bn), lambda x, y, z: B[y, x * bn + z], name="packedB")
    C = te.compute((M, N), lambda x, y: te.sum(A[x, k] * packedB[tvm.tir.indexdiv(y, bn), k,
                                                                 tvm.tir.indexmod(y, bn)], axis=k),
                   name="C")
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    s[C].vectorize(yi)
    func = tvm.build(s, [A, B, C], target="llvm", target_host="llvm", name="mmult")
    a, b = np.random.rand(M, K).astype("float32"), np.random.rand(K, N).astype("float32")
    c = np.zeros((M, N), "float32")
    func(a, b, c)
    tvm.testing.assert_allclose(c, a @ b, rtol=1e-5)


def test_reduction_conv_with_expression_output_shape():
    n = te.var("n")
    Input = te.placeholder((n, n), name="Input")
    Filter = te.placeholder((3, 3), name="Filter")
    di = te.reduce_axis((0, 3), name="di")
    dj = te.reduce_axis((0, 3), name="dj")
    Output = te.compute((n - 2, n - 2),
                        lambda i, j: te.sum(Input[i + di, j + dj] * Filter[di, dj], axis=[di, dj]),
                        name="Output")
    f = tvm.build(te.create_schedule(Output.op), [Input, Filter, Output])
    x, w = np.random.rand(10, 10).astype("float32"), np.random.rand(3, 3).astype("float32")
    out = np.zeros((8, 8), "float32")
    f(x, w, out)
    want = sum(x[i:i + 8, j:j + 8] * w[i, j] for i in range(3) for j in range(3))
    np.testing.assert_allclose(out, want, rtol=1e-5)
    with pytest.raises(tvm.ArgumentError, match=r"expected \(n - 2\) = 8 in dimension 0"):
        f(x, w, np.zeros((7, 8), "float32"))


def test_gpu_binding_raises_a_clear_error():
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    with pytest.raises(tvm.ScheduleError, match="targets CPUs"):
        s[B].bind(B.op.axis[0], te.thread_axis("threadIdx.x"))


@pytest.mark.parametrize("name,ref", [
    ("sin", np.sin), ("cos", np.cos), ("exp2", np.exp2), ("round", np.round), ("trunc", np.trunc),
    ("log2", lambda x: np.log2(np.abs(x) + 1)), ("log10", lambda x: np.log10(np.abs(x) + 1))])
def test_more_math_functions(name, ref):
    A = te.placeholder((37,), name="A")
    fn = getattr(tvm, name)
    arg = (lambda x: tvm.abs(x) + 1.0) if name.startswith("log") else (lambda x: x)
    C = te.compute((37,), lambda i: fn(arg(A[i])), name="C")
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=16)
    s[C].vectorize(xi)
    f = tvm.build(s, [A, C])
    a = (np.random.default_rng(0).standard_normal(37) * 3).astype("float32")
    a[:4] = [0.5, 1.5, 2.5, -0.5]                      # round: halves go to even, as numpy
    c = np.zeros(37, "float32")
    f(a, c)
    np.testing.assert_allclose(c, ref(a), rtol=2e-6, atol=1e-6)


def test_isnan():
    A = te.placeholder((5,), name="A")
    C = te.compute((5,), lambda i: tvm.isnan(A[i]).astype("int32"), name="C")
    f = tvm.build(te.create_schedule(C.op), [A, C])
    a = np.array([0, np.nan, 1, np.inf, np.nan], "float32")
    c = np.zeros(5, "int32")
    f(a, c)
    np.testing.assert_array_equal(c, np.isnan(a))


def test_constant_dims_convert_like_tvm_intimm():
    import operator
    A = te.placeholder((64, 56, 56), name="A")
    assert [int(d) for d in A.shape] == [64, 56, 56]
    assert [operator.index(d) for d in A.shape] == [64, 56, 56]
    assert list(range(A.shape[0]))[-1] == 63               # __index__ lets range take it
    assert tvm.get_const_tuple(A.shape) == (64, 56, 56)
    assert te.get_const_tuple(A) == (64, 56, 56)
    assert float(tvm.const(2.5, "float32")) == 2.5


def test_symbolic_dims_refuse_int_and_get_const_tuple_with_a_clear_message():
    n = te.var("n")
    A = te.placeholder((n, 4), name="A")
    with pytest.raises(tvm.TensorlangTypeError, match="symbolic expression"):
        int(A.shape[0])
    with pytest.raises(TypeError, match=r"dimension `n` .* is not a constant integer"):
        tvm.get_const_tuple(A.shape)
    with pytest.raises(TypeError, match="not an integer"):
        operator_index = __import__("operator").index
        operator_index(tvm.const(1.5, "float32"))
