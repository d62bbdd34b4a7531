"""The graph IR: node construction and type inference for every op family (the shapes and
dtypes written out by hand, and the interpreter's values agreeing with them), the Python
operators, composites, immutability, structural equality and hashing, the JSON round trip,
the printer, and the errors a malformed graph raises (each a ``TensorlangError`` with a
message that names what is wrong)."""

import json
import re

import numpy as np
import pytest

import tensorlang as tl
import tensorlang.graph as G
from tensorlang.graph.op import registry
from tensorlang.graph.serialize import constant_arrays


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def value_of(node, inputs: dict):
    """``node`` evaluated by the interpreter, its free variables bound from ``inputs``
    (name -> array)."""
    xs = [n for n in G.post_order(node) if isinstance(n, G.Var)]
    mod = G.Module(xs, node)
    return G.evaluate(mod, *[inputs[v.name] for v in xs])[0]


# --------------------------------------------------------------------------- type inference

X4 = ("x", (2, 4, 8, 8))      # NCHW
M = ("m", (3, 5))
T3 = ("t", (2, 3, 5))


def _c(*shape, dtype="float32", fill=None):
    a = np.full(shape, fill, dtype) if fill is not None else \
        np.random.default_rng(7).uniform(0.5, 1.5, shape).astype(dtype)
    return G.const(a)


def _v(spec, dtype="float32"):
    return G.var(spec[0], spec[1], dtype)


