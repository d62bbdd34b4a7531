"""SimplifyExpr: each rule's before/after graph, the values through the interpreter, and the
rules that must not fire (a broadcast would be lost, a conv read twice)."""

import numpy as np
import pytest

import tensorlang.graph as G
from tensorlang.errors import TensorlangTypeError
from tensorlang.graph.transform.simplify_expr import RULES, simplify_round
from tests import reference

simplify = G.transform.SimplifyExpr()
fold = G.transform.FoldConstant()


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def ops(mod):
    return [c.op for c in mod.calls()]


def same_values(before, after, *inputs, exact=False):
    want, got = G.evaluate(before, *inputs), G.evaluate(after, *inputs)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- identities

@pytest.mark.parametrize("build", [
    lambda x: x * 1.0, lambda x: 1.0 * x, lambda x: x + 0.0, lambda x: 0.0 + x,
    lambda x: x - 0.0, lambda x: x / 1.0,
    lambda x: x * G.const(np.ones(3, np.float32)),          # broadcasts into x: x's type
    lambda x: G.const(np.zeros((1, 3), np.float32)) + x,
], ids=["x*1", "1*x", "x+0", "0+x", "x-0", "x/1", "x*ones[3]", "zeros[1,3]+x"])
def test_identities_give_x(build, rng):
    x = G.var("x", (2, 3))
    mod = G.Module([x], G.op.relu(build(x)))
    out = simplify(mod)
    assert G.structural_equal(out, G.Module([x], G.op.relu(x)))
    assert str(out).splitlines()[1] == "  %0 = relu(%x) : float32[2, 3]"
    same_values(mod, out, f32(rng, 2, 3), exact=True)


@pytest.mark.parametrize("build", [
    lambda x: x * G.const(np.ones((4, 2, 3), np.float32)),
    lambda x: G.const(np.zeros((4, 1, 1), np.float32)) + x,
    lambda x: x - G.const(np.zeros((5, 2, 3), np.float32)),
    lambda x: x * 2.0, lambda x: x + 1.0, lambda x: 0.0 - x,  # not a unit, or on the wrong side
], ids=["x*ones_bigger", "zeros_bigger+x", "x-zeros_bigger", "x*2", "x+1", "0-x"])
def test_identities_do_not_drop_a_broadcast_or_change_values(build, rng):
    x = G.var("x", (2, 3))
    mod = G.Module([x], build(x))
    out = simplify(mod)
    assert out.outputs[0] is mod.outputs[0]           # untouched
    assert out.outputs[0].shape == mod.outputs[0].shape
    same_values(mod, out, f32(rng, 2, 3), exact=True)


def test_divide_by_a_power_of_two_becomes_an_exact_multiply(rng):
    x = G.var("x", (4, 3))
    c = G.const(np.array([4.0, 0.5, -0.125], np.float32), "c")
    mod = G.Module([x], G.op.divide(x, c))
    out = simplify(mod)
    (call,) = out.calls()
    assert call.op == "multiply" and call.args[0] is x
    np.testing.assert_array_equal(call.args[1].data, [0.25, 2.0, -8.0])
    assert call.args[1].name == "c"
    xs = f32(rng, 4, 3)
    same_values(mod, out, xs, exact=True)
    np.testing.assert_array_equal(G.evaluate(out, xs)[0], xs / np.float32([4, 0.5, -0.125]))


@pytest.mark.parametrize("c", [np.float32(3.0), np.array([2.0, 3.0], np.float32),
                               np.float32(0.0), np.array([2.0, -np.inf], np.float32)])
def test_divide_by_other_constants_stays(c):
    x = G.var("x", (3, 2))
    mod = G.Module([x], G.op.divide(x, G.const(c)))
    assert ops(simplify(mod)) == ["divide"]


def test_double_negative(rng):
    x = G.var("x", (5,))
    two = G.Module([x], G.op.exp(-(-x)))
    three = G.Module([x], -(-(-x)))
    assert G.structural_equal(simplify(two), G.Module([x], G.op.exp(x)))
    assert G.structural_equal(simplify(three), G.Module([x], -x))
    xs = f32(rng, 5)
    same_values(two, simplify(two), xs, exact=True)
    same_values(three, simplify(three), xs, exact=True)


