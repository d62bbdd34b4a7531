"""Whole networks written with ``G`` (``tensorlang.graph.models``): a small ResNet and a small
BERT, compiled at every opt level, against the interpreter, against a numpy reference
written here from the same weights, and against the benchmark's PyTorch networks."""

import math

import numpy as np
import pytest

from tensorlang import graph as G
from tensorlang.graph import models

SMALL_RESNET = dict(layers=(1, 2, 1, 1), image=64, width=0.25, num_classes=10)
SMALL_BERT = dict(layers=2, hidden=64, heads=4, intermediate=128, seq=16, batch=2)
LEVELS = (0, 1, 2, 3)


# --------------------------------------------------------------------------- numpy references

def conv2d(x, w, stride=1, padding=0):
    """NCHW x OIHW, as a matrix product of the (kh, kw, ci) patches (im2col)."""
    co, ci, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]                     # n, ci, oh, ow, kh, kw
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True)


def batch_norm(x, p, name):
    g, b, m, v = (p[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
    s = g / np.sqrt(v + 1e-5)
    return x * s[:, None, None] + (b - m * s)[:, None, None]


def max_pool_3x3_s2(x):
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max((4, 5))


def resnet_ref(x, p, layers):
    relu = (lambda t: np.maximum(t, 0))
    y = relu(batch_norm(conv2d(x, p["conv1.weight"], 2, 3), p, "bn1"))
    y = max_pool_3x3_s2(y)
    for s, blocks in enumerate(layers):
        for i in range(blocks):
            n = f"layer{s + 1}.{i}"
            stride = 2 if s > 0 and i == 0 else 1
            o = relu(batch_norm(conv2d(y, p[f"{n}.conv1.weight"]), p, f"{n}.bn1"))
            o = relu(batch_norm(conv2d(o, p[f"{n}.conv2.weight"], stride, 1), p, f"{n}.bn2"))
            o = batch_norm(conv2d(o, p[f"{n}.conv3.weight"]), p, f"{n}.bn3")
            if f"{n}.downsample.0.weight" in p:
                y = batch_norm(conv2d(y, p[f"{n}.downsample.0.weight"], stride), p,
                               f"{n}.downsample.1")
            y = relu(o + y)
    return y.mean((2, 3)) @ p["fc.weight"].T + p["fc.bias"]


def layer_norm(x, p, name, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * p[f"{name}.weight"] + p[f"{name}.bias"]


def bert_ref(h, mask, p, layers, heads):
    B, S, H = h.shape
    d = H // heads
    erf = np.vectorize(math.erf)
    for i in range(layers):
        n = f"encoder.layer.{i}"

        def lin(x, name):
            return x @ p[f"{n}.{name}.weight"].T + p[f"{n}.{name}.bias"]

        def heads_of(t):                                    # (B, heads, S, d)
            return t.reshape(B, S, heads, d).transpose(0, 2, 1, 3)

        q, k, v = (heads_of(lin(h, f"attention.self.{w}")) for w in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask
        e = np.exp(s - s.max(-1, keepdims=True))
        ctx = (e / e.sum(-1, keepdims=True)) @ v
        a = lin(ctx.transpose(0, 2, 1, 3).reshape(B, S, H), "attention.output.dense")
        a = layer_norm(a + h, p, f"{n}.attention.output.LayerNorm")
        f = lin(a, "intermediate.dense")
        f = 0.5 * f * (1 + erf(f / math.sqrt(2)))
        h = layer_norm(lin(f, "output.dense") + a, p, f"{n}.output.LayerNorm")
    return h


def f64(arrays):
    return [a.astype(np.float64) for a in arrays]


def assert_close(got, expect, rtol=1e-3):
    """float32 against a float64 reference: errors within rtol of the output's scale."""
    got = np.asarray(got)
    assert got.shape == expect.shape
    scale = np.abs(expect).max()
    assert scale > 0.1                                      # O(1) values, not a vanished output
    np.testing.assert_allclose(got, expect, rtol=rtol, atol=rtol * scale)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def small_resnet():
    mod, inputs = models.resnet50(**SMALL_RESNET)
    p = {k: v.astype(np.float64) for k, v in models.params(mod).items()}
    return mod, inputs, resnet_ref(*f64(inputs), p, SMALL_RESNET["layers"])


@pytest.fixture(scope="module")
def small_bert():
    mod, inputs = models.bert_encoder(**SMALL_BERT)
    p = {k: v.astype(np.float64) for k, v in models.params(mod).items()}
    return mod, inputs, bert_ref(*f64(inputs), p, SMALL_BERT["layers"], SMALL_BERT["heads"])


@pytest.fixture(scope="module")
def built(small_resnet, small_bert):
    """Both networks compiled at every opt level: {(name, level): lib}."""
    nets = {"resnet": small_resnet[0], "bert": small_bert[0]}
    return {(n, lvl): G.build(m, opt_level=lvl) for n, m in nets.items() for lvl in LEVELS}


# --------------------------------------------------------------------------- the networks

def test_resnet_structure_and_names():
    mod, (x,) = models.resnet50(**SMALL_RESNET)
    p = models.params(mod)
    assert x.shape == (1, 3, 64, 64) and mod.outputs[0].shape == (1, 10)
    # a bottleneck: 1x1 -> 3x3 (stride here, v1.5) -> 1x1 (4x the planes), projection shortcut
    assert p["layer2.0.conv1.weight"].shape == (32, 64, 1, 1)
    assert p["layer2.0.conv2.weight"].shape == (32, 32, 3, 3)
    assert p["layer2.0.conv3.weight"].shape == (128, 32, 1, 1)
    assert p["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert "layer2.1.downsample.0.weight" not in p
    assert (p["layer2.0.bn2.running_var"] > 0).all()
    full = models.params(models.resnet50()[0])
    n = sum(a.size for a in full.values())
    assert n == 25_557_032 + 2 * 26_560    # torchvision's parameters, + BN running stats


def test_bert_structure_and_names():
    mod, (h, mask) = models.bert_encoder(**SMALL_BERT)
    p = models.params(mod)
    assert h.shape == (2, 16, 64) and mask.shape == (2, 1, 1, 16)
    assert (mask[..., :12] == 0).all() and (mask[..., 12:] == -10000).all()
    assert p["encoder.layer.1.intermediate.dense.weight"].shape == (128, 64)
    assert p["encoder.layer.1.output.LayerNorm.bias"].shape == (64,)
    full = models.params(models.bert_encoder(layers=1)[0])
    assert sum(a.size for a in full.values()) == 7_087_872      # one BERT-base layer


def test_references_agree_with_the_interpreter(small_resnet, small_bert):
    for mod, inputs, expect in (small_resnet, small_bert):
        assert_close(G.evaluate(mod, *inputs)[0], expect, rtol=1e-4)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("net", ["resnet", "bert"])
def test_compiled_network_matches_references(built, small_resnet, small_bert, net, level):
    mod, inputs, expect = small_resnet if net == "resnet" else small_bert
    out = built[(net, level)](*inputs)
    assert_close(out, G.evaluate(mod, *inputs)[0], rtol=1e-4)
    assert_close(out, expect, rtol=1e-4)


@pytest.mark.parametrize("net", ["resnet", "bert"])
def test_optimisation_fuses_and_plans(built, net):
    lo, hi = built[(net, 0)], built[(net, 3)]
    assert hi.kernel_count < lo.kernel_count
    for lib in (built[(net, lvl)] for lvl in LEVELS):
        assert 0 < lib.memory.planned_bytes <= lib.memory.naive_bytes
        assert lib.compile_seconds > 0


def test_masked_tokens_are_ignored(built, small_bert):
    """Changing the hidden states of masked tokens changes nothing at attended positions."""
    _, (h, mask), _ = small_bert
    lib = built[("bert", 3)]
    h2 = h.copy()
    h2[:, 12:] = np.random.default_rng(1).standard_normal(h2[:, 12:].shape)
    a, b = lib(h, mask), lib(h2, mask)
    np.testing.assert_allclose(a[:, :12], b[:, :12], rtol=1e-4, atol=1e-4)
    assert np.abs(a[:, 12:] - b[:, 12:]).max() > 0.1


def test_benchmark_torch_networks_are_the_same(small_resnet, small_bert):
    torch = pytest.importorskip("torch")
    from benchmarks.graph_models import torch_bert, torch_resnet
    mod, inputs, expect = small_resnet
    with torch.inference_mode():
        got = torch_resnet(torch, models.params(mod))(*map(torch.from_numpy, inputs))
    assert_close(got.numpy(), expect, rtol=1e-4)
    mod, inputs, expect = small_bert
    with torch.inference_mode():
        got = torch_bert(torch, models.params(mod), SMALL_BERT["heads"])(*map(torch.from_numpy, inputs))
    assert_close(got.numpy(), expect, rtol=1e-4)


def test_benchmark_smoke_run(capsys):
    pytest.importorskip("torch")
    from benchmarks import graph_models
    assert graph_models.main(["--models", "tiny", "--levels", "0,3", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "LLVM `" in out and "### tiny ResNet" in out and "### tiny BERT" in out
    assert out.count("| tensorlang O3 | ") == 2 and "not timed" not in out