# (id, builder, expected shape, expected dtype): shapes worked out by hand
CASES = [
    # element-wise unary
    *[(op, lambda op=op: getattr(G.op, op)(_v(M)), (3, 5), "float32")
      for op in ("relu", "sigmoid", "tanh", "exp", "abs", "negative", "silu", "erf")],
    ("log", lambda: G.op.log(G.op.abs(_v(M)) + 1.0), (3, 5), "float32"),
    ("sqrt", lambda: G.op.sqrt(G.op.abs(_v(M))), (3, 5), "float32"),
    ("rsqrt", lambda: G.op.rsqrt(G.op.abs(_v(M)) + 1.0), (3, 5), "float32"),
    ("gelu_tanh", lambda: G.op.gelu(_v(M), approximate="tanh"), (3, 5), "float32"),
    ("clip", lambda: G.op.clip(_v(M), a_min=-0.5, a_max=0.5), (3, 5), "float32"),
    ("cast", lambda: G.op.cast(_v(M), dtype="int32"), (3, 5), "int32"),
    # broadcast binary, comparisons, where
    ("add_bcast", lambda: G.op.add(G.var("a", (2, 1, 5)), G.var("b", (3, 1))), (2, 3, 5),
     "float32"),
    ("subtract", lambda: G.op.subtract(_v(M), _c(5)), (3, 5), "float32"),
    ("multiply", lambda: G.op.multiply(_c(3, 1), _v(M)), (3, 5), "float32"),
    ("divide", lambda: G.op.divide(_v(M), _c(1, 5)), (3, 5), "float32"),
    ("maximum", lambda: G.op.maximum(_v(M), 0.0), (3, 5), "float32"),
    ("minimum", lambda: G.op.minimum(_v(T3), _v(M)), (2, 3, 5), "float32"),
    ("power", lambda: G.op.power(G.op.abs(_v(M)), 2.0), (3, 5), "float32"),
    ("int_add", lambda: G.op.add(_v(M, "int32"), 3), (3, 5), "int32"),
    ("greater", lambda: G.op.greater(_v(M), 0.0), (3, 5), "bool"),
    ("equal", lambda: G.op.equal(_v(M), _c(5)), (3, 5), "bool"),
    *[(op, lambda op=op: getattr(G.op, op)(_v(M), _c(1, 5)), (3, 5), "bool")
      for op in ("not_equal", "less", "less_equal", "greater_equal")],
    ("where", lambda: (lambda m: G.op.where(G.op.less(m, 0.0), m, _c(5)))(_v(M)), (3, 5),
     "float32"),
    ("batch_norm", lambda: G.op.batch_norm(_v(X4), _c(4), _c(4), _c(4), _c(4)), (2, 4, 8, 8),
     "float32"),
    ("bias_add", lambda: G.op.bias_add(_v(X4), _c(4)), (2, 4, 8, 8), "float32"),
    # injective
    ("reshape", lambda: G.op.reshape(_v(T3), newshape=(6, 5)), (6, 5), "float32"),
    ("transpose_default", lambda: G.op.transpose(_v(T3)), (5, 3, 2), "float32"),
    ("transpose", lambda: G.op.transpose(_v(T3), axes=(1, 0, 2)), (3, 2, 5), "float32"),
    ("strided_slice", lambda: G.op.strided_slice(_v(T3), begin=(0, 1, 0), end=(2, 3, 5),
                                                 strides=(1, 1, 2)), (2, 2, 3), "float32"),
    ("strided_slice_neg", lambda: G.op.strided_slice(_v(M), begin=(-2, 0), end=(3, -1)),
     (2, 4), "float32"),
    ("pad", lambda: G.op.pad(_v(M), pad_width=((1, 0), (2, 3))), (4, 10), "float32"),
    ("take", lambda: G.op.take(_v(M), G.var("i", (4,), "int64"), axis=1), (3, 4), "float32"),
    ("broadcast_to", lambda: G.op.broadcast_to(_c(1, 5), shape=(2, 3, 5)), (2, 3, 5),
     "float32"),
    ("expand_dims", lambda: G.op.expand_dims(_v(M), axis=1), (3, 1, 5), "float32"),
    ("squeeze", lambda: G.op.squeeze(G.var("s", (3, 1, 5, 1)), axis=(1,)), (3, 5, 1),
     "float32"),
    ("concatenate", lambda: (lambda m: G.op.concatenate(m, _c(2, 5), m, axis=0))(_v(M)),
     (8, 5), "float32"),
    ("layout_to_blocked", lambda: G.op.layout_transform(_v(X4), dst_layout="NCHW2c"),
     (2, 2, 8, 8, 2), "float32"),
    ("layout_from_blocked", lambda: G.op.layout_transform(G.var("b", (2, 2, 8, 8, 2)),
                                                          src_layout="NCHW2c"),
     (2, 4, 8, 8), "float32"),
    ("kernel_layout_transform", lambda: G.op.kernel_layout_transform(_c(8, 4, 3, 3), ic=2,
                                                                      oc=4),
     (2, 2, 3, 3, 2, 4), "float32"),
    # convolutions: OH = (H + 2p - d(k - 1) - 1) // s + 1
    ("conv2d", lambda: G.op.conv2d(_v(X4), _c(6, 4, 3, 3)), (2, 6, 6, 6), "float32"),
    ("conv2d_s2_p1", lambda: G.op.conv2d(_v(X4), _c(6, 4, 3, 3), stride=2, padding=1),
     (2, 6, 4, 4), "float32"),
    ("conv2d_rect", lambda: G.op.conv2d(_v(X4), _c(6, 4, 1, 3), stride=(1, 2),
                                        padding=(0, 1)), (2, 6, 8, 4), "float32"),
    ("conv2d_dilated", lambda: G.op.conv2d(_v(X4), _c(6, 4, 3, 3), dilation=2), (2, 6, 4, 4),
     "float32"),
    ("conv2d_groups", lambda: G.op.conv2d(_v(X4), _c(6, 2, 3, 3), groups=2, padding=1),
     (2, 6, 8, 8), "float32"),
    ("conv2d_depthwise", lambda: G.op.conv2d(_v(X4), _c(4, 1, 3, 3), groups=4, padding=1),
     (2, 4, 8, 8), "float32"),
    ("conv2d_NCHWc", lambda: G.op.conv2d_NCHWc(G.var("b", (1, 2, 8, 8, 2)),
                                               _c(3, 2, 3, 3, 2, 4), padding=1),
     (1, 3, 8, 8, 4), "float32"),
    # products
    ("dense", lambda: G.op.dense(_v(M), _c(7, 5)), (3, 7), "float32"),
    ("dense_3d", lambda: G.op.dense(_v(T3), _c(7, 5)), (2, 3, 7), "float32"),
    ("matmul", lambda: G.op.matmul(_v(M), _c(5, 4)), (3, 4), "float32"),
    ("matmul_3d_2d", lambda: G.op.matmul(_v(T3), _c(5, 4)), (2, 3, 4), "float32"),
    ("matmul_batched", lambda: G.op.matmul(_v(T3), G.var("b", (2, 5, 4))), (2, 3, 4),
     "float32"),
    ("batch_matmul", lambda: G.op.batch_matmul(_v(T3), G.var("b", (2, 5, 4))), (2, 3, 4),
     "float32"),
    ("batch_matmul_tb", lambda: G.op.batch_matmul(_v(T3), G.var("b", (2, 4, 5)),
                                                  transpose_b=True), (2, 3, 4), "float32"),
    # rows
    ("softmax", lambda: G.op.softmax(_v(T3)), (2, 3, 5), "float32"),
    ("softmax_axis1", lambda: G.op.softmax(_v(T3), axis=1), (2, 3, 5), "float32"),
    ("log_softmax", lambda: G.op.log_softmax(_v(M)), (3, 5), "float32"),
    ("layer_norm", lambda: G.op.layer_norm(_v(T3), _c(5), _c(5)), (2, 3, 5), "float32"),
    # pools: stride defaults to the kernel
    ("max_pool2d", lambda: G.op.max_pool2d(_v(X4), kernel=2), (2, 4, 4, 4), "float32"),
    ("max_pool2d_s1_p1", lambda: G.op.max_pool2d(_v(X4), kernel=3, stride=1, padding=1),
     (2, 4, 8, 8), "float32"),
    ("avg_pool2d", lambda: G.op.avg_pool2d(_v(X4), kernel=3, stride=2), (2, 4, 3, 3),
     "float32"),
    ("avg_pool2d_nopad", lambda: G.op.avg_pool2d(_v(X4), kernel=3, stride=2, padding=1,
                                                 count_include_pad=False), (2, 4, 4, 4),
     "float32"),
    ("global_avg_pool2d", lambda: G.op.global_avg_pool2d(_v(X4)), (2, 4, 1, 1), "float32"),
    # reductions
    ("sum_all", lambda: G.op.sum(_v(T3)), (), "float32"),
    ("sum_axis", lambda: G.op.sum(_v(T3), axis=1), (2, 5), "float32"),
    ("mean_keep", lambda: G.op.mean(_v(T3), axis=-1, keepdims=True), (2, 3, 1), "float32"),
    ("max_axes", lambda: G.op.max(_v(T3), axis=(0, 2)), (3,), "float32"),
    ("min_keep", lambda: G.op.min(_v(T3), axis=(0, 2), keepdims=True), (1, 3, 1), "float32"),
    ("argmax", lambda: G.op.argmax(_v(T3), axis=2), (2, 3), "int64"),
    ("argmin_keep", lambda: G.op.argmin(_v(M), axis=0, keepdims=True), (1, 5), "int64"),
]


