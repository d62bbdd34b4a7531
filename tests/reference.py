"""numpy references of the operators, shared by the tests (one place, not one per file)."""

import math

import numpy as np


def erf(x):
    """numpy has no erf: math.erf element by element (float64)."""
    return np.vectorize(math.erf)(np.asarray(x, dtype=np.float64))


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.minimum(np.maximum(x, 0), 6),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    None: lambda x: x,
}


def dense(x, w, bias=None):
    """x (M, K) · w (N, K)ᵀ (+ bias (N,))."""
    y = x.astype(np.float64) @ w.astype(np.float64).T
    return y if bias is None else y + bias


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along ``axis`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    m = x - x.max(axis=axis, keepdims=True)
    return m - np.log(np.exp(m).sum(axis=axis, keepdims=True))


def _along(v, ndim, axis):
    """A 1-D ``v`` shaped to broadcast along ``axis`` of an ``ndim``-D array (float64)."""
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(v, dtype=np.float64).reshape(shape)


def layer_norm(x, gamma, beta, eps=1e-5, axis=-1):
    """(x - mean) / sqrt(var + eps) * gamma + beta over ``axis``, var biased (float64)."""
    x = np.asarray(x, dtype=np.float64)
    m = x.mean(axis=axis, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axis, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * _along(gamma, x.ndim, axis) + _along(beta, x.ndim, axis)


def rms_norm(x, gamma, eps=1e-6, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt((x ** 2).mean(axis=axis, keepdims=True) + eps) * _along(gamma, x.ndim, axis)


def batch_norm(x, gamma, beta, mean, var, eps=1e-5, axis=1):
    """Inference batch norm with per-channel vectors along ``axis`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    r = lambda v: _along(v, x.ndim, axis)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


def pool_windows(x, K, S, P, fill):
    """(N, C, OH, OW, KH * KW) windows of NCHW ``x`` padded with ``fill`` (K, S, P pairs)."""
    xp = np.pad(x, ((0, 0), (0, 0), (P[0], P[0]), (P[1], P[1])), constant_values=fill)
    OH = (xp.shape[2] - K[0]) // S[0] + 1
    OW = (xp.shape[3] - K[1]) // S[1] + 1
    return np.stack([xp[:, :, i:i + S[0] * (OH - 1) + 1:S[0], j:j + S[1] * (OW - 1) + 1:S[1]]
                     for i in range(K[0]) for j in range(K[1])], axis=-1)


def max_pool2d(x, K, S, P):
    return pool_windows(x, K, S, P, -np.inf).max(-1)


def avg_pool2d(x, K, S, P, count_include_pad=True):
    x = np.asarray(x, dtype=np.float64)
    total = pool_windows(x, K, S, P, 0).sum(-1)
    count = K[0] * K[1] if count_include_pad else pool_windows(np.ones_like(x), K, S, P, 0).sum(-1)
    return total / count


def conv2d_nchw(a, w, stride, pad, groups=1, dilation=1):
    """NCHW convolution in float64, group by group (depthwise: groups == channels), each a
    sum over the (dilated) filter window of channel contractions. a: (N, C, H, W),
    w: (CO, C // groups, KH, KW)."""
    n, ci, h, wd = a.shape
    co, cig, kh, kw = w.shape
    ap = np.pad(a.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, co, oh, ow))
    cog = co // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dilation, j * dilation
                win = ap[:, g * cig:(g + 1) * cig, y0:y0 + stride * (oh - 1) + 1:stride,
                         x0:x0 + stride * (ow - 1) + 1:stride]
                out[:, g * cog:(g + 1) * cog] += np.einsum(
                    "fc,ncyx->nfyx", w[g * cog:(g + 1) * cog, :, i, j].astype(np.float64), win)
    return out


# layout conversions of NCHW / OIHW arrays (numpy), for the layout variants of conv2d
def to_nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_hwio(w):
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def to_nchwc(x, c):
    n, ch, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, ch // c, c, h, w).transpose(0, 1, 3, 4, 2))


def to_oihw_ic_oc(w, ic, oc):
    co, ci, kh, kw = w.shape
    return np.ascontiguousarray(
        w.reshape(co // oc, oc, ci // ic, ic, kh, kw).transpose(0, 2, 4, 5, 3, 1))
