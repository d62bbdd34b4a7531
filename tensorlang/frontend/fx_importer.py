"""The FX/ATen importer: a graph of Core ATen ops (from ``torch.export`` or AOTAutograd)
becomes a ``tensorlang.graph`` module.

``CONVERTERS`` maps each supported ATen overload to a small function ``(args, kwargs, node)
-> graph node``; ``is_supported(node)`` is what the partitioner asks. Parameters and buffers
become named constants (so batch-norm folding, constant folding and weight packing apply to
them). A call whose tensor inputs are all constants (``arange``, ``full``, a weight's
transpose, ...) is evaluated by PyTorch itself at import time and becomes a constant.

dtype promotion follows PyTorch's: binary ops on tensors of different dtypes cast to
``torch.promote_types`` first; a Python number takes the tensor's dtype (as ATen's
"wrapped numbers" do).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from ..errors import TensorlangError
from ..graph import op as O
from ..graph.ir import Constant, Node

try:
    import torch
    aten = torch.ops.aten
except ImportError:            # the importer needs PyTorch; deployment does not
    torch = aten = None


class UnsupportedOpError(TensorlangError, NotImplementedError):
    """An FX graph holds ops the importer cannot convert."""


DTYPES = {}
if torch is not None:
    DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
              torch.int64: "int64", torch.int32: "int32", torch.int8: "int8", torch.uint8: "uint8",
              torch.bool: "bool", torch.int16: "int16"}


TORCH_DTYPES = {v: k for k, v in DTYPES.items()}


def dtype_of(t) -> str:
    if t not in DTYPES:
        raise UnsupportedOpError(f"dtype {t} is not supported (supported: "
                                 f"{', '.join(map(str, DTYPES))})")
    return DTYPES[t]


def torch_dtype(d: str):
    return TORCH_DTYPES[d]


# --------------------------------------------------------------------------- helpers

def _promote(a, b):
    """``a`` and ``b`` with PyTorch's promotion between two tensors."""
    if isinstance(a, Node) and isinstance(b, Node) and a.dtype != b.dtype:
        if a.shape == () and isinstance(a, Constant) and _same_kind(a, b):
            return O.cast(a, dtype=b.dtype), b
        if b.shape == () and isinstance(b, Constant) and _same_kind(b, a):
            return a, O.cast(b, dtype=a.dtype)
        t = dtype_of(torch.promote_types(torch_dtype(a.dtype), torch_dtype(b.dtype)))
        a = a if a.dtype == t else O.cast(a, dtype=t)
        b = b if b.dtype == t else O.cast(b, dtype=t)
    return a, b


def _same_kind(scalar, tensor) -> bool:
    """A 0-d tensor of the same kind (float/int) takes the other's dtype, as in PyTorch."""
    return (scalar.dtype.startswith("float")) == (tensor.dtype.startswith("float"))


def _binary(name):
    def convert(a, b, alpha=1):
        if not isinstance(a, Node):          # number op tensor
            a = O.registry.as_node(a, b, name)
        if alpha != 1:
            b = b * alpha
        a, b = _promote(a, b)
        if name == "divide" and not a.dtype.startswith("float"):
            a, b = O.cast(a, dtype="float32"), O.cast(b, dtype="float32")
        return O.registry.make_call(name, a, b)
    return convert


def _compare(name):
    def convert(a, b):
        if not isinstance(b, Node):
            b = O.registry.as_node(b, a, name)
        a, b = _promote(a, b)
        return O.registry.make_call(name, a, b)
    return convert


def _dims(dims, ndim):
    dims = [dims] if isinstance(dims, int) else list(dims)
    return tuple(d % ndim for d in dims)


