"""Runtime for graphs: modules of several kernels (built, called by name, exported and
reloaded), caller-supplied workspaces for heap intermediates, and the unchecked call paths."""

import threading

import numpy as np
import pytest

import tensorlang as tl
from tests.conftest import run_python

N = 20_000          # 80 KB intermediates: above the stack limit, so they live on the heap


def vadd(n=16, name="vadd"):
    A = tl.placeholder((n,), name="A")
    B = tl.placeholder((n,), name="B")
    C = tl.compute((n,), lambda i: A[i] + B[i], name="C")
    return tl.create_schedule(C.op), [A, B, C]


def reverse_scaled(n=N):
    """B = 2 * A reversed + 1, through an intermediate T of n floats (heap: n * 4 > 32 KB)."""
    A = tl.placeholder((n,), name="A")
    T = tl.compute((n,), lambda i: A[i] * 2.0, name="T")
    B = tl.compute((n,), lambda i: T[n - 1 - i] + 1.0, name="B")
    return tl.create_schedule(B.op), [A, B]


def two_intermediates(n=N):
    """C = (A + 1) * (A reversed - 1): two heap intermediates."""
    A = tl.placeholder((n,), name="A")
    T = tl.compute((n,), lambda i: A[i] + 1.0, name="T")
    U = tl.compute((n,), lambda i: A[n - 1 - i] - 1.0, name="U")
    C = tl.compute((n,), lambda i: T[n - 1 - i] * U[i], name="C")
    return tl.create_schedule(C.op), [A, C]


def mixed_module():
    return tl.build({"vadd": vadd(), "rev": reverse_scaled(), "two": two_intermediates()})


