"""The benchmark workloads: each is one of our operators at one shape, with the same
computation written for numpy (always measured) and PyTorch (measured when installed).

A workload builds our kernel with ``tensorlang.ops`` (the schedule each operator ships
with), makes its inputs, and computes the expected output with numpy; the output's shape
and dtype come from that numpy result. ``flop`` is None for memory-bound workloads (their
table row has no GFLOPS). ``key`` is the autotune workload the kernel's template looks up:
the table marks a workload whose record comes from the log shipped for this CPU, and every
shipped record has a workload here (a test checks it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import tensorlang as tl
from tensorlang import ops


@dataclass(frozen=True)
class Workload:
    name: str
    group: str
    build: Callable[[], tuple]                 # () -> (schedule, args)
    inputs: Callable[[np.random.Generator], list]
    numpy: Callable[..., np.ndarray]
    torch: Callable | None = None              # (torch module, *tensors) -> tensor
    flop: float | None = None
    rtol: float = 1e-4
    atol: float = 1e-5
    key: list | None = None                    # [template, [args]] of the tuning workload


def _rand(*shape):
    return lambda rng: [rng.standard_normal(s, dtype=np.float32) for s in shape]


# ----------------------------------------------------------------------------- GEMM

def gemm(M, N, K, label=None):
    return Workload(
        name=f"gemm {label or ''}{M}x{N}x{K}".replace("  ", " "), group="gemm",
        build=lambda: ops.matmul(M, N, K),
        inputs=lambda rng: [rng.random((M, K), dtype=np.float32),
                            rng.random((K, N), dtype=np.float32)],
        numpy=np.matmul, torch=lambda t, a, b: t.matmul(a, b),
        flop=2.0 * M * N * K, rtol=1e-4, atol=1e-3, key=["ops/matmul", [M, N, K, "float32"]])


def batch_matmul(b, M, N, K):
    return Workload(
        name=f"batch_matmul {b}x{M}x{N}x{K}", group="gemm",
        build=lambda: ops.batch_matmul(b, M, N, K),
        inputs=_rand((b, M, K), (b, K, N)),
        numpy=np.matmul, torch=lambda t, a, c: t.bmm(a, c),
        flop=2.0 * b * M * N * K, atol=1e-3, key=["ops/batch_matmul", [b, M, N, K, "float32"]])


def _gelu_tanh(r):
    return 0.5 * r * (1 + np.tanh(0.7978845608028654 * (r + 0.044715 * r ** 3)))


def dense(M, N, K, activation=None):
    """A BERT dense layer act(X·Wᵀ + b) (gelu in its tanh form), the epilogue fused."""
    act = {None: lambda r: r, "gelu_tanh": _gelu_tanh}[activation]
    tact = {None: lambda t, r: r,
            "gelu_tanh": lambda t, r: t.nn.functional.gelu(r, approximate="tanh")}[activation]
    return Workload(
        name=f"dense+bias{'+gelu' if activation else ''} {M}x{N}x{K}", group="gemm",
        build=lambda: ops.dense(M, N, K, bias=True, activation=activation),
        inputs=_rand((M, K), (N, K), (N,)), numpy=lambda x, w, b: act(x @ w.T + b),
        torch=lambda t, x, w, b: tact(t, t.nn.functional.linear(x, w, b)),
        flop=2.0 * M * N * K, rtol=1e-4, atol=1e-3, key=["ops/dense", [M, N, K, "float32"]])


# ----------------------------------------------------------------------------- conv2d

def conv2d_numpy(a, w, stride, pad):
    """NCHW conv2d by im2col: a strided window view of the padded input, copied into a
    (CI*KH*KW) x (OH*OW) matrix, times the weights (OpenBLAS does the product)."""
    n, ci, _, _ = a.shape
    co, _, kh, kw = w.shape
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(ap, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = win.shape[2], win.shape[3]
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, ci * kh * kw, oh * ow)
    return (w.reshape(co, -1) @ cols).reshape(n, co, oh, ow)


def depthwise_numpy(a, w, stride, pad):
    """Depthwise conv2d (weights (C, 1, KH, KW)) as a sum over the KH*KW window offsets."""
    _, _, kh, kw = w.shape
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(ap, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("ncyxij,cij->ncyx", win, w[:, 0], optimize=True)


def conv2d(label, CI, H, CO, K, stride, pad):
    OH = (H + 2 * pad - K) // stride + 1
    return Workload(
        name=f"conv2d {label} {CI}x{H}x{H}->{CO} {K}x{K}/{stride}", group="conv2d",
        build=lambda: ops.conv2d_nchw(1, CI, H, H, CO, K, K, stride=stride, padding=pad),
        inputs=_rand((1, CI, H, H), (CO, CI, K, K)),
        numpy=lambda a, w: conv2d_numpy(a, w, stride, pad),
        torch=lambda t, a, w: t.nn.functional.conv2d(a, w, stride=stride, padding=pad),
        flop=2.0 * CO * OH * OH * CI * K * K, atol=1e-3,
        key=["ops/conv2d_nchw", [1, CI, H, H, CO, K, K, stride, pad, "float32", 1, 1]])


def conv2d_block_end(CI, H, CO):
    """The end of a ResNet bottleneck: relu(conv1x1(x) + bias + shortcut), fused."""
    return Workload(
        name=f"conv2d+bias+res+relu {CI}x{H}x{H}->{CO}", group="conv2d",
        build=lambda: ops.conv2d_nchw(1, CI, H, H, CO, 1, 1, bias=True, residual=True,
                                      activation="relu"),
        inputs=_rand((1, CI, H, H), (CO, CI, 1, 1), (CO,), (1, CO, H, H)),
        numpy=lambda a, w, b, r: np.maximum(conv2d_numpy(a, w, 1, 0) + b[:, None, None] + r, 0),
        torch=lambda t, a, w, b, r: t.relu(t.nn.functional.conv2d(a, w, b) + r),
        flop=2.0 * CO * H * H * CI, atol=1e-3,
        key=["ops/conv2d_nchw", [1, CI, H, H, CO, 1, 1, 1, 0, "float32", 1, 1]])


def depthwise(label, C, H, stride):
    OH = (H + 2 - 3) // stride + 1
    return Workload(
        name=f"depthwise {label} {C}x{H}x{H} 3x3/{stride}", group="depthwise",
        build=lambda: ops.depthwise_conv2d_nchw(1, C, H, H, 3, 3, stride=stride, padding=1),
        inputs=_rand((1, C, H, H), (C, 1, 3, 3)),
        numpy=lambda a, w: depthwise_numpy(a, w, stride, 1),
        torch=lambda t, a, w: t.nn.functional.conv2d(a, w, stride=stride, padding=1, groups=C),
        flop=2.0 * C * OH * OH * 9, atol=1e-4,
        key=["ops/depthwise_conv2d_nchw", [1, C, H, H, 3, 3, stride, 1, "float32"]])


def conv2d_layout(layout, CI, H, CO, K, stride, pad):
    """A ResNet conv2d in NHWC (HWIO weights) or NCHW16c (OIHW16i16o weights). PyTorch runs
    NHWC as channels_last (views, no copies); it has no blocked layout, so for NCHWc it runs
    NCHW on inputs converted once, outside the timing, and its output is copied back."""
    OH = (H + 2 * pad - K) // stride + 1
    if layout == "nhwc":
        build = lambda: ops.conv2d_nhwc(1, H, H, CI, CO, K, K, stride=stride, padding=pad)  # noqa: E731
        inputs = _rand((1, H, H, CI), (K, K, CI, CO))
        nchw = lambda a, w: (a.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1))              # noqa: E731
        back = lambda o: o.transpose(0, 2, 3, 1)                                              # noqa: E731
        torch = lambda t, a, w: t.nn.functional.conv2d(                                       # noqa: E731
            a.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=stride,
            padding=pad).permute(0, 2, 3, 1)
    else:
        build = lambda: ops.conv2d_NCHWc(1, CI, H, H, CO, K, K, stride=stride, padding=pad,    # noqa: E731
                                         ic_block=16, oc_block=16, weights="prepacked")
        inputs = _rand((1, CI // 16, H, H, 16), (CO // 16, CI // 16, K, K, 16, 16))
        nchw = lambda a, w: (a.transpose(0, 1, 4, 2, 3).reshape(1, CI, H, H),                 # noqa: E731
                             w.transpose(0, 5, 1, 4, 2, 3).reshape(CO, CI, K, K))
        back = lambda o: o.reshape(1, CO // 16, 16, OH, OH).transpose(0, 1, 3, 4, 2)          # noqa: E731
        converted = {}

        def torch(t, a, w):
            if "x" not in converted:
                converted["x"] = [t.from_numpy(np.ascontiguousarray(x))
                                  for x in nchw(a.numpy(), w.numpy())]
            o = t.nn.functional.conv2d(*converted["x"], stride=stride, padding=pad)
            return o.reshape(1, CO // 16, 16, OH, OH).permute(0, 1, 3, 4, 2).contiguous()
    return Workload(
        name=f"conv2d {layout} {CI}x{H}x{H}->{CO} {K}x{K}/{stride}", group="conv2d",
        build=build, inputs=inputs,
        numpy=lambda a, w: np.ascontiguousarray(back(conv2d_numpy(*nchw(a, w), stride, pad))),
        torch=torch, flop=2.0 * CO * OH * OH * CI * K * K, atol=1e-3)


# ----------------------------------------------------------------------------- rows

def softmax_numpy(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm_numpy(x, g, b, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def softmax(rows, cols):
    return Workload(
        name=f"softmax {rows}x{cols}", group="rows",
        build=lambda: ops.softmax(rows, cols), inputs=_rand((rows, cols)),
        numpy=softmax_numpy, torch=lambda t, x: t.softmax(x, -1), rtol=1e-5, atol=1e-7,
        key=["ops/softmax", [rows, cols, "float32"]])


def layer_norm(rows, cols):
    return Workload(
        name=f"layer_norm {rows}x{cols}", group="rows",
        build=lambda: ops.layer_norm(rows, cols), inputs=_rand((rows, cols), (cols,), (cols,)),
        numpy=layer_norm_numpy,
        torch=lambda t, x, g, b: t.nn.functional.layer_norm(x, (cols,), g, b, 1e-5),
        rtol=1e-4, atol=1e-4, key=["ops/layer_norm", [rows, cols, 1e-5, "float32"]])


def row_reduce(kind, rows, cols):
    return Workload(
        name=f"row_{kind} {rows}x{cols}", group="rows",
        build=lambda: getattr(ops, f"row_{kind}")(rows, cols), inputs=_rand((rows, cols)),
        numpy=(lambda x: x.sum(axis=1)) if kind == "sum" else (lambda x: x.max(axis=1)),
        torch=(lambda t, x: x.sum(1)) if kind == "sum" else (lambda t, x: x.amax(1)),
        rtol=1e-4, atol=1e-3)


def library(name, build, inputs, ref, torch_fn, rtol=1e-4, atol=1e-4):
    """One of the memory-bound operators of the library (pooling, norms, layout, reductions)."""
    return Workload(name=name, group="library", build=build, inputs=inputs, numpy=ref,
                    torch=torch_fn, rtol=rtol, atol=atol)


def _max_pool_numpy(x):                      # 3x3, stride 2, padding 1 (ResNet-50's stem)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(4, 5))


def _rms_norm_numpy(x, g, eps=1e-6):
    return (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps) * g
            ).astype(np.float32)


def _batch_norm_numpy(x, g, b, m, v, eps=1e-5):
    c = lambda a: a[None, :, None, None]             # noqa: E731
    return (x - c(m)) / np.sqrt(c(v) + eps) * c(g) + c(b)


LIBRARY = [
    library("max_pool2d 64x112x112 3x3/2", lambda: ops.max_pool2d(1, 64, 112, 112, 3, 2, 1),
            _rand((1, 64, 112, 112)), _max_pool_numpy,
            lambda t, x: t.nn.functional.max_pool2d(x, 3, 2, 1)),
    library("global_avg_pool2d 2048x7x7", lambda: ops.global_avg_pool2d(1, 2048, 7, 7),
            _rand((1, 2048, 7, 7)), lambda x: x.mean(axis=(2, 3), keepdims=True),
            lambda t, x: t.nn.functional.adaptive_avg_pool2d(x, 1)),
    library("batch_norm 64x112x112", lambda: ops.batch_norm(1, 64, 112, 112),
            lambda rng: [rng.standard_normal((1, 64, 112, 112), dtype=np.float32),
                         *rng.standard_normal((3, 64), dtype=np.float32),
                         rng.random(64, dtype=np.float32) + 0.5],
            _batch_norm_numpy,
            lambda t, x, g, b, m, v: t.nn.functional.batch_norm(x, m, v, g, b, False, 0.0, 1e-5)),
    library("log_softmax 4096x1024", lambda: ops.log_softmax(4096, 1024), _rand((4096, 1024)),
            lambda x: x - x.max(-1, keepdims=True) - np.log(np.exp(
                x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
            lambda t, x: t.log_softmax(x, -1)),
    library("rms_norm 4096x1024", lambda: ops.rms_norm(4096, 1024),
            _rand((4096, 1024), (1024,)), _rms_norm_numpy,
            lambda t, x, g: t.nn.functional.rms_norm(x, (1024,), g, 1e-6)),
    library("gelu_tanh 4096x1024", lambda: ops.injective("gelu", (4096, 1024), approximate="tanh"),
            _rand((4096, 1024)), _gelu_tanh,
            lambda t, x: t.nn.functional.gelu(x, approximate="tanh")),
    library("add bcast 4096x1024+1024", lambda: ops.injective("add", (4096, 1024), (1024,)),
            _rand((4096, 1024), (1024,)), np.add, lambda t, a, b: a + b),
    library("transpose 1024x1024", lambda: ops.injective("transpose", (1024, 1024)),
            _rand((1024, 1024)), lambda x: np.ascontiguousarray(x.T),
            lambda t, x: x.t().contiguous(), rtol=0, atol=0),
    library("sum axis 0 4096x1024", lambda: ops.reduce("sum", (4096, 1024), axis=0),
            _rand((4096, 1024)), lambda x: x.sum(axis=0), lambda t, x: x.sum(0), atol=1e-3),
]


def elementwise(n):
    return Workload(
        name=f"relu(a*b+c) {n // (1 << 20)}M", group="elementwise",
        build=lambda: ops.fused_elementwise(n), inputs=_rand((n,), (n,), (n,)),
        numpy=lambda a, b, c: np.maximum(a * b + c, 0),
        torch=lambda t, a, b, c: t.relu(a * b + c), rtol=1e-6, atol=1e-6)


# every distinct conv2d layer of ResNet-50 at batch 1 (torchvision's v1.5: the stride on the
# 3x3); (label, CI, H, CO, K, stride, pad)
RESNET50 = [
    ("stem", 3, 224, 64, 7, 2, 3),
    ("res2", 64, 56, 64, 1, 1, 0), ("res2", 64, 56, 64, 3, 1, 1), ("res2", 64, 56, 256, 1, 1, 0),
    ("res2", 256, 56, 64, 1, 1, 0),
    ("res3", 256, 56, 128, 1, 1, 0), ("res3", 128, 56, 128, 3, 2, 1),
    ("res3", 128, 28, 512, 1, 1, 0), ("res3 down", 256, 56, 512, 1, 2, 0),
    ("res3", 512, 28, 128, 1, 1, 0), ("res3", 128, 28, 128, 3, 1, 1),
    ("res4", 512, 28, 256, 1, 1, 0), ("res4", 256, 28, 256, 3, 2, 1),
    ("res4", 256, 14, 1024, 1, 1, 0), ("res4 down", 512, 28, 1024, 1, 2, 0),
    ("res4", 1024, 14, 256, 1, 1, 0), ("res4", 256, 14, 256, 3, 1, 1),
    ("res5", 1024, 14, 512, 1, 1, 0), ("res5", 512, 14, 512, 3, 2, 1),
    ("res5", 512, 7, 2048, 1, 1, 0), ("res5 down", 1024, 14, 2048, 1, 2, 0),
    ("res5", 2048, 7, 512, 1, 1, 0), ("res5", 512, 7, 512, 3, 1, 1),
]

# every depthwise layer of MobileNet-v2 (3x3, padding 1): (C, H, stride)
MOBILENET_V2 = [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1),
                (192, 28, 2), (384, 14, 1), (576, 14, 1), (576, 14, 2), (960, 7, 1)]

WORKLOADS = [
    gemm(256, 256, 256), gemm(512, 512, 512), gemm(1024, 1024, 1024), gemm(2048, 2048, 2048),
    gemm(1, 4096, 4096, label="GEMV "), gemm(128, 3072, 768, label="BERT "),
    gemm(128, 768, 3072, label="BERT "), gemm(128, 768, 768, label="BERT "),
    dense(128, 768, 768), dense(128, 3072, 768, activation="gelu_tanh"), dense(128, 768, 3072),
    batch_matmul(12, 128, 128, 64), batch_matmul(12, 128, 64, 128),
    *(conv2d(*layer) for layer in RESNET50),
    conv2d_block_end(64, 56, 256),
    conv2d_layout("nhwc", 64, 56, 64, 3, 1, 1), conv2d_layout("NCHWc", 64, 56, 64, 3, 1, 1),
    conv2d_layout("nhwc", 256, 14, 256, 3, 1, 1), conv2d_layout("NCHWc", 256, 14, 256, 3, 1, 1),
    *(depthwise("mbv2", *layer) for layer in MOBILENET_V2),
    softmax(4096, 1024), layer_norm(4096, 1024),
    row_reduce("sum", 4096, 1024), row_reduce("max", 4096, 1024),
    elementwise(16 << 20), *LIBRARY,
]


def shipped_keys(target=None) -> set:
    """The workloads (as JSON text) with a record for ``target`` (default: the current
    target, ``tl.target.Target.current()``) in the log shipped for this CPU
    (``ops.shipped_log()``)."""
    from tensorlang.dispatch import load_from_file
    log = ops.shipped_log()
    target = str(tl.target.Target(target) if target is not None else tl.target.Target.current())
    if not log.is_file():
        return set()
    return {json.dumps(r["workload"]) for r in load_from_file(log) if r["target"] == target}
