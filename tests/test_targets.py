"""Targets: the current-target context, what a target reports about its CPU, and the
operator library built for CPUs other than the host (AVX2, SSE), checked against numpy on
this machine (which runs their code: every x86 CPU the tests run on has at least AVX2 here;
a host without it skips the AVX2 builds)."""

import os

import numpy as np
import pytest

import tensorlang as tl
from tensorlang import ops
from tests import reference as ref

HOST = tl.target.Target.current()
NAMED = ["llvm -mcpu=haswell", "llvm -mcpu=nehalem"]


def _runs_here(target: str) -> bool:
    need = tl.target.Target(target).info
    return need.vector_bits <= HOST.info.vector_bits and (HOST.info.fma or not need.fma)


def test_current_target_nests_and_defaults_to_the_host():
    assert tl.target.Target.current() == tl.target.Target(os.environ.get("TENSORLANG_TARGET") or "llvm")
    with tl.target.Target("llvm -mcpu=haswell") as h:
        assert tl.target.Target.current() is h and str(h) == "llvm -mcpu=haswell"
        with tl.target.Target("llvm -mcpu=nehalem"):
            assert tl.target.Target.current().cpu == "nehalem"
        assert tl.target.Target.current() is h
    assert tl.target.Target.current() == HOST


@pytest.mark.parametrize("target,bits,regs,fma", [
    ("llvm -mcpu=haswell", 256, 16, True), ("llvm -mcpu=skylake-avx512", 512, 32, True),
    ("llvm -mcpu=nehalem", 128, 16, False), ("llvm -mcpu=znver3", 256, 16, True)])
def test_target_info_comes_from_llvm(target, bits, regs, fma):
    info = tl.target.Target(target).info
    assert (info.vector_bits, info.vector_registers, info.fma) == (bits, regs, fma)
    assert info.lanes(32) == bits // 32 and info.lanes(64) == bits // 64
    # another CPU than the host: its caches are unknown, so the smallest usual ones
    assert (info.l1d_bytes, info.l2_bytes) == (32 * 1024, 256 * 1024)


def test_features_switched_off_change_the_info():
    if HOST.info.vector_bits < 512:
        pytest.skip("the host has no AVX-512 to switch off")
    info = tl.target.Target("llvm -mattr=-avx512f").info
    assert info.vector_bits == 256 and info.vector_registers == 16


def test_host_caches_come_from_sysfs():
    """Checked against glibc's own answer (``getconf``), an independent reading of the host."""
    import shutil
    import subprocess
    if not shutil.which("getconf"):
        pytest.skip("no getconf on this host")
    l1d, l2 = (int(subprocess.run(["getconf", n], capture_output=True, text=True).stdout or 0)
               for n in ("LEVEL1_DCACHE_SIZE", "LEVEL2_CACHE_SIZE"))
    if l1d <= 0 or l2 <= 0:
        pytest.skip("glibc reports no cache sizes on this host")
    info = tl.target.Target("llvm").info
    assert (info.l1d_bytes, info.l2_bytes) == (l1d, l2)


def test_a_bad_target_is_a_clear_error():
    with pytest.raises(tl.TensorlangError, match="LLVM rejects it"):
        tl.target.Target("llvm -mcpu=not-a-cpu").info
    with pytest.raises(tl.TensorlangError, match="unknown option '-march=x86'"):
        tl.target.Target("llvm -march=x86")


def _check(target, build, inputs, expect, rtol=1e-4, atol=1e-4):
    if not _runs_here(target):
        pytest.skip(f"this host cannot run {target}")
    with tl.target.Target(target):
        s, args = build()
        f = tl.build(s, args)
    assert f.target == target
    asm = f.get_source("asm")
    assert "zmm" not in asm                              # no AVX-512 on these targets
    assert ("ymm" in asm) == (tl.target.Target(target).info.vector_bits == 256)
    out = np.full(expect.shape, np.nan, np.float32)
    f(*inputs, out)
    np.testing.assert_allclose(out, expect, rtol=rtol, atol=atol)