def check_mixed(mod, rng):
    a, b = rng.random(16, dtype=np.float32), rng.random(16, dtype=np.float32)
    c = np.zeros(16, np.float32)
    mod["vadd"](a, b, c)
    np.testing.assert_array_equal(c, a + b)
    x = rng.random(N, dtype=np.float32)
    y = np.zeros(N, np.float32)
    mod["rev"](x, y)
    np.testing.assert_allclose(y, x[::-1] * 2 + 1, rtol=1e-6)
    mod["two"](x, y)
    np.testing.assert_allclose(y, (x[::-1] + 1) * (x[::-1] - 1), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- modules of several kernels

def test_multi_kernel_module_from_dict_and_from_lowered_list(rng):
    mod = mixed_module()
    assert set(mod.kernels) == {"vadd", "rev", "two"} and "rev" in mod
    assert mod.get_function("rev") is mod["rev"] and mod.workspace_bytes == 2 * N * 4
    check_mixed(mod, rng)
    ll = mod.get_source("ll_raw")
    assert all(f'define void @"{k}"(' in ll for k in ("vadd", "rev", "two"))
    assert ll.count("define ptr @tensorlang_metadata()") == 1
    funcs = [tl.lower(*vadd(), name="add16"), tl.lower(*reverse_scaled(), name="rev")]
    mod2 = tl.build(funcs)
    check_mixed({"vadd": mod2["add16"], "rev": mod2["rev"], "two": mod["two"]}, rng)
    assert mod2.workspace_bytes == mod2["rev"].workspace_bytes == N * 4


def test_multi_kernel_module_errors_name_the_kernels():
    mod = tl.build({"vadd": vadd(), "rev": reverse_scaled()})
    with pytest.raises(tl.TensorlangValueError, match=r"module has no function 'nope'; it has 'vadd', 'rev'"):
        mod["nope"]
    a = np.zeros(16, np.float32)
    with pytest.raises(tl.TensorlangValueError, match=r"module holds 2 kernels \(vadd, rev\); pick one: mod\[name\]"):
        mod(a, a, a)
    with pytest.raises(tl.TensorlangValueError, match=r"kernel name 'k' is used twice"):
        tl.build([tl.lower(*vadd(), name="k"), tl.lower(*reverse_scaled(), name="k")])
    with pytest.raises(tl.TensorlangTypeError, match=r"kernel 'rev' must be \(schedule, args\), got list"):
        tl.build({"rev": [1, 2]})
    with pytest.raises(tl.TensorlangTypeError, match=r"item 1 of the list must be a PrimFunc .*, got Schedule"):
        tl.build([tl.lower(*vadd()), vadd()[0]])
    with pytest.raises(tl.TensorlangTypeError, match=r"several kernels come without args.*got a list and args"):
        tl.build([tl.lower(*vadd())], [1])


def test_single_kernel_module_keeps_its_interface(rng):
    f = tl.build(*vadd(), name="vadd")
    assert f.entry_name == "vadd" and f.meta["name"] == "vadd" and f["vadd"] is f.entry_func
    a, b = rng.random(16, dtype=np.float32), rng.random(16, dtype=np.float32)
    c = np.zeros(16, np.float32)
    f(a, b, c)
    np.testing.assert_array_equal(c, a + b)
    assert f.time_evaluator(number=3, repeat=2)(a, b, c).median > 0
    assert f.time_evaluator("vadd", None, number=3)(a, b, c).mean > 0


def test_export_multi_kernel_and_reload_in_same_and_fresh_process(tmp_path, rng):
    path = str(tmp_path / "mixed.so")
    mod = mixed_module()
    mod.export_library(path)
    loaded = tl.load_module(path)
    assert set(loaded.kernels) == {"vadd", "rev", "two"}
    assert loaded["rev"].workspace_bytes == mod["rev"].workspace_bytes == N * 4
    check_mixed(loaded, rng)
    r = run_python(f"""
        import numpy as np, tensorlang as tl
        from tests.test_runtime_module import check_mixed, N
        mod = tl.load_module({path!r})
        check_mixed(mod, np.random.default_rng(1))
        ws = tl.runtime.workspace(mod.workspace_bytes)
        x = np.arange(N, dtype=np.float32); y = np.zeros(N, np.float32)
        mod["rev"].prepare(x, y, workspace=ws)()
        np.testing.assert_allclose(y, x[::-1] * 2 + 1)
        print("kernels", sorted(mod.kernels), mod.workspace_bytes)
    """)
    assert r.returncode == 0, r.stderr
    assert f"kernels ['rev', 'two', 'vadd'] {2 * N * 4}" in r.stdout


# ----------------------------------------------------------------- workspaces

def test_heap_intermediate_uses_caller_workspace(rng):
    f = tl.build(*reverse_scaled(), name="rev")
    assert f.workspace_bytes == N * 4
    x = rng.random(N, dtype=np.float32)
    y = np.zeros(N, np.float32)
    ws = tl.runtime.workspace(f.workspace_bytes)
    ws[:] = 0xFF                                  # garbage (NaNs): the kernel must write first
    f(x, y, workspace=ws)
    np.testing.assert_allclose(y, x[::-1] * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(ws.view(np.float32), x * 2)   # T lives at offset 0
    y2 = np.zeros(N, np.float32)
    f(x, y2)                                      # no workspace: this thread's own
    np.testing.assert_array_equal(y2, y)


def test_nested_and_sequential_intermediates_get_planned_offsets(rng):
    f = tl.build(*two_intermediates(), name="two")
    assert f.workspace_bytes == 2 * N * 4          # T and U are live at once
    x = rng.random(N, dtype=np.float32)
    y = np.zeros(N, np.float32)
    f(x, y, workspace=tl.runtime.workspace(f.workspace_bytes + 100))   # larger is fine
    np.testing.assert_allclose(y, (x[::-1] + 1) * (x[::-1] - 1), rtol=1e-5, atol=1e-6)


def test_bad_workspaces_are_rejected_with_the_size_needed():
    f = tl.build(*reverse_scaled(), name="rev")
    x, y = np.zeros(N, np.float32), np.zeros(N, np.float32)
    with pytest.raises(tl.ArgumentError, match=rf"^rev: workspace has 100 bytes, but this kernel needs {N * 4} "):
        f(x, y, workspace=tl.runtime.workspace(100))
    with pytest.raises(tl.ArgumentError, match=r"^rev: workspace is not aligned to 64 bytes"):
        f(x, y, workspace=tl.runtime.workspace(N * 4 + 64)[1:])
    with pytest.raises(tl.TensorlangTypeError, match=rf"workspace must be a numpy.ndarray \(make one with "
                                                      rf"tl.runtime.workspace\({N * 4}\)\), got bytearray"):
        f(x, y, workspace=bytearray(N * 4))
    with pytest.raises(tl.TensorlangValueError, match=r"workspace: expected a byte count >= 0, got -1"):
        tl.runtime.workspace(-1)


def test_heap_intermediate_inside_parallel_loop_keeps_malloc(rng):
    n, m = 4, 12_000                               # a 48 KB row per parallel iteration
    A = tl.placeholder((n, m), name="A")
    T = tl.compute((n, m), lambda i, j: A[i, j] * 3.0, name="T")
    B = tl.compute((n, m), lambda i, j: T[i, m - 1 - j], name="B")
    s = tl.create_schedule(B.op)
    s[B].parallel(B.op.axis[0])
    s[T].compute_at(s[B], B.op.axis[0])
    f = tl.build(s, [A, B], name="rows")
    assert f.workspace_bytes == 0 and "aligned_alloc" in f.get_source("ll_raw")
    a = rng.random((n, m), dtype=np.float32)
    b = np.zeros_like(a)
    f(a, b)
    np.testing.assert_allclose(b, a[:, ::-1] * 3, rtol=1e-6)


def test_two_python_threads_share_a_module(rng):
    f = tl.build(*reverse_scaled(), name="rev")
    x = [rng.random(N, dtype=np.float32) for _ in range(2)]
    bad = []

    def work(k):
        y = np.zeros(N, np.float32)
        for _ in range(200):
            f(x[k], y)
            if not np.array_equal(y, x[k][::-1] * 2 + 1):
                bad.append(k)
                return

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# ----------------------------------------------------------------- unchecked paths

def test_unchecked_and_prepared_calls_match_checked(rng):
    f = tl.build(*reverse_scaled(), name="rev")
    x = rng.random(N, dtype=np.float32)
    want = np.zeros(N, np.float32)
    f(x, want)
    y = np.zeros(N, np.float32)
    f["rev"].call_unchecked(x.ctypes.data, y.ctypes.data)
    np.testing.assert_array_equal(y, want)
    y[:] = 0
    ws = tl.runtime.workspace(f.workspace_bytes)
    f["rev"].call_unchecked(x.ctypes.data, y.ctypes.data, workspace=ws.ctypes.data)
    np.testing.assert_array_equal(y, want)
    y[:] = 0
    run = f["rev"].prepare(x, y)
    run()
    np.testing.assert_array_equal(y, want)
    with pytest.raises(tl.ArgumentError, match=r"rev: argument 'B' has shape \[3\], expected \[20000\]"):
        f["rev"].prepare(x, np.zeros(3, np.float32))      # prepare checks once


def test_unchecked_call_of_symbolic_kernel_takes_sizes(rng):
    n = tl.var("n")
    A = tl.placeholder((n,), name="A")
    B = tl.compute((n,), lambda i: A[i] * A[i], name="B")
    f = tl.build(tl.create_schedule(B.op), [A, B], name="sq")
    a = rng.random(37, dtype=np.float32)
    b = np.zeros(37, np.float32)
    f["sq"].call_unchecked(a.ctypes.data, b.ctypes.data, 37)
    np.testing.assert_allclose(b, a * a, rtol=1e-6)
    with pytest.raises(tl.ArgumentError, match=r"^sq: call_unchecked expected the data pointers of A, B, "
                                               r"then the size n; got 2 arguments$"):
        f["sq"].call_unchecked(a.ctypes.data, b.ctypes.data)


def test_kernel_errors_are_raised_on_every_path():
    P = tl.placeholder((10,), name="P")
    O = tl.compute((10,), lambda i: P[i + 1], name="O")
    f = tl.build(tl.create_schedule(O.op), [P, O], name="shift", bounds_check=True)
    p, o = np.arange(10, dtype=np.float32), np.zeros(10, np.float32)
    msg = r"^shift: out-of-bounds access of buffer 'P' at flat index 10\b"
    k = f["shift"]
    for call in (lambda: f(p, o), lambda: k.call_unchecked(p.ctypes.data, o.ctypes.data),
                 k.prepare(p, o), lambda: f(p, o)):          # twice: the slots are cleared
        with pytest.raises(tl.BoundsError, match=msg):
            call()
    np.testing.assert_array_equal(o[:9], p[1:])


def test_call_overhead_benchmark_runs(capsys):
    from benchmarks import call_overhead
    assert call_overhead.main(["--rounds", "1", "--calls", "10"]) == 0
    out = capsys.readouterr().out
    assert "LLVM host CPU" in out and all(k in out for k in ("checked", "unchecked", "prepared", "raw ctypes"))
