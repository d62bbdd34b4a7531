"""FuseOps before/after, and each fused kernel against the numpy interpreter."""

import numpy as np
import pytest

from tensorlang import graph as G
from tensorlang.graph.ir import Call, Function
from tensorlang.graph.transform.fuse_ops import kernel_view


def groups(mod):
    """[(op names in the group, pattern, anchor)] of a fused module, in execution order."""
    out = []
    for n in mod.nodes():
        if isinstance(n, Call) and isinstance(n.op, Function):
            body = [m.op for m in G.post_order(n.op.body) if isinstance(m, Call)]
            out.append((body, n.op.attrs["pattern"], n.op.attrs.get("anchor")))
    return out


def fuse(mod, level=1):
    with G.PassContext(opt_level=level):
        return G.transform.FuseOps()(mod)


def check_compiled(mod, level, rng, rtol=1e-4):
    ins = [rng.standard_normal(v.shape).astype(v.dtype) for v in mod.inputs]
    ref = G.evaluate(mod, *ins)
    out = G.build(mod, opt_level=level)(*ins)
    out = out if isinstance(out, list) else [out]
    for a, r in zip(out, ref):
        np.testing.assert_allclose(a, r, rtol=rtol, atol=rtol)


def const(rng, *shape, name=""):
    return G.const(rng.standard_normal(shape).astype("float32") * 0.3, name=name)


def conv_block(rng):
    x = G.var("x", (1, 8, 6, 6))
    y = G.op.relu(G.op.conv2d(x, const(rng, 8, 8, 3, 3), padding=1) + const(rng, 8, 1, 1)) + x
    return G.Module([x], [y])


def test_conv_takes_its_elementwise_epilogue(rng):
    mod = conv_block(rng)
    assert groups(fuse(mod)) == [(["conv2d", "add", "relu", "add"], "out_fusable", "conv2d")]
    check_compiled(mod, 1, rng)


def test_level_zero_keeps_one_op_per_group(rng):
    mod = conv_block(rng)
    assert [g[0] for g in groups(fuse(mod, level=0))] == [["conv2d"], ["add"], ["relu"], ["add"]]
    check_compiled(mod, 0, rng)


def test_a_value_read_by_two_anchors_is_not_fused_past(rng):
    x = G.var("x", (1, 8, 6, 6))
    a = G.op.conv2d(x, const(rng, 8, 8, 1, 1))
    b = G.op.conv2d(G.op.relu(a), const(rng, 8, 8, 1, 1))
    mod = G.Module([x], [G.op.add(a, b)])
    got = groups(fuse(mod))
    # a is read by relu (-> the second conv) and by the add: its post-dominator is the add,
    # and the path to it goes through a conv, so a stays alone; b takes the add
    assert got == [(["conv2d"], "out_fusable", "conv2d"), (["relu"], "elemwise", None),
                   (["conv2d", "add"], "out_fusable", "conv2d")]
    check_compiled(mod, 1, rng)


def test_injective_chain_is_one_group(rng):
    x = G.var("x", (2, 3, 4))
    y = G.op.exp(G.op.transpose(G.op.reshape(x, newshape=(6, 4)), axes=(1, 0))) * 2.0
    mod = G.Module([x], [y])
    assert groups(fuse(mod)) == [(["reshape", "transpose", "exp", "multiply"], "injective", None)]
    check_compiled(mod, 1, rng)


def test_injective_ops_do_not_fuse_into_an_anchor(rng):
    x = G.var("x", (4, 16))
    y = G.op.softmax(G.op.reshape(x, newshape=(2, 32)))
    assert groups(fuse(G.Module([x], [y]))) == [(["reshape"], "injective", None),
                                                 (["softmax"], "reduction", "softmax")]


def test_dense_over_3d_rows_fuses_bias_gelu_residual(rng):
    x = G.var("x", (1, 8, 16))
    h = G.op.gelu(G.op.dense(x, const(rng, 16, 16)) + const(rng, 16)) + x
    col = G.var("col", (1, 8, 1))                     # one value per row: a column view
    mod = G.Module([x, col], [h * col])
    assert groups(fuse(mod)) == [(["dense", "add", "gelu", "add", "multiply"], "out_fusable",
                                  "dense")]
    check_compiled(mod, 1, rng)


def test_rows_kernels_refuse_operands_without_a_matrix_view(rng):
    x = G.var("x", (2, 4, 8))
    odd = G.var("odd", (2, 1, 8))                     # varies along the batch only
    mod = G.Module([x, odd], [G.op.softmax(x) + odd])
    assert [g[0] for g in groups(fuse(mod))] == [["softmax"], ["add"]]
    check_compiled(mod, 1, rng)


def test_batched_matmul_epilogue_uses_the_batch_view(rng):
    q, k = G.var("q", (1, 2, 8, 4)), G.var("k", (1, 2, 4, 8))
    mask = G.var("mask", (1, 1, 1, 8))
    mod = G.Module([q, k, mask], [G.op.softmax(G.op.matmul(q, k) * 0.5 + mask)])
    assert [g[0] for g in groups(fuse(mod))] == [["matmul", "multiply", "add"], ["softmax"]]
    check_compiled(mod, 1, rng)


def test_softmax_on_an_inner_axis_falls_back_to_a_generic_kernel(rng):
    x = G.var("x", (3, 5, 4))
    mod = G.Module([x], [G.op.softmax(x, axis=1) * 3.0])
    check_compiled(mod, 1, rng)
    check_compiled(mod, 0, rng)


def test_outputs_inside_a_chain_end_the_group(rng):
    x = G.var("x", (4, 8))
    a = G.op.relu(x)
    b = G.op.exp(a)
    mod = G.Module([x], [a, b])          # a is an output: the sink post-dominates it
    assert [g[0] for g in groups(fuse(mod))] == [["relu"], ["exp"]]
    check_compiled(mod, 1, rng)


@pytest.mark.parametrize("shape,out,kernel,want", [
    ((768,), (1, 128, 768), (128, 768), (1, 768)),
    ((1, 128, 768), (1, 128, 768), (128, 768), (128, 768)),
    ((1, 1, 1, 16), (1, 4, 8, 16), (4, 8, 16), (1, 1, 16)),
    ((1, 4, 1, 16), (1, 4, 8, 16), (32, 16), None),       # varies with the batch only
    ((), (2, 3), (2, 3), (1, 1)),
])
def test_kernel_view(shape, out, kernel, want):
    assert kernel_view(shape, out, kernel) == want
