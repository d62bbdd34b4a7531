"""tensorlang.ops.conv2d: conv2d_nchw and depthwise_conv2d_nchw against a numpy reference
(the ResNet-50 / MobileNet-v2 benchmark shapes and small ragged ones), built with bounds
checks and run on NaN-filled outputs; and the argument checks."""

import numpy as np
import pytest

import tensorlang as tl
from tensorlang.errors import TensorlangValueError
from tensorlang.ops.conv2d import conv2d_nchw, depthwise_conv2d_nchw

from . import reference


conv_ref = reference.conv2d_nchw


def run(s, args, a, w, out_shape):
    f = tl.build(s, args, bounds_check=True)
    o = np.full(out_shape, np.nan, dtype=np.float32)
    f(a, w, o)
    return o


def check_conv(rng, N, CI, H, W, CO, KH, KW, stride, pad):
    s, args = conv2d_nchw(N, CI, H, W, CO, KH, KW, stride=stride, padding=pad)
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32)
    ref = conv_ref(a, w, stride, pad)
    assert tuple(args[2].shape) == ref.shape
    o = run(s, args, a, w, ref.shape)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3 * np.sqrt(CI * KH * KW))


def check_dw(rng, N, C, H, W, KH, KW, stride, pad):
    s, args = depthwise_conv2d_nchw(N, C, H, W, KH, KW, stride=stride, padding=pad)
    a = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C, 1, KH, KW), dtype=np.float32)
    ref = conv_ref(a, w, stride, pad, groups=C)
    assert tuple(args[2].shape) == ref.shape
    o = run(s, args, a, w, ref.shape)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-4)


# (N, CI, H, W, CO, KH, KW, stride, pad)
RESNET = [
    (1, 64, 56, 56, 64, 3, 3, 1, 1),
    (1, 128, 56, 56, 128, 3, 3, 2, 1),
    (1, 256, 14, 14, 256, 3, 3, 1, 1),
    (1, 256, 56, 56, 64, 1, 1, 1, 0),
    (1, 256, 56, 56, 512, 1, 1, 2, 0),
    (1, 64, 56, 56, 256, 1, 1, 1, 0),
]

CONV_RAGGED = [
    (1, 3, 7, 9, 5, 3, 3, 1, 1),          # odd sizes, CO < 16
    (2, 5, 11, 13, 20, 3, 3, 2, 1),       # N=2, stride 2 with odd H and W, CO % 16 != 0
    (1, 4, 10, 12, 17, 3, 5, 1, 2),       # KH != KW, padding 2
    (1, 6, 9, 9, 7, 1, 1, 2, 0),          # 1x1 stride 2 (rows/phase built at the row)
    (1, 3, 8, 40, 19, 3, 3, 1, 0),        # wide rows (packed weights), CO % 8 != 0
    (2, 8, 15, 35, 13, 3, 1, 1, 2),       # wide rows, 1-wide filter columns, N=2
    (1, 5, 33, 37, 25, 1, 1, 1, 0),       # 1x1 wide rows, CO % 12 != 0
    (1, 4, 6, 7, 3, 5, 5, 3, 2),          # stride 3, 5x5
    (1, 2, 3, 3, 4, 3, 3, 1, 0),          # 1x1 output
    (2, 3, 9, 70, 9, 2, 3, 2, 1),         # stride 2, even kernel, wide input
]

# (N, C, H, W, KH, KW, stride, pad)
MOBILENET = [
    (1, 32, 112, 112, 3, 3, 1, 1),
    (1, 144, 56, 56, 3, 3, 2, 1),
    (1, 576, 14, 14, 3, 3, 1, 1),
]

DW_RAGGED = [
    (2, 5, 11, 13, 3, 3, 2, 1),
    (1, 3, 9, 7, 3, 5, 1, 2),
    (1, 17, 20, 33, 3, 3, 1, 0),
    (2, 4, 12, 12, 5, 5, 3, 2),
    (1, 2, 5, 6, 1, 1, 1, 0),
    (1, 3, 4, 4, 4, 4, 1, 0),
]


