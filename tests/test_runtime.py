"""Runtime: timing, sources, export to a shared library and loading it in a fresh process."""

import numpy as np

import tensorlang as tl
from tests.conftest import run_python


def small_matmul(n=64):
    k = tl.reduce_axis((0, n), name="k")
    A = tl.placeholder((n, n), name="A")
    B = tl.placeholder((n, n), name="B")
    C = tl.compute((n, n), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tl.create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 16, 16)
    s[C].vectorize(ji)
    s[C].parallel(io)
    return s, [A, B, C]


def test_time_evaluator_reports_repeats():
    f = tl.build(*small_matmul(), name="mm")
    a = np.ones((64, 64), np.float32)
    c = np.zeros((64, 64), np.float32)
    r = f.time_evaluator(number=5, repeat=4)(a, a, c)
    assert len(r.results) == 4 and all(t > 0 for t in r.results)
    assert min(r.results) <= r.median <= max(r.results)
    assert r.mean > 0
    np.testing.assert_allclose(c, a @ a)                 # timing runs compute too
    r = f.time_evaluator(number=1, repeat=1, min_repeat_ms=5)(a, a, c)
    assert r.results[0] > 0


def test_get_source_formats():
    f = tl.build(*small_matmul(), name="mm")
    assert f.get_source("tir").startswith("def mm(")
    assert '@mm(' in f.get_source("ll") and 'define void @"mm"' in f.get_source("ll_raw")
    assert "mm" in f.get_source("asm")
    assert "tensorlang_metadata" in f.get_source("ll_raw")


def test_export_and_load_in_fresh_process(tmp_path):
    path = tmp_path / "mm.so"
    tl.build(*small_matmul(), name="mm").export_library(str(path))
    r = run_python(f"""
        import numpy as np, tensorlang as tl
        g = tl.load_module({str(path)!r})
        rng = np.random.default_rng(0)
        a = rng.random((64, 64), dtype=np.float32); b = rng.random((64, 64), dtype=np.float32)
        c = np.zeros((64, 64), np.float32)
        g(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5)
        assert g.get_source("tir").startswith("def mm(")
        try:
            g(a, b)
        except tl.ArgumentError as e:
            print("checked:", e)
        print("median", g.time_evaluator(number=3, repeat=2)(a, b, c).median > 0)
    """)
    assert r.returncode == 0, r.stderr
    assert "checked: mm: expected 3 arguments" in r.stdout and "median True" in r.stdout


def test_exported_symbolic_kernel_binds_sizes(tmp_path):
    n = tl.var("n")
    A = tl.placeholder((n, 3), name="A")
    B = tl.compute((n, 3), lambda i, j: A[i, j] + tl.const(1.0), name="B")
    s = tl.create_schedule(B.op)
    path = tmp_path / "sym.so"
    tl.build(s, [A, B], name="addone").export_library(str(path))
    r = run_python(f"""
        import numpy as np, tensorlang as tl
        g = tl.load_module({str(path)!r})
        for size in (0, 1, 17, 1000):
            a = np.arange(size * 3, dtype=np.float32).reshape(size, 3); b = np.zeros_like(a)
            g(a, b)
            assert (b == a + 1).all()
        print("ok")
    """)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_module_repr_names_signature():
    f = tl.build(*small_matmul(), name="mm")
    assert "mm(A: float32[64, 64]" in repr(f)
