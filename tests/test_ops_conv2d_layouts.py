"""tensorlang.ops.conv2d_layouts: conv2d_nhwc and conv2d_NCHWc against a float64 numpy NCHW
reference (inputs and outputs transposed / blocked to the operator's layout), built with
bounds checks and run on NaN-filled outputs: ragged shapes, strides 1 and 2, padding, 1x1
and 3x3, the fused epilogue, non-default configs of the templates, a tuned record of the
plain workload applied to the fused call, and the argument checks."""

import numpy as np
import pytest

import autotune
import tensorlang as tl
from tensorlang.errors import TensorlangValueError
from tensorlang.ops.conv2d_layouts import conv2d_NCHWc, conv2d_nhwc

from . import reference


ACT = reference.ACTIVATIONS
conv_ref = reference.conv2d_nchw
to_nhwc, to_hwio = reference.to_nhwc, reference.to_hwio
to_nchwc, to_oihw_ic_oc = reference.to_nchwc, reference.to_oihw_ic_oc


def run_nhwc(rng, N, CI, H, W, CO, KH, KW, stride, pad, bias=False, residual=False,
             activation=None, config=None):
    """Build conv2d_nhwc (under ``config`` if given), run it, compare with the reference."""
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32)
    ref = conv_ref(a, w, stride, pad)
    inputs = [to_nhwc(a), to_hwio(w)]
    if bias:
        b = rng.standard_normal(CO, dtype=np.float32)
        ref = ref + b[None, :, None, None]
        inputs.append(b)
    if residual:
        r = rng.standard_normal(ref.shape, dtype=np.float32)
        ref = ref + r
        inputs.append(to_nhwc(r))
    ref = to_nhwc(ACT[activation](ref))
    kw = dict(bias=bias, residual=residual, activation=activation)
    if config is None:
        s, args = conv2d_nhwc(N, H, W, CI, CO, KH, KW, stride, pad, **kw)
    else:
        with autotune.ApplyConfig(config):
            s, args = conv2d_nhwc(N, H, W, CI, CO, KH, KW, stride, pad, **kw)
    assert len(args) == len(inputs) + 1 and tuple(args[-1].shape) == ref.shape
    o = np.full(ref.shape, np.nan, np.float32)
    tl.build(s, args, bounds_check=True)(*inputs, o)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3 * np.sqrt(CI * KH * KW))


def run_nchwc(rng, N, CI, H, W, CO, KH, KW, stride, pad, ic, oc, bias=False, residual=False,
              activation=None, config=None, weights="prepacked"):
    """conv2d_NCHWc with explicit blocks, weights blocked in numpy (``"prepacked"``) or
    OIHW, blocked inside the kernel (``"inline"``)."""
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32)
    ref = conv_ref(a, w, stride, pad)
    inputs = [to_nchwc(a, ic), to_oihw_ic_oc(w, ic, oc) if weights == "prepacked" else w]
    if bias:
        b = rng.standard_normal(CO, dtype=np.float32)
        ref = ref + b[None, :, None, None]
        inputs.append(b)
    if residual:
        r = rng.standard_normal(ref.shape, dtype=np.float32)
        ref = ref + r
        inputs.append(to_nchwc(r, oc))
    ref = to_nchwc(ACT[activation](ref), oc)
    kw = dict(bias=bias, residual=residual, activation=activation, weights=weights)
    if config is None:
        s, args = conv2d_NCHWc(N, CI, H, W, CO, KH, KW, stride, pad, ic, oc, **kw)
    else:
        with autotune.ApplyConfig(config):
            s, args = conv2d_NCHWc(N, CI, H, W, CO, KH, KW, stride, pad, ic, oc, **kw)
    assert len(args) == len(inputs) + 1 and tuple(args[-1].shape) == ref.shape
    o = np.full(ref.shape, np.nan, np.float32)
    tl.build(s, args, bounds_check=True)(*inputs, o)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3 * np.sqrt(CI * KH * KW))


