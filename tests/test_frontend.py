"""The PyTorch front end against eager PyTorch: the ATen importer op by op (through
``torch.export``), ``from_fx``, the training-op converters against autograd, and the
``torch.compile(backend="tensorlang")`` backend for inference and training."""

import importlib
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

import tensorlang.graph as G  # noqa: E402
from tensorlang.errors import TensorlangError  # noqa: E402
from tensorlang.frontend import from_exported_program, from_fx  # noqa: E402
from examples.pytorch import training  # noqa: E402  (its small CNN and BERT)

aten = torch.ops.aten
backend = importlib.import_module("tensorlang.frontend.torch_backend")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch.manual_seed(0)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _np(t):
    return t.detach().numpy()


def _run_export(model, *inputs, decompose=True):
    """Export ``model``, import it, build it and run it: (graph module, outputs, eager)."""
    model = model.eval() if isinstance(model, nn.Module) else model
    with torch.no_grad():
        ref = model(*inputs)
    mod = from_exported_program(torch.export.export(model, inputs), decompose=decompose)
    out = G.build(mod)(*[_np(i) for i in inputs])
    ref = ref if isinstance(ref, (list, tuple)) else [ref]
    out = out if isinstance(out, (list, tuple)) else [out]
    return mod, out, ref


def _check_export(model, *inputs, rtol=1e-4, atol=1e-5, decompose=True):
    mod, out, ref = _run_export(model, *inputs, decompose=decompose)
    assert len(out) == len(ref)
    for o, r in zip(out, ref):
        assert o.shape == tuple(r.shape)
        if r.dtype in (torch.bool, torch.int64, torch.int32):
            np.testing.assert_array_equal(o, _np(r))
        else:
            np.testing.assert_allclose(o, _np(r), rtol=rtol, atol=atol)
    return mod


