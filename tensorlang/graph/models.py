"""Whole networks written with ``G``, with random weights: ResNet-50 (torchvision's v1.5)
and a stack of BERT-base encoder layers (Hugging Face's ``BertLayer``).

Each builder returns ``(module, example_inputs)``. The weights are constants named after
the reference implementation's parameters (``layer1.0.conv1.weight``,
``encoder.layer.0.attention.self.query.weight``); ``params(module)`` gives them back as a
dict, so a reference written elsewhere (numpy, PyTorch) can run the same network.

The weights are random but scaled so that activations stay O(1) through the whole network
(He-style for convolutions, 1/sqrt(fan_in) for dense layers; the last batch norm of each
bottleneck scales its branch down, as the residual stream would otherwise grow with depth).
"""

from __future__ import annotations

import math

import numpy as np

from . import op
from .builder import const, var
from .ir import Constant, Module

RESNET50_LAYERS = (3, 4, 6, 3)


def params(mod: Module) -> dict:
    """The named constants of ``mod``: {name: array}."""
    return {n.name: n.data for n in mod.nodes() if isinstance(n, Constant) and n.name}


class _Weights:
    """Named random constants drawn in a fixed order from one seed."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def normal(self, name, shape, std, mean=0.0):
        a = self.rng.normal(mean, std, shape).astype(np.float32)
        return const(a, name=name)

    def uniform(self, name, shape, lo, hi):
        return const(self.rng.uniform(lo, hi, shape).astype(np.float32), name=name)


# --------------------------------------------------------------------------- ResNet-50

def _conv_bn(w: _Weights, x, name, bn, cout, k, stride=1, gamma=(0.5, 1.0)):
    """conv (no bias) + inference batch norm, torchvision's names ``{name}.weight`` and
    ``{bn}.weight/bias/running_mean/running_var``."""
    cin = x.shape[1]
    weight = w.normal(f"{name}.weight", (cout, cin, k, k), math.sqrt(2.0 / (cin * k * k)))
    y = op.conv2d(x, weight, stride=stride, padding=k // 2)
    g = w.uniform(f"{bn}.weight", (cout,), *gamma)
    b = w.normal(f"{bn}.bias", (cout,), 0.1)
    m = w.normal(f"{bn}.running_mean", (cout,), 0.1)
    v = w.uniform(f"{bn}.running_var", (cout,), 0.5, 1.5)
    return op.batch_norm(y, g, b, m, v, epsilon=1e-5)


def _bottleneck(w: _Weights, x, name, planes, stride):
    out = op.relu(_conv_bn(w, x, f"{name}.conv1", f"{name}.bn1", planes, 1))
    out = op.relu(_conv_bn(w, out, f"{name}.conv2", f"{name}.bn2", planes, 3, stride))
    out = _conv_bn(w, out, f"{name}.conv3", f"{name}.bn3", planes * 4, 1, gamma=(0.1, 0.3))
    if stride != 1 or x.shape[1] != planes * 4:
        x = _conv_bn(w, x, f"{name}.downsample.0", f"{name}.downsample.1", planes * 4, 1, stride)
    return op.relu(out + x)


def resnet50(batch: int = 1, image: int = 224, num_classes: int = 1000, seed: int = 0,
             width: float = 1.0, layers=RESNET50_LAYERS):
    """torchvision's ResNet-50 (v1.5: the stride is on the 3x3 conv of a bottleneck):
    ``(module, [x])`` with x of shape (batch, 3, image, image). ``layers`` (blocks per stage)
    and ``width`` (times the base width 64) make smaller versions for tests."""
    w = _Weights(seed)
    base = max(1, int(round(64 * width)))
    x = var("x", (batch, 3, image, image))
    y = op.relu(_conv_bn(w, x, "conv1", "bn1", base, 7, 2))
    y = op.max_pool2d(y, kernel=3, stride=2, padding=1)
    for stage, blocks in enumerate(layers):
        planes = base * 2 ** stage
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            y = _bottleneck(w, y, f"layer{stage + 1}.{i}", planes, stride)
    y = op.flatten(op.adaptive_avg_pool2d(y, 1))
    feat = y.shape[1]
    y = op.linear(y, w.normal("fc.weight", (num_classes, feat), 1 / math.sqrt(feat)),
                  w.normal("fc.bias", (num_classes,), 0.1))
    inputs = [w.rng.standard_normal((batch, 3, image, image)).astype(np.float32)]
    return Module([x], [y]), inputs


# --------------------------------------------------------------------------- BERT

def _dense(w: _Weights, x, name, n):
    k = x.shape[-1]
    return op.linear(x, w.normal(f"{name}.weight", (n, k), 1 / math.sqrt(k)),
                     w.normal(f"{name}.bias", (n,), 0.1))


def _layer_norm(w: _Weights, x, name, eps):
    h = x.shape[-1]
    return op.layer_norm(x, w.normal(f"{name}.weight", (h,), 0.1, mean=1.0),
                         w.normal(f"{name}.bias", (h,), 0.1), epsilon=eps)


def _bert_layer(w: _Weights, h, mask, name, heads, intermediate, eps):
    B, S, H = h.shape
    d = H // heads

    def split_heads(t, axes):                 # (B, S, H) -> (B, heads, S, d), or K's (.., d, S)
        return op.transpose(op.reshape(t, newshape=(B, S, heads, d)), axes=axes)

    q = split_heads(_dense(w, h, f"{name}.attention.self.query", H), (0, 2, 1, 3))
    kt = split_heads(_dense(w, h, f"{name}.attention.self.key", H), (0, 2, 3, 1))
    v = split_heads(_dense(w, h, f"{name}.attention.self.value", H), (0, 2, 1, 3))
    scores = op.matmul(q, kt) * (1.0 / math.sqrt(d)) + mask
    ctx = op.matmul(op.softmax(scores, axis=-1), v)
    ctx = op.reshape(op.transpose(ctx, axes=(0, 2, 1, 3)), newshape=(B, S, H))
    a = _dense(w, ctx, f"{name}.attention.output.dense", H)
    a = _layer_norm(w, a + h, f"{name}.attention.output.LayerNorm", eps)
    i = op.gelu(_dense(w, a, f"{name}.intermediate.dense", intermediate))
    o = _dense(w, i, f"{name}.output.dense", H)
    return _layer_norm(w, o + a, f"{name}.output.LayerNorm", eps)


def bert_encoder(layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072,
                 seq: int = 128, batch: int = 1, seed: int = 0, eps: float = 1e-12):
    """A stack of BERT encoder layers (BERT-base by default): ``(module, [hidden_states,
    attention_mask])``, hidden_states (batch, seq, hidden) and the additive mask (batch, 1,
    1, seq) (0 where attended, -10000 where masked; the example masks the last quarter of
    the tokens, as padding would)."""
    if hidden % heads:
        raise ValueError(f"bert_encoder: {heads} heads do not divide hidden {hidden}")
    w = _Weights(seed)
    h = var("hidden_states", (batch, seq, hidden))
    mask = var("attention_mask", (batch, 1, 1, seq))
    y = h
    for i in range(layers):
        y = _bert_layer(w, y, mask, f"encoder.layer.{i}", heads, intermediate, eps)
    x = w.rng.standard_normal((batch, seq, hidden)).astype(np.float32)
    m = np.zeros((batch, 1, 1, seq), np.float32)
    m[..., seq - seq // 4:] = -10000.0           # the last quarter of the tokens is padding
    return Module([h, mask], [y]), [x, m]
