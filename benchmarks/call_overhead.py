"""python -m benchmarks.call_overhead [--base DIR] [--rounds R] [--calls N]

Per-call overhead of a compiled kernel: a 3-argument vector add of 16 floats, so that the
kernel itself takes a few nanoseconds and the time is the call path's. Paths:

* ``checked``: ``f(a, b, c)``, every argument checked (the default for users);
* ``unchecked``: ``kernel.call_unchecked(pa, pb, pc)`` on data pointers (no checks);
* ``prepared``: ``kernel.prepare(a, b, c)()``, checked once, then a call with no arguments;
* ``raw ctypes``: the exported library's symbol called through ctypes (the floor).

Each round times ``N`` calls of every path in turn; the table gives the median (and min..max)
of the rounds in microseconds per call. ``--base DIR`` imports tensorlang from ``DIR`` (e.g. a
copy of the tree before a change; paths it lacks are skipped), for before/after numbers.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.call_overhead",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="import tensorlang from this source tree")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--calls", type=int, default=20000)
    opts = ap.parse_args(argv)
    if opts.base:
        sys.path.insert(0, os.path.abspath(opts.base))
        sys.modules.pop("tensorlang", None)
    import numpy as np
    import llvmlite.binding as llvm
    import tensorlang as tl

    n = 16
    A = tl.placeholder((n,), name="A")
    B = tl.placeholder((n,), name="B")
    C = tl.compute((n,), lambda i: A[i] + B[i], name="C")
    s = tl.create_schedule(C.op)
    f = tl.build(s, [A, B, C], name="vadd")
    a, b = np.arange(n, dtype=np.float32), np.ones(n, np.float32)
    c = np.zeros(n, np.float32)
    f(a, b, c)
    assert (c == a + b).all()

    # the floor: the same machine code called through ctypes with no checks at all
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "vadd.so")
    f.export_library(path)
    lib = ctypes.CDLL(path)
    lib.tensorlang_metadata.restype = ctypes.c_char_p
    meta = json.loads(lib.tensorlang_metadata())
    kmeta = meta["kernels"][0] if "kernels" in meta else meta
    n_ptr = len(kmeta["params"]) + ("workspace_bytes" in kmeta) + 1     # + workspace, errors
    raw = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * n_ptr)(
        ctypes.cast(lib.vadd, ctypes.c_void_p).value)
    err = np.zeros(4, np.int64)
    raw_args = [x.ctypes.data for x in (a, b, c)] + [0] * (n_ptr - 4) + [err.ctypes.data]

    paths = {"checked": lambda: f(a, b, c), "raw ctypes": lambda: raw(*raw_args)}
    kernel = f["vadd"]
    if hasattr(kernel, "call_unchecked"):
        pa, pb, pc = (x.ctypes.data for x in (a, b, c))
        unchecked = kernel.call_unchecked
        paths["unchecked"] = lambda: unchecked(pa, pb, pc)
        paths["prepared"] = kernel.prepare(a, b, c)

    times = {name: [] for name in paths}
    for _ in range(opts.rounds):
        for name, fn in paths.items():
            loop = _loop(fn)
            t = time.perf_counter()
            loop(opts.calls)
            times[name].append((time.perf_counter() - t) / opts.calls * 1e6)
    assert (c == a + b).all()

    import tensorlang
    print(f"tensorlang from {os.path.dirname(os.path.dirname(tensorlang.__file__))}; "
          f"LLVM host CPU {llvm.get_host_cpu_name()}; {tensorlang.dispatch.record.host_info()['cpu']}")
    print(f"{'path':<12} {'median us':>10}   min..max over {opts.rounds} rounds of {opts.calls} calls")
    for name in ("checked", "unchecked", "prepared", "raw ctypes"):
        if name in times:
            ts = times[name]
            print(f"{name:<12} {statistics.median(ts):>10.2f}   {min(ts):.2f}..{max(ts):.2f}")
    return 0


def _loop(fn):
    def run(calls):
        for _ in range(calls):
            fn()
    return run


if __name__ == "__main__":
    sys.exit(main())