@pytest.mark.parametrize("shape", RESNET, ids=lambda s: "x".join(map(str, s)))
def test_conv2d_resnet_shapes(rng, shape):
    check_conv(rng, *shape)


@pytest.mark.parametrize("shape", CONV_RAGGED, ids=lambda s: "x".join(map(str, s)))
def test_conv2d_ragged(rng, shape):
    check_conv(rng, *shape)


@pytest.mark.parametrize("shape", MOBILENET, ids=lambda s: "x".join(map(str, s)))
def test_depthwise_mobilenet_shapes(rng, shape):
    check_dw(rng, *shape)


@pytest.mark.parametrize("shape", DW_RAGGED, ids=lambda s: "x".join(map(str, s)))
def test_depthwise_ragged(rng, shape):
    check_dw(rng, *shape)


def test_conv2d_default_stride_padding(rng):
    s, args = conv2d_nchw(1, 2, 5, 5, 3, 3, 3)
    assert tuple(args[2].shape) == (1, 3, 3, 3)
    check_conv(rng, 1, 2, 5, 5, 3, 3, 3, 1, 0)


def test_conv2d_zero_padding_border(rng):
    # all-ones input and weights: border outputs count only the in-bounds taps
    s, args = conv2d_nchw(1, 1, 4, 4, 1, 3, 3, stride=1, padding=1)
    o = run(s, args, np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32),
            (1, 1, 4, 4))
    np.testing.assert_array_equal(o[0, 0], [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])


BAD_CONV = [
    (dict(N=0), r"conv2d_nchw: N must be a positive int, got 0"),
    (dict(CI=-1), r"conv2d_nchw: CI must be a positive int"),
    (dict(H=2.0), r"conv2d_nchw: H must be a positive int, got 2\.0"),
    (dict(CO=True), r"conv2d_nchw: CO must be a positive int, got True"),
    (dict(KW=0), r"conv2d_nchw: KW must be a positive int"),
    (dict(stride=0), r"conv2d_nchw: stride must be a positive int, got 0"),
    (dict(padding=-1), r"conv2d_nchw: padding must be a non-negative int, got -1"),
    (dict(padding=1.5), r"conv2d_nchw: padding must be a non-negative int"),
    (dict(KH=9), r"conv2d_nchw: output size 0x6 must be positive: the 9x3 kernel is larger than the padded 8x8 input"),
    (dict(KW=11, padding=1), r"conv2d_nchw: output size 8x0 must be positive: the 3x11 kernel is larger than the padded 10x10"),
    (dict(KW=10, padding=1), None),                  # exactly fits: 8x1 output, valid
]


