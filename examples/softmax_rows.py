"""Row softmax with its max and sum reductions computed at the row, and a two-stage parallel
sum with rfactor; both checked against numpy and timed next to it.

Softmax of each row of X (rows x cols):  Y[i, j] = exp(X[i, j] - max_j X[i, :]) / sum_j(...)
is four stages: the row maximum, the exponentials, their row sum, and the division. Computed
at the row (``compute_at(s[Y], i)``), each row's max, exponentials and sum live in small
per-row buffers while the row is hot in cache, and the row loop runs on all cores.

A single long sum has no data-parallel axis to split between cores. ``rfactor`` splits its
reduction into per-core partial sums (a new stage whose first dimension is parallel, each
partial sum accumulated 16 lanes wide) and a final sum over the partial results.

Run: .venv/bin/python examples/softmax_rows.py [--rows 4096] [--cols 1024] [--rounds 7]
"""

import argparse

import numpy as np

import tensorlang as tl

from tensorlang.runtime import interleaved


def softmax(rows, cols, vector=16):
    """Row softmax: max, exp, sum and divide computed at each row; rows split between cores."""
    X = tl.placeholder((rows, cols), name="X")
    k1 = tl.reduce_axis((0, cols), name="k1")
    k2 = tl.reduce_axis((0, cols), name="k2")
    mx = tl.compute((rows,), lambda i: tl.max(X[i, k1], axis=k1), name="rowmax")
    ex = tl.compute((rows, cols), lambda i, j: tl.exp(X[i, j] - mx[i]), name="exp")
    sm = tl.compute((rows,), lambda i: tl.sum(ex[i, k2], axis=k2), name="rowsum")
    Y = tl.compute((rows, cols), lambda i, j: ex[i, j] / sm[i], name="Y")
    s = tl.create_schedule(Y.op)
    i, j = Y.op.axis
    for stage in (mx, ex, sm):
        s[stage].compute_at(s[Y], i)
    s[Y].parallel(i)
    jo, ji = s[Y].split(j, factor=vector)
    s[Y].vectorize(ji)
    # the reductions accumulate `vector` lanes at once through rfactor, computed at the row
    for red, k in ((mx, k1), (sm, k2)):
        ko, ki = s[red].split(k, factor=vector)
        rf = s.rfactor(red, ki)
        s[rf].compute_at(s[Y], i)
        kk, = s[rf].op.reduce_axis
        lane = rf.op.axis[0]
        s[rf].reorder(rf.op.axis[1], kk, lane)
        s[rf].vectorize(lane)
    s[ex].vectorize(s[ex].split(ex.op.axis[1], factor=vector)[1])
    return s, [X, Y]


def parallel_sum(n, parts=2, vector=16):
    """sum(A) as two stages: ``parts`` partial sums in parallel (each ``vector`` lanes wide),
    then the sum of the partial results."""
    A = tl.placeholder((n,), name="A")
    k = tl.reduce_axis((0, n), name="k")
    S = tl.compute((1,), lambda _: tl.sum(A[k], axis=k), name="S")
    s = tl.create_schedule(S.op)
    ko, ki = s[S].split(k, nparts=parts)
    SF = s.rfactor(S, ko)                    # SF[part] = sum over that part's range
    part, = SF.op.axis[:1]
    kin, = s[SF].op.reduce_axis
    kino, kini = s[SF].split(kin, factor=vector)
    SV = s.rfactor(SF, kini, factor_axis=1)  # SV[part, lane]: vector-wide partial sums
    s[SV].reorder(SV.op.axis[0], s[SV].op.reduce_axis[0], SV.op.axis[1])
    s[SV].vectorize(SV.op.axis[1])
    s[SV].parallel(SV.op.axis[0])
    return s, [A, S]


def softmax_numpy(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--show-ir", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    s, targs = softmax(args.rows, args.cols)
    if args.show_ir:
        print(tl.lower(s, targs, name="softmax"))
    f = tl.build(s, targs, name="softmax")
    x = rng.standard_normal((args.rows, args.cols), dtype=np.float32)
    y = np.zeros_like(x)
    f(x, y)
    np.testing.assert_allclose(y, softmax_numpy(x), rtol=1e-5, atol=1e-7)
    t = interleaved({"ours": lambda: f(x, y), "numpy": lambda: softmax_numpy(x)}, rounds=args.rounds)
    print(f"row softmax {args.rows}x{args.cols} float32, {tl.runtime.get_num_threads()} threads")
    for name, label in (("ours", "tensorlang"), ("numpy", "numpy")):
        print(f"  {label:<12}: {t[name][0] * 1e3:7.3f} ms (spread {t[name][1] * 1e3:.3f}-"
              f"{t[name][2] * 1e3:.3f})")
    print(f"  speed-up over numpy: {t['numpy'][0] / t['ours'][0]:.2f}x")

    n = args.rows * args.cols
    s, targs = parallel_sum(n)
    if args.show_ir:
        print(tl.lower(s, targs, name="psum"))
    g = tl.build(s, targs, name="psum")
    a = rng.random(n, dtype=np.float32)
    out = np.zeros(1, dtype=np.float32)
    g(a, out)
    np.testing.assert_allclose(out[0], a.astype(np.float64).sum(), rtol=1e-4)
    t = interleaved({"ours": lambda: g(a, out), "numpy": lambda: a.sum()}, rounds=args.rounds)
    print(f"sum of {n} float32 (rfactor: 2 parallel parts x 16 lanes)")
    for name, label in (("ours", "tensorlang"), ("numpy", "numpy")):
        print(f"  {label:<12}: {t[name][0] * 1e3:7.3f} ms (spread {t[name][1] * 1e3:.3f}-"
              f"{t[name][2] * 1e3:.3f})")
    print(f"  speed-up over numpy: {t['numpy'][0] / t['ours'][0]:.2f}x")


if __name__ == "__main__":
    main()
