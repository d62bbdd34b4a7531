"""The benchmark workloads: each is one of our operators at one shape, with the same
computation written for numpy (always measured) and PyTorch (measured when installed).

A workload builds our kernel with ``tensorlang.ops`` (the schedule each operator ships
with), makes its inputs, and computes the expected output with numpy; the output's shape
and dtype come from that numpy result. ``flop`` is None for memory-bound workloads (their
table row has no GFLOPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
        flop=2.0 * M * N * K, rtol=1e-4, atol=1e-3)


def batch_matmul(b, M, N, K):
    return Workload(
        name=f"batch_matmul {b}x{M}x{N}x{K}", group="gemm",
        build=lambda: ops.batch_matmul(b, M, N, K),
        inputs=_rand((b, M, K), (b, K, N)),
        numpy=np.matmul, torch=lambda t, a, c: t.bmm(a, c),
        flop=2.0 * b * M * N * K, atol=1e-3)


def dense_gelu(M, N, K):
    """BERT's feed-forward layer: gelu(X·Wᵀ + b) (tanh form), the epilogue fused."""
    def ref(x, w, b):
        r = x @ w.T + b
        return 0.5 * r * (1 + np.tanh(0.7978845608028654 * (r + 0.044715 * r ** 3)))
    return Workload(
        name=f"dense+bias+gelu {M}x{N}x{K}", group="gemm",
        build=lambda: ops.dense(M, N, K, bias=True, activation="gelu_tanh"),
        inputs=_rand((M, K), (N, K), (N,)), numpy=ref,
        torch=lambda t, x, w, b: t.nn.functional.gelu(t.nn.functional.linear(x, w, b), approximate="tanh"),
        flop=2.0 * M * N * K, rtol=1e-4, atol=1e-3)


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
        flop=2.0 * CO * OH * OH * CI * K * K, atol=1e-3)


def depthwise(label, C, H, stride):
    OH = (H + 2 - 3) // stride + 1
    return Workload(
        name=f"depthwise {label} {C}x{H}x{H} 3x3/{stride}", group="depthwise",
        build=lambda: ops.depthwise_conv2d_nchw(1, C, H, H, 3, 3, stride=stride, padding=1),
        inputs=_rand((1, C, H, H), (C, 1, 3, 3)),
        numpy=lambda a, w: depthwise_numpy(a, w, stride, 1),
        torch=lambda t, a, w: t.nn.functional.conv2d(a, w, stride=stride, padding=1, groups=C),
        flop=2.0 * C * OH * OH * 9, atol=1e-4)


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
        numpy=softmax_numpy, torch=lambda t, x: t.softmax(x, -1), rtol=1e-5, atol=1e-7)


def layer_norm(rows, cols):
    return Workload(
        name=f"layer_norm {rows}x{cols}", group="rows",
        build=lambda: ops.layer_norm(rows, cols), inputs=_rand((rows, cols), (cols,), (cols,)),
        numpy=layer_norm_numpy,
        torch=lambda t, x, g, b: t.nn.functional.layer_norm(x, (cols,), g, b, 1e-5),
        rtol=1e-4, atol=1e-4)


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


WORKLOADS = [
    gemm(256, 256, 256), gemm(512, 512, 512), gemm(1024, 1024, 1024), gemm(2048, 2048, 2048),
    gemm(1, 4096, 4096, label="GEMV "), gemm(128, 3072, 768, label="BERT "),
    gemm(128, 768, 3072, label="BERT "), gemm(128, 768, 768, label="BERT "),
    dense_gelu(128, 3072, 768),
    batch_matmul(12, 128, 128, 64), batch_matmul(12, 128, 64, 128),
    conv2d("res2", 64, 56, 64, 3, 1, 1), conv2d("res3", 128, 56, 128, 3, 2, 1),
    conv2d("res4", 256, 14, 256, 3, 1, 1), conv2d("res2", 256, 56, 64, 1, 1, 0),
    conv2d("res2", 64, 56, 256, 1, 1, 0), conv2d("res3 down", 256, 56, 512, 1, 2, 0),
    depthwise("mbv2", 32, 112, 1), depthwise("mbv2", 144, 56, 2), depthwise("mbv2", 576, 14, 1),
    softmax(4096, 1024), layer_norm(4096, 1024),
    row_reduce("sum", 4096, 1024), row_reduce("max", 4096, 1024),
    elementwise(16 << 20),
]