@pytest.mark.parametrize("build,shape,dtype", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_type_inference(build, shape, dtype, rng):
    node = build()
    assert isinstance(node, G.Call)
    assert node.type == G.TensorType(shape, dtype)
    assert node.shape == shape and node.dtype == dtype
    # the interpreter (numpy references) agrees with the inferred type
    inputs = {}
    for v in G.post_order(node):
        if isinstance(v, G.Var):
            inputs[v.name] = (rng.integers(0, 3, v.shape) if v.dtype.startswith("int")
                              else f32(rng, *v.shape)).astype(v.dtype)
    out = value_of(node, inputs)
    assert out.shape == shape and out.dtype.name == dtype


def test_every_registered_op_has_a_type_inference_case():
    built = {c[1]().op for c in CASES}
    built |= {n.op for c in CASES for n in G.post_order(c[1]()) if isinstance(n, G.Call)}
    assert set(registry.OPS) - built == set()


def test_attrs_are_normalised_and_defaults_filled():
    x = _v(X4)
    y = G.op.conv2d(x, _c(6, 4, 3, 3), stride=2, padding=[1, 0])
    assert dict(y.attrs) == {"stride": (2, 2), "padding": (1, 0), "dilation": (1, 1),
                             "groups": 1}
    assert G.op.sum(x, axis=1).attrs["axis"] == (1,)
    assert G.op.softmax(x).attrs["axis"] == -1


# --------------------------------------------------------------------------- operators

def test_python_operators_build_calls(rng):
    x, y = G.var("x", (2, 3)), G.var("y", (2, 3))
    w = G.var("w", (3, 4))
    cases = {
        "x+y": (x + y, "add", lambda a, b, c: a + b),
        "x-y": (x - y, "subtract", lambda a, b, c: a - b),
        "x*y": (x * y, "multiply", lambda a, b, c: a * b),
        "x/y": (x / y, "divide", lambda a, b, c: a / b),
        "x**2": (x ** 2.0, "power", lambda a, b, c: a ** 2),
        "-x": (-x, "negative", lambda a, b, c: -a),
        "x@w": (x @ w, "matmul", lambda a, b, c: a @ c),
        "x+1": (x + 1.0, "add", lambda a, b, c: a + 1),
        "2-x": (2.0 - x, "subtract", lambda a, b, c: 2 - a),
        "3*x": (3.0 * x, "multiply", lambda a, b, c: 3 * a),
        "1/x": (1.0 / x, "divide", lambda a, b, c: 1 / a),
    }
    a, b, c = f32(rng, 2, 3), f32(rng, 2, 3) + 3, f32(rng, 3, 4)
    for name, (node, op, ref) in cases.items():
        assert node.op == op, name
        want = ref(a, b, c)
        assert node.shape == want.shape, name
        got = value_of(node, {"x": a, "y": b, "w": c})
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    # a number becomes a scalar constant of the node's dtype, on the side it was written
    r = 2.0 - x
    assert isinstance(r.args[0], G.Constant) and r.args[1] is x
    assert r.args[0].shape == () and r.args[0].dtype == "float32"
    i = G.var("i", (2,), "int32")
    assert (i + 1).args[1].dtype == "int32" and (i + 1).dtype == "int32"
    assert (i * 0.5).dtype == "float32"        # a float with an int tensor: float32


def test_split_returns_a_tuple(rng):
    x = G.var("x", (4, 6))
    parts = G.op.split(x, 3, axis=1)
    assert isinstance(parts, G.Tuple)
    assert parts.type == G.TupleType((G.TensorType((4, 2)),) * 3)
    p1 = parts[1]
    assert isinstance(p1, G.TupleGetItem) and p1.shape == (4, 2)
    assert parts[-1].index == 2                   # normalised
    uneven = G.op.split(x, [1, 4], axis=1)
    assert [f.shape for f in uneven.fields] == [(4, 1), (4, 3), (4, 2)]
    a = f32(rng, 4, 6)
    got = G.evaluate(G.Module([x], [uneven]), a)[0]
    for g, w in zip(got, np.split(a, [1, 4], axis=1)):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(value_of(p1, {"x": a}), a[:, 2:4])
    with pytest.raises(tl.TensorlangError, match=r"\[\] indexes tuples only"):
        x[0]
    with pytest.raises(G.GraphError, match="tuple index 3 out of range for a tuple of 3"):
        parts[3]
    with pytest.raises(G.GraphTypeError, match="is a tuple; take a field"):
        G.op.relu(parts)


def test_composites(rng):
    x = G.var("x", (2, 4, 6, 6))
    a = f32(rng, 2, 4, 6, 6) * 4
    r6 = G.op.relu6(x)
    assert r6.op == "clip" and (r6.attrs["a_min"], r6.attrs["a_max"]) == (0.0, 6.0)
    np.testing.assert_array_equal(value_of(r6, {"x": a}), np.clip(a, 0, 6))

    v = G.op.variance(x, axis=1)
    assert v.shape == (2, 6, 6)
    np.testing.assert_allclose(value_of(v, {"x": a}), a.var(axis=1), rtol=1e-5)
    vu = G.op.variance(x, axis=(2, 3), keepdims=True, unbiased=True)
    assert vu.shape == (2, 4, 1, 1)
    np.testing.assert_allclose(value_of(vu, {"x": a}),
                               a.reshape(2, 4, 36).var(axis=2, ddof=1)[..., None, None],
                               rtol=1e-5)

    g = G.op.adaptive_avg_pool2d(x, 1)
    assert g.op == "global_avg_pool2d" and g.shape == (2, 4, 1, 1)
    p = G.op.adaptive_avg_pool2d(x, (2, 3))
    assert p.op == "avg_pool2d" and p.attrs["kernel"] == (3, 2) and p.shape == (2, 4, 2, 3)
    np.testing.assert_allclose(value_of(p, {"x": a}),
                               a.reshape(2, 4, 2, 3, 3, 2).mean(axis=(3, 5)), rtol=1e-5)

    fl = G.op.flatten(x)
    assert fl.op == "reshape" and fl.shape == (2, 144)
    assert G.op.flatten(x, start_dim=2).shape == (2, 4, 36)

    m = G.var("m", (3, 5))
    wv, bv = f32(rng, 7, 5), f32(rng, 7)
    lin = G.op.linear(m, G.const(wv), G.const(bv))
    assert lin.op == "add" and lin.args[0].op == "dense" and lin.shape == (3, 7)
    mv = f32(rng, 3, 5)
    np.testing.assert_allclose(value_of(lin, {"m": mv}), mv @ wv.T + bv, rtol=1e-5, atol=1e-6)
    assert G.op.linear(m, G.const(wv)).op == "dense"

    table = f32(rng, 10, 4)
    ids = G.var("ids", (2, 3), "int64")
    e = G.op.embedding(G.const(table), ids)
    assert e.op == "take" and e.shape == (2, 3, 4)
    iv = np.array([[0, 9, 3], [3, 3, 1]])
    np.testing.assert_array_equal(value_of(e, {"ids": iv}), table[iv])


# --------------------------------------------------------------------------- immutability

def test_nodes_modules_and_attrs_are_immutable():
    x = G.var("x", (2, 3))
    src = np.ones(3, np.float32)
    c = G.const(src, "c")
    y = G.op.relu(x + c)
    mod = G.Module([x], y)
    with pytest.raises(AttributeError):
        x.name = "z"
    with pytest.raises(AttributeError):
        y.args = ()
    with pytest.raises(AttributeError):
        y.type = G.TensorType((1,))
    with pytest.raises(AttributeError, match="Attrs are immutable"):
        y.attrs.foo = 1
    with pytest.raises(TypeError):
        y.attrs["foo"] = 1
    with pytest.raises(AttributeError, match="Module is immutable"):
        mod.outputs = ()
    with pytest.raises(ValueError, match="read-only"):
        c.data[0] = 5
    src[0] = 42                                   # the constant holds a private copy
    assert c.data[0] == 1
    assert mod.outputs == (y,) and y.args[0].args == (x, c)


# --------------------------------------------------------------------------- structure

def _block(x, w, scale, padding=1):
    y = G.op.conv2d(x, G.const(w, "w"), padding=padding)
    return G.op.relu(y * G.const(scale, "s") + 1.0)


def test_structural_equal_and_hash(rng):
    x = G.var("x", (1, 3, 8, 8))
    w, s = f32(rng, 4, 3, 3, 3), f32(rng, 4, 1, 1)
    a, b = _block(x, w, s), _block(x, w.copy(), s.copy())
    assert a is not b
    assert G.structural_equal(a, b) and G.structural_hash(a) == G.structural_hash(b)
    assert G.structural_equal(G.Module([x], a), G.Module([x], b))
    # names of constants do not matter, their bytes do
    named = G.op.relu(G.op.conv2d(x, G.const(w, "other"), padding=1) * G.const(s) + 1.0)
    assert G.structural_equal(a, named)
    different = {
        "attribute": _block(x, w, s, padding=0),
        "constant bytes": _block(x, w + 1e-3, s),
        "constant shape": G.op.relu(G.op.conv2d(x, G.const(w), padding=1)
                                    * G.const(s.reshape(1, 4, 1, 1)) + 1.0),
        "scalar": G.op.relu(G.op.conv2d(x, G.const(w), padding=1) * G.const(s) + 2.0),
        "op": G.op.sigmoid(G.op.conv2d(x, G.const(w), padding=1) * G.const(s) + 1.0),
        "variable": _block(G.var("x", (1, 3, 8, 8)), w, s),
    }
    for what, other in different.items():
        assert not G.structural_equal(a, other), what
        assert G.structural_hash(a) != G.structural_hash(other), what
    assert not G.structural_equal(G.Module([x], a), G.Module([x], [a, b]))
    # argument order matters for a non-commutative op
    y = G.var("y", (2, 2))
    assert not G.structural_equal(y - G.const(np.ones((2, 2), np.float32)),
                                  G.const(np.ones((2, 2), np.float32)) - y)


def _rebind(mod, inputs):
    """``mod``'s graph rebuilt over other input variables (for comparing two modules that
    do not share their variables: structural equality keys variables by identity)."""
    env = dict(zip(mod.inputs, inputs))
    for n in G.post_order(list(mod.outputs)):
        if n in env:
            continue
        if isinstance(n, G.Constant):
            env[n] = n
        elif isinstance(n, G.Call):
            env[n] = registry.make_call(n.op, *[env[a] for a in n.args], **dict(n.attrs))
        elif isinstance(n, G.Tuple):
            env[n] = G.Tuple([env[f] for f in n.fields])
        elif isinstance(n, G.TupleGetItem):
            env[n] = G.TupleGetItem(env[n.tuple_value], n.index)
    return G.Module(inputs, [env[o] for o in mod.outputs])


def _sample_module(rng):
    x = G.var("x", (1, 3, 8, 8))
    t = G.var("t", (2, 6))
    y = _block(x, f32(rng, 4, 3, 3, 3), f32(rng, 4, 1, 1))
    y = G.op.batch_norm(y, *[G.const(rng.uniform(0.5, 1.5, 4).astype(np.float32))
                             for _ in range(4)])
    z = G.op.max_pool2d(y, kernel=2)
    parts = G.op.split(t, 2, axis=1)
    u = G.op.softmax(parts[0] * 2.0) + parts[1]
    return G.Module([x, t], [G.op.flatten(z), u, parts]), [f32(rng, 1, 3, 8, 8), f32(rng, 2, 6)]


def _same_values(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        if isinstance(p, tuple):
            _same_values(p, q)
        else:
            assert p.dtype == q.dtype
            np.testing.assert_array_equal(p, q)


def test_json_round_trip(rng):
    mod, inputs = _sample_module(rng)
    d = G.to_json(mod)
    assert d["format"] == "tensorlang.graph/1"
    assert d["inputs"] == [["x", [1, 3, 8, 8], "float32"], ["t", [2, 6], "float32"]]
    assert json.loads(json.dumps(d)) == d         # plain JSON, as export stores it
    arrays = constant_arrays(mod)
    assert len(arrays) == len(d["constants"]) == 8     # w, s, 1.0, 4 of batch_norm, 2.0
    back = G.from_json(d, arrays)
    assert [v.name for v in back.inputs] == ["x", "t"]
    assert G.structural_equal(_rebind(back, mod.inputs), mod)
    assert str(back) == str(mod)
    _same_values(G.evaluate(back, *inputs), G.evaluate(mod, *inputs))
    # through a JSON string too, with the constants' bytes
    again = G.from_json(json.loads(json.dumps(d)), [a.copy() for a in arrays])
    assert G.structural_equal(_rebind(again, mod.inputs), mod)


def test_json_round_trip_of_a_fused_module(rng):
    mod, inputs = _sample_module(rng)
    opt = G.optimize(mod, opt_level=3)
    fused = [n for n in opt.calls() if isinstance(n.op, G.Function)]
    assert fused and all(isinstance(n.op, G.Function) for n in opt.calls())
    d = G.to_json(opt)
    back = G.from_json(d, constant_arrays(opt))
    assert G.to_json(back) == d
    # the same text but the trailing module-attribute notes (memory plan, layouts)
    assert str(back) == "\n".join(l for l in str(opt).splitlines() if not l.startswith("# "))
    assert [n.op.attrs for n in back.calls()] == [n.op.attrs for n in fused]
    got, want = G.evaluate(back, *inputs), G.evaluate(mod, *inputs)
    for g, w in zip(got[:2], want[:2]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    _same_values(got[2], want[2])


def test_from_json_rejects_other_formats():
    with pytest.raises(G.GraphError, match="not a tensorlang graph"):
        G.from_json({"format": "onnx"}, [])


# --------------------------------------------------------------------------- printer

def test_printer_one_line_per_node():
    x = G.var("x", (1, 3, 8, 8))
    w = G.const(np.zeros((4, 3, 3, 3), np.float32), "w")
    b = G.const(np.zeros((1, 4, 1, 1), np.float32))
    y = G.op.relu(G.op.conv2d(x, w, padding=1) + b)
    z = G.op.max_pool2d(y, kernel=2) * 0.5
    mod = G.Module([x], [z, G.op.sum(y, axis=1)])
    assert str(mod) == """\
const @w: float32[4, 3, 3, 3]
const @c1: float32[1, 4, 1, 1]
def @main(%x: float32[1, 3, 8, 8]) {
  %0 = conv2d(%x, @w, padding=(1, 1)) : float32[1, 4, 8, 8]
  %1 = add(%0, @c1) : float32[1, 4, 8, 8]
  %2 = relu(%1) : float32[1, 4, 8, 8]
  %3 = max_pool2d(%2, kernel=(2, 2)) : float32[1, 4, 4, 4]
  %4 = multiply(%3, 0.5f) : float32[1, 4, 4, 4]
  %5 = sum(%2, axis=(1,)) : float32[1, 8, 8]
  return (%4, %5)
}"""
    assert repr(mod) == str(mod)
    assert str(y) == "relu(float32[1, 4, 8, 8])"


def test_printer_tuples_and_fused_functions():
    x = G.var("x", (2, 4))
    parts = G.op.split(x, 2, axis=1)
    mod = G.Module([x], G.op.exp(parts[0]) + parts[1])
    assert str(mod).splitlines()[1:5] == [
        "  %0 = strided_slice(%x, begin=(0, 0), end=(2, 2), strides=(1, 1)) : float32[2, 2]",
        "  %1 = strided_slice(%x, begin=(0, 2), end=(2, 4), strides=(1, 1)) : float32[2, 2]",
        "  %2 = (%0, %1) : (float32[2, 2], float32[2, 2])",
        "  %3 = %2.0 : float32[2, 2]"]
    opt = G.transform.FuseOps()(G.Module([x], G.op.relu(G.op.exp(x))))
    lines = str(opt).splitlines()
    assert re.match(r"fn @fused_exp_relu\(%p0: float32\[2, 4\]\) -> float32\[2, 4\] \{  # .*"
                    r"pattern='elemwise'", lines[0]), lines[0]
    assert "  %0 = @fused_exp_relu(%x) : float32[2, 4]" in lines


# --------------------------------------------------------------------------- errors

def raises(exc, match):
    """pytest.raises that also checks the error is one of tensorlang's."""
    assert issubclass(exc, tl.TensorlangError)
    return pytest.raises(exc, match=match)


def test_unknown_op():
    x = G.var("x", (2, 3))
    with raises(G.GraphError, r"unknown op 'nope'; registered ops: abs, add, "):
        registry.make_call("nope", x)


def test_unknown_attribute():
    x = G.var("x", (1, 4, 8, 8))
    with raises(G.GraphError, r"relu\(float32\[1, 4, 8, 8\]\): unknown attribute foo; relu "
                              r"takes: none"):
        G.op.relu(x, foo=1)
    with raises(G.GraphError, r"unknown attributes pad, strides; conv2d takes: stride, "
                              r"padding, dilation, groups"):
        G.op.conv2d(x, _c(4, 4, 3, 3), strides=1, pad=1)


@pytest.mark.parametrize("build,match", [
    (lambda x, w: G.op.conv2d(x, w, stride="a"),
     r"conv2d\(float32\[1, 4, 8, 8\], float32\[8, 4, 3, 3\]\): attribute stride='a': expected "
     r"an int >= 1 or a pair of them"),
    (lambda x, w: G.op.conv2d(x, w, padding=-1),
     r"attribute padding=-1: expected an int >= 0 or a pair of them"),
    (lambda x, w: G.op.conv2d(x, w, groups=True), r"attribute groups=True: expected an int"),
    (lambda x, w: G.op.max_pool2d(x, kernel=(2, 2, 2)), r"attribute kernel=\(2, 2, 2\)"),
    (lambda x, w: G.op.softmax(x, axis=4), r"softmax: axis 4 is out of range for a 4-D"),
    (lambda x, w: G.op.sum(x, axis=-5), r"sum: axis -5 is out of range for a 4-D tensor"),
    (lambda x, w: G.op.concatenate(x, x, axis=4),
     r"concatenate: axis 4 is out of range for a 4-D tensor"),
    (lambda x, w: G.op.gelu(x, approximate="fast"),
     r"attribute approximate='fast': expected one of 'none', 'tanh'"),
    (lambda x, w: G.op.cast(x, dtype="float17"), r"attribute dtype='float17': expected a dtype"),
    (lambda x, w: G.op.layout_transform(x, dst_layout="NHWC"),
     r"expected 'NCHW' or 'NCHW<c>c'"),
], ids=["stride", "padding", "groups_bool", "kernel_3", "softmax_axis", "sum_axis",
        "concat_axis", "gelu_choice", "cast_dtype", "layout"])
def test_bad_attribute_values(build, match):
    x = G.var("x", (1, 4, 8, 8))
    with raises(G.GraphError, match):
        build(x, _c(8, 4, 3, 3))


def test_shape_mismatches_name_both_shapes():
    with raises(G.GraphError, r"add\(float32\[2, 3\], float32\[4, 5\]\): add: shapes \(2, 3\) "
                              r"and \(4, 5\) do not broadcast"):
        G.var("a", (2, 3)) + G.var("b", (4, 5))
    with raises(G.GraphError, r"conv2d\(float32\[1, 4, 8, 8\], float32\[8, 3, 3, 3\]\): "
                              r"conv2d_nchw: W has 3 input channels per group, X has 4 "
                              r"channels"):
        G.op.conv2d(G.var("x", (1, 4, 8, 8)), _c(8, 3, 3, 3))
    with raises(G.GraphError, r"dense\(float32\[2, 3\], float32\[4, 5\]\): dense: X has 3 "
                              r"input features but W has 5"):
        G.op.dense(G.var("x", (2, 3)), _c(4, 5))
    with raises(G.GraphError, r"matmul\(float32\[2, 3, 4\], float32\[3, 4, 5\]\): the batch "
                              r"dimensions \(2,\) and \(3,\) differ"):
        G.op.matmul(G.var("a", (2, 3, 4)), G.var("b", (3, 4, 5)))
    with raises(G.GraphError, r"a's 4 columns do not match b's 5 rows \(a \(3, 4\), b "
                              r"\(5, 2\)\)"):
        G.var("a", (3, 4)) @ G.var("b", (5, 2))
    with raises(G.GraphError, r"reshape: cannot reshape 6 elements into \(7,\)"):
        G.op.reshape(G.var("a", (2, 3)), newshape=(7,))
    with raises(G.GraphError, r"layer_norm: gamma must have shape \(3,\)"):
        G.op.layer_norm(G.var("a", (2, 3)), _c(4), _c(4))
    with raises(G.GraphError, r"split: 4 sections do not divide the 3 elements of axis 1 of "
                              r"\(2, 3\)"):
        G.op.split(G.var("a", (2, 3)), 4, axis=1)
    with raises(G.GraphError, r"relu: expected 1 input, got 2"):
        G.op.relu(G.var("a", (2, 3)), G.var("b", (2, 3)))


def test_dtype_mismatch_asks_for_a_cast():
    with raises(G.GraphTypeError, r"add\(float32\[2, 3\], int32\[2, 3\]\): inputs have "
                                  r"different dtypes \['float32', 'int32'\]; insert a "
                                  r"G.op.cast first"):
        G.var("a", (2, 3)) + G.var("b", (2, 3), "int32")
    with raises(G.GraphTypeError, r"add: expected a graph node or a number, got str"):
        G.var("a", (2, 3)) + "1"
    with raises(G.GraphTypeError, r"has no truth value"):
        bool(G.var("a", (2, 3)))


@pytest.mark.parametrize("shape", [(2, 0), 3, (2.0, 3), (-1,), (True, 2), "23"])
def test_var_bad_shape(shape):
    with raises(G.GraphError, r"var 'v': shape must be a tuple of positive ints, got "
                + re.escape(repr(shape))):
        G.var("v", shape)


def test_var_bad_name_and_dtype():
    with raises(G.GraphError, r"var: the name must be a non-empty string"):
        G.var("", (2,))
    with pytest.raises(tl.TensorlangError, match="float17"):
        G.var("v", (2,), "float17")


def test_module_errors():
    x, y = G.var("x", (2, 3)), G.var("y", (2, 3))
    with raises(G.GraphError, r"Module: the outputs read variables that are not inputs: "
                              r"\['y'\]"):
        G.Module([x], x + y)
    with raises(G.GraphError, r"Module: input names must be distinct, got \['x', 'x'\]"):
        G.Module([x, G.var("x", (2, 3))], x)
    with raises(G.GraphTypeError, r"Module: inputs must be G.var nodes"):
        G.Module([G.const(np.ones(2, np.float32))], x)
    with raises(G.GraphError, r"a module needs at least one output"):
        G.Module([x], [])


def test_pass_context_errors():
    with raises(tl.errors.TensorlangValueError, r"PassContext: opt_level must be an int from "
                                                r"0 to 4, got 7"):
        G.PassContext(opt_level=7)
    with raises(tl.errors.TensorlangValueError, r"opt_level must be an int from 0 to 4, got "
                                                r"True"):
        G.PassContext(opt_level=True)
    with raises(tl.errors.TensorlangValueError, r"PassContext: disabled_pass names unknown "
                                                r"passes \['FuseOp'\]; passes: InferType, "):
        G.PassContext(disabled_pass=["FuseOp"])
    with raises(tl.errors.TensorlangValueError, r"required_pass names unknown passes "
                                                r"\['Nope'\]"):
        G.PassContext(required_pass=["Nope"])
    with raises(tl.errors.TensorlangTypeError, r"required_pass must be a list of pass names, "
                                               r"got the string 'FuseOps'"):
        G.PassContext(required_pass="FuseOps")
    with raises(tl.errors.TensorlangTypeError, r"Sequential: expected passes"):
        G.Sequential([G.transform.FuseOps])


@pytest.mark.parametrize("run,name", [
    (lambda m: G.transform.FoldConstant()(m), "FoldConstant"),
    (lambda m: G.transform.FuseOps()(m), "FuseOps"),
    (lambda m: G.optimize(m), "default_pipeline"),
    (lambda m: G.build(m), "build"),
])
@pytest.mark.parametrize("what", ["var", "dict"])
def test_passes_need_a_module(run, name, what):
    x = G.var("x", (2,))
    arg = x if what == "var" else {"x": x}
    with raises(tl.errors.TensorlangTypeError, rf"{name}: expected a G.Module, got "
                                               rf"{type(arg).__name__}"):
        run(arg)


def test_evaluate_checks_its_inputs(rng):
    x = G.var("x", (2, 3))
    mod = G.Module([x], G.op.relu(x))
    with raises(tl.errors.ArgumentError, r"evaluate: expected 1 input \(x\), got 2"):
        G.evaluate(mod, f32(rng, 2, 3), f32(rng, 2, 3))
    with raises(tl.errors.ArgumentError, r"evaluate: input 'x' has shape \(3, 2\), expected "
                                         r"\(2, 3\)"):
        G.evaluate(mod, f32(rng, 3, 2))