@pytest.mark.parametrize("kw,match", BAD_CONV, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_conv2d_bad_arguments(kw, match):
    args = dict(N=1, CI=2, H=8, W=8, CO=4, KH=3, KW=3, stride=1, padding=0)
    args.update(kw)
    if match is None:
        conv2d_nchw(**args)
        return
    with pytest.raises(TensorlangValueError, match=match):
        conv2d_nchw(**args)


BAD_DW = [
    (dict(C=0), r"depthwise_conv2d_nchw: C must be a positive int, got 0"),
    (dict(W="8"), r"depthwise_conv2d_nchw: W must be a positive int, got '8'"),
    (dict(KH=-3), r"depthwise_conv2d_nchw: KH must be a positive int"),
    (dict(stride=None), r"depthwise_conv2d_nchw: stride must be a positive int, got None"),
    (dict(padding=-2), r"depthwise_conv2d_nchw: padding must be a non-negative int, got -2"),
    (dict(H=2, KH=5, padding=1), r"depthwise_conv2d_nchw: output size 0x8 must be positive: the 5x3 kernel is larger than the padded 4x10 input"),
]


@pytest.mark.parametrize("kw,match", BAD_DW, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_depthwise_bad_arguments(kw, match):
    args = dict(N=1, C=2, H=8, W=8, KH=3, KW=3, stride=1, padding=0)
    args.update(kw)
    with pytest.raises(TensorlangValueError, match=match):
        depthwise_conv2d_nchw(**args)


def test_bad_dtype():
    with pytest.raises(Exception, match="dtype"):
        conv2d_nchw(1, 2, 8, 8, 4, 3, 3, dtype="float33")


@pytest.mark.parametrize("template,args", [
    ("ops/conv2d_nchw", [1, 16, 12, 12, 24, 3, 3, 1, 1, "float32", 1, 1]),
    ("ops/conv2d_nchw", [1, 16, 12, 12, 24, 1, 1, 2, 0, "float32", 1, 1]),
    ("ops/depthwise_conv2d_nchw", [1, 8, 20, 20, 3, 3, 2, 1, "float32"]),
])
def test_conv_templates_fall_back_to_the_default_schedule(template, args):
    import autotune
    task = autotune.create_task(template, args)
    assert len(task.config_space) > 1
    with autotune.ApplyConfig(task.config_space.fallback()):
        s, a = task.template(*args)
    if template == "ops/conv2d_nchw":
        s2, a2 = conv2d_nchw(*args[:7], **dict(zip(("stride", "padding", "dtype", "dilation",
                                                      "groups"), args[7:])))
    else:
        s2, a2 = depthwise_conv2d_nchw(*args[:-3], **dict(zip(("stride", "padding", "dtype"), args[-3:])))
    assert str(tl.lower(s2, a2)) == str(tl.lower(s, a))


# (N, CI, H, W, CO, KH, KW, stride, pad, dilation, groups)
GENERAL = [
    (1, 8, 12, 12, 16, 3, 3, 1, 2, 2, 1),      # dilation 2 (ResNet/DeepLab style)
    (1, 6, 15, 40, 9, 3, 3, 2, 2, 2, 1),       # dilation and stride 2, wide rows
    (1, 8, 10, 11, 12, 3, 3, 1, 1, 1, 4),      # grouped (ResNeXt style)
    (2, 6, 9, 9, 6, 1, 1, 1, 0, 1, 3),         # grouped 1x1
    (1, 4, 9, 9, 8, 3, 3, 2, 3, 3, 2),         # groups and dilation 3
]


@pytest.mark.parametrize("shape", GENERAL, ids=lambda s: "x".join(map(str, s)))
def test_conv2d_dilation_groups(rng, shape):
    N, CI, H, W, CO, KH, KW, stride, pad, dil, groups = shape
    s, args = conv2d_nchw(N, CI, H, W, CO, KH, KW, stride=stride, padding=pad, dilation=dil,
                          groups=groups)
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI // groups, KH, KW), dtype=np.float32)
    ref = conv_ref(a, w, stride, pad, groups, dil)
    o = run(s, args, a, w, ref.shape)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3 * np.sqrt(CI * KH * KW))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


# the 3x3 (channel-vectorized) and 1x1 (column-vectorized) schedules, each with every part
@pytest.mark.parametrize("shape", [(1, 16, 10, 36, 40, 3, 3, 1, 1), (1, 8, 9, 40, 20, 1, 1, 2, 0)],
                         ids=["3x3", "1x1s2"])
@pytest.mark.parametrize("bias,residual,act", [(True, True, "relu"), (True, False, None),
                                               (False, True, "gelu_tanh"),
                                               (False, False, "sigmoid")])
def test_conv2d_fused_epilogue(rng, shape, bias, residual, act):
    N, CI, H, W, CO, KH, KW, stride, pad = shape
    s, args = conv2d_nchw(*shape[:7], stride=stride, padding=pad, bias=bias,
                          residual=residual, activation=act)
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32) * 0.1
    ref = conv_ref(a, w, stride, pad)
    inputs = [a, w]
    if bias:
        b = rng.standard_normal(CO, dtype=np.float32)
        ref, inputs = ref + b[None, :, None, None], inputs + [b]
    if residual:
        r = rng.standard_normal(ref.shape, dtype=np.float32)
        ref, inputs = ref + r, inputs + [r]
    ref = {"relu": lambda x: np.maximum(x, 0), None: lambda x: x, "gelu_tanh": _gelu_tanh,
           "sigmoid": lambda x: 1 / (1 + np.exp(-x))}[act](ref)
    assert [t.name for t in args[2:-1]] == (["bias"] if bias else []) + (["residual"] if residual else [])
    f = tl.build(s, args, bounds_check=True)
    o = np.full(ref.shape, np.nan, dtype=np.float32)
    f(*inputs, o)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-4)
    # fused: the accumulator is a per-tile buffer (fb x xb), not a second output-sized pass
    import re
    acc = re.search(r"allocate (?:acc|Oc): float32\[(\d+)\]", str(tl.lower(s, args)))
    assert acc and int(acc.group(1)) < ref.size // 4


