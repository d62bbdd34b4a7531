"""Hugging Face ``transformers`` models (built from small configs with random weights; nothing
is downloaded) compiled by tensorlang through both front ends, against eager PyTorch:

* ``torch.export`` -> ``frontend.from_exported_program`` -> ``graph.build``: every op must
  convert (no fallback on this path);
* ``torch.compile(model, backend="tensorlang")``.

Also: the converters these models needed, each on an input-dependent graph, and the smoke
run of ``python -m benchmarks --models --tiny``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # nothing may reach the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


from benchmarks import models as bm  # noqa: E402
from tensorlang import graph as G  # noqa: E402
from tensorlang.frontend import UnsupportedOpError, from_exported_program  # noqa: E402
from tensorlang.frontend.torch_backend import TensorlangWarning  # noqa: E402

from .conftest import run_python  # noqa: E402

RTOL = 1e-4                      # max |diff| / max |eager|
MODELS = ["resnet50", "mobilenet_v2", "bert", "gpt2", "vit"]


def scaled_error(got, ref) -> float:
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.isfinite(got).all()
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def eager(name):
    _, wrapper, x = bm.make(name, tiny=True)
    with torch.no_grad():
        ref = wrapper(x)
    assert np.abs(ref.numpy()).max() > 0
    return wrapper, x, ref.numpy()


@pytest.mark.parametrize("name", MODELS)
def test_export_path_matches_eager(name):
    wrapper, x, ref = eager(name)
    with torch.no_grad():
        ep = torch.export.export(wrapper, (x,))
    mod = from_exported_program(ep)               # raises if any op is not converted
    lib = G.build(mod)
    out = lib(x.numpy())
    assert scaled_error(out, ref) <= RTOL
    assert lib.compile_seconds > 0
    # the parameters are named constants, not inputs: one input, the image or the ids
    assert [i.name for i in lib.inputs] == ["x"]



@pytest.mark.parametrize("name", MODELS)
def test_torch_compile_matches_eager(name):
    wrapper, x, ref = eager(name)
    c = torch.compile(wrapper, backend="tensorlang")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TensorlangWarning)   # every op runs in tensorlang
        out = c(x)
        again = c(x)                                        # the cached build
    assert scaled_error(out.numpy(), ref) <= RTOL
    assert scaled_error(again.numpy(), ref) <= RTOL


def test_torch_compile_another_input_builds_again():
    wrapper, x, _ = eager("bert")
    c = torch.compile(wrapper, backend="tensorlang", dynamic=False)
    y = torch.randint(0, 100, (1, 16), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        c(x)
        got, ref = c(y).numpy(), wrapper(y).numpy()
    assert not np.array_equal(y.numpy(), x.numpy())
    assert scaled_error(got, ref) <= RTOL


# --------------------------------------------------------------------------- converters

def export_and_compare(fn, *inputs, rtol=1e-6):
    class M(torch.nn.Module):
        def forward(self, *a):
            return fn(*a)
    ep = torch.export.export(M(), tuple(inputs))
    lib = G.build(from_exported_program(ep))
    got = lib(*[t.numpy() for t in inputs])
    ref = fn(*inputs).numpy()
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.dtype, ref.dtype)
    if ref.dtype == bool:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather_with_input_indices(dim):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, generator=g)
    shape = [3, 4, 5]
    shape[dim] = 6                               # index longer than x along dim
    shape[(dim + 1) % 3] -= 1                    # and shorter on another axis
    idx = torch.randint(0, x.shape[dim], shape, generator=g)
    export_and_compare(lambda a, i: torch.gather(a, dim, i) * 2, x, idx)


def test_any_and_logical_not():
    x = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
    export_and_compare(lambda a: torch.logical_not(torch.any(a != 0, dim=-1, keepdim=True)), x)
    export_and_compare(lambda a: torch.any(a > 0.5, dim=0), x)
    export_and_compare(lambda a: torch.logical_not(a), x)


def test_full_like_and_the_masked_softmax_guard():
    """The pattern transformers' attention emits: rows that are all -inf give zeros."""
    s = torch.tensor([[1.0, float("-inf"), 2.0], [float("-inf")] * 3])

    def f(a):
        p = torch.softmax(a, -1)
        dead = torch.logical_not(torch.any(torch.logical_not(a == float("-inf")), -1, True))
        return torch.where(dead, torch.full_like(p, 0.0), p)
    export_and_compare(f, s)