class Fn(nn.Module):
    """A module around a function (for ``torch.export``)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


# --------------------------------------------------------------------------- import, op by op

@pytest.mark.parametrize("kw", [dict(stride=1, padding=1), dict(stride=2, padding=1),
                                dict(stride=1, padding=2, dilation=2), dict(groups=2, padding=1),
                                dict(groups=4, padding=1, stride=2)],
                         ids=["pad", "stride", "dilation", "groups", "depthwise"])
def test_import_conv(kw):
    conv = nn.Sequential(nn.Conv2d(4, 8 if kw.get("groups") != 4 else 4, 3, **kw))
    mod = _check_export(conv, torch.randn(2, 4, 9, 9))
    assert "0.weight" in str(mod) and "0.bias" in str(mod)          # parameters: named constants


def test_import_matmul_family():
    w, b = torch.randn(5, 6), torch.randn(5)

    def fn(x, y, z):
        return (F.linear(x, w) + torch.mm(x, w.t().contiguous()).sum(),
                torch.addmm(b, x, w.t()), torch.bmm(y, z), torch.matmul(y, z[0]))
    _check_export(Fn(fn), torch.randn(3, 6), torch.randn(2, 3, 4), torch.randn(2, 4, 5))


def test_import_norms_and_activations():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(), nn.Hardtanh(-0.5, 0.7),
                          nn.Flatten(), nn.LayerNorm(4 * 6 * 6))
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    _check_export(model, torch.randn(2, 3, 8, 8))

    def fn(x):
        return (F.softmax(x, -1), F.log_softmax(x, 1), F.gelu(x), F.gelu(x, approximate="tanh"),
                F.silu(x), torch.sigmoid(x), torch.tanh(x))
    _check_export(Fn(fn), torch.randn(3, 7) * 3)


def test_import_pooling_and_reductions():
    def fn(x):
        return (F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 2), F.adaptive_avg_pool2d(x, 1),
                x.mean((2, 3)), x.sum(1, keepdim=True), x.amax(-1), x.mean())
    _check_export(Fn(fn), torch.randn(2, 3, 8, 8))


def test_import_shapes():
    def fn(x, y):
        a = x.view(2, 12).reshape(4, 6).permute(1, 0).transpose(0, 1)
        b = x.unsqueeze(1).expand(2, 5, 3, 4)
        return (a, b, torch.cat([x, y], 1), x[:, 1:3, ::2], x.select(1, -1),
                y.unsqueeze(0).squeeze(0), x[0])
    _check_export(Fn(fn), torch.randn(2, 3, 4), torch.randn(2, 1, 4))


def test_import_embedding_where_masks_unary():
    emb = nn.Embedding(10, 4)

    def fn(ids, x):
        e = emb(ids)
        m = (x > 0) & (x < 1.5)
        return (e, torch.where(x > 0.3, x, -x), x.masked_fill(x < 0, 0.5), m, x == 1.0,
                x.abs().pow(3) + x.abs().rsqrt() + x.abs().sqrt() + x.exp() + (x.abs() + 1).log(),
                x ** 2)
    _check_export(Fn(fn), torch.tensor([[1, 9, 0], [3, 3, 7]]), torch.randn(2, 3))


def test_import_dtype_promotion_and_constants():
    def fn(i, x):
        return (i + x, i * 2, i / 2, i.float() * x, x.to(torch.float64),
                torch.arange(3) + i, torch.full((2, 3), 1.5) * x, i > 2)
    _check_export(Fn(fn), torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.randn(2, 3))


@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_import_sdpa(mask):
    q, k, v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    m = None if mask is None else torch.rand(5, 6) > 0.3 if mask == "bool" else torch.randn(5, 6)
    if mask == "bool":
        m[:, 0] = True                                     # no fully masked row

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    _check_export(Fn(fn), q, k, v)


def test_from_fx():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(4, 6)
    mod = from_fx(torch.fx.symbolic_trace(model), (x,))
    assert "0.weight" in str(mod)
    np.testing.assert_allclose(G.build(mod)(_np(x)), _np(model(x)), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- training ops vs autograd

def _check_aten(fn, inputs, refs, rtol=1e-4, atol=1e-5):
    """``fn`` (calling ATen ops directly) imported without decomposition against ``refs``."""
    mod = from_exported_program(torch.export.export(Fn(fn), tuple(inputs)), decompose=False)
    out = G.build(mod)(*[_np(i) for i in inputs])
    out = out if isinstance(out, (list, tuple)) else [out]
    assert len(out) == len(refs)
    for o, r in zip(out, refs):
        np.testing.assert_allclose(o, _np(r), rtol=rtol, atol=atol)


@pytest.mark.parametrize("kw,size", [(dict(padding=1), 8), (dict(stride=2, padding=1), 9),
                                     (dict(stride=2, dilation=2, padding=1), 10),
                                     (dict(groups=2, padding=0), 7),
                                     (dict(groups=4, stride=2, padding=1), 8)],
                         ids=["pad", "stride", "stride-dilation", "groups", "depthwise"])
def test_convolution_backward(kw, size):
    stride, padding, dilation = kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1)
    groups = kw.get("groups", 1)
    x = torch.randn(2, 4, size, size, requires_grad=True)
    w = torch.randn(6 if groups != 4 else 4, 4 // groups, 3, 3, requires_grad=True)
    b = torch.randn(w.shape[0], requires_grad=True)
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    go = torch.randn_like(y)
    refs = torch.autograd.grad(y, (x, w, b), go)
    s, p, d = [stride] * 2, [padding] * 2, [dilation] * 2

    def fn(go, x, w):
        return aten.convolution_backward(go, x, w, [w.shape[0]], s, p, d, False, [0, 0], groups,
                                         [True, True, True])
    _check_aten(fn, (go, x.detach(), w.detach()), refs, atol=1e-4)

    def grad_weight_only(go, x, w):                          # output_mask: just the weight
        gi, gw, gb = aten.convolution_backward(go, x, w, None, s, p, d, False, [0, 0], groups,
                                               [False, True, False])
        assert gi is None and gb is None
        return gw
    _check_aten(grad_weight_only, (go, x.detach(), w.detach()), refs[1:2], atol=1e-4)


def test_batch_norm_training_and_backward_ops():
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    w, b, rm, rv = torch.rand(3) + 0.5, torch.randn(3), torch.randn(3), torch.rand(3) + 0.5

    def bn(x, w, b, rm, rv):
        return aten._native_batch_norm_legit_functional(x, w, b, rm, rv, True, 0.1, 1e-5)
    _check_aten(bn, (x, w, b, rm, rv), bn(x, w, b, rm, rv), atol=1e-5)
    ref_rm, ref_rv = rm.clone(), rv.clone()                 # what nn.BatchNorm2d does
    F.batch_norm(x, ref_rm, ref_rv, w, b, training=True, momentum=0.1)
    np.testing.assert_allclose(_np(bn(x, w, b, rm, rv)[3]), _np(ref_rm), rtol=1e-5)
    np.testing.assert_allclose(_np(bn(x, w, b, rm, rv)[4]), _np(ref_rv), rtol=1e-5)

    # threshold_backward, softmax / log_softmax backward, layer_norm backward vs autograd
    a = torch.randn(3, 6, requires_grad=True)
    go = torch.randn(3, 6)
    lw, lb = torch.randn(6, requires_grad=True), torch.randn(6, requires_grad=True)
    y_relu, y_sm, y_lsm = F.relu(a), F.softmax(a, -1), F.log_softmax(a, 0)
    y_ln = F.layer_norm(a, (6,), lw, lb)
    refs = [torch.autograd.grad(y, a, go, retain_graph=True)[0] for y in (y_relu, y_sm, y_lsm)]
    refs += list(torch.autograd.grad(y_ln, (a, lw, lb), go))
    _, mean, rstd = aten.native_layer_norm(a.detach(), [6], lw.detach(), lb.detach(), 1e-5)

    def fn(go, a, y_relu, y_sm, y_lsm, mean, rstd, lw, lb):
        return (aten.threshold_backward(go, y_relu, 0.0),
                aten._softmax_backward_data(go, y_sm, -1, torch.float32),
                aten._log_softmax_backward_data(go, y_lsm, 0, torch.float32),
                *aten.native_layer_norm_backward(go, a, [6], mean, rstd, lw, lb,
                                                 [True, True, True]))
    _check_aten(fn, [t.detach() for t in (go, a, y_relu, y_sm, y_lsm, mean, rstd, lw, lb)], refs)


def test_embedding_and_max_pool_backward():
    table = torch.randn(7, 4, requires_grad=True)
    ids = torch.tensor([[1, 3, 3], [0, 6, 1]])
    go = torch.randn(2, 3, 4)
    ref = torch.autograd.grad(F.embedding(ids, table), table, go)[0]
    ref_pad = torch.autograd.grad(F.embedding(ids, table, padding_idx=3), table, go)[0]

    def emb(go, ids):
        return (aten.embedding_dense_backward(go, ids, 7, -1, False),
                aten.embedding_dense_backward(go, ids, 7, 3, False),
                aten.index_put(torch.zeros(7, 4), [ids], go, True))
    _check_aten(emb, (go, ids), [ref, ref_pad, ref])

    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    x.data[0, 0, :2, :2] = 1.0                       # a tie: the first element takes the gradient
    for kernel, stride, padding in [(2, 2, 0), (3, 2, 1)]:
        y, idx = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
        g = torch.randn_like(y)
        gx = torch.autograd.grad(y, x, g)[0]

        def mp(g, x):
            y, i = aten.max_pool2d_with_indices(x, [kernel] * 2, [stride] * 2, [padding] * 2)
            return y, i, aten.max_pool2d_with_indices_backward(
                g, x, [kernel] * 2, [stride] * 2, [padding] * 2, [1, 1], False, i)
        mod = from_exported_program(torch.export.export(Fn(mp), (g, x.detach())),
                                    decompose=False)
        out = G.build(mod)(_np(g), _np(x))
        np.testing.assert_allclose(out[0], _np(y), rtol=1e-6)
        np.testing.assert_array_equal(out[1], _np(idx))
        np.testing.assert_allclose(out[2], _np(gx), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- torch.compile

def test_backend_is_registered():
    from importlib.metadata import entry_points
    assert "tensorlang" in [e.name for e in entry_points(group="torch_dynamo_backends")]


def _parts(fn):
    """The CompiledParts the backend made while running ``fn``."""
    made, orig = [], backend.CompiledPart.__init__

    def init(self, *a, **k):
        orig(self, *a, **k)
        made.append(self)
    backend.CompiledPart.__init__ = init
    try:
        return fn(), made
    finally:
        backend.CompiledPart.__init__ = orig


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_compile_inference_and_new_batch(mode):
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).eval()
    model[1].running_mean.uniform_(-1, 1)
    compiled = torch.compile(model, backend="tensorlang")
    ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode
    x2, x5 = torch.randn(2, 3, 8, 8), torch.randn(5, 3, 8, 8)
    with ctx():
        (y2, y5), parts = _parts(lambda: (compiled(x2), compiled(x5)))
        ref2, ref5 = model(x2), model(x5)
    assert isinstance(y2, torch.Tensor) and y2.shape == (2, 4) and y5.shape == (5, 4)
    torch.testing.assert_close(y2, ref2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y5, ref5, rtol=1e-4, atol=1e-5)
    assert sum(len(p.builds) for p in parts) >= 2          # one build per batch size
    assert all(len(p.builds) <= 2 for p in parts)


def test_compile_options():
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh()).eval()
    x = torch.randn(3, 4)
    with torch.no_grad():
        y = torch.compile(model, backend="tensorlang", options={"opt_level": 0})(x)
        torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-6)
        torch._dynamo.reset()
        with pytest.raises(Exception, match="unknown options \\['bogus'\\]"):
            torch.compile(model, backend="tensorlang", options={"bogus": 1})(x)


class CumsumModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 5)

    def forward(self, x):
        return torch.relu(torch.cumsum(self.fc(x), dim=1)) * 2


def test_compile_unsupported_op_partitions_or_raises():
    model = CumsumModel().eval()
    x = torch.randn(3, 5)
    with torch.no_grad():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = torch.compile(model, backend="tensorlang")(x)
        mine = [w for w in caught if issubclass(w.category, backend.TensorlangWarning)]
        assert len(mine) == 1 and "aten.cumsum.default x1" in str(mine[0].message)
        torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-6)
        torch._dynamo.reset()
        with pytest.raises(Exception, match="strict.*aten.cumsum") as info:
            torch.compile(model, backend="tensorlang", options={"strict": True})(x)
    err = info.value
    err = getattr(err, "inner_exception", err)            # Dynamo wraps the backend's error
    assert isinstance(err, TensorlangError)


def test_compile_requires_grad_matches_eager():
    model = nn.Sequential(nn.Linear(4, 3), nn.GELU()).train()
    x = torch.randn(2, 4)
    y = torch.compile(model, backend="tensorlang")(x)
    ref = model(x)
    assert isinstance(y, torch.Tensor) and y.requires_grad == ref.requires_grad is True
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert not torch.compile(model, backend="tensorlang")(x).requires_grad


# --------------------------------------------------------------------------- training

def SmallCNN():
    return training.SmallCNN(channels=8, image=8)


def SmallBert():
    return training.SmallBert(vocab=50, dim=32)


def _train(model, batches, compiled, steps=4):
    model = model.train()
    run = torch.compile(model, backend="tensorlang") if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for x, y in batches[:steps]:
        opt.zero_grad()
        loss = F.cross_entropy(run(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, model.state_dict()


@pytest.mark.parametrize("name", ["cnn", "bert"])
def test_training_matches_eager(name):
    torch.manual_seed(1)
    if name == "cnn":
        make = SmallCNN
        batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))) for _ in range(4)]
    else:
        make = SmallBert
        batches = [(torch.randint(0, 50, (4, 6)), torch.randint(0, 4, (4,))) for _ in range(4)]
    eager_model = make()
    model = make()
    model.load_state_dict(eager_model.state_dict())
    ref_losses, ref_state = _train(eager_model, batches, compiled=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses, state = _train(model, batches, compiled=True)
    in_torch = [str(w.message) for w in caught if issubclass(w.category, backend.TensorlangWarning)]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    assert losses[-1] != losses[0]                          # the weights did change
    for k, v in ref_state.items():
        torch.testing.assert_close(state[k], v, rtol=1e-4, atol=1e-5, msg=k)
    # forward and backward run in tensorlang (the running statistics' in-place update, a
    # copy_ into the buffers, is an input mutation PyTorch applies: not a fallback)
    assert in_torch == []