def test_depthwise_fused_epilogue(rng):
    N, C, H, W = 1, 20, 11, 13
    s, args = depthwise_conv2d_nchw(N, C, H, W, 3, 3, stride=2, padding=1, bias=True,
                                    activation="relu")
    a = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C, 1, 3, 3), dtype=np.float32)
    b = rng.standard_normal(C, dtype=np.float32)
    ref = np.maximum(conv_ref(a, w, 2, 1, groups=C) + b[None, :, None, None], 0)
    f = tl.build(s, args, bounds_check=True)
    o = np.full(ref.shape, np.nan, dtype=np.float32)
    f(a, w, b, o)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-4)


def test_conv2d_epilogue_reuses_the_tuned_config():
    """The epilogue is not part of the workload: a record for the plain convolution applies
    to the fused one (here: a non-default fb shows in the fused schedule's loop extents)."""
    import autotune
    wl = (1, 16, 10, 36, 40, 3, 3, 1, 1, "float32", 1, 1)
    space = autotune.TEMPLATES["ops/conv2d_nchw"].space(*wl)
    other = next(e.val for e in space.knobs["fb"].entities
                 if e.val != space.fallback()["fb"].val)                # not the default
    cfg = next(c for c in (space.get(i) for i in range(len(space))) if c["fb"].val == other)
    records = [dict(version=1, workload=["ops/conv2d_nchw", list(wl)],
                    target=str(tl.target.Target.current()), config=cfg.to_json(),
                    result=dict(costs=[1e-3], error=None))]
    with autotune.apply_history_best(records):
        s, args = conv2d_nchw(1, 16, 10, 36, 40, 3, 3, padding=1, bias=True, activation="relu")
    from tensorlang.ops.common import find_stage
    Oc = find_stage([args[-1]], "conv2d_nchw")                 # the blocked accumulator
    assert Oc.name == "Oc" and int(Oc.shape[-1].value) == other    # Oc[..., fb]


@pytest.mark.parametrize("kw,match", [
    (dict(groups=3), r"conv2d_nchw: groups=3 must divide CI=2 and CO=4"),
    (dict(dilation=0), r"conv2d_nchw: dilation must be a positive int, got 0"),
    (dict(dilation=4), r"conv2d_nchw: output size 0x0 must be positive: the 3x3 kernel \(dilated to 9x9\) is larger than"),
    (dict(activation="swish"), r"conv2d_nchw: activation must be None or one of"),
])
def test_conv2d_bad_dilation_groups_epilogue(kw, match):
    with pytest.raises(TensorlangValueError, match=match):
        conv2d_nchw(1, 2, 8, 8, 4, 3, 3, **kw)


# planes whose accumulator fits a quarter of L1 take the flat schedule (pixels tiled across
# rows); 1x1 convolutions without stride or padding tile pixels across rows at any size
FLAT = [
    (1, 40, 7, 7, 70, 1, 1, 1, 0),       # res5-like 1x1, CO % 16 != 0 (pixels across rows)
    (2, 24, 7, 7, 33, 3, 3, 1, 1),       # 3x3 on 7x7, N=2
    (1, 20, 13, 13, 18, 3, 3, 2, 1),     # stride 2 down to 7x7
    (1, 16, 14, 14, 40, 1, 1, 2, 0),     # 1x1 stride 2 down to 7x7
    (1, 8, 10, 10, 16, 1, 1, 1, 0),      # 1x1 on a 10-wide row (pixels across rows)
]


@pytest.mark.parametrize("shape", [(1, 48, 7, 7, 72), (2, 16, 9, 9, 24), (1, 8, 12, 12, 20)],
                         ids=["channels>pixels", "N=2", "pixels>channels"])
