"""FoldConstant and EliminateCommonSubexpr: before/after graphs, the folded values against
numpy, the values of the whole module through the interpreter, and what must not change."""

import numpy as np
import pytest

import tensorlang.graph as G
from tensorlang.errors import TensorlangTypeError
from tensorlang.graph.ir import Attrs, Call

fold = G.transform.FoldConstant()
cse = G.transform.EliminateCommonSubexpr()


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def ops(mod):
    return [c.op if isinstance(c.op, str) else c.op.name for c in mod.calls()]


def constants(mod):
    return [n for n in mod.nodes() if isinstance(n, G.Constant)]


def same_values(before, after, *inputs):
    for w, g in zip(G.evaluate(before, *inputs), G.evaluate(after, *inputs), strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def fn_call(fn, *args):
    return Call(fn, tuple(args), Attrs(), fn.type)


# --------------------------------------------------------------------------- FoldConstant

def test_a_constant_subgraph_folds_to_one_constant(rng):
    a, b, c = f32(rng, 3, 4), f32(rng, 4), f32(rng, 3, 1)
    x = G.var("x", (3, 4))
    k = G.op.relu(G.const(a, "a") * G.const(b, "b") + G.const(c))
    mod = G.Module([x], x + G.op.transpose(G.op.transpose(k)))
    out = fold(mod)
    assert ops(out) == ["add"]
    (const,) = constants(out)
    assert const.name == "a" and const.type == G.TensorType((3, 4), "float32")
    np.testing.assert_allclose(const.data, np.maximum(a * b + c, 0), rtol=1e-6)
    assert out.outputs[0].args[0] is x
    same_values(mod, out, f32(rng, 3, 4))
    assert "const @a: float32[3, 4]" in str(out) and "relu" not in str(out)


def test_folded_constants_are_named_after_the_first_named_input(rng):
    x = G.var("x", (4,))
    unnamed = G.const(f32(rng, 4))
    named = G.const(f32(rng, 4), "w")
    out = fold(G.Module([x], [x * (unnamed + named), x + G.op.exp(unnamed)]))
    first, second = (o.args[1] for o in out.outputs)
    assert first.name == "w" and second.name == ""
    np.testing.assert_array_equal(first.data, unnamed.data + named.data)


def test_a_graph_of_variables_is_left_as_it_is():
    x = G.var("x", (2, 2))
    mod = G.Module([x], G.op.exp(x) * 2.0)
    assert fold(mod).outputs[0] is mod.outputs[0]


def test_folding_keeps_the_calls_dtype_where_numpy_promotes(rng):
    # float32 times a float64 0-d constant is float32 in the graph; numpy would give float64
    a = f32(rng, 5)
    call = G.op.multiply(G.const(a, "a"), G.const(np.array(0.1, np.float64)))
    assert call.type.dtype == "float32"
    x = G.var("x", (5,))
    mod = G.Module([x], x + call)
    out = fold(mod)
    (const,) = constants(out)
    assert const.data.dtype == np.float32
    np.testing.assert_array_equal(const.data, (a * np.float64(0.1)).astype(np.float32))
    xs = f32(rng, 5)
    got = G.evaluate(out, xs)[0]
    assert got.dtype == np.float32          # the graph's type (the interpreter gives float64)
    np.testing.assert_allclose(got, G.evaluate(mod, xs)[0], rtol=1e-6)


def test_integer_constants_fold_in_their_dtype():
    x = G.var("x", (4,), "int8")
    c = G.op.add(G.const(np.arange(4, dtype=np.int8), "i"), G.const(np.array(100, np.int64)))
    out = fold(G.Module([x], x + c))
    (const,) = constants(out)
    assert const.data.dtype == np.int8
    np.testing.assert_array_equal(const.data, [100, 101, 102, 103])


def test_broadcast_of_a_scalar_to_a_big_shape_is_not_folded(rng):
    x = G.var("x", (64, 64))
    big = G.op.broadcast_to(G.const(np.float32([2.0])), shape=(64, 64))
    mod = G.Module([x], x * big)
    out = fold(mod)
    assert ops(out) == ["broadcast_to", "multiply"]
    outer = G.op.add(G.const(f32(rng, 64, 1)), G.const(f32(rng, 1, 64)))   # 16 KiB from 512 B
    assert ops(fold(G.Module([x], x + outer))) == ["add", "add"]
    same_values(mod, out, f32(rng, 64, 64))


def test_small_broadcasts_and_same_size_results_fold(rng):
    x = G.var("x", (4,))
    small = G.op.broadcast_to(G.const(np.float32([2.0])), shape=(4,))    # 16 bytes: folds
    w = G.const(f32(rng, 64, 64), "w")
    scaled = w * G.op.reshape(G.const(f32(rng, 64)), newshape=(64, 1))  # as large as w: folds
    y = G.var("y", (64, 64))
    out = fold(G.Module([x, y], [x * small, y + scaled]))
    assert ops(out) == ["multiply", "add"]
    np.testing.assert_array_equal(out.outputs[0].args[1].data, np.full(4, 2, np.float32))
    assert out.outputs[1].args[1].name == "w"


def test_a_fused_function_call_on_constants_folds(rng):
    p, q = G.var("p", (3,)), G.var("q", (3,))
    fn = G.Function([p, q], G.op.relu(p * q), "fused_mul_relu")
    a, b = f32(rng, 3), f32(rng, 3)
    x = G.var("x", (3,))
    mod = G.Module([x], x + fn_call(fn, G.const(a, "a"), G.const(b)))
    assert "fused_mul_relu" in ops(mod)
    out = fold(mod)
    assert ops(out) == ["add"]
    np.testing.assert_array_equal(constants(out)[0].data, np.maximum(a * b, 0))
    same_values(mod, out, f32(rng, 3))
    on_x = G.Module([x], fn_call(fn, x, G.const(b)))            # reads x: stays
    assert fold(on_x).outputs[0] is on_x.outputs[0]


def test_a_fused_function_returning_a_tuple_folds_to_a_tuple_of_constants(rng):
    p = G.var("p", (4,))
    fn = G.Function([p], G.Tuple([G.op.exp(p), -p]), "fused_two")
    a = f32(rng, 4)
    t = fn_call(fn, G.const(a, "a"))
    x = G.var("x", (4,))
    mod = G.Module([x], x * t[1])
    out = fold(mod)
    assert ops(out) == ["multiply"]
    np.testing.assert_array_equal(out.outputs[0].args[1].data, -a)
    assert out.outputs[0].args[1].name == "a"
    same_values(mod, out, f32(rng, 4))


def test_tuples_of_constants_fold_through_get_item(rng):
    a = f32(rng, 6, 2)
    parts = G.op.split(G.const(a, "a"), 3, axis=0)
    x = G.var("x", (2, 2))
    mod = G.Module([x], [x + parts[1], parts])
    out = fold(mod)
    assert ops(out) == ["add"]
    assert all(isinstance(f, G.Constant) for f in out.outputs[1].fields)
    np.testing.assert_array_equal(out.outputs[0].args[1].data, a[2:4])
    xs = f32(rng, 2, 2)
    np.testing.assert_array_equal(G.evaluate(out, xs)[0], G.evaluate(mod, xs)[0])
    for got, want in zip(G.evaluate(out, xs)[1], np.split(a, 3)):
        np.testing.assert_array_equal(got, want)


def test_fold_constant_needs_a_module():
    with pytest.raises(TensorlangTypeError,
                       match="FoldConstant: expected a G.Module, got Constant"):
        fold(G.const(np.ones(3, np.float32)))


# --------------------------------------------------------------------------- CSE

def test_equal_calls_become_one(rng):
    x = G.var("x", (3, 4))
    mod = G.Module([x], G.op.relu(x) + G.op.relu(x))
    out = cse(mod)
    assert ops(mod) == ["relu", "relu", "add"] and ops(out) == ["relu", "add"]
    r = G.op.relu(x)
    assert G.structural_equal(out, G.Module([x], r + r))
    add = out.outputs[0]
    assert add.args[0] is add.args[1]
    same_values(mod, out, f32(rng, 3, 4))


def test_parents_of_merged_nodes_merge_too(rng):
    x = G.var("x", (8,))
    a = G.op.exp(G.op.tanh(x) * 2.0)
    b = G.op.exp(G.op.tanh(x) * 2.0)
    mod = G.Module([x], [a - b, a])
    out = cse(mod)
    assert ops(out) == ["tanh", "multiply", "exp", "subtract"]
    sub, first = out.outputs
    assert sub.args[0] is sub.args[1] is first
    same_values(mod, out, f32(rng, 8))


def test_different_attributes_variables_or_dtypes_do_not_merge(rng):
    x, y = G.var("x", (3, 3)), G.var("y", (3, 3))
    mod = G.Module([x, y], [G.op.sum(x, axis=0), G.op.sum(x, axis=1), G.op.exp(x), G.op.exp(y),
                            G.op.cast(x, dtype="int32") + G.const(np.zeros(3, np.int32)),
                            x + G.const(np.zeros(3, np.float32))])
    out = cse(mod)
    assert all(o is p for o, p in zip(out.outputs, mod.outputs))
    assert len(constants(out)) == 2


def test_equal_constants_merge_whatever_their_names(rng):
    w = f32(rng, 4, 4)
    x = G.var("x", (2, 4))
    mod = G.Module([x], G.op.dense(x, G.const(w, "w1")) + G.op.dense(x, G.const(w, "w2")))
    out = cse(mod)
    assert ops(out) == ["dense", "add"] and [c.name for c in constants(out)] == ["w1"]
    nbytes = lambda m: sum(c.data.nbytes for c in constants(m))  # noqa: E731
    assert nbytes(mod) == 2 * nbytes(out) == 2 * w.nbytes
    same_values(mod, out, f32(rng, 2, 4))
    other = G.Module([x], G.op.dense(x, G.const(w, "w1")) + G.op.dense(x, G.const(w + 1, "w2")))
    assert len(constants(cse(other))) == 2


def test_equal_fused_calls_merge(rng):
    p = G.var("p", (3,))
    fn = G.Function([p], G.op.sigmoid(p), "fused_sigmoid")
    x = G.var("x", (3,))
    mod = G.Module([x], fn_call(fn, x) * fn_call(fn, x))
    out = cse(mod)
    assert ops(out) == ["fused_sigmoid", "multiply"]
    same_values(mod, out, f32(rng, 3))


def test_cse_on_a_deep_graph_of_shared_nodes_is_linear(rng):
    # each level reads the one below twice: keys that nest would be hashed 2**60 times
    x = G.var("x", (4,))
    y = x
    for _ in range(60):
        y = G.op.tanh(y) + G.op.tanh(y)
    mod = G.Module([x], y)
    out = cse(mod)
    assert len(mod.calls()) == 180 and len(out.calls()) == 120
    same_values(mod, out, f32(rng, 4))


def test_cse_needs_a_module():
    x = G.var("x", (2,))
    with pytest.raises(TensorlangTypeError, match="EliminateCommonSubexpr: expected a G.Module"):
        cse([x])


def test_pass_names_and_opt_levels():
    assert (G.transform.FoldConstant.opt_level, fold.name) == (2, "FoldConstant")
    assert (G.transform.EliminateCommonSubexpr.opt_level, cse.name) == (3, "EliminateCommonSubexpr")


def test_pipeline_folds_batch_norm_then_merges_equal_weights(rng):
    x = G.var("x", (1, 3, 6, 6))
    w = f32(rng, 4, 3, 3, 3)
    g, b, m, v = (G.const(rng.uniform(0.5, 1.5, 4).astype(np.float32)) for _ in range(4))

    def branch():
        return G.op.relu(G.op.batch_norm(G.op.conv2d(x, G.const(w, "w"), padding=1), g, b, m, v))

    mod = G.Module([x], branch() + branch())
    seq = G.Sequential([G.transform.SimplifyExpr(), G.transform.FoldConstant(),
                        G.transform.EliminateCommonSubexpr()])
    with G.PassContext(opt_level=3):
        out = seq(mod)
    assert ops(out) == ["conv2d", "add", "relu", "add"]
    with G.PassContext(opt_level=2):            # CSE is level 3: the branches stay two
        assert ops(seq(mod)) == ["conv2d", "add", "relu"] * 2 + ["add"]
    xs = f32(rng, 1, 3, 6, 6)
    np.testing.assert_allclose(G.evaluate(out, xs)[0], G.evaluate(mod, xs)[0],
                               rtol=1e-5, atol=1e-5)
