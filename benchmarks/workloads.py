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
        key=["ops/conv2d_nchw", [1, CI, H, H, CO, K, K, stride, pad, "float32"]])


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
        key=["ops/conv2d_nchw", [1, CI, H, H, CO, 1, 1, 1, 0, "float32"]])


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
    *(depthwise("mbv2", *layer) for layer in MOBILENET_V2),
    softmax(4096, 1024), layer_norm(4096, 1024),
    row_reduce("sum", 4096, 1024), row_reduce("max", 4096, 1024),
    elementwise(16 << 20),
]


def shipped_keys() -> set:
    """The workloads (as JSON text) with a record for this target in the log shipped for this
    CPU (``ops.shipped_log()``)."""
    from autotune.record import load_from_file
    log, target = ops.shipped_log(), str(tl.target.Target("llvm"))
    if not log.exists():
        return set()
    return {json.dumps(r["workload"]) for r in load_from_file(log) if r["target"] == target}