def test_conv2d_1x1_pixels_across_rows_every_config(rng, shape):
    """1x1, stride 1, no padding: the output pixels y * OW + x tiled across rows (``NCP``
    accumulator), weights packed or read in place, with an epilogue, in every config."""
    import autotune
    N, CI, H, W, CO = shape
    wl = (N, CI, H, W, CO, 1, 1, 1, 0, "float32", 1, 1)
    space = autotune.TEMPLATES["ops/conv2d_nchw"].space(*wl)
    fb = space.fallback()
    assert fb["flat"].val == 1 and fb["pack_w"].val == int(CO <= H * W)
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, 1, 1), dtype=np.float32)
    b = rng.standard_normal(CO, dtype=np.float32)
    r = rng.standard_normal((N, CO, H, W), dtype=np.float32)
    ref = np.maximum(conv_ref(a, w, 1, 0) + b[None, :, None, None] + r, 0)
    for i in range(len(space)):
        with autotune.ApplyConfig(space.get(i)):
            s, args = conv2d_nchw(N, CI, H, W, CO, 1, 1, bias=True, residual=True, activation="relu")
        f = tl.build(s, args, bounds_check=True)
        o = np.full(ref.shape, np.nan, dtype=np.float32)
        f(a, w, b, r, o)
        np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3, err_msg=str(space.get(i)))


@pytest.mark.parametrize("shape", FLAT, ids=lambda s: "x".join(map(str, s)))
def test_conv2d_small_planes(rng, shape):
    check_conv(rng, *shape)


def test_conv2d_flat_with_epilogue_and_every_flat_config(rng):
    import autotune
    wl = (1, 24, 7, 7, 40, 3, 3, 1, 1, "float32", 1, 1)
    space = autotune.TEMPLATES["ops/conv2d_nchw"].space(*wl)
    assert space.fallback()["flat"].val == 1
    a = rng.standard_normal((1, 24, 7, 7), dtype=np.float32)
    w = rng.standard_normal((40, 24, 3, 3), dtype=np.float32)
    b = rng.standard_normal(40, dtype=np.float32)
    ref = np.maximum(conv_ref(a, w, 1, 1) + b[None, :, None, None], 0)
    for i in range(0, len(space), 3):
        with autotune.ApplyConfig(space.get(i)):
            s, args = conv2d_nchw(1, 24, 7, 7, 40, 3, 3, padding=1, bias=True, activation="relu")
        f = tl.build(s, args, bounds_check=True)
        o = np.full(ref.shape, np.nan, dtype=np.float32)
        f(a, w, b, o)
        np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3, err_msg=str(space.get(i)))


# --------------------------------------------------------------------------- compute variants
# the layout variants the schedules build from (ops.compute) equal the plain definitions,
# under the default schedule

def _run_default(outs_fn, inputs):
    """Build ``outs_fn() -> (args, out)`` with the default schedule; run on ``inputs``."""
    args, out = outs_fn()
    f = tl.build(tl.create_schedule(out.op), [*args, out], bounds_check=True)
    o = np.full(tuple(int(d.value) for d in out.shape), np.nan, dtype=out.dtype)
    f(*inputs, o)
    return o


