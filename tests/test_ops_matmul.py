"""tensorlang.ops.matmul / batch_matmul: results against numpy for square, ragged, skinny
and batched shapes; the micro-kernel the schedule leads LLVM to; argument errors."""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tensorlang as tl
from tensorlang import ops


def _run(s, args, *inputs):
    f = tl.build(s, args, bounds_check=True)
    out = np.full(np.matmul(*inputs).shape, np.nan, dtype=inputs[0].dtype)
    f(*inputs, out)
    return out


@pytest.mark.parametrize("M,N,K", [(256, 256, 256), (1, 4096, 64), (3, 100, 37), (128, 768, 96),
                                   (33, 47, 19), (8, 32, 4), (9, 1, 5), (1, 1, 1), (40, 16, 3)])
def test_matmul_matches_numpy(M, N, K):
    rng = np.random.default_rng(M * N * K)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    np.testing.assert_allclose(_run(*ops.matmul(M, N, K), a, b), a @ b, rtol=1e-4, atol=1e-4)


@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 40))
@settings(max_examples=12, deadline=None)
def test_matmul_any_shape(M, N, K):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    np.testing.assert_allclose(_run(*ops.matmul(M, N, K), a, b), a @ b, rtol=1e-4, atol=1e-4)


def test_matmul_float64():
    rng = np.random.default_rng(1)
    a, b = rng.random((40, 30)), rng.random((30, 70))
    np.testing.assert_allclose(_run(*ops.matmul(40, 70, 30, "float64"), a, b), a @ b, rtol=1e-12)


@pytest.mark.parametrize("shape", [(12, 128, 128, 64), (2, 7, 40, 9), (3, 16, 33, 8)])
def test_batch_matmul_matches_numpy(shape):
    b, M, N, K = shape
    rng = np.random.default_rng(2)
    x = rng.standard_normal((b, M, K), dtype=np.float32)
    y = rng.standard_normal((b, K, N), dtype=np.float32)
    np.testing.assert_allclose(_run(*ops.batch_matmul(*shape), x, y), x @ y, rtol=1e-4, atol=1e-4)


def _hottest_block(asm: str) -> list[str]:
    blocks, cur = [], None
    for line in asm.splitlines():
        if re.match(r"^\.LBB\d+_\d+:", line):
            cur = []
            blocks.append(cur)
        elif cur is not None:
            cur.append(line.strip())
    return max(blocks, key=lambda b: sum(x.startswith("vfmadd") for x in b))


@pytest.mark.parametrize("target,reg,rows", [("llvm -mcpu=skylake-avx512", "zmm", 8),
                                             ("llvm -mcpu=haswell", "ymm", 6)])
def test_gemm_inner_loop_is_a_block_of_register_fmas(target, reg, rows):
    """The default register tile of the target: AVX-512, 8 rows x 2 vectors of accumulators
    in 16 of 32 zmm; AVX2, 6 x 2 in 12 of 16 ymm. Every k step is ``rows`` broadcasts of A,
    2 loads of packed B and 2 x ``rows`` FMAs, with no accumulator in memory."""
    with tl.target.Target(target), tl.dispatch.untuned():
        s, args = ops.matmul(256, 256, 256)
        block = _hottest_block(tl.build(s, args).get_source("asm"))
    fmas = [x for x in block if x.startswith("vfmadd")]
    assert len(fmas) >= 2 * rows and all(x.endswith(tuple(f"%{reg}{i}" for i in range(32))) for x in fmas)
    assert sum(x.startswith("vbroadcastss") for x in block) >= rows
    assert not [x for x in block if x.startswith(("vmovups", "vmovaps")) and x.split(",")[0].startswith(f"%{reg}")]