# (N, CI, H, W, CO, KH, KW, stride, pad)
NHWC_SHAPES = [
    (1, 3, 7, 9, 5, 3, 3, 1, 1),          # odd sizes, CO < 16
    (2, 5, 11, 13, 20, 3, 3, 2, 1),       # N=2, stride 2, odd H and W, CO % 16 != 0
    (1, 16, 6, 40, 40, 3, 3, 1, 1),       # wide rows (8 x 32 tile), CO % 32 != 0
    (1, 4, 10, 12, 17, 3, 5, 1, 2),       # KH != KW, padding 2
    (1, 8, 9, 9, 7, 1, 1, 2, 0),          # 1x1 stride 2
    (1, 6, 6, 6, 33, 1, 1, 1, 1),         # 1x1 with padding
    (1, 24, 5, 17, 64, 1, 1, 1, 0),       # 1x1, OW prime
    (1, 2, 3, 3, 4, 3, 3, 1, 0),          # 1x1 output
    (2, 3, 9, 70, 9, 2, 3, 2, 1),         # stride 2, even kernel, wide input
]

# (N, CI, H, W, CO, KH, KW, stride, pad, ic_block, oc_block)
NCHWC_SHAPES = [
    (1, 32, 9, 11, 32, 3, 3, 1, 1, 16, 16),
    (2, 16, 11, 13, 48, 3, 3, 2, 1, 8, 16),     # stride 2, odd sizes, 3 oc blocks
    (1, 32, 10, 20, 64, 1, 1, 1, 0, 16, 32),    # 1x1, two-vector oc blocks
    (1, 8, 9, 9, 8, 1, 1, 2, 0, 4, 8),          # 1x1 stride 2, half-vector blocks
    (1, 12, 7, 15, 24, 3, 3, 2, 0, 4, 12),      # oc block not a multiple of 16
    (1, 16, 6, 6, 16, 3, 5, 1, 2, 16, 16),      # KH != KW, padding 2
    (1, 4, 3, 3, 16, 3, 3, 1, 0, 1, 16),        # ic_block 1, 1x1 output
]


