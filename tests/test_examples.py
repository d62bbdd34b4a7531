"""The examples in examples/ run and compute the right values (timing is not checked)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tensorlang as tl
from examples import conv2d_resnet, gemm_six_steps, softmax_rows
from tests.conftest import ROOT, run_python


@pytest.mark.parametrize("step", range(len(gemm_six_steps.STEPS)))
def test_gemm_six_steps_correct_at_every_step(step, rng):
    M = N = K = 256
    s, args = gemm_six_steps.gemm(step, M, N, K)
    f = tl.build(s, args)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    c = np.full((M, N), np.nan, dtype=np.float32)
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)


def test_gemm_write_cache_is_a_tile_buffer_at_the_block():
    s, args = gemm_six_steps.gemm(5, 256, 256, 256)
    text = str(tl.lower(s, args))
    lines = text.splitlines()
    alloc = next(n for n, line in enumerate(lines) if "allocate C_global" in line)
    assert "C_global: float32[1024] on stack" in lines[alloc]      # 32 x 32, not 256 x 256
    assert lines[alloc - 1].strip().startswith("for n.outer in range(8)")


@pytest.mark.parametrize("pad_at", ["row", "inline"])
@pytest.mark.parametrize("shape", [
    dict(N=1, CI=64, H=56, W=56, CO=64, KH=3, KW=3, pad=1),      # the ResNet-50 layer
    dict(N=2, CI=3, H=9, W=13, CO=20, KH=3, KW=3, pad=1),        # tails everywhere
    dict(N=1, CI=5, H=7, W=20, CO=16, KH=5, KW=3, pad=2),
])
def test_conv2d_example(shape, pad_at, rng):
    s, args = conv2d_resnet.schedule(**shape, pad_at=pad_at)
    f = tl.build(s, args, bounds_check=shape["CI"] < 64)
    a = rng.standard_normal((shape["N"], shape["CI"], shape["H"], shape["W"]), dtype=np.float32)
    w = rng.standard_normal((shape["CO"], shape["CI"], shape["KH"], shape["KW"]), dtype=np.float32)
    p = shape["pad"]
    o = np.full((shape["N"], shape["CO"], shape["H"] + 2 * p - shape["KH"] + 1,
                 shape["W"] + 2 * p - shape["KW"] + 1), np.nan, dtype=np.float32)
    f(a, w, o)
    ref = np.zeros_like(o)                  # direct definition, independent of the example's
    ap = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
    for ry in range(shape["KH"]):
        for rx in range(shape["KW"]):
            win = ap[:, :, ry:ry + o.shape[2], rx:rx + o.shape[3]]
            ref += np.einsum("nchw,fc->nfhw", win, w[:, :, ry, rx])
    np.testing.assert_allclose(o, ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(conv2d_resnet.conv2d_numpy(a, w, p), ref, rtol=1e-4, atol=1e-3)


def test_conv2d_padding_computed_per_output_row():
    s, args = conv2d_resnet.schedule()
    text = str(tl.lower(s, args))
    assert "allocate Apad: float32[11136]" in text        # 64 channels x 3 rows x 58 columns


@pytest.mark.parametrize("rows,cols", [(4096 // 64, 1024), (7, 3), (5, 100), (1, 17)])
def test_softmax_example(rows, cols, rng):
    s, args = softmax_rows.softmax(rows, cols)
    f = tl.build(s, args, bounds_check=True)
    x = rng.standard_normal((rows, cols), dtype=np.float32) * 10
    y = np.full_like(x, np.nan)
    f(x, y)
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [1, 31, 32, 1000, 4096 * 64 + 5])
def test_parallel_sum_example(n, rng):
    s, args = softmax_rows.parallel_sum(n)
    f = tl.build(s, args, bounds_check=True)
    a = rng.random(n, dtype=np.float32)
    out = np.zeros(1, dtype=np.float32)
    f(a, out)
    np.testing.assert_allclose(out[0], a.astype(np.float64).sum(), rtol=1e-5)
    text = str(tl.lower(s, args))
    assert "parallel(2)" in text and "ramp(" in text


@pytest.mark.slow
@pytest.mark.parametrize("script,argv", [
    ("examples/gemm_six_steps.py", "--size 128 --rounds 1"),
    ("examples/conv2d_resnet.py", "--rounds 1"),
    ("examples/softmax_rows.py", "--rows 64 --cols 100 --rounds 1"),
])
def test_example_scripts_run(script, argv):
    r = run_python(f"import runpy, sys; sys.argv = [{script!r}] + {argv.split()!r}; "
                   f"runpy.run_path({script!r}, run_name='__main__')", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "numpy" in r.stdout


@pytest.mark.slow
def test_tuning_study_script_runs(tmp_path):
    """The study as a script (measurement workers re-import it), on a small GEMM."""
    r = subprocess.run([sys.executable, "examples/tuning_study.py", "--trials", "20", "--seeds", "0",
                        "--size", "64", "--tuners", "xgb", "random", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    assert "trials to 90%" in r.stdout and "xgb" in r.stdout and "random" in r.stdout
    assert len((tmp_path / "xgb-0.jsonl").read_text().splitlines()) == 20