def _conv(x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    if transposed:
        raise UnsupportedOpError("transposed convolution")
    if len(x.shape) != 4:
        raise UnsupportedOpError(f"a {len(x.shape) - 2}-D convolution")
    y = O.conv2d(x, w, stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
                 groups=groups)
    return y if b is None else y + O.reshape(b, newshape=(b.shape[0], 1, 1))


def _addmm(bias, a, b, beta=1, alpha=1):
    y = O.matmul(a, b)
    if alpha != 1:
        y = y * alpha
    return y + (bias if beta == 1 else bias * beta)


def _batch_norm(x, w, b, mean, var, momentum, eps):
    c = x.shape[1]
    w = w if w is not None else Constant(np.ones(c, x.dtype))
    b = b if b is not None else Constant(np.zeros(c, x.dtype))
    return (O.batch_norm(x, w, b, mean, var, epsilon=eps), None, None)


def _layer_norm(x, shape, w, b, eps):
    if len(shape) != 1:
        raise UnsupportedOpError("layer_norm over more than the last dimension")
    n = shape[0]
    w = w if w is not None else Constant(np.ones(n, x.dtype))
    b = b if b is not None else Constant(np.zeros(n, x.dtype))
    last = len(x.shape) - 1                     # mean and rstd, what training saves
    mean = O.mean(x, axis=(last,), keepdims=True)
    rstd = O.rsqrt(O.variance(x, axis=(last,), keepdims=True) + eps)
    return (O.layer_norm(x, w, b, epsilon=eps), mean, rstd)


def _view(x, shape):
    shape = list(shape)
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        shape[shape.index(-1)] = int(np.prod(x.shape)) // max(known, 1)
    return x if tuple(shape) == x.shape else O.reshape(x, newshape=tuple(shape))


def _expand(x, shape, implicit=False):
    lead = len(shape) - len(x.shape)
    shape = tuple(x.shape[d - lead] if s == -1 else s for d, s in enumerate(shape))
    return x if shape == x.shape else O.broadcast_to(x, shape=shape)


def _slice(x, dim=0, start=None, end=None, step=1):
    n = x.shape[dim]
    start, end, _ = slice(start, end).indices(n)
    if (start, end, step) == (0, n, 1):
        return x
    return O.slice_axis(x, dim, start, end, step)


def _select(x, dim, index):
    dim %= len(x.shape)
    index %= x.shape[dim]
    return O.squeeze(O.slice_axis(x, dim, index, index + 1), axis=(dim,))


def _max_pool(x, kernel, stride=(), padding=0, dilation=1, ceil_mode=False):
    if ceil_mode or dilation not in (1, [1, 1], (1, 1)):
        raise UnsupportedOpError("max_pool2d with ceil_mode or dilation")
    y = O.max_pool2d(x, kernel=tuple(kernel), stride=tuple(stride) or None,
                     padding=tuple(padding) if isinstance(padding, (list, tuple)) else padding)
    return (y, _max_pool_indices(x, kernel, stride, padding))


def _avg_pool(x, kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
    if ceil_mode or divisor_override is not None:
        raise UnsupportedOpError("avg_pool2d with ceil_mode or divisor_override")
    return O.avg_pool2d(x, kernel=tuple(kernel), stride=tuple(stride) or None,
                        padding=tuple(padding) if isinstance(padding, (list, tuple)) else padding,
                        count_include_pad=count_include_pad)


def _mean(x, dims=None, keepdim=False, dtype=None):
    nd = len(x.shape)
    if dims is None or list(dims) == []:
        axes = tuple(range(nd))
    else:
        axes = _dims(dims, nd)
    if nd == 4 and sorted(axes) == [2, 3] and keepdim:
        return O.global_avg_pool2d(x)
    return O.mean(x, axis=axes, keepdims=keepdim)


def _reduce(name):
    def convert(x, dims=None, keepdim=False, dtype=None):
        axes = None if dims is None or list(dims) == [] else _dims(dims, len(x.shape))
        return O.registry.make_call(name, x, axis=axes, keepdims=keepdim)
    return convert


def _to_copy(x, dtype=None, **_):
    if dtype is None:
        return x
    d = dtype_of(dtype)
    return x if d == x.dtype else O.cast(x, dtype=d)


def _softmax(name):
    def convert(x, dim, half_to_float=False):
        return O.registry.make_call(name, x, axis=dim % len(x.shape))
    return convert


def _gelu(x, approximate="none"):
    return O.gelu(x, approximate=approximate)


def _clamp(x, lo=None, hi=None):
    return O.clip(x, a_min=lo, a_max=hi)


def _pow(x, e):
    if isinstance(e, (int, float)) and e == 2:
        return x * x
    if isinstance(e, (int, float)) and e == 3:      # GPT-2's gelu_new: x + 0.044715 x^3
        return x * x * x
    if isinstance(e, (int, float)) and e == 0.5:
        return O.sqrt(x)
    return O.power(x, e)


def _where(c, a, b):
    if not isinstance(a, Node):
        a = O.registry.as_node(a, b, "where")
    if not isinstance(b, Node):
        b = O.registry.as_node(b, a, "where")
    a, b = _promote(a, b)
    return O.where(c, a, b)


def _cat(tensors, dim=0):
    tensors = [t for t in tensors if t.shape != (0,)]
    return tensors[0] if len(tensors) == 1 else O.concatenate(*tensors, axis=dim % len(tensors[0].shape))


def _embedding(w, ids, padding_idx=-1, *_):
    return O.take(w, ids, axis=0)


def _squeeze(x, dims=None):
    dims = tuple(d for d in _dims(dims if dims is not None else range(len(x.shape)), len(x.shape))
                 if x.shape[d] == 1)
    return x if not dims else O.squeeze(x, axis=dims)


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    if dropout_p:
        raise UnsupportedOpError("scaled_dot_product_attention with dropout")
    d = q.shape[-1]
    nd = len(k.shape)
    s = O.matmul(q, O.transpose(k, axes=(*range(nd - 2), nd - 1, nd - 2)))
    s = s * (scale if scale is not None else 1.0 / float(np.sqrt(d)))
    if is_causal:                               # -inf above the diagonal
        L, S = q.shape[-2], k.shape[-2]
        s = s + Constant(np.triu(np.full((L, S), -np.inf, s.dtype), 1))
    if attn_mask is not None:
        if attn_mask.dtype == "bool":           # True: attend
            attn_mask = O.where(attn_mask, Constant(np.zeros((), s.dtype)),
                                Constant(np.full((), -np.inf, s.dtype)))
        s = s + attn_mask
    return O.matmul(O.softmax(s), v)


def _logical_not(x):
    if x.dtype != "bool":
        return O.equal(x, O.registry.as_node(0, x, "logical_not"))
    return O.equal(x, Constant(np.zeros((), "bool")))


def _any(x, dims=None, keepdim=False):
    """any(x) over ``dims``: max of x != 0 (as int8), back to bool."""
    axes = None if dims is None or dims == [] else _dims(dims, len(x.shape))
    nz = x if x.dtype == "bool" else _logical_not(_logical_not(x))
    m = O.max(O.cast(nz, dtype="int8"), axis=axes, keepdims=keepdim)
    return O.not_equal(m, Constant(np.zeros((), "int8")))


def _full_like(x, value, dtype=None, **_):
    d = dtype_of(dtype) if dtype is not None else x.dtype
    return O.broadcast_to(Constant(np.array(value, d)), shape=x.shape)


def _gather(x, dim, index, sparse_grad=False):
    """out[i..] = x[i.., index[i..], i..] along ``dim``: a take from the flattened ``x`` at
    linear offsets (the index's own coordinates on the other axes)."""
    nd = len(x.shape)
    dim %= nd
    strides = [int(np.prod(x.shape[d + 1:])) for d in range(nd)]
    base = np.zeros(index.shape, np.int64)
    for d in range(nd):
        if d != dim:
            shape = [1] * nd
            shape[d] = index.shape[d]
            base = base + np.arange(index.shape[d], dtype=np.int64).reshape(shape) * strides[d]
    # int32 offsets: a take of a fused reshape with int64 indices fails the IR verifier
    # ("operands of add have dtypes int32 and int64"), see tests/test_pytorch_models.py
    if int(np.prod(x.shape)) >= 2**31:
        raise UnsupportedOpError("gather from a tensor of 2**31 elements or more")
    idx = index if index.dtype == "int32" else O.cast(index, dtype="int32")
    idx = O.add(O.multiply(idx, Constant(np.array(strides[dim], np.int32))),
                Constant(base.astype(np.int32)))
    flat = O.reshape(x, newshape=(int(np.prod(x.shape)),))
    return O.take(flat, idx, axis=0)


def _split_with_sizes(x, sizes, dim=0):
    dim %= len(x.shape)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    return tuple(_slice(x, dim, int(b), int(e)) for b, e in zip(bounds, bounds[1:]))


def _split(x, size, dim=0):
    n = x.shape[dim % len(x.shape)]
    return _split_with_sizes(x, [min(size, n - i) for i in range(0, n, size)], dim)


def _constant_pad(x, pad, value=0.0):
    """``F.pad``'s (last-axis-first) pairs as one (before, after) pair per axis."""
    nd = len(x.shape)
    if len(pad) % 2 or len(pad) > 2 * nd:
        raise UnsupportedOpError(f"constant_pad_nd with pad {list(pad)}")
    if any(p < 0 for p in pad):
        raise UnsupportedOpError("constant_pad_nd with negative padding (cropping)")
    width = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        width[nd - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if all(w == (0, 0) for w in width):
        return x
    return O.pad(x, pad_width=tuple(width), value=float(value))


CONVERTERS: dict = {}
if torch is not None:
    CONVERTERS = {
        aten.convolution.default: _conv,
        aten.addmm.default: _addmm,
        aten.mm.default: lambda a, b: O.matmul(a, b),
        aten.bmm.default: lambda a, b: O.matmul(a, b),
        aten.matmul.default: lambda a, b: O.matmul(a, b),
        aten._native_batch_norm_legit_no_training.default: _batch_norm,
        aten.native_layer_norm.default: _layer_norm,
        aten.relu.default: O.relu,
        aten.gelu.default: _gelu,
        aten.silu.default: O.silu,
        aten.sigmoid.default: O.sigmoid,
        aten.tanh.default: O.tanh,
        aten.exp.default: O.exp,
        aten.log.default: O.log,
        aten.sqrt.default: O.sqrt,
        aten.rsqrt.default: O.rsqrt,
        aten.erf.default: O.erf,
        aten.abs.default: O.abs,
        aten.neg.default: O.negative,
        aten.hardtanh.default: _clamp,
        aten.clamp.default: _clamp,
        aten.pow.Tensor_Scalar: _pow,
        aten._softmax.default: _softmax("softmax"),
        aten._log_softmax.default: _softmax("log_softmax"),
        aten.add.Tensor: _binary("add"),
        aten.add.Scalar: _binary("add"),
        aten.sub.Tensor: _binary("subtract"),
        aten.sub.Scalar: _binary("subtract"),
        aten.rsub.Scalar: lambda a, b, alpha=1: _binary("subtract")(b, a * alpha if alpha != 1 else a),
        aten.mul.Tensor: _binary("multiply"),
        aten.mul.Scalar: _binary("multiply"),
        aten.div.Tensor: _binary("divide"),
        aten.div.Scalar: _binary("divide"),
        aten.maximum.default: _binary("maximum"),
        aten.minimum.default: _binary("minimum"),
        aten.eq.Scalar: _compare("equal"), aten.eq.Tensor: _compare("equal"),
        aten.ne.Scalar: _compare("not_equal"), aten.ne.Tensor: _compare("not_equal"),
        aten.lt.Scalar: _compare("less"), aten.lt.Tensor: _compare("less"),
        aten.le.Scalar: _compare("less_equal"), aten.le.Tensor: _compare("less_equal"),
        aten.gt.Scalar: _compare("greater"), aten.gt.Tensor: _compare("greater"),
        aten.ge.Scalar: _compare("greater_equal"), aten.ge.Tensor: _compare("greater_equal"),
        aten.where.self: _where,
        aten.view.default: _view,
        aten._unsafe_view.default: _view,
        aten.reshape.default: _view,
        aten.permute.default: lambda x, dims: O.transpose(x, axes=_dims(dims, len(x.shape))),
        aten.t.default: lambda x: O.transpose(x, axes=(1, 0)),
        aten.transpose.int: lambda x, a, b: O.transpose(x, axes=_swap(len(x.shape), a, b)),
        aten.expand.default: _expand,
        aten.unsqueeze.default: lambda x, d: O.expand_dims(x, axis=d % (len(x.shape) + 1)),
        aten.squeeze.dims: _squeeze,
        aten.squeeze.dim: lambda x, d: _squeeze(x, [d]),
        aten.squeeze.default: _squeeze,
        aten.cat.default: _cat,
        aten.slice.Tensor: _slice,
        aten.select.int: _select,
        aten.clone.default: lambda x, memory_format=None: x,
        aten.alias.default: lambda x: x,
        aten.lift_fresh_copy.default: lambda x: x,
        aten.detach.default: lambda x: x,
        aten._to_copy.default: _to_copy,
        aten.mean.dim: _mean,
        aten.mean.default: lambda x, dtype=None: _mean(x),
        aten.sum.dim_IntList: _reduce("sum"),
        aten.sum.default: lambda x, dtype=None: _reduce("sum")(x),
        aten.amax.default: _reduce("max"),
        aten.amin.default: _reduce("min"),
        aten.max_pool2d_with_indices.default: _max_pool,
        aten.avg_pool2d.default: _avg_pool,
        aten.embedding.default: _embedding,
        aten.scaled_dot_product_attention.default: _sdpa,
        aten._scaled_dot_product_flash_attention_for_cpu.default:     # (out, logsumexp)
            lambda q, k, v, dropout_p=0.0, is_causal=False, attn_mask=None, scale=None: (
                _sdpa(q, k, v, attn_mask, dropout_p, is_causal, scale), None),
        aten.logical_not.default: _logical_not,
        aten.any.dim: _any,
        aten.any.dims: _any,
        aten.any.default: lambda x: _any(x),
        aten.full_like.default: _full_like,
        aten.gather.default: _gather,
        aten.split_with_sizes.default: _split_with_sizes,
        aten.split.Tensor: _split,
        aten.constant_pad_nd.default: _constant_pad,
        aten._assert_tensor_metadata.default: lambda *a, **k: None,
    }


KEEP = (aten.scaled_dot_product_attention.default,
        aten._scaled_dot_product_flash_attention_for_cpu.default) if torch is not None else ()


# --------------------------------------------------------------------------- training ops
# The ops of AOTAutograd's forward (training batch norm, max pooling's indices) and backward
# graphs, written with graph ops.

def _dilate_pad(x, stride, pads):
    """``x`` (N, C, H, W) with ``stride - 1`` zeros between the elements of its last two
    axes, then padded by ``pads`` ((lo, hi) per axis; a negative amount crops)."""
    n, c, h, w = x.shape
    (sh, sw), pads = stride, [list(p) for p in pads]
    if (sh, sw) != (1, 1):
        x = O.reshape(x, newshape=(n, c, h, 1, w, 1))
        x = O.pad(x, pad_width=((0, 0), (0, 0), (0, 0), (0, sh - 1), (0, 0), (0, sw - 1)))
        x = O.reshape(x, newshape=(n, c, h * sh, w * sw))
        pads[0][1] -= sh - 1                     # the zeros after the last element
        pads[1][1] -= sw - 1
    grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
    if any(map(any, grow)):
        x = O.pad(x, pad_width=((0, 0), (0, 0)) + grow)
    crop = [(max(-lo, 0), max(-hi, 0)) for lo, hi in pads]
    if any(map(any, crop)):
        _, _, h2, w2 = x.shape
        x = O.strided_slice(x, begin=(0, 0, crop[0][0], crop[1][0]),
                            end=(n, c, h2 - crop[0][1], w2 - crop[1][1]))
    return x


def _flip_hw(w):
    """``w`` reversed along its last two axes."""
    for axis in (2, 3):
        k = w.shape[axis]
        w = O.take(w, Constant(np.arange(k - 1, -1, -1, dtype=np.int64)), axis=axis)
    return w


def _conv_backward(go, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding,
                   groups, output_mask):
    """(grad_input, grad_weight, grad_bias) of a 2-D convolution, each a convolution (or a
    sum) over the output gradient; None where ``output_mask`` does not ask for it."""
    (n, ci, h, wd), (co, cig, kh, kw), (_, _, ho, wo) = x.shape, w.shape, go.shape
    s, p, d, g = tuple(stride), tuple(padding), tuple(dilation), groups
    gi = gw = gb = None
    if output_mask[0]:       # full correlation of the dilated gradient with the flipped weight
        wt = O.reshape(w, newshape=(g, co // g, cig, kh, kw))
        wt = O.reshape(O.transpose(wt, axes=(0, 2, 1, 3, 4)), newshape=(ci, co // g, kh, kw))
        pads = [((k - 1) * dd - pp, size + pp - (o - 1) * ss - 1)
                for k, dd, pp, size, o, ss in zip((kh, kw), d, p, (h, wd), (ho, wo), s)]
        if s == (1, 1) and all(lo == hi >= 0 for lo, hi in pads):
            gi = O.conv2d(go, _flip_hw(wt), padding=(pads[0][0], pads[1][0]), dilation=d,
                          groups=g)
        else:
            gi = O.conv2d(_dilate_pad(go, s, pads), _flip_hw(wt), dilation=d, groups=g)
    if output_mask[1]:       # batch and channels swapped: the gradient is the kernel
        xt = O.reshape(x, newshape=(n, g, ci // g, h, wd))
        xt = O.reshape(O.transpose(xt, axes=(2, 1, 0, 3, 4)), newshape=(ci // g, g * n, h, wd))
        gw = O.conv2d(xt, O.transpose(go, axes=(1, 0, 2, 3)), stride=d, padding=p, dilation=s,
                      groups=g)
        if gw.shape[2:] != (kh, kw):             # the rows the forward's stride skipped
            gw = O.strided_slice(gw, begin=(0, 0, 0, 0), end=(cig, co, kh, kw))
        gw = O.transpose(gw, axes=(1, 0, 2, 3))
    if output_mask[2]:
        gb = O.sum(go, axis=(0, 2, 3))
    return (gi, gw, gb)


def _conv_backward_ok(node) -> bool:
    a = node.args
    return not a[7] and len(a[1].meta["val"].shape) == 4     # not transposed, 2-D


def _batch_norm_train(x, w, b, running_mean, running_var, training, momentum, eps):
    """Training batch norm: (out, batch mean, batch invstd, new running mean, new running
    var (unbiased))."""
    c = x.shape[1]
    axes = (0, *range(2, len(x.shape)))
    mean = O.mean(x, axis=axes)
    var = O.variance(x, axis=axes)
    w = w if w is not None else Constant(np.ones(c, x.dtype))
    b = b if b is not None else Constant(np.zeros(c, x.dtype))
    out = O.batch_norm(x, w, b, mean, var, epsilon=eps)
    count = int(np.prod(x.shape)) // c
    new_mean = running_mean * (1 - momentum) + mean * momentum
    new_var = running_var * (1 - momentum) + var * (momentum * count / max(count - 1, 1))
    return (out, mean, O.rsqrt(var + eps), new_mean, new_var)


def _pool_geometry(x, kernel, stride, padding):
    kernel = tuple(kernel) * (2 // len(kernel))
    stride = tuple(stride) * (2 // len(stride)) if stride else kernel
    padding = tuple(padding) * (2 // len(padding)) if isinstance(padding, (list, tuple)) \
        else (padding, padding)
    out = tuple((x.shape[2 + i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in (0, 1))
    return kernel, stride, padding, out


def _pool_base(h, w, stride, padding, out) -> np.ndarray:
    """The flat input index (in the H x W plane) of each window's first element."""
    oh, ow = np.arange(out[0]) * stride[0] - padding[0], np.arange(out[1]) * stride[1] - padding[1]
    return (oh[:, None] * w + ow[None, :]).astype(np.int64)


def _max_pool_indices(x, kernel, stride, padding):
    """max_pool2d's indices: the argmax (first of ties, as PyTorch) over the window's
    elements, each a strided slice of the (-inf) padded input, as a flat index."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = _pool_geometry(x, kernel, stride, padding)
    n, c, h, w = x.shape
    xp = x if (ph, pw) == (0, 0) else O.pad(
        x, pad_width=((0, 0), (0, 0), (ph, ph), (pw, pw)), value=float("-inf"))
    taps = [O.expand_dims(O.strided_slice(xp, begin=(0, 0, a, b),
                                          end=(n, c, a + (oh - 1) * sh + 1, b + (ow - 1) * sw + 1),
                                          strides=(1, 1, sh, sw)), axis=4)
            for a in range(kh) for b in range(kw)]
    arg = O.argmax(O.concatenate(*taps, axis=4), axis=4)
    offset = np.array([a * w + b for a in range(kh) for b in range(kw)], np.int64)
    return O.take(Constant(offset), arg, axis=0) + Constant(_pool_base(h, w, (sh, sw),
                                                                       (ph, pw), (oh, ow)))


def _max_pool_backward(go, x, kernel, stride, padding, dilation, ceil_mode, indices):
    """The output gradient at each window's argmax: per window element, the gradients whose
    index points at it, spread back over the input (dilated by the stride, shifted)."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = _pool_geometry(x, kernel, stride, padding)
    _, _, h, w = x.shape
    local = indices - Constant(_pool_base(h, w, (sh, sw), (ph, pw), (oh, ow)))
    zero = Constant(np.zeros((), go.dtype))
    gx = None
    for a in range(kh):
        for b in range(kw):
            g = O.where(O.equal(local, Constant(np.array(a * w + b, np.int64))), go, zero)
            g = _dilate_pad(g, (sh, sw), ((a - ph, h + ph - a - (oh - 1) * sh - 1),
                                          (b - pw, w + pw - b - (ow - 1) * sw - 1)))
            gx = g if gx is None else gx + g
    return gx


def _max_pool_ok(node, first=1) -> bool:
    """Max pooling (``first``: where its kernel size is among the args) without ceil mode or
    dilation."""
    a = list(node.args) + [None] * 8
    dilation, ceil_mode = a[first + 3], a[first + 4]
    return not ceil_mode and dilation in (None, 1, [1, 1], (1, 1))


def _threshold_backward(go, x, threshold):
    return O.where(O.less_equal(x, O.registry.as_node(threshold, x, "threshold_backward")),
                   Constant(np.zeros((), go.dtype)), go)


def _layer_norm_backward(go, x, shape, mean, rstd, w, b, output_mask):
    if len(shape) != 1:
        raise UnsupportedOpError("layer_norm backward over more than the last dimension")
    last = len(x.shape) - 1
    lead = tuple(range(last))
    xhat = (x - mean) * rstd
    gxhat = go * w if w is not None else go
    gi = gw = gb = None
    if output_mask[0]:
        gi = rstd * (gxhat - O.mean(gxhat, axis=(last,), keepdims=True)
                     - xhat * O.mean(gxhat * xhat, axis=(last,), keepdims=True))
    if output_mask[1] and w is not None:
        gw = O.sum(go * xhat, axis=lead)
    if output_mask[2] and b is not None:
        gb = O.sum(go, axis=lead)
    return (gi, gw, gb)


def _softmax_backward(go, y, dim, input_dtype):
    return y * (go - O.sum(go * y, axis=(dim % len(y.shape),), keepdims=True))


def _log_softmax_backward(go, y, dim, input_dtype):
    return go - O.exp(y) * O.sum(go, axis=(dim % len(y.shape),), keepdims=True)


def _embedding_backward(go, ids, num_weights, padding_idx, scale_grad_by_freq):
    """A one-hot matrix of the ids (the padding row matching none) times the gradient."""
    if scale_grad_by_freq:
        raise UnsupportedOpError("embedding backward with scale_grad_by_freq")
    m, dim = int(np.prod(ids.shape)), go.shape[-1]
    rows = np.arange(num_weights, dtype=np.int64)
    if 0 <= padding_idx < num_weights:
        rows[padding_idx] = -1
    ids = ids if ids.dtype == "int64" else O.cast(ids, dtype="int64")
    onehot = O.cast(O.equal(O.reshape(ids, newshape=(m, 1)), Constant(rows[None, :])),
                    dtype=go.dtype)
    return O.matmul(O.transpose(onehot, axes=(1, 0)), O.reshape(go, newshape=(m, dim)))


def _index_put(x, indices, values, accumulate=False):
    """``x[ids] += values`` along axis 0 (embedding backward's decomposition): a one-hot
    matrix of the ids times the values."""
    ids = indices[0]
    m, rows = int(np.prod(ids.shape)), x.shape[0]
    ids = ids if ids.dtype == "int64" else O.cast(ids, dtype="int64")
    ids = O.reshape(ids, newshape=(m, 1))
    ids = O.where(O.less(ids, Constant(np.zeros((), np.int64))),
                  ids + Constant(np.array(rows, np.int64)), ids)           # x[-1]: the last row
    onehot = O.cast(O.equal(ids, Constant(np.arange(rows, dtype=np.int64)[None, :])),
                    dtype=x.dtype)
    values = _expand(values, (*indices[0].shape, *x.shape[1:]))
    values = O.reshape(values, newshape=(m, int(np.prod(x.shape[1:]))))
    add = O.matmul(O.transpose(onehot, axes=(1, 0)), values)
    return x + O.reshape(add, newshape=x.shape)


def _index_put_ok(node) -> bool:
    """Accumulating, one index tensor (on axis 0)."""
    a = list(node.args) + [False]
    return bool(a[3]) and len(a[1]) == 1 and a[1][0] is not None


def _bool_only(node) -> bool:
    return all(isinstance(a, torch.fx.Node) and a.meta["val"].dtype == torch.bool
               for a in node.args)


if torch is not None:
    CONVERTERS.update({
        aten.index_put.default: _index_put,
        aten.bitwise_and.Tensor: lambda a, b: O.where(a, b, Constant(np.zeros((), "bool"))),
        aten.bitwise_or.Tensor: lambda a, b: O.where(a, Constant(np.ones((), "bool")), b),
        aten.bitwise_not.default: lambda x: O.equal(x, Constant(np.zeros((), "bool"))),
        aten.convolution_backward.default: _conv_backward,
        aten._native_batch_norm_legit_functional.default: _batch_norm_train,
        aten.max_pool2d_with_indices_backward.default: _max_pool_backward,
        aten.threshold_backward.default: _threshold_backward,
        aten.native_layer_norm_backward.default: _layer_norm_backward,
        aten._softmax_backward_data.default: _softmax_backward,
        aten._log_softmax_backward_data.default: _log_softmax_backward,
        aten.embedding_dense_backward.default: _embedding_backward,
    })

# Per-node conditions on top of ``CONVERTERS`` (what ``is_supported`` also asks): an op
# whose converter handles only some of its arguments, or leaves an output out (None).
NODE_CHECKS: dict = {}
if torch is not None:
    NODE_CHECKS = {
        aten.convolution_backward.default: _conv_backward_ok,
        aten._native_batch_norm_legit_functional.default: lambda n: bool(n.args[5]),
        aten.max_pool2d_with_indices.default: _max_pool_ok,
        aten.max_pool2d_with_indices_backward.default: lambda n: _max_pool_ok(n, 2),
        aten._native_batch_norm_legit_no_training.default: lambda n: not _used(n, 1, 2),
        aten._scaled_dot_product_flash_attention_for_cpu.default: lambda n: not _used(n, 1),
        aten.embedding_dense_backward.default: lambda n: not n.args[4],
        aten.index_put.default: _index_put_ok,
        aten.bitwise_and.Tensor: _bool_only,
        aten.bitwise_or.Tensor: _bool_only,
        aten.bitwise_not.default: _bool_only,
    }


def _used(node, *outputs) -> bool:
    """Whether any of the tuple ``outputs`` of ``node`` is read."""
    return any(u.target is operator.getitem and u.args[1] in outputs and u.users
               for u in node.users)


def _swap(nd, a, b):
    axes = list(range(nd))
    a, b = a % nd, b % nd
    axes[a], axes[b] = axes[b], axes[a]
    return tuple(axes)


def decompositions(table):
    """``table`` (PyTorch's Core ATen decompositions) without the ops converted whole:
    attention stays one op (matmul, softmax, matmul) instead of its decomposition's masks."""
    for op in KEEP:
        table.pop(op, None)
    return table


def is_supported(node) -> bool:
    """Whether the importer converts this FX node: a call of a supported op, or of any
    deterministic op on no tensors (``scalar_tensor``, ``arange``, ``full``, sizes), which
    the import evaluates."""
    if node.op != "call_function":
        return False
    if node.target in CONVERTERS:
        check = NODE_CHECKS.get(node.target)
        return check is None or check(node)
    if node.target is operator.getitem:
        return True
    name = str(node.target)
    return not any(isinstance(a, torch.fx.Node) and isinstance(a.meta.get("val"), torch.Tensor)
                   for a in _flatten((node.args, node.kwargs))) \
        and not any(w in name for w in ("rand", "empty", "normal", "bernoulli", "dropout"))


# --------------------------------------------------------------------------- import

@dataclass
class Imported:
    module: object              # the graph module
    inputs: list                # the FX placeholders that remain inputs, in order
    outputs: list               # per FX output: ("node", k) or ("value", python value)


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


def _const_eval(node, args, kwargs):
    """Run ``node``'s op in PyTorch on constant inputs; a constant (or tuple of them)."""
    def back(v):
        if isinstance(v, Constant):
            return torch.from_numpy(np.array(v.data))
        if isinstance(v, (list, tuple)):
            return type(v)(back(x) for x in v)
        return v
    out = node.target(*back(args), **{k: back(v) for k, v in kwargs.items()})

    name = next((a.name for a in _flatten((args, kwargs)) if isinstance(a, Constant) and a.name),
                "")

    def wrap(v):
        if isinstance(v, torch.Tensor):
            return Constant(_to_numpy(v), name)
        if isinstance(v, (list, tuple)):
            return tuple(wrap(x) for x in v)
        return v
    return wrap(out)


def import_graph(gm, constants: dict | None = None, names: dict | None = None) -> Imported:
    """Convert the FX graph ``gm`` (ATen level, each node's ``meta["val"]`` a tensor or fake
    tensor) into a graph module. ``constants``: placeholder name -> tensor to embed as a
    constant (parameters, buffers); ``names``: placeholder name -> the name of the graph
    input or constant."""
    from .. import graph as G
    constants, names = constants or {}, names or {}
    env: dict = {}
    inputs, variables = [], []
    missing = sorted({_op_name(n) for n in gm.graph.nodes
                      if n.op == "call_function" and not is_supported(n)})
    if missing:
        raise UnsupportedOpError(f"unsupported ops: {', '.join(missing)}")
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            name = names.get(n.name, n.name)
            if n.name in constants:
                env[n] = Constant(_to_numpy(constants[n.name]), name)
                continue
            val = n.meta.get("val")
            if not isinstance(val, torch.Tensor):
                env[n] = val                 # an int (a size) passed as an input
                continue
            if val.numel() == 0:             # nothing to read: a constant (torch.tensor([]))
                env[n] = Constant(np.empty(tuple(val.shape), dtype_of(val.dtype)), name)
                continue
            v = G.var(name, tuple(int(d) for d in val.shape), dtype_of(val.dtype))
            env[n] = v
            inputs.append(n)
            variables.append(v)
        elif n.op == "call_function":
            args = torch.fx.node.map_arg(n.args, lambda a: env[a])
            kwargs = torch.fx.node.map_arg(n.kwargs, lambda a: env[a])
            if n.target is operator.getitem:
                env[n] = args[0][args[1]]
                continue
            tensors = [a for a in _flatten((args, kwargs)) if isinstance(a, Node)]
            if tensors and all(isinstance(a, Constant) for a in tensors) or not tensors:
                env[n] = _const_eval(n, args, kwargs)
                continue
            try:
                env[n] = CONVERTERS[n.target](*args, **kwargs)
            except TensorlangError as e:
                raise UnsupportedOpError(f"{_op_name(n)} ({n.name}): {e}") from None
        elif n.op == "get_attr":             # a tensor attached to the graph module
            t = getattr(gm, n.target)
            env[n] = Constant(_to_numpy(t), n.target) if t.numel() else \
                Constant(np.empty(tuple(t.shape), dtype_of(t.dtype)), n.target)
        elif n.op == "output":
            outs = n.args[0] if isinstance(n.args[0], (list, tuple)) else [n.args[0]]
            results, spec, index = [], [], {}
            for o in outs:
                v = env[o] if isinstance(o, torch.fx.Node) else o
                if isinstance(v, Node):          # a node returned twice is one output
                    if v not in index:
                        index[v] = len(results)
                        results.append(v)
                    spec.append(("node", index[v]))
                else:
                    spec.append(("value", v))
            if not results:
                raise UnsupportedOpError("the graph has no tensor output")
            return Imported(G.Module(variables, results), inputs, spec)
        else:
            raise UnsupportedOpError(f"FX node kind {n.op!r} ({n.name})")
    raise UnsupportedOpError("the FX graph has no output node")


def _flatten(v):
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from _flatten(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _flatten(x)
    else:
        yield v


def _op_name(n) -> str:
    return str(n.target) if hasattr(n.target, "_schema") else getattr(n.target, "__name__",
                                                                        str(n.target))


# --------------------------------------------------------------------------- public entry points

def from_exported_program(ep, decompose: bool = True):
    """A graph module from a ``torch.export.ExportedProgram``: its user inputs become graph
    inputs (named as in the model's forward), its parameters, buffers and lifted constants
    become named constants (``layer1.0.conv1.weight``)."""
    from torch.export.graph_signature import InputKind
    if decompose:
        ep = ep.run_decompositions(decompositions(torch.export.default_decompositions()))
    sig = ep.graph_signature
    constants, names = {}, {}
    for spec in sig.input_specs:
        name = spec.arg.name
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            t = ep.state_dict.get(spec.target) if spec.target in ep.state_dict \
                else ep.constants[spec.target]
            constants[name] = t
            names[name] = spec.target
    imported = import_graph(ep.graph_module, constants, names)
    if any(kind == "value" for kind, _ in imported.outputs):
        raise UnsupportedOpError("the exported program returns non-tensor values")
    return imported.module


def from_fx(gm, example_inputs):
    """A graph module from an FX ``GraphModule`` (``torch.fx.symbolic_trace``) and example
    inputs: exported (``torch.export``) to Core ATen, then imported."""
    return from_exported_program(torch.export.export(gm, tuple(example_inputs)))
