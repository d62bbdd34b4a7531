"""The main demo: build the tiled, vectorized, parallel 1024^3 float32 matmul, check it
against numpy, and print its speed next to numpy's and next to ``tensorlang.ops.matmul``
(the packed, register-blocked schedule; all measured interleaved in this process),
its speed-up over one thread, the time to lower and build it, and the fork/join cost of an
empty parallel loop.

Run: make demo   (or: .venv/bin/python examples/demo_matmul.py [--size N] [--show-ir])
"""

import argparse
import statistics
import time

import numpy as np

import tensorlang as tl

from tensorlang.runtime import interleaved


def matmul_schedule(M, N, K):
    k = tl.reduce_axis((0, K), name="k")
    A = tl.placeholder((M, K), name="A")
    B = tl.placeholder((K, N), name="B")
    C = tl.compute((M, N), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tl.create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 32, 32)
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(io, jo, ko, ii, ki, ji)
    s[C].vectorize(ji)
    s[C].unroll(ki)
    s[C].parallel(io)
    return s, [A, B, C]


def empty_parallel_overhead():
    """Median seconds per call of a kernel with an empty-bodied parallel loop, and of the same
    kernel serial: the difference is the fork/join cost (the rest is the Python call)."""
    X = tl.placeholder((2,), name="X")
    Y = tl.compute((2,), lambda i: X[i], name="Y")
    out = []
    for par in (True, False):
        s = tl.create_schedule(Y.op)
        if par:
            s[Y].parallel(Y.op.axis[0])
        f = tl.build(s, [X, Y], name="par" if par else "ser")
        x, y = np.zeros(2, "float32"), np.zeros(2, "float32")
        out.append(f.time_evaluator(number=20000, repeat=7)(x, y).median)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--show-ir", action="store_true")
    args = ap.parse_args()
    M = N = K = args.size

    t0 = time.perf_counter()
    s, targs = matmul_schedule(M, N, K)
    func = tl.lower(s, targs, name="mm")
    f = tl.build(func, target="llvm")
    build_s = time.perf_counter() - t0
    if args.show_ir:
        print(func)

    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    c = np.zeros((M, N), dtype=np.float32)
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)

    best = tl.build(*tl.ops.matmul(M, N, K), name="mm_ops")
    c2 = np.zeros((M, N), dtype=np.float32)
    best(a, b, c2)
    np.testing.assert_allclose(c2, a @ b, rtol=1e-4)

    flop = 2.0 * M * N * K
    t = interleaved({"ours": lambda: f(a, b, c), "numpy": lambda: np.matmul(a, b),
                     "ops": lambda: best(a, b, c2)}, rounds=args.repeat)
    (mo, *ours), (mt, *theirs), (mb, *_) = t["ours"], t["numpy"], t["ops"]
    evaluator = f.time_evaluator(number=3, repeat=1)

    threads = tl.runtime.get_num_threads()     # the same kernel on one thread, interleaved
    one, many = [], []
    for _ in range(3):
        tl.runtime.set_num_threads(1)
        one.append(evaluator(a, b, c).median)
        tl.runtime.set_num_threads(threads)
        many.append(evaluator(a, b, c).median)
    speedup = statistics.median(one) / statistics.median(many)
    par, ser = empty_parallel_overhead()

    print(f"tensorlang demo: {M}x{N}x{K} float32 matmul, tiled 32x32, k split 4, vectorized, "
          f"unrolled, parallel on {tl.runtime.get_num_threads()} threads, target {f.meta['target']}")
    print(f"  lower + build          : {build_s * 1e3:8.1f} ms")
    print(f"  tensorlang             : {mo * 1e3:8.2f} ms  {flop / mo / 1e9:7.1f} GFLOPS "
          f"(spread {min(ours) * 1e3:.2f}-{max(ours) * 1e3:.2f} ms)")
    print(f"  numpy (OpenBLAS)       : {mt * 1e3:8.2f} ms  {flop / mt / 1e9:7.1f} GFLOPS "
          f"(spread {min(theirs) * 1e3:.2f}-{max(theirs) * 1e3:.2f} ms)")
    print(f"  ratio tensorlang/numpy : {mt / mo:8.2f}x")
    print(f"  ops.matmul (packed B, 8x32 register block): {mb * 1e3:.2f} ms "
          f"{flop / mb / 1e9:7.1f} GFLOPS, {mt / mb:.2f}x numpy")
    print(f"  {threads} threads vs 1 thread : {speedup:8.2f}x")
    print(f"  empty parallel loop    : {par * 1e6:8.2f} us per call vs {ser * 1e6:.2f} us serial "
          f"-> fork/join ~{(par - ser) * 1e6:.2f} us")


if __name__ == "__main__":
    main()