@pytest.mark.parametrize("shape", [(1, 5, 9, 11, 20, 3, 3, 2, 1, 1, 1), (2, 4, 7, 8, 6, 3, 2, 1, 0, 2, 1),
                                   (1, 6, 9, 13, 9, 1, 1, 2, 0, 1, 3), (1, 3, 6, 7, 17, 3, 3, 3, 2, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_compute_conv2d_nchw_packed_equals_plain(rng, shape):
    from tensorlang.ops import compute as C
    N, CI, H, W, CO, KH, KW, S, P, D, g = shape
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI // g, KH, KW), dtype=np.float32)
    X = tl.placeholder((N, CI, H, W), name="X")
    Wt = tl.placeholder((CO, CI // g, KH, KW), name="W")
    plain = _run_default(lambda: ([X, Wt], C.conv2d_nchw(X, Wt, S, P, D, g)), [a, w])
    np.testing.assert_allclose(plain, conv_ref(a, w, S, P, g, D), rtol=1e-4, atol=1e-4)
    OH, OW = plain.shape[2:]
    assert C.conv2d_output_size(H, W, KH, KW, S, P, D) == (OH, OW)
    # OIHW weights, phase-split padding
    got = _run_default(lambda: ([X, Wt], C.conv2d_nchw_packed(X, Wt, S, P, D, g)), [a, w])
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-5)
    # pixels flattened: (N, CO, OH * OW)
    got = _run_default(lambda: ([X, Wt], C.conv2d_nchw_packed(X, Wt, S, P, D, g, layout="NCP")), [a, w])
    np.testing.assert_allclose(got.reshape(plain.shape), plain, rtol=1e-5, atol=1e-5)
    fb = 16
    for layout in ("NCHW", "blocked", "flat") if g == 1 else ("NCHW",):
        def build(layout=layout):
            Y = C.conv2d_nchw_packed(X, C.conv2d_pack_weights(Wt, fb), S, P, D, g,
                                     out_channels=CO, layout=layout)
            assert Y.op.tag == "conv2d_nchw"
            return [X, Wt], Y
        got = _run_default(build, [a, w])
        if layout == "blocked":                  # (N, CO/fb, OH, OW, fb), zeros past CO
            got = got.transpose(0, 1, 4, 2, 3).reshape(N, -1, OH, OW)
        elif layout == "flat":                   # (N, CO/fb, OH*OW, fb)
            got = got.transpose(0, 1, 3, 2).reshape(N, -1, OH, OW)
        np.testing.assert_allclose(got[:, :CO], plain, rtol=1e-5, atol=1e-5, err_msg=layout)
        assert not got[:, CO:].any()


def test_compute_conv2d_pad_and_pack_layouts(rng):
    from tensorlang.ops import compute as C
    a = rng.standard_normal((1, 2, 5, 7), dtype=np.float32)
    X = tl.placeholder((1, 2, 5, 7), name="X")
    P = _run_default(lambda: ([X], C.conv2d_pad(X, 1, 2)), [a])       # phase split, S = 2
    ap = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))                  # 7x9 padded
    assert P.shape == (1, 2, 7, 2, 5)
    for p in range(2):
        np.testing.assert_array_equal(P[:, :, :, p, :len(ap[0, 0, 0, p::2])], ap[..., p::2])
    assert C.conv2d_pad(X, 0, 1) is X
    w = rng.standard_normal((3, 3, 2, 20), dtype=np.float32)         # HWIO
    Wt = tl.placeholder((3, 3, 2, 20), name="W")
    pk = _run_default(lambda: ([Wt], C.conv2d_pack_weights(Wt, 16, "HWIO")), [w])
    assert pk.shape == (2, 3, 3, 2, 16)
    np.testing.assert_array_equal(pk.transpose(1, 2, 3, 0, 4).reshape(3, 3, 2, 32)[..., :20], w)


def test_compute_depthwise_nhwc_variants_equal_plain(rng):
    from tensorlang.ops import compute as C
    a = rng.standard_normal((1, 5, 11, 13), dtype=np.float32)
    w = rng.standard_normal((5, 1, 3, 3), dtype=np.float32)
    X, Wt = tl.placeholder((1, 5, 11, 13), name="X"), tl.placeholder((5, 1, 3, 3), name="W")
    for S, P in ((2, 1), (1, 0), (3, 2)):
        plain = _run_default(lambda: ([X, Wt], C.depthwise_conv2d_nchw(X, Wt, S, P)), [a, w])
        split = _run_default(lambda: ([X, Wt], C.depthwise_conv2d_nchw(X, Wt, S, P, phase_split=True)),
                             [a, w])
        np.testing.assert_allclose(split, plain, rtol=1e-5, atol=1e-5)
    x = np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    w2 = rng.standard_normal((3, 3, 5, 20), dtype=np.float32)
    Xn, Wn = tl.placeholder(x.shape, name="X"), tl.placeholder(w2.shape, name="W")
    plain = _run_default(lambda: ([Xn, Wn], C.conv2d_nhwc(Xn, Wn, 2, 1)), [x, w2])
    got = _run_default(lambda: ([Xn, Wn], C.conv2d_nhwc_packed(Xn, C.conv2d_pack_weights(Wn, 16, "HWIO"),
                                                              2, 1, out_channels=20)), [x, w2])
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- general epilogues

def folded_bn_relu6(channel_axis=1):
    """conv -> per-channel scale and shift (an inference batch norm folded) -> relu6."""
    from tensorlang.ops import compute as C

    def epilogue(y):
        co = int(y.shape[channel_axis].value)
        scale = tl.placeholder((co,), name="scale")
        shift = tl.placeholder((co,), name="shift")
        bshape = [1] * (len(y.shape) - channel_axis - 1)
        s4 = C.reshape(scale, (co, *bshape)) if bshape else scale
        z = C.bias_add(C.multiply(y, s4), shift, axis=channel_axis)
        return C.clip(z, 0.0, 6.0), [scale, shift]
    return epilogue


def _epi_run(s, args, inputs, shape, dtype=np.float32):
    f = tl.build(s, args, bounds_check=True)
    o = np.full(shape, np.nan, dtype=dtype)
    f(*inputs, o)
    return o


@pytest.mark.parametrize("shape", [(1, 16, 10, 36, 40, 3, 3, 1, 1), (1, 8, 9, 40, 20, 1, 1, 2, 0),
                                   (1, 24, 7, 7, 40, 3, 3, 1, 1), (1, 6, 9, 9, 12, 1, 1, 1, 0)],
                         ids=["3x3", "1x1s2", "flat", "1x1narrow"])
def test_conv2d_folded_batch_norm_relu6(rng, shape):
    N, CI, H, W, CO, KH, KW, stride, pad = shape
    s, args = conv2d_nchw(*shape[:7], stride=stride, padding=pad, epilogue=folded_bn_relu6())
    assert [t.name for t in args] == ["A", "W", "scale", "shift", args[-1].name]
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32)
    sc = rng.uniform(0.5, 2, CO).astype(np.float32)
    sh = rng.standard_normal(CO, dtype=np.float32) + 2
    ref = reference.ACTIVATIONS["relu6"](conv_ref(a, w, stride, pad) * sc[:, None, None]
                                         + sh[:, None, None])
    o = _epi_run(s, args, [a, w, sc, sh], ref.shape)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3)
    assert ((o == 0) | (o == 6)).any() and ((o > 0) & (o < 6)).any()