# --------------------------------------------------------------------------- layout ops

def test_double_transpose_composes_axes(rng):
    x = G.var("x", (2, 3, 4))
    t = G.op.transpose(G.op.transpose(x, axes=(0, 2, 1)), axes=(1, 0, 2))
    mod = G.Module([x], t)
    out = simplify(mod)
    assert G.structural_equal(out, G.Module([x], G.op.transpose(x, axes=(2, 0, 1))))
    same_values(mod, out, f32(rng, 2, 3, 4), exact=True)


@pytest.mark.parametrize("a, b", [((1, 2, 0), (2, 0, 1)), (None, None), ((0, 2, 1), (0, 2, 1)),
                                  ((-1, 0, 1), (1, 2, 0))])
def test_transposes_that_cancel_give_x(a, b, rng):
    x = G.var("x", (2, 3, 4))
    mod = G.Module([x], G.op.relu(G.op.transpose(G.op.transpose(x, axes=a), axes=b)))
    out = simplify(mod)
    assert ops(out) == ["relu"] and out.calls()[0].args[0] is x
    same_values(mod, out, f32(rng, 2, 3, 4), exact=True)


def test_transpose_with_identity_axes_gives_x():
    x = G.var("x", (2, 3))
    assert simplify(G.Module([x], G.op.transpose(x, axes=(0, 1)))).outputs[0] is x
    y = G.var("y", (7,))
    assert simplify(G.Module([y], G.op.transpose(y))).outputs[0] is y
    assert ops(simplify(G.Module([x], G.op.transpose(x)))) == ["transpose"]


def test_reshape_of_reshape_is_one_reshape(rng):
    x = G.var("x", (2, 3, 4))
    mod = G.Module([x], G.op.reshape(G.op.reshape(x, newshape=(6, 4)), newshape=(4, 6)))
    out = simplify(mod)
    assert G.structural_equal(out, G.Module([x], G.op.reshape(x, newshape=(4, 6))))
    same_values(mod, out, f32(rng, 2, 3, 4), exact=True)


def test_reshapes_back_to_the_shape_give_x(rng):
    x = G.var("x", (2, 3, 4))
    mod = G.Module([x], G.op.reshape(G.op.reshape(G.op.reshape(x, newshape=(24,)),
                                                  newshape=(4, 6)), newshape=(2, 3, 4)))
    out = simplify(mod)
    assert out.outputs[0] is x
    assert simplify(G.Module([x], G.op.reshape(x, newshape=(2, 3, 4)))).outputs[0] is x
    same_values(mod, out, f32(rng, 2, 3, 4), exact=True)


def test_cast_to_the_same_dtype_gives_x():
    x = G.var("x", (3,))
    assert simplify(G.Module([x], G.op.cast(x, dtype="float32"))).outputs[0] is x
    assert ops(simplify(G.Module([x], G.op.cast(x, dtype="float64")))) == ["cast"]


def test_full_strided_slice_gives_x(rng):
    x = G.var("x", (4, 6))
    full = G.Module([x], G.op.exp(G.op.strided_slice(x, begin=(0, 0), end=(4, 100))))
    out = simplify(full)
    assert ops(out) == ["exp"] and out.calls()[0].args[0] is x
    same_values(full, out, f32(rng, 4, 6), exact=True)
    part = G.Module([x], G.op.strided_slice(x, begin=(0, 1), end=(4, 6)))
    strided = G.Module([x], G.op.strided_slice(x, begin=(0, 0), end=(4, 6), strides=(1, 2)))
    assert ops(simplify(part)) == ["strided_slice"]
    assert ops(simplify(strided)) == ["strided_slice"]


def test_broadcast_to_the_same_shape_gives_x():
    x = G.var("x", (2, 3))
    assert simplify(G.Module([x], G.op.broadcast_to(x, shape=(2, 3)))).outputs[0] is x
    assert ops(simplify(G.Module([x], G.op.broadcast_to(x, shape=(4, 2, 3))))) == ["broadcast_to"]