@pytest.mark.parametrize("pad", [(0, 1, 0, 1), (1, 1, 2, 0), (1, 2)])
def test_constant_pad(pad):
    x = torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    export_and_compare(lambda a: torch.nn.functional.pad(a, pad, value=0.5) + 1, x)


def test_constant_pad_crop_is_unsupported():
    x = torch.randn(1, 2, 5, 6)

    class M(torch.nn.Module):
        def forward(self, a):
            return torch.nn.functional.pad(a, (-1, 0)) + 1
    with pytest.raises(UnsupportedOpError, match="negative"):
        from_exported_program(torch.export.export(M(), (x,)))


def test_split_with_sizes_and_split():
    x = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    export_and_compare(lambda a: torch.cat([p * (i + 1) for i, p in
                                            enumerate(torch.split(a, [3, 5, 2], dim=1))], 1), x)
    export_and_compare(lambda a: sum(p.sum(1) for p in torch.split(a, 4, dim=1)), x, rtol=1e-5)


# --------------------------------------------------------------------------- regressions

def test_torch_compile_empty_tensor_constant():
    """torch.tensor([]) (transformers' DynamicCache starts from it) reaches a compiled part
    as a zero-size input: it is read as an empty constant."""
    def f(x):
        return torch.cat([torch.tensor([]), x], dim=-2) * 2
    x = torch.randn(1, 2, 4, 8)
    with torch.no_grad():
        out = torch.compile(f, backend="tensorlang")(x)
    np.testing.assert_allclose(out.numpy(), (x * 2).numpy())


def test_take_of_reshape_with_int64_indices():
    """A take of a fused reshape with int64 indices: the clamped index is int32 like the
    reshape's index arithmetic (the verifier once refused an int32 + int64 add)."""
    from tensorlang.graph import op as O
    t = G.var("t", (3, 4, 5), "float32")
    i = G.var("i", (2, 6, 5), "int64")
    lib = G.build(G.Module([t, i], [O.take(O.reshape(t, newshape=(60,)), i, axis=0)]))
    a = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    b = np.random.default_rng(1).integers(0, 60, (2, 6, 5))
    np.testing.assert_array_equal(lib(a, b), a.reshape(-1)[b])


def test_pow_3():
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    export_and_compare(lambda a: 0.5 * a * (1 + torch.tanh(0.79788456 * (a + 0.044715 * torch.pow(a, 3.0)))),
                       x, rtol=1e-5)


# --------------------------------------------------------------------------- benchmark

def run_benchmark(*args):
    """``python -m benchmarks --models bert --tiny ...`` in a fresh interpreter (it sets the
    thread counts and Inductor's config); its stdout."""
    r = run_python(f"""
        import sys
        from benchmarks.__main__ import main
        sys.exit(main(["--models", "bert", "--tiny", "--rounds", "1", *{list(args)!r}]))
    """, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "CPU: " in r.stdout and "LLVM host" in r.stdout
    return r.stdout


def timed_rows(out, systems):
    for system in systems:
        row = next(ln for ln in out.splitlines() if ln.startswith(f"| {system} |"))
        assert "not timed" not in row, row
        ms = float(row.split("|")[2].split()[0])
        assert 0 < ms < 1000, row
        err = row.split("|")[6].strip()
        assert err == "ref" or float(err) <= 1e-3, row


def test_models_benchmark_tiny_smoke():
    """Every system but Inductor (whose cold compile alone takes ~15 s here) builds, matches
    eager and is timed; the per-kernel profile is printed."""
    out = run_benchmark("--systems", "eager,ort,tl-compile,tl-untuned,tl-export")
    timed_rows(out, [bm.EAGER, bm.ORT, bm.TL_COMPILE, bm.TL_UNTUNED, bm.TL_EXPORT])
    assert f"| {bm.INDUCTOR} |" not in out
    assert "per-kernel profile" in out and "| kernel | calls |" in out


@pytest.mark.slow
def test_models_benchmark_tiny_all_systems():
    timed_rows(run_benchmark("--no-profile"), bm.SYSTEMS)