def test_depthwise_folded_batch_norm_relu6(rng):
    """MobileNet-v2's depthwise stage: depthwise 3x3 -> folded batch norm -> relu6."""
    N, C, H, W = 1, 20, 11, 13
    s, args = depthwise_conv2d_nchw(N, C, H, W, 3, 3, stride=2, padding=1,
                                    epilogue=folded_bn_relu6())
    a = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C, 1, 3, 3), dtype=np.float32)
    sc, sh = rng.uniform(0.5, 2, C).astype(np.float32), rng.standard_normal(C, dtype=np.float32)
    ref = np.clip(conv_ref(a, w, 2, 1, groups=C) * sc[:, None, None] + sh[:, None, None], 0, 6)
    o = _epi_run(s, args, [a, w, sc, sh], ref.shape)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("order", ["add_relu", "relu_add"])
@pytest.mark.parametrize("shape", [(1, 16, 10, 36, 40, 3, 3, 1, 1), (1, 8, 9, 40, 20, 1, 1, 1, 0)],
                         ids=["3x3", "1x1"])
def test_conv2d_residual_epilogues(rng, shape, order):
    from tensorlang.ops import compute as C
    N, CI, H, W, CO, KH, KW, stride, pad = shape

    def epilogue(y):
        r = tl.placeholder(tuple(int(d.value) for d in y.shape), name="r")
        return C.relu(C.add(y, r)) if order == "add_relu" else C.add(C.relu(y), r)
    s, args = conv2d_nchw(*shape[:7], stride=stride, padding=pad, epilogue=epilogue)
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI, KH, KW), dtype=np.float32)
    y = conv_ref(a, w, stride, pad)
    r = rng.standard_normal(y.shape, dtype=np.float32)
    ref = np.maximum(y + r, 0) if order == "add_relu" else np.maximum(y, 0) + r
    o = _epi_run(s, args, [a, w, r], ref.shape)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3)


