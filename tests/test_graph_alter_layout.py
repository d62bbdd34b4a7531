"""AlterOpLayout: conv2d -> conv2d_NCHWc with the template's blocks, layouts carried through
element-wise / broadcast ops, layout_transforms only at the boundaries; the rewritten
module computes what the original does (numpy interpreter, and an independent numpy
reference)."""

from collections import Counter

import numpy as np
import pytest

import tensorlang as tl
import tensorlang.graph as G
from tensorlang import dispatch
from tensorlang.graph.op.registry import check_attrs, get
from tensorlang.graph.ir import Call, TensorType

from . import reference
from .conftest import run_python

ALTER = G.transform.AlterOpLayout()


def kinds(mod):
    return Counter(n.op for n in mod.calls())


def transforms(mod):
    return [n for n in mod.calls() if n.op == "layout_transform"]


def lanes():
    return tl.target.Target.current().info.lanes(32)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def resnet_block(rng, C=16, F=32, H=8, W=8):
    """conv -> per-channel affine (multiply + add) -> relu -> conv -> + residual -> relu ->
    global_avg_pool2d; returns the module and the numpy reference of its output."""
    w1, w2 = rand(rng, F, C, 3, 3), rand(rng, F, F, 3, 3)
    s1, b1 = rand(rng, F, 1, 1), rand(rng, 1, F, 1, 1)
    x = G.var("x", (1, C, H, W))
    y = G.op.relu(G.op.conv2d(x, G.const(w1, "w1"), padding=1) * G.const(s1, "s1")
                  + G.const(b1, "b1"))
    z = G.op.relu(G.op.conv2d(y, G.const(w2, "w2"), padding=1) + y)
    mod = G.Module([x], G.op.global_avg_pool2d(z))

    def ref(xv):
        r = np.maximum(reference.conv2d_nchw(xv, w1, 1, 1) * s1 + b1, 0)
        r = np.maximum(reference.conv2d_nchw(r, w2, 1, 1) + r, 0)
        return r.mean(axis=(2, 3), keepdims=True)
    return mod, ref


def check_same(rng, mod, new, atol=1e-4):
    """The rewritten module's outputs equal the original's (the numpy interpreter)."""
    xs = [rand(rng, *v.shape) for v in mod.inputs]
    want, got = G.evaluate(mod, *xs), G.evaluate(new, *xs)
    assert [o.type for o in new.outputs] == [o.type for o in mod.outputs]
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.abs(w).max() > 0
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol)
    return xs, got


# --------------------------------------------------------------------------- the block

