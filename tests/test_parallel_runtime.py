"""The thread pool that runs parallel loops (tensorlang/runtime/threadpool.py): every
iteration runs exactly once whatever the extent and thread count, concurrent launches from
several Python threads, launches in forked children, exported libraries in fresh processes,
many tiny launches, and idle workers that go to sleep."""

import ctypes
import os
import threading
import time

import llvmlite.binding as llvm
import numpy as np
import pytest

import tensorlang as tl
from tensorlang.runtime import threadpool
from tests.conftest import run_python

# ----------------------------------------------------------------- helpers

_BODIES_IR = r"""
declare i64 @syscall(i64, ...)

; ctx[i] += 1 for every i in [begin, end) (atomically: a chunk run twice, even at once, shows)
define void @count(ptr %ctx, i64 %begin, i64 %end) {
entry:
  br label %head
head:
  %i = phi i64 [ %begin, %entry ], [ %i1, %body ]
  %more = icmp slt i64 %i, %end
  br i1 %more, label %body, label %exit
body:
  %p = getelementptr i32, ptr %ctx, i64 %i
  %old = atomicrmw add ptr %p, i32 1 monotonic
  %i1 = add i64 %i, 1
  br label %head
exit:
  ret void
}

; ctx[i] = the thread id that ran iteration i, after a short busy wait
define void @tid(ptr %ctx, i64 %begin, i64 %end) {
entry:
  %t = call i64 (i64, ...) @syscall(i64 186)
  br label %head
head:
  %i = phi i64 [ %begin, %entry ], [ %i1, %spun ]
  %more = icmp slt i64 %i, %end
  br i1 %more, label %body, label %exit
body:
  %p = getelementptr i64, ptr %ctx, i64 %i
  store volatile i64 %t, ptr %p
  br label %spin
spin:
  %k = phi i32 [ 0, %body ], [ %k1, %spin ]
  %v = load volatile i64, ptr %p
  %k1 = add i32 %k, 1
  %again = icmp ult i32 %k1, 20000
  br i1 %again, label %spin, label %spun
spun:
  %i1 = add i64 %i, 1
  br label %head
exit:
  ret void
}
"""

_bodies = {}


def body(name: str) -> int:
    """The address of a loop body (``count`` or ``tid`` above), JIT-compiled once."""
    if not _bodies:
        from tensorlang.codegen.target import init_llvm
        init_llvm()
        mod = llvm.parse_assembly(f'target triple = "{llvm.get_process_triple()}"\n' + _BODIES_IR)
        tm = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(jit=True)
        engine = llvm.create_mcjit_compiler(mod, tm)
        engine.finalize_object()
        _bodies["engine"] = engine
        for fn in ("count", "tid"):
            _bodies[fn] = engine.get_function_address(fn)
    return _bodies[name]


def launch_count(extent: int) -> np.ndarray:
    """How often the pool ran each iteration of a loop of ``extent`` iterations."""
    counts = np.zeros(max(extent, 1), np.int32)
    threadpool.pool().launch(body("count"), counts.ctypes.data, extent)
    return counts[:extent]


def affine_kernel(n: int, split: int | None = None, name="affine"):
    """C = A * 2 + B over n floats, the outer loop parallel (``split``: vectorised inner
    loops of that many)."""
    A = tl.placeholder((n,), name="A")
    B = tl.placeholder((n,), name="B")
    C = tl.compute((n,), lambda i: A[i] * 2.0 + B[i], name="C")
    s = tl.create_schedule(C.op)
    if split:
        xo, xi = s[C].split(C.op.axis[0], factor=split)
        s[C].vectorize(xi)
        s[C].parallel(xo)
    else:
        s[C].parallel(C.op.axis[0])
    return tl.build(s, [A, B, C], name=name)


def increment_kernel(n: int, split: int | None = None):
    """C = A + 1; called with C and A the same array (``call_unchecked``) it adds 1 in place,
    so an iteration run twice shows as 2."""
    A = tl.placeholder((n,), name="A")
    C = tl.compute((n,), lambda i: A[i] + 1.0, name="C")
    s = tl.create_schedule(C.op)
    if split:
        xo, xi = s[C].split(C.op.axis[0], factor=split)
        s[C].parallel(xo)
    else:
        s[C].parallel(C.op.axis[0])
    return tl.build(s, [A, C], name="inc")