rng = np.random.default_rng(7)


def _r(*shape):
    return rng.standard_normal(shape, dtype=np.float32)


CASES = {
    "matmul": lambda: ((lambda: ops.matmul(37, 50, 29)), [a := _r(37, 29), b := _r(29, 50)], a @ b),
    "matmul skinny": lambda: ((lambda: ops.matmul(3, 70, 40)), [a := _r(3, 40), b := _r(40, 70)], a @ b),
    "dense": lambda: ((lambda: ops.dense(20, 33, 48, bias=True, activation="relu")),
                      [x := _r(20, 48), w := _r(33, 48), bb := _r(33)],
                      np.maximum(ref.dense(x, w, bb), 0)),
    "conv 3x3": lambda: ((lambda: ops.conv2d_nchw(1, 8, 14, 14, 24, 3, 3, 1, 1)),
                         [a := _r(1, 8, 14, 14), w := _r(24, 8, 3, 3)], ref.conv2d_nchw(a, w, 1, 1)),
    "conv 3x3 wide": lambda: ((lambda: ops.conv2d_nchw(1, 4, 48, 48, 16, 3, 3, 1, 1)),
                              [a := _r(1, 4, 48, 48), w := _r(16, 4, 3, 3)], ref.conv2d_nchw(a, w, 1, 1)),
    "conv 1x1": lambda: ((lambda: ops.conv2d_nchw(1, 16, 40, 40, 20, 1, 1)),
                         [a := _r(1, 16, 40, 40), w := _r(20, 16, 1, 1)], ref.conv2d_nchw(a, w, 1, 0)),
    "depthwise": lambda: ((lambda: ops.depthwise_conv2d_nchw(1, 5, 19, 19, 3, 3, 2, 1)),
                          [a := _r(1, 5, 19, 19), w := _r(5, 1, 3, 3)],
                          ref.conv2d_nchw(a, w, 2, 1, groups=5)),
    "nhwc": lambda: ((lambda: ops.conv2d_nhwc(1, 12, 12, 8, 20, 3, 3, 1, 1)),
                     [ref.to_nhwc(a := _r(1, 8, 12, 12)), ref.to_hwio(w := _r(20, 8, 3, 3))],
                     ref.to_nhwc(ref.conv2d_nchw(a, w, 1, 1))),
    "softmax": lambda: ((lambda: ops.softmax(9, 37)), [x := _r(9, 37)], ref.softmax(x)),
    "max_pool2d": lambda: ((lambda: ops.max_pool2d(1, 3, 17, 17, 3, 2, 1)), [x := _r(1, 3, 17, 17)],
                           ref.max_pool2d(x, (3, 3), (2, 2), (1, 1))),
}


@pytest.mark.parametrize("target", NAMED)
@pytest.mark.parametrize("case", sorted(CASES))
def test_operators_built_for_another_cpu_compute_the_same(target, case):
    build, inputs, expect = CASES[case]()
    _check(target, build, inputs, expect)


@pytest.mark.parametrize("target", NAMED)
def test_nchwc_blocks_follow_the_vector_width(target):
    if not _runs_here(target):
        pytest.skip(f"this host cannot run {target}")
    lanes = tl.target.Target(target).info.lanes(32)
    with tl.target.Target(target):
        ic, oc = ops.conv2d_NCHWc_layout(1, 16, 10, 10, 32, 3, 3, 1, 1)
        assert (ic, oc) == (lanes, lanes)
        s, args = ops.conv2d_NCHWc(1, 16, 10, 10, 32, 3, 3, 1, 1)
        f = tl.build(s, args)
    a, w = _r(1, 16, 10, 10), _r(32, 16, 3, 3)
    expect = ref.to_nchwc(ref.conv2d_nchw(a, w, 1, 1), oc)
    out = np.full(expect.shape, np.nan, np.float32)
    f(ref.to_nchwc(a, ic), w, out)                        # inline weights: OIHW
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)