@pytest.mark.parametrize("shape", NHWC_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_nhwc(rng, shape):
    run_nhwc(rng, *shape)


@pytest.mark.parametrize("shape", NCHWC_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_nchwc(rng, shape):
    run_nchwc(rng, *shape)
    run_nchwc(rng, *shape, weights="inline")


EPILOGUES = [dict(bias=True), dict(residual=True, activation="relu"),
             dict(bias=True, residual=True, activation="gelu")]


@pytest.mark.parametrize("kw", EPILOGUES, ids=str)
def test_nhwc_epilogue(rng, kw):
    run_nhwc(rng, 1, 8, 9, 11, 20, 3, 3, 2, 1, **kw)
    run_nhwc(rng, 1, 16, 5, 33, 40, 1, 1, 1, 0, **kw)


@pytest.mark.parametrize("kw", EPILOGUES, ids=str)
def test_nchwc_epilogue(rng, kw):
    run_nchwc(rng, 1, 16, 9, 11, 48, 3, 3, 2, 1, 8, 16, **kw)
    run_nchwc(rng, 1, 16, 5, 13, 32, 1, 1, 1, 0, 16, 32, **kw)


def test_epilogue_runs_in_the_conv_loop_nest():
    # the accumulator is allocated inside the output's tile loop, and every store to O
    # reads it (no second pass over a full-size intermediate)
    for s, args in (conv2d_nhwc(1, 8, 30, 16, 32, 3, 3, 1, 1, bias=True, activation="relu"),
                    conv2d_NCHWc(1, 16, 8, 30, 32, 3, 3, 1, 1, bias=True, activation="relu")):
        text = str(tl.lower(s, args))
        alloc = next(ln for ln in text.splitlines() if "allocate Oc" in ln)
        assert "on stack" in alloc and alloc.startswith("      ")     # inside the loops
        stores = [ln for ln in text.splitlines() if ln.lstrip().startswith(f"{args[-1].name}[")]
        assert stores and all("Oc[" in ln and "bias[" in ln for ln in stores)


def _configs(name, args, count):
    space = autotune.TEMPLATES[name].space(*args)
    assert len(space) > 1
    idx = np.random.default_rng(1).choice(len(space), size=min(count, len(space)), replace=False)
    return [space.get(int(i)) for i in idx]


@pytest.mark.parametrize("i", range(3))
def test_nhwc_other_configs(rng, i):
    shape = (2, 8, 9, 21, 40, 3, 3, 2, 1)
    N, CI, H, W, CO, KH, KW, S, p = shape
    cfg = _configs("ops/conv2d_nhwc", [N, H, W, CI, CO, KH, KW, S, p, "float32"], 3)[i]
    run_nhwc(rng, *shape, config=cfg)
    run_nhwc(rng, *shape, bias=True, residual=True, activation="relu", config=cfg)


@pytest.mark.parametrize("i", range(3))
def test_nchwc_other_configs(rng, i):
    shape = (1, 16, 9, 21, 48, 3, 3, 1, 1)
    cfg = _configs("ops/conv2d_NCHWc", [*shape, "float32"], 3)[i]
    run_nchwc(rng, *shape, 8, 16, config=cfg)            # explicit blocks override the knobs
    with autotune.ApplyConfig(cfg):
        ic, oc = tl.ops.conv2d_NCHWc_layout(*shape)      # the config's own blocks
    assert (ic, oc) == (cfg["ic_bn"].val, cfg["oc_bn"].val)
    run_nchwc(rng, *shape, ic, oc, bias=True, residual=True, activation="relu", config=cfg,
              weights="inline")


@pytest.mark.parametrize("name,fn,args,other", [
    ("ops/conv2d_nhwc", conv2d_nhwc, [1, 10, 20, 8, 32, 3, 3, 1, 1], {"fb": 16, "xb": 4}),
    ("ops/conv2d_NCHWc", conv2d_NCHWc, [1, 16, 10, 20, 32, 3, 3, 1, 1],
     {"xb": 4, "ob": 2, "oc_bn": 8}),
])
def test_tuned_record_applies_to_the_fused_call(tmp_path, name, fn, args, other):
    from tensorlang.dispatch import record
    from autotune.measure import MeasureResult
    task = autotune.create_task(name, [*args, "float32"])
    cfg = task.config_space.from_json({**task.config_space.fallback().to_json(), **other})
    log = tmp_path / "conv.jsonl"
    record.append(log, record.make_record(task, cfg, MeasureResult([1e-6])))
    fused = dict(bias=True, activation="relu")
    with autotune.ApplyConfig(cfg):
        want = str(tl.lower(*fn(*args, **fused)))
    with autotune.apply_history_best(log):
        got = str(tl.lower(*fn(*args, **fused)))
    assert got == want != str(tl.lower(*fn(*args, **fused)))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [
    (1, 64, 56, 56, 64, 3, 3, 1, 1), (1, 128, 56, 56, 128, 3, 3, 2, 1),
    (1, 256, 14, 14, 256, 3, 3, 1, 1), (1, 256, 56, 56, 64, 1, 1, 1, 0),
    (1, 64, 56, 56, 256, 1, 1, 1, 0)], ids=lambda s: "x".join(map(str, s)))
def test_resnet_shapes(rng, shape):
    run_nhwc(rng, *shape)
    run_nchwc(rng, *shape, 16, 16, bias=True, residual=True, activation="relu", weights="inline")


BAD_NHWC = [
    (dict(N=0), r"conv2d_nhwc: N must be a positive int, got 0"),
    (dict(CI=-1), r"conv2d_nhwc: CI must be a positive int"),
    (dict(H=2.0), r"conv2d_nhwc: H must be a positive int, got 2\.0"),
    (dict(CO=True), r"conv2d_nhwc: CO must be a positive int, got True"),
    (dict(stride=0), r"conv2d_nhwc: stride must be a positive int, got 0"),
    (dict(padding=-1), r"conv2d_nhwc: padding must be a non-negative int, got -1"),
    (dict(KH=9), r"conv2d_nhwc: output size 0x6 must be positive: the 9x3 kernel is larger than the padded 8x8 input"),
    (dict(activation="swish"), r"conv2d_nhwc: activation must be None or one of"),
]


@pytest.mark.parametrize("kw,match", BAD_NHWC, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_nhwc_bad_arguments(kw, match):
    args = dict(N=1, H=8, W=8, CI=2, CO=4, KH=3, KW=3, stride=1, padding=0)
    args.update(kw)
    with pytest.raises(TensorlangValueError, match=match):
        conv2d_nhwc(**args)


BAD_NCHWC = [
    (dict(CI=0), r"conv2d_NCHWc: CI must be a positive int, got 0"),
    (dict(W="8"), r"conv2d_NCHWc: W must be a positive int, got '8'"),
    (dict(ic_block=0), r"conv2d_NCHWc: ic_block must be a positive int, got 0"),
    (dict(oc_block="16"), r"conv2d_NCHWc: oc_block must be a positive int, got '16'"),
    (dict(CI=24, ic_block=16), r"conv2d_NCHWc: CI=24 input channels are not divisible by ic_block=16"),
    (dict(CO=40, oc_block=16), r"conv2d_NCHWc: CO=40 output channels are not divisible by oc_block=16"),
    (dict(stride=-2), r"conv2d_NCHWc: stride must be a positive int, got -2"),
    (dict(padding=0.5), r"conv2d_NCHWc: padding must be a non-negative int"),
    (dict(H=2, KH=5, padding=1), r"conv2d_NCHWc: output size 0x8 must be positive: the 5x3 kernel is larger than the padded 4x10 input"),
    (dict(activation="Relu"), r"conv2d_NCHWc: activation must be None or one of"),
]


@pytest.mark.parametrize("kw,match", BAD_NCHWC, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_nchwc_bad_arguments(kw, match):
    args = dict(N=1, CI=32, H=8, W=8, CO=32, KH=3, KW=3, stride=1, padding=0)
    args.update(kw)
    with pytest.raises(TensorlangValueError, match=match):
        conv2d_NCHWc(**args)


def test_bad_dtype():
    with pytest.raises(Exception, match="dtype"):
        conv2d_nhwc(1, 8, 8, 2, 4, 3, 3, dtype="float33")
    with pytest.raises(Exception, match="dtype"):
        conv2d_NCHWc(1, 16, 8, 8, 16, 3, 3, dtype="float33")


# --------------------------------------------------------------------------- epilogue, packing

def test_nhwc_nchwc_folded_batch_norm_relu6(rng):
    from tensorlang.ops import compute as C
    from .test_ops_conv2d import folded_bn_relu6
    N, CI, H, W, CO = 1, 16, 9, 11, 32
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, 3, 3), dtype=np.float32)
    sc, sh = rng.uniform(0.5, 2, CO).astype(np.float32), rng.standard_normal(CO, dtype=np.float32) + 2
    ref = np.clip(conv_ref(a, w, 2, 1) * sc[:, None, None] + sh[:, None, None], 0, 6)
    s, args = conv2d_nhwc(N, H, W, CI, CO, 3, 3, 2, 1, epilogue=folded_bn_relu6(3))
    o = np.full(to_nhwc(ref).shape, np.nan, np.float32)
    tl.build(s, args, bounds_check=True)(to_nhwc(a), to_hwio(w), sc, sh, o)
    np.testing.assert_allclose(o, to_nhwc(ref), rtol=1e-4, atol=1e-3)

    def nchwc_epilogue(y):                       # scale (CO/oc, 1, 1, oc), shift (CO,)
        co_o, oc = int(y.shape[1].value), int(y.shape[4].value)
        scale = tl.placeholder((co_o, 1, 1, oc), name="scale")
        shift = tl.placeholder((co_o * oc,), name="shift")
        return C.clip(C.bias_add_nchwc(C.multiply(y, scale), shift), 0.0, 6.0), [scale, shift]
    ic, oc = tl.ops.conv2d_NCHWc_layout(N, CI, H, W, CO, 3, 3, 2, 1)
    s, args = conv2d_NCHWc(N, CI, H, W, CO, 3, 3, 2, 1, epilogue=nchwc_epilogue)
    o = np.full(to_nchwc(ref, oc).shape, np.nan, np.float32)
    tl.build(s, args, bounds_check=True)(to_nchwc(a, ic), w, sc.reshape(-1, 1, 1, oc), sh, o)
    np.testing.assert_allclose(o, to_nchwc(ref, oc), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("layout", ["nhwc", "NCHWc"])
def test_prepacked_weights_every_few_configs(rng, layout):
    from .test_ops_conv2d import _pack_then_run
    N, CI, H, W, CO, KH, KW, S, P = 1, 16, 9, 21, 48, 3, 3, 2, 1
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32)
    ref = np.maximum(conv_ref(a, w, S, P), 0)
    if layout == "nhwc":
        name, args, wl = "ops/conv2d_nhwc", (N, H, W, CI, CO, KH, KW, S, P), [N, H, W, CI, CO, KH, KW, S, P]
    else:
        name, args, wl = "ops/conv2d_NCHWc", (N, CI, H, W, CO, KH, KW, S, P), [N, CI, H, W, CO, KH, KW, S, P]
    fn = conv2d_nhwc if layout == "nhwc" else conv2d_NCHWc
    for cfg in _configs(name, [*wl, "float32"], 3):
        with autotune.ApplyConfig(cfg):
            if layout == "nhwc":
                x, want = to_nhwc(a), to_nhwc(ref)
                wt = to_hwio(w)
            else:
                ic, oc = tl.ops.conv2d_NCHWc_layout(*wl)
                x, want, wt = to_nchwc(a, ic), to_nchwc(ref, oc), w
            for o in _pack_then_run(fn, args, dict(activation="relu"), wt, [], x):
                np.testing.assert_allclose(o, want, rtol=1e-4, atol=1e-3, err_msg=str(cfg))


def test_nchwc_layout_follows_the_tuned_record(tmp_path):
    """The NCHWc blocks are knobs: a record of the logical convolution's workload decides
    them, and conv2d_NCHWc_layout tells the caller (the default: one vector of the target,
    where it divides)."""
    from tensorlang.dispatch import record
    from autotune.measure import MeasureResult
    wl = [1, 32, 10, 20, 48, 3, 3, 1, 1]
    lanes = tl.target.Target.current().info.lanes(32)
    assert tl.ops.conv2d_NCHWc_layout(*wl) == (lanes, lanes)
    assert tl.ops.conv2d_NCHWc_layout(1, 3, 10, 20, 24, 3, 3) == (1, 8)
    task = autotune.create_task("ops/conv2d_NCHWc", [*wl, "float32"])
    cfg = task.config_space.from_json({**task.config_space.fallback().to_json(),
                                       "ic_bn": 4, "oc_bn": 8})
    log = tmp_path / "nchwc.jsonl"
    record.append(log, record.make_record(task, cfg, MeasureResult([1e-6])))
    with autotune.apply_history_best(log):
        assert tl.ops.conv2d_NCHWc_layout(*wl) == (4, 8)
        s, args = conv2d_NCHWc(*wl)
    assert tuple(int(d.value) for d in args[0].shape) == (1, 8, 10, 20, 4)
    assert tuple(int(d.value) for d in args[-1].shape) == (1, 6, 10, 20, 8)


def test_old_nchwc_record_still_applies(tmp_path):
    """A record of the old key (blocks in the workload) is read as the logical
    convolution's record with the blocks as knobs."""
    import json
    wl = [1, 32, 10, 20, 48, 3, 3, 1, 1]
    task = autotune.create_task("ops/conv2d_NCHWc", [*wl, "float32"])
    old = dict(version=1, workload=["ops/conv2d_NCHWc", [*wl, 8, 16, "float32"]],
               target=task.target, config={"xb": 4, "ob": 1}, result=dict(costs=[1e-6], error=None))
    log = tmp_path / "old.jsonl"
    log.write_text(json.dumps(old) + "\n")
    with autotune.apply_history_best(log):
        assert tl.ops.conv2d_NCHWc_layout(*wl) == (8, 16)
        got = str(tl.lower(*conv2d_NCHWc(*wl)))
    cfg = task.config_space.from_json({**task.config_space.fallback().to_json(),
                                       "xb": 4, "ob": 1, "ic_bn": 8, "oc_bn": 16})
    with autotune.ApplyConfig(cfg):
        assert got == str(tl.lower(*conv2d_NCHWc(*wl)))