@pytest.mark.parametrize("call,match", [
    (lambda: ops.matmul(0, 4, 4), r"matmul: M must be a positive int, got 0"),
    (lambda: ops.matmul(4, 4.0, 4), r"matmul: N must be a positive int, got 4.0"),
    (lambda: ops.batch_matmul(-1, 4, 4, 4), r"batch_matmul: batch must be a positive int"),
    (lambda: ops.matmul(4, 4, 4, "float8"), r"unsupported dtype 'float8'"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(tl.TensorlangError, match=match):
        call()


def test_matmul_is_a_tunable_template_with_the_default_as_fallback(tmp_path):
    import autotune
    from tensorlang.dispatch import record
    from autotune.measure import MeasureResult
    import importlib
    mm_mod = importlib.import_module("tensorlang.ops.matmul")
    task = autotune.create_task("ops/matmul", [64, 96, 32, "float32"])
    assert len(task.config_space) > 100
    fallback = task.config_space.fallback()
    lanes = tl.target.Target.current().info.lanes(32)
    mr = 8 if lanes == 16 else 6               # the register tile the host's registers hold
    assert fallback.to_json() == {"nb": 2 * lanes, "mb": 4 * mr, "mr": mr, "kc": 0, "ku": 4}
    with autotune.ApplyConfig(fallback):
        s0, a0 = mm_mod._matmul_template(64, 96, 32, "float32")
    assert str(tl.lower(*ops.matmul(64, 96, 32))) == str(tl.lower(s0, a0))   # untuned = fallback
    other = task.config_space.from_json({"nb": 16, "mb": 8, "mr": 2, "kc": 0, "ku": 1})
    log = tmp_path / "mm.jsonl"
    record.append(log, record.make_record(task, other, MeasureResult([1e-6])))
    with autotune.apply_history_best(log):
        s, args = ops.matmul(64, 96, 32)
    with autotune.ApplyConfig(other):
        s1, a1 = mm_mod._matmul_template(64, 96, 32, "float32")
    assert str(tl.lower(s, args)) == str(tl.lower(s1, a1)) != str(tl.lower(s0, a0))
    a, b = np.random.rand(64, 32).astype("float32"), np.random.rand(32, 96).astype("float32")
    c = np.zeros((64, 96), "float32")
    tl.build(s, args)(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    # a shipped log applies without any context, for this target only
    from tensorlang import dispatch
    dispatch.EXTRA_LOGS.append(str(log))
    try:
        assert str(tl.lower(*ops.matmul(64, 96, 32))) == str(tl.lower(s1, a1))
        with dispatch.untuned():                  # the default, whatever the logs hold
            assert str(tl.lower(*ops.matmul(64, 96, 32))) == str(tl.lower(s0, a0))
    finally:
        dispatch.EXTRA_LOGS.remove(str(log))


@pytest.mark.parametrize("target,nb,mr", [("llvm -mcpu=haswell", 16, 6),
                                          ("llvm -mcpu=skylake-avx512", 32, 8),
                                          ("llvm -mcpu=nehalem", 8, 6)])
def test_gemm_defaults_follow_the_target(target, nb, mr, tmp_path):
    """The default tile comes from the target's vector width and registers, the kernel is
    built for the target and computes the product on this CPU, and a tuned record applies
    under its own target only."""
    import autotune
    from autotune.measure import MeasureResult
    from tensorlang.dispatch import record
    task = autotune.create_task("ops/matmul", [40, 50, 70, "float32"], target=target)
    assert task.target == target
    fb = task.config_space.fallback().to_json()
    assert (fb["nb"], fb["mr"], fb["mb"]) == (nb, mr, min(4 * mr, 40))
    with tl.target.Target(target):
        s, args = ops.matmul(40, 50, 70)
        f = tl.build(s, args)
    assert f.target == target
    a, b = np.random.rand(40, 70).astype("float32"), np.random.rand(70, 50).astype("float32")
    c = np.zeros((40, 50), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    asm = f.get_source("asm")
    assert ("zmm" in asm) == (nb == 32)
    assert ("ymm" in asm) == (nb >= 16)
    # a record tuned for this target: applied when building for it, not for the host
    other = task.config_space.from_json({**fb, "mr": 2, "mb": 8})
    log = tmp_path / "mm.jsonl"
    record.append(log, record.make_record(task, other, MeasureResult([1e-6])))
    elsewhere = next(t for t in ("llvm -mcpu=znver3", "llvm -mcpu=haswell") if t != target)
    with autotune.apply_history_best(log):
        with tl.target.Target(target):
            tuned = str(tl.lower(*ops.matmul(40, 50, 70)))
        with tl.target.Target(elsewhere):
            other_cpu = str(tl.lower(*ops.matmul(40, 50, 70)))
    with tl.target.Target(target):
        assert tuned == str(tl.lower(*task.instantiate(other))) != str(tl.lower(s, args))
    with tl.target.Target(elsewhere):
        assert other_cpu == str(tl.lower(*ops.matmul(40, 50, 70)))


@pytest.mark.parametrize("M,N,K,bias,act", [(64, 96, 32, True, "relu"), (3, 40, 17, True, "gelu_tanh"),
                                            (33, 70, 19, False, "silu"), (16, 32, 8, False, None)])
def test_dense_with_fused_epilogue(M, N, K, bias, act):
    rng = np.random.default_rng(M)
    x = rng.standard_normal((M, K), dtype=np.float32)
    w = rng.standard_normal((N, K), dtype=np.float32)
    b = rng.standard_normal(N, dtype=np.float32)
    s, args = ops.dense(M, N, K, bias=bias, activation=act)
    text = str(tl.lower(s, args))
    if act or bias:                     # the epilogue is applied where the tile is written
        # one buffer (the accumulator tile) and no buffer for any epilogue stage
        allocs = [ln.split(":")[0].split()[-1] for ln in text.splitlines() if "allocate" in ln]
        assert set(allocs) == {"acc", "packedB"}
    out = np.full((M, N), np.nan, np.float32)
    tl.build(s, args, bounds_check=True)(*([x, w, b] if bias else [x, w]), out)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (b if bias else 0)
    ref = {None: lambda r: r, "relu": lambda r: np.maximum(r, 0), "silu": lambda r: r / (1 + np.exp(-r)),
           "gelu_tanh": lambda r: 0.5 * r * (1 + np.tanh(0.7978845608028654 * (r + 0.044715 * r ** 3)))}[act](ref)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_dense_bad_activation():
    with pytest.raises(tl.TensorlangError, match="dense: activation must be None or one of"):
        ops.dense(4, 4, 4, activation="swish")


@pytest.mark.parametrize("op,knobs", [("dense", None), ("dense", {"nb": 16, "mb": 8, "mr": 2, "ku": 1}),
                                      ("matmul", {"nb": 32, "mb": 16, "mr": 4, "ku": 2}),
                                      ("batch_matmul", None)])
def test_prepacked_weights_pack_once_with_the_kernels_config(op, knobs):
    """weights="pack" builds the packing kernel from the same config as the kernel, and the
    "prepacked" kernel takes its output: a graph compiler packs constant weights once."""
    import autotune
    from tests import reference as R
    M, N, K = 24, 70, 19
    batch = (2,) if op == "batch_matmul" else ()
    shape_args = (*batch, M, N, K)
    fn = getattr(ops, op)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((*batch, M, K), dtype=np.float32)
    b = rng.standard_normal((*batch, N, K) if op == "dense" else (*batch, K, N), dtype=np.float32)
    ref = R.dense(a, b) if op == "dense" else a.astype(np.float64) @ b
    ctx = (autotune.ApplyConfig(autotune.create_task(f"ops/{op}", [*shape_args, "float32"])
                                .config_space.from_json(knobs)) if knobs else dispatch_none())
    with ctx:
        sp, pargs = fn(*shape_args, weights="pack")
        sk, kargs = fn(*shape_args, weights="prepacked", epilogue=lambda y: ops.compute.relu(y))
    assert [t.op.name for t in pargs] == ["B", "packedB"] and kargs[1].op.name == "packedB"
    assert tl.get_const_tuple(pargs[1].shape) == tl.get_const_tuple(kargs[1].shape)
    if knobs:
        assert tl.get_const_tuple(pargs[1].shape)[-1] == knobs["nb"]
    packed = np.zeros(tl.get_const_tuple(pargs[1].shape), np.float32)
    tl.build(sp, pargs)(b, packed)
    out = np.full(ref.shape, np.nan, np.float32)
    tl.build(sk, kargs, bounds_check=True)(a, packed, out)
    np.testing.assert_allclose(out, np.maximum(ref, 0), rtol=1e-4, atol=1e-4)


def dispatch_none():
    import contextlib
    return contextlib.nullcontext()


def test_bad_weights_keyword_names_the_choices():
    with pytest.raises(tl.TensorlangValueError, match=r"dense: weights must be one of \['inline', 'prepacked', 'pack'\]"):
        ops.dense(8, 8, 8, weights="packed")