def test_rules_compose_to_a_fixed_point(rng):
    x = G.var("x", (2, 3))
    y = G.op.transpose(G.op.transpose(-(-(x * 1.0)) + 0.0, axes=(1, 0)), axes=(1, 0))
    mod = G.Module([x], G.op.reshape(G.op.reshape(y, newshape=(6,)), newshape=(2, 3)) / 1.0)
    out = simplify(mod)
    assert out.outputs[0] is x and out.calls() == []
    same_values(mod, out, f32(rng, 2, 3), exact=True)


# --------------------------------------------------------------------------- batch norm

def bn_consts(rng, c):
    return (G.const(rng.uniform(0.5, 1.5, c).astype(np.float32), "gamma"),
            G.const(f32(rng, c), "beta"), G.const(f32(rng, c), "mean"),
            G.const(rng.uniform(0.5, 2.0, c).astype(np.float32), "var"))


def test_batch_norm_folds_into_conv2d(rng):
    x = G.var("x", (2, 4, 9, 9))
    w = G.const(f32(rng, 6, 2, 3, 3), "w")
    g, b, m, v = bn_consts(rng, 6)
    conv = G.op.conv2d(x, w, stride=2, padding=1, groups=2)
    mod = G.Module([x], G.op.relu(G.op.batch_norm(conv, g, b, m, v, epsilon=1e-3)))
    out = simplify(mod)
    scale = g * G.op.rsqrt(v + 1e-3)
    shift = b - m * scale
    want = G.op.add(G.op.conv2d(x, w * G.op.reshape(scale, newshape=(6, 1, 1, 1)),
                                stride=2, padding=1, groups=2),
                    G.op.reshape(shift, newshape=(6, 1, 1)))
    assert G.structural_equal(out, G.Module([x], G.op.relu(want)))
    assert "batch_norm" not in ops(out)

    folded = fold(out)          # the scale and shift subgraphs become constants
    assert ops(folded) == ["conv2d", "add", "relu"]
    consts = {c.name: c.shape for c in folded.nodes() if isinstance(c, G.Constant)}
    assert consts == {"w": (6, 2, 3, 3), "beta": (6, 1, 1)}

    xs = f32(rng, 2, 4, 9, 9)
    ref = np.maximum(reference.batch_norm(reference.conv2d_nchw(xs, w.data, 2, 1, groups=2),
                                          g.data, b.data, m.data, v.data, eps=1e-3), 0)
    for m_ in (mod, out, folded):
        np.testing.assert_allclose(G.evaluate(m_, xs)[0], ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(5, 8)])     # dense on 3-D inputs fails to type (nn.py)
def test_batch_norm_folds_into_dense(shape, rng):
    x = G.var("x", shape)
    w = G.const(f32(rng, 6, 8), "w")
    g, b, m, v = bn_consts(rng, 6)
    mod = G.Module([x], G.op.batch_norm(G.op.dense(x, w), g, b, m, v, axis=len(shape) - 1))
    out = simplify(mod)
    scale = g * G.op.rsqrt(v + 1e-5)
    want = G.op.add(G.op.dense(x, w * G.op.reshape(scale, newshape=(6, 1))), b - m * scale)
    assert G.structural_equal(out, G.Module([x], want))
    folded = fold(out)
    assert ops(folded) == ["dense", "add"]
    xs = f32(rng, *shape)
    y = reference.dense(xs.reshape(-1, 8), w.data).reshape(*shape[:-1], 6)
    ref = reference.batch_norm(y, g.data, b.data, m.data, v.data, axis=len(shape) - 1)
    for m_ in (mod, out, folded):
        np.testing.assert_allclose(G.evaluate(m_, xs)[0], ref, rtol=1e-4, atol=1e-4)


def test_a_deep_chain_of_conv_batch_norm_folds_in_one_round(rng):
    x = G.var("x", (1, 2, 4, 4))
    y = x
    for _ in range(24):             # more layers than SimplifyExpr has rounds
        y = G.op.relu(G.op.batch_norm(G.op.conv2d(y, G.const(f32(rng, 2, 2, 1, 1))),
                                      *bn_consts(rng, 2)))
    mod = G.Module([x], y)
    once, fired = simplify_round(mod)
    assert fired == 24 and "batch_norm" not in ops(once)
    assert simplify_round(once)[1] == 0
    out = fold(simplify(mod))
    assert ops(out) == ["conv2d", "add", "relu"] * 24
    xs = f32(rng, 1, 2, 4, 4)
    np.testing.assert_allclose(G.evaluate(out, xs)[0], G.evaluate(mod, xs)[0], rtol=1e-4,
                               atol=1e-5)