def test_resnet_block_rewritten_and_equal(rng):
    mod, ref = resnet_block(rng)
    before = str(mod)
    assert "conv2d_NCHWc" not in before and "layout_transform" not in before
    L = lanes()
    with dispatch.untuned():                      # the target's default blocks
        new = ALTER(mod)
    after = str(new)
    k = kinds(new)
    assert k["conv2d"] == 0 and k["conv2d_NCHWc"] == 2 and k["kernel_layout_transform"] == 2
    # exactly two transforms: the input into the block, the result back before the pool
    t_in, t_out = transforms(new)
    assert t_in.args[0] is mod.inputs[0]
    assert (t_in.attrs["src_layout"], t_in.attrs["dst_layout"]) == ("NCHW", f"NCHW{L}c")
    assert (t_out.attrs["src_layout"], t_out.attrs["dst_layout"]) == (f"NCHW{L}c", "NCHW")
    pool = new.outputs[0]
    assert pool.op == "global_avg_pool2d" and pool.args[0] is t_out
    assert t_out.args[0].op == "relu"
    # the second convolution reads the first's (relu'd) output as it is: no transform between
    conv1, conv2 = [n for n in new.calls() if n.op == "conv2d_NCHWc"]
    assert conv1.args[0] is t_in and conv2.args[0].op == "relu"
    assert conv2.args[0].type.shape == (1, 32 // L, 8, 8, L)
    # the per-channel constants reshaped to the blocked broadcast shape, the residual blocked
    mul = next(n for n in new.calls() if n.op == "multiply")
    assert mul.args[0] is conv1 and mul.args[1].op == "reshape"
    assert mul.args[1].type.shape == (32 // L, 1, 1, L)
    res = next(n for n in new.calls() if n.op == "add" and n.args[0] is conv2)
    assert res.args[1] is conv2.args[0]
    assert f"layout_transform(%x, dst_layout='NCHW{L}c')" in after
    assert new.attrs["layouts"] == f"2 conv2d_NCHWc (NCHW{L}c->NCHW{L}c x2), 2 layout_transform"
    assert "# layouts: 2 conv2d_NCHWc" in after
    assert ALTER(new) is new                      # nothing left to convert
    (xv,), (got,) = check_same(rng, mod, new)
    np.testing.assert_allclose(got, ref(xv), rtol=1e-4, atol=1e-4)


def test_weights_blocked_as_the_template_reads_them(rng):
    """The weight transform is a graph op on the constant: OIHW -> OIHW{ic}i{oc}o."""
    mod, _ = resnet_block(rng)
    with dispatch.untuned():
        new = ALTER(mod)
    L = lanes()
    kt = [n for n in new.calls() if n.op == "kernel_layout_transform"]
    assert [dict(n.attrs) for n in kt] == [dict(ic=L, oc=L)] * 2
    w1 = kt[0].args[0]
    assert w1.name == "w1"
    (packed,) = G.interpreter.eval_nodes([kt[0]], {})
    np.testing.assert_array_equal(packed, reference.to_oihw_ic_oc(w1.data, L, L))


def test_graph_outputs_stay_nchw_and_share_one_transform(rng):
    """A blocked value read by several boundary ops and returned is transformed back once."""
    x = G.var("x", (2, 16, 8, 8))
    y = G.op.relu(G.op.conv2d(x, G.const(rand(rng, 16, 16, 1, 1))))
    mod = G.Module([x], [y, G.op.max_pool2d(y, kernel=2), G.op.global_avg_pool2d(y)])
    new = ALTER(mod)
    (t_in, t_out) = transforms(new)
    assert new.outputs[0] is t_out
    assert new.outputs[1].args[0] is t_out and new.outputs[2].args[0] is t_out
    check_same(rng, mod, new)


def test_cancelled_pair_removed(rng):
    """A transform of a transform's output goes from the first one's source: a pair that
    cancels (the graph's own NCHW -> NCHWc -> NCHW) leaves nothing between the convs."""
    L = lanes()
    x = G.var("x", (1, 16, 6, 6))
    y = G.op.conv2d(x, G.const(rand(rng, 16, 16, 3, 3)), padding=1)
    y = G.op.layout_transform(y, dst_layout=f"NCHW{L}c")
    y = G.op.layout_transform(y, src_layout=f"NCHW{L}c")
    z = G.op.conv2d(G.op.relu(y), G.const(rand(rng, 16, 16, 3, 3)), padding=1)
    mod = G.Module([x], z)
    assert len(transforms(mod)) == 2
    with dispatch.untuned():
        new = ALTER(mod)
    t = transforms(new)
    assert len(t) == 2                  # in and out only
    conv1, conv2 = [n for n in new.calls() if n.op == "conv2d_NCHWc"]
    assert conv2.args[0].op == "relu" and conv2.args[0].args[0] is conv1
    assert new.outputs[0].op == "layout_transform" and new.outputs[0].args[0] is conv2
    check_same(rng, mod, new)


# --------------------------------------------------------------------------- propagation

def test_broadcast_operands(rng):
    """A full-shape NCHW operand is transformed to the block; per-channel ((C,1,1),
    (1,C,1,1), bias_add's (C,)) reshaped; scalars kept; an operand of another shape makes
    the op a boundary."""
    L = lanes()
    x = G.var("x", (1, 16, 6, 6))
    r = G.var("r", (1, 32, 6, 6))
    m = G.var("m", (1, 1, 6, 6))
    y = G.op.conv2d(x, G.const(rand(rng, 32, 16, 3, 3)), padding=1)
    y = G.op.bias_add(y, G.const(rand(rng, 32)))
    y = G.op.maximum(y * 0.5, G.const(rand(rng, 32, 1, 1)))
    y = G.op.sigmoid(G.op.subtract(y, r))              # r transformed into the block
    y = G.op.clip(y, a_min=0.1, a_max=0.9)
    z = y * m                                          # (1, 1, H, W): a boundary
    mod = G.Module([x, r, m], z)
    with dispatch.untuned():
        new = ALTER(mod)
    k = kinds(new)
    assert k["conv2d_NCHWc"] == 1 and k["bias_add"] == 0 and k["reshape"] == 2
    t = transforms(new)
    assert len(t) == 3
    assert {(n.args[0].op if isinstance(n.args[0], Call) else n.args[0].name,
             n.attrs["dst_layout"]) for n in t} == {("x", f"NCHW{L}c"), ("r", f"NCHW{L}c"),
                                                     ("clip", "NCHW")}
    mul = new.outputs[0]
    assert mul.op == "multiply" and mul.args[0].op == "layout_transform" and mul.args[1] is m
    for n in new.calls():
        if n.op in ("maximum", "subtract", "sigmoid", "clip"):
            assert len(n.type.shape) == 5
    check_same(rng, mod, new)


def test_block_to_block_when_a_record_chooses_other_blocks(rng):
    """A tuned record decides the blocks: the second conv reads the first's NCHW16c output
    through one NCHW{a}c -> NCHW{b}c transform."""
    class Record(dispatch.DispatchContext):
        def query(self, target, workload):
            if workload[0] == "ops/conv2d_NCHWc":
                return {"ic_bn": 4} if workload[1][1] == 32 else {"oc_bn": 8}
            return None
    x = G.var("x", (1, 16, 6, 6))
    y = G.op.relu(G.op.conv2d(x, G.const(rand(rng, 32, 16, 3, 3)), padding=1))
    z = G.op.conv2d(y, G.const(rand(rng, 16, 32, 1, 1)))
    mod = G.Module([x], z)
    with Record():
        new = ALTER(mod)
    conv1, conv2 = [n for n in new.calls() if n.op == "conv2d_NCHWc"]
    assert conv1.type.shape == (1, 4, 6, 6, 8)
    mid = conv2.args[0]
    assert mid.op == "layout_transform" and mid.args[0].op == "relu"
    assert (mid.attrs["src_layout"], mid.attrs["dst_layout"]) == ("NCHW8c", "NCHW4c")
    assert len(transforms(new)) == 3
    check_same(rng, mod, new)


@pytest.mark.parametrize("case", ["depthwise", "grouped", "dilated", "stride_1x2",
                                  "pad_1x0", "weight_is_input"])
def test_convs_that_stay_nchw(rng, case):
    x = G.var("x", (1, 16, 9, 9))
    w = G.const(rand(rng, 16, 16, 3, 3))
    inputs = [x]
    if case == "depthwise":
        y = G.op.conv2d(x, G.const(rand(rng, 16, 1, 3, 3)), padding=1, groups=16)
    elif case == "grouped":
        y = G.op.conv2d(x, G.const(rand(rng, 16, 8, 3, 3)), padding=1, groups=2)
    elif case == "dilated":
        y = G.op.conv2d(x, w, padding=2, dilation=2)
    elif case == "stride_1x2":
        y = G.op.conv2d(x, w, stride=(1, 2))
    elif case == "pad_1x0":
        y = G.op.conv2d(x, w, padding=(1, 0))
    else:
        wv = G.var("w", (16, 16, 3, 3))
        inputs.append(wv)
        y = G.op.conv2d(x, wv)
    mod = G.Module(inputs, G.op.relu(y))
    new = ALTER(mod)
    assert new is mod and "layouts" not in new.attrs
    assert kinds(new)["conv2d"] == 1 and "conv2d_NCHWc" not in kinds(new)


def test_depthwise_after_a_blocked_conv_reads_nchw(rng):
    x = G.var("x", (1, 16, 8, 8))
    y = G.op.relu(G.op.conv2d(x, G.const(rand(rng, 16, 16, 1, 1))))
    z = G.op.conv2d(y, G.const(rand(rng, 16, 1, 3, 3)), padding=2, dilation=2, groups=16)
    mod = G.Module([x], G.op.conv2d(z, G.const(rand(rng, 16, 16, 1, 1))))
    new = ALTER(mod)
    k = kinds(new)
    assert k["conv2d_NCHWc"] == 2 and k["conv2d"] == 1 and k["layout_transform"] == 4
    dw = next(n for n in new.calls() if n.op == "conv2d")
    assert dw.args[0].op == "layout_transform" and dw.args[0].attrs["dst_layout"] == "NCHW"
    check_same(rng, mod, new)


# --------------------------------------------------------------------------- target

@pytest.mark.parametrize("target,block", [("llvm -mcpu=haswell", 8),
                                          ("llvm -mcpu=skylake-avx512", 16)])
def test_blocks_follow_the_target(rng, target, block):
    """The blocks are the target's vector (8 float32 with AVX2, 16 with AVX-512), whatever
    the host."""
    mod, ref = resnet_block(rng, C=32, F=64)
    with tl.target.Target(target), dispatch.untuned():
        new = ALTER(mod)
    assert new.attrs["layouts"].startswith(f"2 conv2d_NCHWc (NCHW{block}c->NCHW{block}c x2)")
    for n in new.calls():
        if n.op == "conv2d_NCHWc":
            assert n.args[0].type.shape[-1] == block and n.type.shape[-1] == block
        if n.op == "kernel_layout_transform":
            assert dict(n.attrs) == dict(ic=block, oc=block)
    (xv,), (got,) = check_same(rng, mod, new)
    np.testing.assert_allclose(got, ref(xv), rtol=1e-4, atol=1e-4)


def test_first_layer_stays_nchw(rng):
    """3 input channels do not fill a vector: the stem stays NCHW (blocks of 1 would gain
    nothing and the transforms around its output would cost more)."""
    x = G.var("x", (1, 3, 8, 8))
    mod = G.Module([x], G.op.conv2d(x, G.const(rand(rng, 16, 3, 3, 3)), padding=1))
    with tl.target.Target("llvm -mcpu=haswell"), dispatch.untuned():
        new = ALTER(mod)
    assert new is mod


# --------------------------------------------------------------------------- ops, pipeline

def test_kernel_layout_transform_op(rng):
    w = rand(rng, 32, 16, 3, 3)
    k = G.op.kernel_layout_transform(G.const(w), ic=8, oc=16)
    assert k.type == TensorType((2, 2, 3, 3, 8, 16))
    (v,) = G.interpreter.eval_nodes([k], {})
    np.testing.assert_array_equal(v, reference.to_oihw_ic_oc(w, 8, 16))
    assert v[1, 0, 2, 1, 3, 5] == w[1 * 16 + 5, 0 * 8 + 3, 2, 1]
    with pytest.raises(G.GraphError, match="kernel_layout_transform.*divisible by ic=5"):
        G.op.kernel_layout_transform(G.const(w), ic=5, oc=16)


def test_nchwc_kernel_spec_builds_and_runs(rng):
    """The conv2d_NCHWc op's KernelSpec instantiates ops.conv2d_NCHWc (ints for stride and
    padding) and the kernel computes the convolution; a stride the template does not take
    gives no kernel."""
    spec = get("conv2d_NCHWc").kernel
    types = [TensorType((1, 2, 7, 7, 8)), TensorType((2, 2, 3, 3, 8, 8))]
    attrs = check_attrs(get("conv2d_NCHWc"), dict(stride=2, padding=1), "test")
    s, args = spec.build(types, attrs, None, "inline")
    assert [tuple(int(d.value) for d in a.shape) for a in args] == \
        [(1, 2, 7, 7, 8), (2, 2, 3, 3, 8, 8), (1, 2, 4, 4, 8)]
    a, w = rand(rng, 1, 16, 7, 7), rand(rng, 16, 16, 3, 3)
    o = np.full((1, 2, 4, 4, 8), np.nan, np.float32)
    tl.build(s, args)(reference.to_nchwc(a, 8), reference.to_oihw_ic_oc(w, 8, 8), o)
    np.testing.assert_allclose(o, reference.to_nchwc(reference.conv2d_nchw(a, w, 2, 1), 8),
                               rtol=1e-4, atol=1e-3)
    odd = check_attrs(get("conv2d_NCHWc"), dict(stride=(1, 2), padding=1), "test")
    assert spec.build(types, odd, None, "inline") is None


def test_pass_in_the_pipeline():
    assert ALTER.name == "AlterOpLayout" and G.transform.AlterOpLayout.opt_level == 3
    assert G.PassContext(opt_level=3).pass_enabled(ALTER)
    assert not G.PassContext(opt_level=2).pass_enabled(ALTER)
    assert not G.PassContext(opt_level=3, disabled_pass=["AlterOpLayout"]).pass_enabled(ALTER)
    assert "AlterOpLayout" in [p.name for p in G.default_pipeline().passes]


def test_example_runs():
    """The example prints the IR before and after, the transforms left, and (where G.build
    exists) builds both layouts, checks them against the interpreter and times them."""
    r = run_python("""
        import runpy, sys
        sys.argv = ["layout_transformation", "--rounds", "1", "--size", "8",
                    "--target", "llvm -mcpu=haswell"]
        runpy.run_module("examples.graph.layout_transformation", run_name="__main__")
        """, timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "# before AlterOpLayout" in out and "# after AlterOpLayout" in out
    before, after = out.split("# after AlterOpLayout")
    assert "conv2d_NCHWc(" not in before and "layout_transform(" not in before
    assert after.count("conv2d_NCHWc(") == 2 and after.count(" layout_transform(") == 2
    assert "dst_layout='NCHW8c'" in after
    assert "layout transforms: 0 before, 2 after" in out
    assert "max |NCHWc - NCHW| = " in out
    if hasattr(G, "build"):
        assert "NCHW:" in out and "NCHWc:" in out and "(median of 1)" in out
