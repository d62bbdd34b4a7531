"""python -m benchmarks.lower_chain [--depths 10,20,50] [--n 4096] [--schedule plain|vector]

Compile time of a long inlined element-wise chain: ``y = x*x + x`` repeated ``depth``
times, every stage but the last ``compute_inline``'d. Prints, per depth, the seconds
``tl.lower`` and ``tl.build`` (lower + LLVM) take and the size of the printed IR, and checks
the built function against numpy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tensorlang as tl


def chain(depth: int, n: int = 4096, schedule: str = "vector"):
    """``(schedule, [A, out])`` of a ``depth``-stage inlined ``x*x + x`` chain."""
    A = tl.placeholder((n,), name="A")
    def step(p):
        return lambda i: p[i] * p[i] + p[i]
    prev, stages = A, []
    for k in range(depth):
        prev = tl.compute((n,), step(prev), name=f"s{k}")
        stages.append(prev)
    s = tl.create_schedule(prev.op)
    for t in stages[:-1]:
        s[t].compute_inline()
    if schedule == "vector":
        xo, xi = s[prev].split(prev.op.axis[0], factor=16)
        s[prev].vectorize(xi)
        s[prev].parallel(xo)
    return s, [A, prev]


def reference(a: np.ndarray, depth: int) -> np.ndarray:
    for _ in range(depth):
        a = a * a + a
    return a


def measure(depth: int, n: int = 4096, schedule: str = "vector") -> dict:
    s, args = chain(depth, n, schedule)
    t0 = time.perf_counter()
    func = tl.lower(s, args, name="chain")
    t1 = time.perf_counter()
    s, args = chain(depth, n, schedule)
    t2 = time.perf_counter()
    mod = tl.build(s, args, name="chain")
    t3 = time.perf_counter()
    # values in [-0.5, 0): x*x + x stays in (-0.25, 0], no overflow at any depth
    a = (-np.random.default_rng(0).random(n, dtype=np.float32) * 0.5).astype("float32")
    out = np.zeros(n, "float32")
    mod(a, out)
    np.testing.assert_allclose(out, reference(a, depth), rtol=1e-5, atol=1e-6)
    return {"depth": depth, "lower_s": t1 - t0, "build_s": t3 - t2, "ir_chars": len(str(func))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lower_chain",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="10,20,50")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--schedule", choices=("plain", "vector"), default="vector")
    a = ap.parse_args(argv)
    print(f"{'depth':>5} {'lower s':>9} {'build s':>9} {'IR chars':>9}", flush=True)
    for d in (int(x) for x in a.depths.split(",")):
        r = measure(d, a.n, a.schedule)
        print(f"{d:>5} {r['lower_s']:>9.3f} {r['build_s']:>9.3f} {r['ir_chars']:>9}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