def test_batch_norm_after_a_conv_read_twice_decomposes(rng):
    x = G.var("x", (1, 3, 6, 6))
    conv = G.op.conv2d(x, G.const(f32(rng, 4, 3, 3, 3), "w"), padding=1)
    g, b, m, v = bn_consts(rng, 4)
    mod = G.Module([x], G.op.batch_norm(conv, g, b, m, v) + conv)
    out = simplify(mod)
    assert ops(out).count("conv2d") == 1 and "batch_norm" not in ops(out)
    scale = g * G.op.rsqrt(v + 1e-5)
    bn = G.op.add(G.op.multiply(conv, G.op.reshape(scale, newshape=(4, 1, 1))),
                  G.op.reshape(b - m * scale, newshape=(4, 1, 1)))
    assert G.structural_equal(out, G.Module([x], bn + conv))
    folded = fold(out)
    assert ops(folded) == ["conv2d", "multiply", "add", "add"]
    assert sorted(c.shape for c in folded.nodes() if isinstance(c, G.Constant)) == \
        [(4, 1, 1), (4, 1, 1), (4, 3, 3, 3)]
    xs = f32(rng, 1, 3, 6, 6)
    y = reference.conv2d_nchw(xs, conv.args[1].data, 1, 1)
    ref = reference.batch_norm(y, g.data, b.data, m.data, v.data) + y
    for m_ in (mod, out, folded):
        np.testing.assert_allclose(G.evaluate(m_, xs)[0], ref, rtol=1e-4, atol=1e-4)


def test_batch_norm_that_is_a_module_output_beside_its_conv_does_not_fold(rng):
    x = G.var("x", (1, 2, 4, 4))
    conv = G.op.conv2d(x, G.const(f32(rng, 3, 2, 1, 1)))
    mod = G.Module([x], [conv, G.op.batch_norm(conv, *bn_consts(rng, 3))])
    out = simplify(mod)
    assert ops(out).count("conv2d") == 1 and "multiply" in ops(out)
    same_values(mod, out, f32(rng, 1, 2, 4, 4))


@pytest.mark.parametrize("axis, shape, vec", [(1, (2, 5, 3, 3), (5, 1, 1)), (3, (2, 3, 4, 5), (5,)),
                                               (0, (5, 2), (5, 1))])
def test_batch_norm_on_a_variable_decomposes_per_channel(axis, shape, vec, rng):
    x = G.var("x", shape)
    c = shape[axis]
    mod = G.Module([x], G.op.batch_norm(x, *bn_consts(rng, c), axis=axis))
    out = fold(simplify(mod))
    assert ops(out) == ["multiply", "add"]
    shapes = [a.shape for c_ in out.calls() for a in c_.args if isinstance(a, G.Constant)]
    assert shapes == [vec, vec]
    xs = f32(rng, *shape)
    gamma, beta, mean, var = mod.outputs[0].args[1:]
    ref = reference.batch_norm(xs, gamma.data, beta.data, mean.data, var.data, axis=axis)
    np.testing.assert_allclose(G.evaluate(out, xs)[0], ref, rtol=1e-5, atol=1e-5)


def test_batch_norm_with_variable_statistics_decomposes_without_folding(rng):
    x = G.var("x", (1, 3, 4, 4))
    gamma = G.var("gamma", (3,))
    w = G.const(f32(rng, 3, 3, 1, 1))
    _, b, m, v = bn_consts(rng, 3)
    mod = G.Module([x, gamma], G.op.batch_norm(G.op.conv2d(x, w), gamma, b, m, v))
    out = simplify(mod)
    assert out.calls()[0].op == "conv2d" and out.calls()[0].args[1] is w    # W untouched
    assert "batch_norm" not in ops(out)
    same_values(mod, out, f32(rng, 1, 3, 4, 4), rng.uniform(0.5, 1, 3).astype(np.float32))