def test_conv2d_cast_epilogue(rng):
    from tensorlang.ops import compute as C
    shape = (1, 8, 9, 20, 24, 3, 3, 1, 1)
    s, args = conv2d_nchw(*shape[:7], padding=1, epilogue=lambda y: C.cast(C.relu(y), "float64"))
    assert args[-1].dtype == "float64"
    a = rng.standard_normal((1, 8, 9, 20), dtype=np.float32)
    w = rng.standard_normal((24, 8, 3, 3), dtype=np.float32)
    ref = np.maximum(conv_ref(a, w, 1, 1), 0)
    o = _epi_run(s, args, [a, w], ref.shape, np.float64)
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3)


def test_conv2d_epilogue_errors():
    from tensorlang.ops import compute as C
    with pytest.raises(TensorlangValueError, match="conv2d_nchw: pass either epilogue= or"):
        conv2d_nchw(1, 2, 8, 8, 4, 3, 3, bias=True, epilogue=lambda y: y)
    with pytest.raises(TensorlangValueError, match="conv2d_nchw: .*an epilogue is element-wise"):
        conv2d_nchw(1, 2, 8, 8, 4, 3, 3, epilogue=lambda y: C.sum(y, axis=1, keepdims=True))


# --------------------------------------------------------------------------- packed weights

def _pack_then_run(fn, args, kw, w, inputs_after_w, a):
    """The "pack" kernel's output fed to the "prepacked" kernel; also the inline kernel."""
    sp, (Wi, Wo) = fn(*args, **kw, weights="pack")
    assert Wi.name == "W" and len(sp.outputs) == 1
    packed = np.full(tuple(int(d.value) for d in Wo.shape), np.nan, np.float32)
    tl.build(sp, [Wi, Wo], bounds_check=True)(w, packed)
    outs = []
    for mode, wt in (("prepacked", packed), ("inline", w)):
        s, targs = fn(*args, **kw, weights=mode)
        assert tuple(int(d.value) for d in targs[1].shape) == wt.shape
        outs.append(_epi_run(s, targs, [a, wt, *inputs_after_w],
                             tuple(int(d.value) for d in targs[-1].shape)))
    return outs


@pytest.mark.parametrize("shape", [(1, 16, 10, 36, 40, 3, 3, 1, 1), (1, 5, 12, 40, 20, 1, 1, 1, 0),
                                   (1, 6, 9, 20, 12, 1, 1, 2, 0), (1, 24, 7, 7, 40, 3, 3, 1, 1),
                                   (1, 8, 10, 11, 12, 3, 3, 1, 1, 1, 4)],
                         ids=["3x3", "1x1wide", "1x1narrow", "flat", "grouped"])
def test_conv2d_prepacked_weights_every_few_configs(rng, shape):
    import autotune
    N, CI, H, W, CO, KH, KW, stride, pad, *dg = shape
    dil, groups = dg or (1, 1)
    space = autotune.TEMPLATES["ops/conv2d_nchw"].space(N, CI, H, W, CO, KH, KW, stride, pad,
                                                        "float32", dil, groups)
    a = rng.standard_normal((N, CI, H, W), dtype=np.float32)
    w = rng.standard_normal((CO, CI // groups, KH, KW), dtype=np.float32)
    b = rng.standard_normal(CO, dtype=np.float32)
    ref = np.maximum(conv_ref(a, w, stride, pad, groups, dil) + b[:, None, None], 0)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups, bias=True, activation="relu")
    for i in sorted({0, len(space) - 1, len(space) // 2}):
        with autotune.ApplyConfig(space.get(i)):
            for o in _pack_then_run(conv2d_nchw, (N, CI, H, W, CO, KH, KW), kw, w, [b], a):
                np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3, err_msg=str(space.get(i)))


def test_weights_mode_is_checked():
    with pytest.raises(TensorlangValueError, match=r"conv2d_nchw: weights must be one of"):
        conv2d_nchw(1, 2, 8, 8, 4, 3, 3, weights="packed")