@pytest.fixture
def threads():
    """Restore the thread count after a test that changes it."""
    old = tl.runtime.get_num_threads()
    yield old
    tl.runtime.set_num_threads(old)


def extents():
    t = tl.runtime.get_num_threads()
    return sorted({1, 2, 3, max(t - 1, 1), t, t + 1, 1000, 10**6})


# ----------------------------------------------------------------- every iteration exactly once

@pytest.mark.parametrize("extent", [0, 1, 2, 3, 4, 5, 7, 31, 32, 33, 1000, 4097, 10**6])
@pytest.mark.parametrize("nthreads", [1, 2, 3, 4])
def test_pool_runs_every_iteration_exactly_once(extent, nthreads, threads):
    tl.runtime.set_num_threads(nthreads)
    for _ in range(3):
        counts = launch_count(extent)
        assert counts.size == extent and (counts == 1).all(), np.flatnonzero(counts != 1)[:10]


def test_kernels_of_every_extent_give_exact_results(rng):
    for n in extents():
        a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
        want = a * np.float32(2) + b
        for split in ((None,) if n < 10**5 else (16,)):
            f = affine_kernel(n, split)
            assert n == 1 or "call void @tensorlang_parallel_launch" in f.get_source("ll_raw")
            c = np.full(n, np.nan, np.float32)
            f(a, b, c)
            np.testing.assert_array_equal(c, want, err_msg=f"n={n}")


@pytest.mark.parametrize("n,split", [(1, None), (2, None), (3, None), (5, None), (1000, None),
                                     (1000, 7), (10**6, None), (10**6, 16), (10**6 + 3, 64)])
def test_kernel_iterations_run_exactly_once(n, split):
    f = increment_kernel(n, split)
    x = np.zeros(n, np.float32)
    for k in range(1, 4):
        f.entry_func.call_unchecked(x.ctypes.data, x.ctypes.data)    # in place: x += 1
        assert (x == k).all(), (n, split, k, np.flatnonzero(x != k)[:10])


@pytest.mark.parametrize("nthreads", [1, 2, 4])
def test_thread_counts_give_correct_results(nthreads, threads, rng):
    tl.runtime.set_num_threads(nthreads)
    assert tl.runtime.get_num_threads() == nthreads
    s, args = tl.ops.matmul(96, 80, 64)
    f = tl.build(s, args)
    a, b = rng.random((96, 64), dtype=np.float32), rng.random((64, 80), dtype=np.float32)
    c = np.zeros((96, 80), np.float32)
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    for n in (1, 3, nthreads + 1, 1000, 10**6):
        counts = launch_count(n)
        assert (counts == 1).all()


def test_thread_count_validation_and_scope(threads):
    for bad in (0, -1, True, 1.5, "2", None):
        with pytest.raises(tl.TensorlangValueError, match="set_num_threads: expected a positive int"):
            tl.runtime.set_num_threads(bad)
    assert tl.runtime.get_num_threads() == threads
    tl.runtime.set_num_threads(3)
    seen = []
    t = threading.Thread(target=lambda: seen.append(tl.runtime.get_num_threads()))
    t.start()
    t.join()
    assert seen == [3]                  # a setting of the process, not of the Python thread


@pytest.mark.parametrize("cpus", ["all", "one"])
def test_default_is_the_affinity_mask_in_a_fresh_process(cpus):
    r = run_python(f"""
        import os
        if {cpus!r} == "one":
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
        import numpy as np, tensorlang as tl
        print("threads", tl.runtime.get_num_threads(), len(os.sched_getaffinity(0)))
    """)
    assert r.returncode == 0, r.stderr
    got, want = r.stdout.split("threads", 1)[1].split()
    assert got == want and (cpus == "all" or got == "1"), r.stdout