def test_adds_of_constants_merge(rng):
    x = G.var("x", (1, 3, 4, 4))
    conv = G.op.conv2d(x, G.const(f32(rng, 5, 3, 1, 1), "w"))
    c1, c2 = G.const(f32(rng, 5, 1, 1), "bias"), G.const(f32(rng, 5, 1, 1), "shift")
    mod = G.Module([x], (conv + c1) + c2)
    out = simplify(mod)
    assert G.structural_equal(out, G.Module([x], conv + (c1 + c2)))
    assert ops(fold(out)) == ["conv2d", "add"]
    same_values(mod, fold(out), f32(rng, 1, 3, 4, 4))

    inner = conv + c1                   # read twice: stays
    twice = G.Module([x], [inner + c2, inner])
    assert ops(simplify(twice)) == ops(twice)
    plane = G.const(f32(rng, 1, 4, 4))  # c1 + plane would be a (5, 4, 4) constant: stays
    grows = G.Module([x], (conv + c1) + plane)
    assert simplify(grows).outputs[0] is grows.outputs[0]


def test_conv_bias_batch_norm_chain_becomes_conv_plus_one_add(rng):
    x = G.var("x", (1, 3, 5, 5))
    w = G.const(f32(rng, 4, 3, 3, 3), "w")
    g, b, m, v = bn_consts(rng, 4)
    mod = G.Module([x], G.op.batch_norm(G.op.conv2d(x, w, padding=1), g, b, m, v)
                   + G.const(f32(rng, 4, 1, 1), "bias"))
    out = fold(simplify(mod))
    assert ops(out) == ["conv2d", "add"]
    same_values(mod, out, f32(rng, 1, 3, 5, 5))


# --------------------------------------------------------------------------- the pass

def test_rules_are_a_table_over_registered_ops():
    from tensorlang.graph.op.registry import OPS
    assert set(RULES) <= set(OPS)
    assert all(callable(r) for rules in RULES.values() for r in rules)


def test_simplify_leaves_a_graph_without_matches_as_it_is():
    x = G.var("x", (2, 3))
    mod = G.Module([x], G.op.relu(x * 2.0))
    out = simplify(mod)
    assert out.outputs[0] is mod.outputs[0]


@pytest.mark.parametrize("what", [None, "mod", [1, 2]])
def test_simplify_needs_a_module(what):
    with pytest.raises(TensorlangTypeError, match="SimplifyExpr: expected a G.Module"):
        simplify(what)


def test_simplify_opt_level():
    assert G.transform.SimplifyExpr.opt_level == 2
    assert simplify.name == "SimplifyExpr"


@pytest.mark.parametrize("groups", [1, 4])
def test_a_symmetric_zero_pad_becomes_the_convs_padding(groups, rng):
    x = G.var("x", (1, 4, 9, 9))
    w = G.const(f32(rng, 8, 4 // groups, 3, 3), "w")
    padded = G.op.pad(x, pad_width=((0, 0), (0, 0), (1, 1), (2, 2)))
    mod = G.Module([x], G.op.conv2d(padded, w, padding=(1, 0), groups=groups))
    out = simplify(mod)
    want = G.Module([x], G.op.conv2d(x, w, padding=(2, 2), groups=groups))
    assert G.structural_equal(out, want)
    xs = f32(rng, 1, 4, 9, 9)
    np.testing.assert_allclose(G.evaluate(out, xs)[0],
                               reference.conv2d_nchw(xs, w.data, 1, 2, groups=groups),
                               rtol=1e-4, atol=1e-4)
    same_values(mod, out, xs)


@pytest.mark.parametrize("pad_width,value", [
    (((0, 0), (0, 0), (0, 1), (0, 1)), 0.0),     # one-sided ("same" padding at stride 2)
    (((0, 0), (0, 0), (1, 1), (1, 1)), 1.0),     # not zeros
    (((0, 0), (1, 1), (1, 1), (1, 1)), 0.0),     # pads channels
])
def test_other_pads_stay_before_the_conv(pad_width, value, rng):
    x = G.var("x", (1, 4, 8, 8))
    channels = 4 + 2 * pad_width[1][0]
    w = G.const(f32(rng, channels, 1, 3, 3), "w")
    padded = G.op.pad(x, pad_width=pad_width, value=value)
    mod = G.Module([x], G.op.conv2d(padded, w, groups=channels))
    assert ops(simplify(mod)) == ["pad", "conv2d"]
