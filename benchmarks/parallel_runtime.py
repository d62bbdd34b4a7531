"""python -m benchmarks.parallel_runtime [--base DIR] [--rounds R] [--only a,b,c]

How the parallel runtime behaves when it does not have the machine to itself, and what a
launch costs. Three figures, each a median over rounds:

(a) **next to numpy**: ``ops.matmul(1024, 1024, 1024)`` (float32) and numpy's ``a @ b``
    (OpenBLAS, its default threads) timed call by call in alternation, against each timed
    alone (a pause of ``--settle`` seconds before each system's calls, so that the other's
    idle threads have gone to sleep). OpenBLAS keeps a worker spinning after each call; a
    runtime that waits for its slowest thread pays for sharing a core with it.
(b) **next to a CPU-bound process** (``while True: pass`` in another interpreter): the
    2-thread time of the matmul and of an element-wise kernel (``exp(A) * B`` on 2**20
    float32, vectorised, parallel outer loop) against their 1-thread time, interleaved.
(c) **fork/join cost** of a trivial parallel loop (one iteration per thread): measured
    inside one kernel call (a serial loop of ``R`` launches; the same kernel without the
    parallel loop is subtracted) and from Python (a prepared call of a kernel with one
    launch, minus the serial kernel's call).

(d) **the spin trade-off**: the cost of a launch (as in c) that comes a given time after the
    previous one (idle workers poll for a while, then sleep and must be woken), and a small
    numpy matmul (256^3, a fraction of a millisecond) timed right after one of our launches
    against alone: polling workers that keep a core from OpenBLAS's threads slow it down.

``--base DIR`` imports tensorlang from ``DIR`` (e.g. a checkout before a change) for
before/after numbers. Run it alone on the machine (``flock /tmp/cpu.lock ...``).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.parallel_runtime",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="import tensorlang from this source tree")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--settle", type=float, default=0.2)
    ap.add_argument("--only", default="a,b,c,d", help="which figures: a comma-separated subset of a,b,c,d")
    opts = ap.parse_args(argv)
    if opts.base:
        sys.path.insert(0, os.path.abspath(opts.base))
        sys.modules.pop("tensorlang", None)
    import numpy as np
    import llvmlite.binding as llvm
    import tensorlang as tl

    which = set(opts.only.split(","))
    threads = tl.runtime.get_num_threads()
    print(f"tensorlang from {os.path.dirname(os.path.dirname(tl.__file__))}")
    print(f"CPU: {tl.dispatch.record.host_info()['cpu']}; LLVM host CPU {llvm.get_host_cpu_name()}; "
          f"{len(os.sched_getaffinity(0))} CPUs usable; tensorlang threads {threads}; "
          f"numpy BLAS: {_blas_info()}", flush=True)
    if "a" in which:
        figure_a(tl, np, opts)
    if "b" in which:
        figure_b(tl, np, opts, threads)
    if "c" in which:
        figure_c(tl, np, opts)
    if "d" in which:
        figure_d(tl, np, opts)
    return 0


# ---------------------------------------------------------------------------- kernels

def build_matmul(tl, np, n=1024):
    s, args = tl.ops.matmul(n, n, n)
    f = tl.build(s, args)
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    c = np.zeros((n, n), np.float32)
    call = f.entry_func.prepare(a, b, c)
    call()
    np.testing.assert_allclose(c, a @ b, rtol=1e-3)
    return call, a, b


def build_elementwise(tl, np, n=1 << 20):
    A = tl.placeholder((n,), name="A")
    B = tl.placeholder((n,), name="B")
    C = tl.compute((n,), lambda i: tl.exp(A[i]) * B[i], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=16)
    s[C].vectorize(xi)
    s[C].parallel(xo)
    f = tl.build(s, [A, B, C], name="ew")
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    c = np.zeros(n, np.float32)
    call = f.entry_func.prepare(a, b, c)
    call()
    np.testing.assert_allclose(c, np.exp(a) * b, rtol=1e-5)
    return call


def build_trivial(tl, np, reps, width, parallel):
    """C[r, t] = A[r, t] + 1 with the t loop (``width`` iterations) parallel: ``reps``
    launches per call."""
    A = tl.placeholder((reps, width), name="A")
    C = tl.compute((reps, width), lambda r, t: A[r, t] + 1.0, name="C")
    s = tl.create_schedule(C.op)
    if parallel:
        s[C].parallel(C.op.axis[1])
    f = tl.build(s, [A, C], name=f"triv{reps}{'p' if parallel else 's'}")
    a = np.zeros((reps, width), np.float32)
    c = np.zeros((reps, width), np.float32)
    call = f.entry_func.prepare(a, c)
    call()
    assert (c == 1).all()
    return call


# ---------------------------------------------------------------------------- figures

def _timed(fn, number=1):
    t = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t) / number


def figure_a(tl, np, opts):
    ours, a, b = build_matmul(tl, np)

    def numpy_mm():
        a @ b
    numpy_mm()
    alone = tl.runtime.interleaved({"ours": ours, "numpy": numpy_mm}, rounds=opts.rounds,
                                   number=3, settle=opts.settle)
    # alternated: one call of each in turn, each timed, no pause between them
    alt = {"ours": [], "numpy": []}
    for _ in range(opts.rounds):
        time.sleep(opts.settle)
        ours(), numpy_mm()
        for _ in range(6):
            alt["ours"].append(_timed(ours))
            alt["numpy"].append(_timed(numpy_mm))
    print("\n(a) matmul 1024^3 float32, alternated call by call with numpy's a @ b, vs alone")
    print(f"{'system':<8} {'alone ms':>9} {'alternated ms':>14} {'ratio':>6}")
    for name in ("ours", "numpy"):
        t_alone = alone[name][0]
        t_alt = statistics.median(alt[name])
        print(f"{name:<8} {t_alone * 1e3:>9.2f} {t_alt * 1e3:>14.2f} {t_alt / t_alone:>6.2f}")
    sys.stdout.flush()


def figure_b(tl, np, opts, threads):
    kernels = {"matmul 1024^3": build_matmul(tl, np)[0], "exp(A)*B 2^20": build_elementwise(tl, np)}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        print("\n(b) next to a CPU-bound process: 2-thread time vs 1-thread time (interleaved)")
        print(f"{'kernel':<16} {'1 thread ms':>12} {'2 threads ms':>13} {'ratio':>6}")
        for name, call in kernels.items():
            ts = {1: [], 2: []}
            for _ in range(opts.rounds):
                for n in (1, 2):
                    tl.runtime.set_num_threads(n)
                    call()
                    ts[n].append(_timed(call, 5))
            t1, t2 = statistics.median(ts[1]), statistics.median(ts[2])
            print(f"{name:<16} {t1 * 1e3:>12.3f} {t2 * 1e3:>13.3f} {t2 / t1:>6.2f}")
    finally:
        tl.runtime.set_num_threads(threads)
        hog.kill()
        hog.wait()
    sys.stdout.flush()


def figure_c(tl, np, opts):
    width = tl.runtime.get_num_threads()
    reps = 2000
    inner = {p: build_trivial(tl, np, reps, width, p) for p in (True, False)}
    single = {p: build_trivial(tl, np, 1, width, p) for p in (True, False)}
    calls = 20000
    t_in = {True: [], False: []}
    t_py = {True: [], False: []}
    for _ in range(opts.rounds):
        for p in (True, False):
            t_in[p].append(_timed(inner[p], 50) / reps)
            t_py[p].append(_timed(single[p], calls))
    print(f"\n(c) fork/join cost of a parallel loop of {width} trivial iterations (one per thread)")
    print(f"{'launched':<34} {'parallel us':>12} {'serial us':>10} {'cost us':>8}")
    for label, t in ((f"back to back inside a kernel", t_in), ("one per call from Python", t_py)):
        tp, ts = statistics.median(t[True]), statistics.median(t[False])
        print(f"{label:<34} {tp * 1e6:>12.3f} {ts * 1e6:>10.3f} {(tp - ts) * 1e6:>8.3f}")
    sys.stdout.flush()


def figure_d(tl, np, opts):
    call = build_trivial(tl, np, 1, tl.runtime.get_num_threads(), True)

    def busy(us):
        end = time.perf_counter() + us * 1e-6
        while time.perf_counter() < end:
            pass
    print("\n(d) the cost of a launch (as in c, from Python) a given time after the previous one")
    gaps = (2, 20, 50, 100, 200, 500, 1000, 5000)
    print(" ".join(f"{g:>7}us" for g in gaps) + "   (gap)")
    costs = []
    for gap in gaps:
        ts = []
        for _ in range(40 * opts.rounds):
            busy(gap)
            t = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t)
        costs.append(statistics.median(ts))
    print(" ".join(f"{c * 1e6:>9.2f}" for c in costs) + "   (us per call)")
    rng = np.random.default_rng(0)
    a, b = rng.random((256, 256), dtype=np.float32), rng.random((256, 256), dtype=np.float32)
    alone, after = [], []
    for _ in range(opts.rounds):
        for _ in range(50):
            time.sleep(0.0005)
            alone.append(_timed(lambda: a @ b))
        for _ in range(50):
            time.sleep(0.0005)
            call()
            after.append(_timed(lambda: a @ b))
    t_alone, t_after = statistics.median(alone), statistics.median(after)
    print(f"numpy 256^3 matmul: alone {t_alone * 1e6:.1f} us, right after one of our launches "
          f"{t_after * 1e6:.1f} us ({t_after / t_alone:.2f}x)")
    sys.stdout.flush()


def _blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('num_threads')} threads"
                     for i in threadpool_info() if i.get("user_api") == "blas") or "none found"


if __name__ == "__main__":
    sys.exit(main())
