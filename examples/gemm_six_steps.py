"""The classic six-step CPU GEMM optimisation, written in tensorlang's schedule language.

Starting from the textbook triple loop, each step adds one idea (as in TVM's "How to optimize
GEMM on CPU" tutorial, here written afresh):

1. blocking: 32x32 output tiles, the reduction split by 4, loops reordered for locality;
2. vectorization: the innermost loop over 32 columns becomes vector operations;
3. loop permutation: the row loop moves outside the k-inner loop, so that B is read by rows;
4. array packing: B is repacked as ``packedB[n // 32, k, n % 32]`` so that every tile reads
   contiguous memory (the packing stage is itself vectorized and parallel);
5. write cache: each tile accumulates into a small buffer computed at the tile (with its k
   loop unrolled) and is copied to C once;
6. parallel: the outer row-tile loop runs on all cores.

Run: .venv/bin/python examples/gemm_six_steps.py [--size 1024] [--rounds 7]
Each step is checked against numpy, then timed next to numpy's matmul in the same process.
"""

import argparse

import numpy as np

import tensorlang as tl

from tensorlang.runtime import interleaved

BN, KFACTOR = 32, 4
STEPS = ["default", "blocking", "vectorization", "loop permutation", "array packing",
         "write cache", "parallel"]


def gemm(step: int, M: int, N: int, K: int):
    """The schedule of ``step`` (0 = default, 1..6 as in the module docstring) and its args."""
    A = tl.placeholder((M, K), name="A")
    B = tl.placeholder((K, N), name="B")
    k = tl.reduce_axis((0, K), name="k")
    if step < 4:
        C = tl.compute((M, N), lambda m, n: tl.sum(A[m, k] * B[k, n], axis=k), name="C")
    else:
        packedB = tl.compute((N // BN, K, BN), lambda x, y, z: B[y, x * BN + z], name="packedB")
        C = tl.compute((M, N), lambda m, n: tl.sum(A[m, k] * packedB[n // BN, k, n % BN], axis=k),
                       name="C")
    s = tl.create_schedule(C.op)
    if step == 0:
        return s, [A, B, C]
    if step >= 5:
        CC = s.cache_write(C, "global")
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    if step < 5:
        ko, ki = s[C].split(k, factor=KFACTOR)
        if step < 3:
            s[C].reorder(mo, no, ko, ki, mi, ni)
        else:
            s[C].reorder(mo, no, ko, mi, ki, ni)
        if step >= 2:
            s[C].vectorize(ni)
    else:
        s[CC].compute_at(s[C], no)
        mc, nc = s[CC].op.axis
        ko, ki = s[CC].split(s[CC].op.reduce_axis[0], factor=KFACTOR)
        s[CC].reorder(ko, mc, ki, nc)
        s[CC].vectorize(nc)
        s[CC].unroll(ki)
        s[C].vectorize(ni)
    if step >= 4:
        x, y, z = s[packedB].op.axis
        s[packedB].vectorize(z)
        s[packedB].parallel(x)
    if step >= 6:
        s[C].parallel(mo)
    return s, [A, B, C]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--show-ir", type=int, metavar="STEP", help="print the loop IR of one step")
    args = ap.parse_args()
    M = N = K = args.size
    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    expect = a @ b
    flop = 2.0 * M * N * K
    print(f"GEMM {M}x{N}x{K} float32, {tl.runtime.get_num_threads()} threads; "
          f"medians of {args.rounds} rounds, numpy timed in the same rounds")
    print(f"{'step':<22}{'time ms':>10}{'GFLOPS':>9}{'numpy ms':>10}{'numpy GFLOPS':>14}{'ratio':>8}")
    for step, title in enumerate(STEPS):
        s, targs = gemm(step, M, N, K)
        if args.show_ir == step:
            print(tl.lower(s, targs, name=f"gemm_step{step}"))
        f = tl.build(s, targs, name=f"gemm_step{step}")
        c = np.zeros((M, N), dtype=np.float32)
        f(a, b, c)
        np.testing.assert_allclose(c, expect, rtol=1e-4)
        slow = step == 0 or (step < 2 and M >= 1024)
        t = interleaved({"ours": lambda: f(a, b, c), "numpy": lambda: np.matmul(a, b)},
                        rounds=1 if slow else args.rounds, number=1 if slow else 3)
        ours, ref = t["ours"][0], t["numpy"][0]
        print(f"{step} {title:<20}{ours * 1e3:10.2f}{flop / ours / 1e9:9.1f}{ref * 1e3:10.2f}"
              f"{flop / ref / 1e9:14.1f}{ref / ours:8.2f}", flush=True)


if __name__ == "__main__":
    main()