def test_workers_take_part(threads):
    """With two threads, a loop of slow iterations runs on two different threads."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    tl.runtime.set_num_threads(2)
    for _ in range(20):
        tids = np.zeros(64, np.int64)
        threadpool.pool().launch(body("tid"), tids.ctypes.data, 64)
        assert (tids != 0).all()
        if len(set(tids)) >= 2:
            break
    assert len(set(tids)) >= 2, "every chunk ran on the calling thread"


# ----------------------------------------------------------------- concurrency

def test_two_python_threads_launch_at_once(rng):
    n = 200_000
    f = affine_kernel(n, 16, name="affine_a")
    g = increment_kernel(4099, 5)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    want = a * np.float32(2) + b
    errors = []
    barrier = threading.Barrier(3)

    def run_affine():
        c = np.zeros(n, np.float32)
        barrier.wait()
        for _ in range(150):
            c[:] = 0
            f(a, b, c)
            if not (c == want).all():
                errors.append("affine")
                return

    def run_increment():
        x = np.zeros(4099, np.float32)
        barrier.wait()
        for k in range(1, 2001):
            g.entry_func.call_unchecked(x.ctypes.data, x.ctypes.data)
        if not (x == 2000).all():
            errors.append(f"increment {np.unique(x)}")

    def run_pool():
        barrier.wait()
        for _ in range(2000):
            if not (launch_count(37) == 1).all():
                errors.append("pool")
                return

    ts = [threading.Thread(target=fn) for fn in (run_affine, run_increment, run_pool)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "a launch did not return"
    assert not errors, errors


def test_many_tiny_launches():
    f = increment_kernel(3)
    x = np.zeros(3, np.float32)
    call = f.entry_func.call_unchecked
    p = x.ctypes.data
    t0 = time.perf_counter()
    for _ in range(10_000):
        call(p, p)
    elapsed = time.perf_counter() - t0
    assert (x == 10_000).all(), x
    counts = np.zeros(2, np.int32)
    launch = threadpool.pool().launch
    addr, data = body("count"), counts.ctypes.data
    for _ in range(10_000):
        launch(addr, data, 2)
    assert (counts == 10_000).all(), counts
    assert elapsed < 5, f"10^4 tiny launches took {elapsed:.2f} s"


def test_late_workers_never_run_a_finished_job():
    """With no spinning, every launch finds its workers asleep and wakes them: they arrive
    late, usually after the caller has run every chunk itself, and must neither run a chunk
    twice nor touch the (dead) context of a finished launch."""
    r = run_python("""
        import numpy as np, tensorlang as tl
        from tensorlang.runtime import threadpool
        from tests.test_parallel_runtime import launch_count, increment_kernel
        tl.runtime.set_num_threads(4)
        threadpool.set_spin_us(0)
        for k in range(3000):
            n = (1, 2, 3, 5, 8, 100)[k % 6]
            assert (launch_count(n) == 1).all(), (k, n)
        f = increment_kernel(37)
        x = np.zeros(37, np.float32)
        for k in range(2000):
            f.entry_func.call_unchecked(x.ctypes.data, x.ctypes.data)
        assert (x == 2000).all(), x
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_idle_workers_go_to_sleep_and_block_async_signals():
    r = run_python("""
        import os, time
        import numpy as np, tensorlang as tl
        from tests.test_parallel_runtime import launch_count
        before = set(os.listdir("/proc/self/task"))       # this thread, OpenBLAS's threads
        tl.runtime.set_num_threads(3)
        assert (launch_count(1000) == 1).all()
        workers = set(os.listdir("/proc/self/task")) - before
        assert len(workers) == 2, workers
        time.sleep(0.2)          # far beyond the spin time
        for t in workers:
            with open(f"/proc/self/task/{t}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/self/task/{t}/status") as fh:
                blocked = int(next(l for l in fh if l.startswith("SigBlk")).split()[1], 16)
            print("worker", state, "SIGINT blocked", bool(blocked >> 1 & 1),
                  "SIGSEGV blocked", bool(blocked >> 10 & 1))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("worker S SIGINT blocked True SIGSEGV blocked False") == 2, r.stdout


# ----------------------------------------------------------------- fork and exported libraries

def test_fork_child_runs_parallel_kernels():
    r = run_python("""
        import os, signal, sys
        import numpy as np, tensorlang as tl
        from tests.test_parallel_runtime import affine_kernel, launch_count
        tl.runtime.set_num_threads(2)
        n = 100_000
        f = affine_kernel(n, 16)
        a = np.arange(n, dtype=np.float32); b = np.ones(n, np.float32); c = np.zeros(n, np.float32)
        f(a, b, c)                              # the pool's workers exist now
        assert (c == a * 2 + b).all()
        for forked in range(2):                 # the second fork comes from a child of the first
            pid = os.fork()
            if pid:
                signal.alarm(60)
                _, status = os.waitpid(pid, 0)
                sys.exit(os.waitstatus_to_exitcode(status))
            signal.alarm(60)                    # a deadlock kills the child
            c[:] = 0
            f(a, b, c)
            assert (c == a * 2 + b).all()
            for m in (1, 2, 3, 1000):
                assert (launch_count(m) == 1).all()
            assert len(os.listdir("/proc/self/task")) >= 2, "the child's pool has no workers"
        print("child ok", flush=True)
        os._exit(0)
    """)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "child ok" in r.stdout


def test_multiprocessing_fork_pool():
    r = run_python("""
        import multiprocessing as mp
        import numpy as np, tensorlang as tl
        from tests.test_parallel_runtime import affine_kernel
        n = 50_000
        f = affine_kernel(n, 16)
        a = np.arange(n, dtype=np.float32); b = np.ones(n, np.float32)

        def job(k):
            c = np.zeros(n, np.float32)
            f(a + k, b, c)
            return bool((c == (a + k) * 2 + b).all())

        c = np.zeros(n, np.float32)
        f(a, b, c)
        with mp.get_context("fork").Pool(2) as p:
            print("results", p.map(job, range(6), chunksize=1))
    """, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "results [True, True, True, True, True, True]" in r.stdout


def test_exported_library_runs_parallel_kernels_in_a_fresh_process(tmp_path):
    n = 300_000
    f = affine_kernel(n, 16, name="affine_x")
    g = increment_kernel(1001, 3)
    lib1, lib2 = str(tmp_path / "affine.so"), str(tmp_path / "inc.so")
    f.export_library(lib1)
    g.export_library(lib2)
    r = run_python(f"""
        import ctypes, os
        import numpy as np
        # 1. straight through ctypes, no tensorlang: the library's own pool
        lib = ctypes.CDLL({lib1!r})
        n = {n}
        a = np.arange(n, dtype=np.float32); b = np.ones(n, np.float32); c = np.zeros(n, np.float32)
        err = np.zeros(4, np.int64)
        k = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 5)(ctypes.cast(lib.affine_x, ctypes.c_void_p).value)
        for _ in range(50):
            c[:] = 0
            k(a.ctypes.data, b.ctypes.data, c.ctypes.data, None, err.ctypes.data)
            assert (c == a * 2 + b).all()
        print("own pool threads", len(os.listdir("/proc/self/task")))
        # 2. through tl.load_module: both libraries share this process's pool
        import tensorlang as tl
        m1, m2 = tl.load_module({lib1!r}), tl.load_module({lib2!r})
        for _ in range(50):
            c[:] = 0
            m1(a, b, c)
            assert (c == a * 2 + b).all()
        x = np.zeros(1001, np.float32)
        for _ in range(100):
            m2.entry_func.call_unchecked(x.ctypes.data, x.ctypes.data)
        assert (x == 100).all()
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    if len(os.sched_getaffinity(0)) >= 2:
        assert "own pool threads 1" not in r.stdout
    needed = open(lib1, "rb").read()
    assert b"libgomp" not in needed and b"GOMP_parallel" not in needed


def test_exported_library_symbols_are_private(tmp_path):
    """Only the kernels, the metadata and the delegate hook are exported: two libraries
    loaded at once keep their own pools."""
    f = affine_kernel(1000, 16, name="affine_y")
    path = str(tmp_path / "lib.so")
    f.export_library(path)
    import subprocess
    try:
        out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no nm")
    names = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    pool_names = {nm for nm in names if nm.startswith("tensorlang_parallel") or nm.startswith("tl.")}
    assert pool_names == {"tensorlang_parallel_delegate"}, names
