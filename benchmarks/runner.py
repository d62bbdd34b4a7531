"""Run each workload next to its peers in one process and record what was measured.

For every workload: build our kernel (timing lower + build), run every system once and
validate its output against numpy (a system whose output is wrong is not timed and its
error is recorded), then time all systems in interleaved rounds
(``tensorlang.runtime.interleaved``: each round runs each system after an idle pause, so all
see the same machine state) and keep the median and spread. Every system runs with the same
number of threads (numpy's OpenBLAS through threadpoolctl, PyTorch through
``torch.set_num_threads``, ours through ``tl.runtime.set_num_threads``).

Our kernels are built for the current target (``with tl.target.Target(...)``, set by
``--target``). For a target without AVX-512 the GEMM-like workloads (group "gemm") also get
the peer ``numpy (OpenBLAS Haswell)``: numpy in a subprocess whose OpenBLAS is forced to its
AVX2 kernels (``openblas_peer.py``). It cannot be interleaved call by call with the systems
of this process, so rounds alternate: one round of every in-process system, then one round
of the subprocess, and so on (each round of each system starts after the same idle pause).

Besides the workloads, ``extras`` measures what the issue asks about the compiler itself:
GEMM's 1-thread vs all-threads speed-up, the time to lower and build a tiled GEMM, and the
fork/join cost of an (almost) empty parallel loop.
"""

from __future__ import annotations

import json
import statistics
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

import tensorlang as tl
from examples.demo_matmul import empty_parallel_overhead
from tensorlang.runtime import interleaved

from . import openblas_peer

OURS, NUMPY, TORCH, COMPILE = "tensorlang", "numpy", "torch", "torch.compile"
OB_HSW = openblas_peer.NAME
SETTLE = 0.2                                        # idle seconds before each system's round


@dataclass
class Result:
    name: str
    group: str
    flop: float | None
    tuned: bool = False                             # a shipped tuned record applies
    target: str | None = None                       # the target our kernel was built for
    build_s: float | None = None
    times: dict = field(default_factory=dict)       # system -> (median, min, max) seconds
    errors: dict = field(default_factory=dict)      # system -> message
    checked: list = field(default_factory=list)     # systems whose output matched numpy


def set_threads(n: int, torch=None) -> None:
    tl.runtime.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def _check(w, got, expect) -> str | None:
    got = np.asarray(got)
    if got.shape != expect.shape:
        return f"shape {got.shape}, expected {expect.shape}"
    bad = ~np.isclose(got, expect, rtol=w.rtol, atol=w.atol)
    if bad.any():
        i = np.unravel_index(np.argmax(bad), bad.shape)
        return (f"{int(bad.sum())} of {bad.size} values differ from numpy; first at {i}: "
                f"{got[i]!r} vs {expect[i]!r}")
    return None


def _number(seconds: float) -> int:
    """Calls per timed batch: enough for about 20 ms, at most 50."""
    return max(1, min(50, int(0.02 / max(seconds, 1e-7))))


def run_workload(w, rng, torch=None, compile_torch=False, quick=False, rounds=7,
                 shipped=frozenset(), haswell=None) -> Result:
    """``shipped``: the workload keys (JSON) with a shipped record (marks the row tuned);
    ``haswell``: an ``openblas_peer.HaswellPeer``, the extra peer of the "gemm" group."""
    r = Result(w.name, w.group, w.flop, tuned=w.key is not None and json.dumps(w.key) in shipped)
    inputs = w.inputs(rng)
    expect = w.numpy(*inputs)
    fns = {}
    try:
        t = time.perf_counter()
        s, args = w.build()
        f = tl.build(s, args, name="kernel")
        r.build_s = time.perf_counter() - t
        r.target = f.target
        out = np.full(expect.shape, np.nan, dtype=expect.dtype)
        t = time.perf_counter()
        f(*inputs, out)
        once = time.perf_counter() - t
        err = _check(w, out, expect)
        if err:
            r.errors[OURS] = err
        else:
            fns[OURS] = lambda: f(*inputs, out)
    except Exception as e:                         # a failure of one workload ends no run
        r.errors[OURS] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        once = 1e-3
    fns[NUMPY] = lambda: w.numpy(*inputs)
    if torch is not None and w.torch is not None:
        tin = [torch.from_numpy(x) for x in inputs]
        peers = {TORCH: lambda *a: w.torch(torch, *a)}
        if compile_torch:
            peers[COMPILE] = torch.compile(peers[TORCH], dynamic=False)
        for name, fn in peers.items():
            try:
                with torch.no_grad():
                    err = _check(w, fn(*tin).numpy(), expect)
            except Exception as e:
                err = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            if err:
                r.errors[name] = err
            else:
                fns[name] = (lambda fn: lambda: fn(*tin))(fn)
    remote = None
    if haswell is not None and w.group == "gemm":
        try:
            err = _check(w, haswell.load(w.name, inputs), expect)
        except openblas_peer.PeerError as e:
            err = str(e)
        if err:
            r.errors[OB_HSW] = err
        else:
            remote = haswell
    r.checked = list(fns) + ([OB_HSW] if remote else [])
    if not quick:
        number = _number(once)
        if remote is None:
            r.times = interleaved(fns, rounds=rounds, number=number, settle=SETTLE)
        else:
            per = {name: [] for name in [*fns, OB_HSW]}
            for _ in range(rounds):                 # rounds alternate: ours, the subprocess's
                for name, t in interleaved(fns, rounds=1, number=number, settle=SETTLE).items():
                    per[name].append(t[0])
                per[OB_HSW].append(remote.round(number, SETTLE))
            r.times = {name: (statistics.median(ts), min(ts), max(ts)) for name, ts in per.items()}
    return r


def extras(torch=None, threads: int = 2, rounds: int = 7) -> dict:
    """GEMM's parallel speed-up, lower+build time, and fork/join overhead."""
    out = {}
    rng = np.random.default_rng(1)
    for n in (1024, 2048):
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        s, args = tl.ops.matmul(n, n, n)
        f = tl.build(s, args)
        per = {}
        for t in sorted({1, threads}):
            set_threads(t, torch)
            with threadpool_limits(t):
                per[t] = interleaved({OURS: lambda: f(a, b, c), NUMPY: lambda: a @ b},
                                     rounds=max(3, rounds // 2), number=1)
        set_threads(threads, torch)
        out[f"gemm {n}^3 speed-up {threads} threads vs 1"] = {
            sys: per[1][sys][0] / per[threads][sys][0] for sys in (OURS, NUMPY)}
    builds = []
    for _ in range(5):
        t = time.perf_counter()
        s, args = tl.ops.matmul(1024, 1024, 1024)
        tl.build(s, args)
        builds.append(time.perf_counter() - t)
    out["lower+build ops.matmul 1024^3 (s)"] = statistics.median(builds)
    par, ser = empty_parallel_overhead()            # the demo's measurement
    out["fork/join of a parallel loop (s)"] = par - ser
    return out
