"""Feature extraction for the cost model: fixed-length vectors from the lowered loop IR.

The input is the ``PrimFunc`` that ``tensorlang.tir.lower.lower_schedule`` returns, before the
optimisation passes: buffers are still multi-dimensional and every loop is a ``For`` with
``kind`` in ``serial | parallel | vectorized | unrolled``. Two feature kinds, in the spirit
of AutoTVM's:

``itervar_features(func)`` (``FEATURE_LEN["itervar"]`` = 8 * 18 + 22 = 166 values)
    Computed on the *main nest*: the loop nest around the ``Store`` with the most work
    (trip count * (1 + arithmetic ops in its value); ties go to the later store, so for a
    reduction the update wins over the init). Its loops, outermost first, fill
    ``MAX_LOOPS = 8`` slots (a deeper nest keeps its innermost 8 loops; a shallower one
    leaves the trailing slots all zero). Each loop slot holds ``LOOP_LEN = 18`` values:

    ====  ===============================================================
    0     log2(extent + 1)
    1-4   one-hot kind: serial, parallel, vectorized, unrolled
    5     log2(touch count + 1): product of the extents of this loop and all loops inside
    6+3b  buffer slot b: log2(|stride| + 1) of the buffer's flattened (row-major) element
          index w.r.t. this loop's variable
    7+3b  buffer slot b: log2(bytes + 1) touched by the buffer inside this loop (distinct
          elements over this loop and the loops inside: min(product of the extents of the
          loops with nonzero stride, span + 1, buffer size), times the item size)
    8+3b  buffer slot b: log2(reuse + 1), reuse = touch count / distinct elements
    ====  ===============================================================

    Buffer slots (``MAX_BUFS = 4``): the buffers the main store reads or writes, sorted by
    name, the first four kept; a buffer accessed several times takes the maximum over its
    accesses. Then ``GLOBAL_LEN = 22`` global values (see ``GLOBAL_NAMES``): log2 total
    arithmetic ops (float Binary/Call nodes of every store value, outside index
    arithmetic, times the store's trip count), log2 total store executions, counts of
    stores / loops / allocations, allocation bytes, vectorization (present, innermost,
    extent, fraction of accesses with stride 0 or 1 w.r.t. the vector loop, all of them),
    parallelism (present, extent, level), unrolled extent, guards, symbolic shapes, and
    the main store's ops and trip count.

``curve_features(func)`` (``FEATURE_LEN["curve"]`` = 4 * 16 + 8 = 72 values)
    Working-set curves of the main nest. For each buffer slot b (same slots as above):
    values ``16b .. 16b+7``: log2(bytes + 1) the buffer touches in a window of ``t``
    consecutive innermost iterations, ``t`` in ``CURVE_POINTS = 2**0, 2**3, ..., 2**21``
    (the window covers whole inner loops and part of the next one, whose extent is
    scaled down; beyond the nest the value saturates); values ``16b+8 .. 16b+15``:
    log2(bytes + 1) touched by the innermost ``1 .. 8`` loops (aligned on the innermost
    loop, unlike the itervar slots). The last 8 values: log2 of the sum over all buffers
    of the windowed bytes at the same ``t`` points (the total working set).

Strides come from a numeric linear form of each index expression, exact for affine
indices (products of two variable terms: the derivative at 0). An access with division,
modulo, min/max or select in an index (fused loops) is probed instead: its flattened index
at variable = 1 minus at 0, every other loop variable 0 (min/max/select: first operand).
Symbolic shape variables and non-constant extents take the neutral value 1 everywhere,
and the global ``has_symbolic`` feature is set: the vector stays finite and fixed-length.
Extraction is pure Python over the IR, well under 2 ms for a GEMM nest.
"""

from __future__ import annotations

import math

import numpy as np

from tensorlang import dtype as dt
from tensorlang.arith import const_int, walk
from tensorlang.te.expr import Binary, Call, Cast, Const, Let, Select, Var
from tensorlang.tir.nodes import Allocate, For, IfThenElse, Load, Seq, Store

MAX_LOOPS = 8
MAX_BUFS = 4
KINDS = ("serial", "parallel", "vectorized", "unrolled")
BUF_LEN = 3
LOOP_LEN = 1 + len(KINDS) + 1 + BUF_LEN * MAX_BUFS          # 18
GLOBAL_NAMES = (
    "log2_total_ops", "log2_total_store_execs", "log2_num_stores", "log2_num_loops",
    "main_depth", "num_allocs", "log2_alloc_bytes_total", "log2_alloc_bytes_max",
    "has_vectorized", "vectorized_is_innermost", "log2_vector_extent",
    "vector_contig_fraction", "vector_all_contig", "has_parallel", "log2_parallel_extent",
    "parallel_level", "log2_unroll_extent", "main_num_guards", "num_guards", "has_symbolic",
    "log2_main_ops", "log2_main_trip",
)
GLOBAL_LEN = len(GLOBAL_NAMES)                               # 22
CURVE_POINTS = tuple(2 ** (3 * i) for i in range(8))         # 1 .. 2**21 iterations
CURVE_BUF_LEN = 2 * len(CURVE_POINTS)                        # 16
FEATURE_LEN = {
    "itervar": MAX_LOOPS * LOOP_LEN + GLOBAL_LEN,            # 166
    "curve": MAX_BUFS * CURVE_BUF_LEN + len(CURVE_POINTS),   # 72
}


def _log2p(x: float) -> float:
    return math.log2(x + 1.0) if x > 0 else 0.0


# --------------------------------------------------------------------------- IR summary

class _Nest:
    """What the features need from one function, computed once per call."""

    def __init__(self, func):
        self.symbolic = False
        self.stores = []          # (Store, loops tuple outermost first, guards)
        self.allocs = []          # bytes of each allocation
        self.num_loops = 0
        self.num_guards = 0
        self.loop_uids = set()
        self._visit(func.body, (), 0)
        self.lin_memo = {}

    def extent(self, e) -> int:
        if isinstance(e, Const):
            return max(int(e.value), 0)
        v = const_int(e)
        if v is None:
            self.symbolic = True
            return 1
        return max(v, 0)

    def _visit(self, s, loops, guards):
        if isinstance(s, Store):
            self.stores.append((s, loops, guards))
        elif isinstance(s, For):
            self.num_loops += 1
            self.loop_uids.add(s.var.uid)
            self._visit(s.body, loops + (s,), guards)
        elif isinstance(s, Seq):
            for x in s.stmts:
                self._visit(x, loops, guards)
        elif isinstance(s, IfThenElse):
            self.num_guards += 1
            self._visit(s.then_case, loops, guards + 1)
            if s.else_case is not None:
                self._visit(s.else_case, loops, guards + 1)
        elif isinstance(s, Allocate):
            b = s.buffer
            n = 1
            for d in b.shape:
                n *= self.extent(d)
            self.allocs.append(n * dt.itemsize(b.dtype))
            self._visit(s.body, loops, guards)

    # ---- numeric linear forms of index expressions: ({var uid: coef}, const, exact)
    def lin(self, e):
        key = id(e)
        r = self.lin_memo.get(key)
        if r is None:
            r = self._lin(e)
            self.lin_memo[key] = (r, e)      # keep e alive so its id stays unique
            return r
        return r[0]

    def _lin(self, e):
        if isinstance(e, Const):
            v = e.value
            return {}, float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0, True
        if isinstance(e, Var):
            if e.uid in self.loop_uids:
                return {e.uid: 1.0}, 0.0, True
            self.symbolic = True
            return {}, 1.0, True            # a symbolic shape variable: neutral value 1
        if isinstance(e, Cast):
            return self.lin(e.value)
        if isinstance(e, Binary):
            op = e.op
            if op in ("add", "sub"):
                (ca, ka, xa), (cb, kb, xb) = self.lin(e.a), self.lin(e.b)
                sg = 1.0 if op == "add" else -1.0
                c = dict(ca)
                for u, k in cb.items():
                    c[u] = c.get(u, 0.0) + sg * k
                return c, ka + sg * kb, xa and xb
            if op == "mul":
                (ca, ka, xa), (cb, kb, xb) = self.lin(e.a), self.lin(e.b)
                c = {u: k * kb for u, k in ca.items()}
                for u, k in cb.items():
                    c[u] = c.get(u, 0.0) + k * ka
                return c, ka * kb, xa and xb and not (ca and cb)
            if op in ("floordiv", "div", "floormod", "truncmod"):
                ca, ka, _ = self.lin(e.a)
                cb, kb, _ = self.lin(e.b)
                if cb or kb <= 0:
                    return ca, ka, False
                if op in ("floordiv", "div"):
                    return {u: k / kb for u, k in ca.items()}, float(math.floor(ka / kb)), False
                return ca, float(ka % kb), False
            if op in ("min", "max"):
                ca, ka, _ = self.lin(e.a)
                return ca, ka, False
        if isinstance(e, Select):
            ca, ka, _ = self.lin(e.true_value)
            return ca, ka, False
        return {}, 0.0, False

    def ev(self, e, env) -> float:
        """Numeric value of an index expression: loop variables from ``env`` (default 0),
        symbolic shape variables 1."""
        if isinstance(e, Const):
            v = e.value
            return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0
        if isinstance(e, Var):
            return env.get(e.uid, 0.0) if e.uid in self.loop_uids else 1.0
        if isinstance(e, Cast):
            return self.ev(e.value, env)
        if isinstance(e, Select):
            return self.ev(e.true_value, env)
        if isinstance(e, Binary):
            a, b = self.ev(e.a, env), self.ev(e.b, env)
            op = e.op
            if op == "add": return a + b
            if op == "sub": return a - b
            if op == "mul": return a * b
            if op == "min": return min(a, b)
            if op == "max": return max(a, b)
            if b != 0 and op in ("floordiv", "div"): return float(math.floor(a / b))
            if b != 0 and op in ("floormod", "truncmod"): return float(a % b)
        return 0.0


def _buffer_strides(buf, nest: _Nest):
    """Row-major (or explicit) element strides of each dimension, and the element count."""
    if buf.strides:
        st = [nest.extent(s) for s in buf.strides]
        size = nest.extent(buf.shape[0]) * st[0] if buf.shape else 1
        return st, max(size, 1)
    dims = [nest.extent(d) for d in buf.shape]
    st, acc = [], 1
    for d in reversed(dims):
        st.append(acc)
        acc *= d
    return st[::-1], max(acc, 1)


def _count_ops(e) -> int:
    """Float/data arithmetic in a value expression: Binary and Call nodes, not counting the
    index arithmetic inside loads."""
    if isinstance(e, Load):
        return 0
    if isinstance(e, Binary):
        return (0 if e.dtype in ("int32", "int64") else 1) + _count_ops(e.a) + _count_ops(e.b)
    if isinstance(e, Call):
        return 1 + sum(_count_ops(a) for a in e.args)
    if isinstance(e, Cast):
        return _count_ops(e.value)
    if isinstance(e, Select):
        return _count_ops(e.cond) + _count_ops(e.true_value) + _count_ops(e.false_value)
    if isinstance(e, Let):
        return _count_ops(e.value) + _count_ops(e.body)
    return sum(_count_ops(c) for c in getattr(e, "args", ()) if hasattr(c, "dtype"))


class _Analysis:
    """The main nest, its buffers, their strides and footprints; shared by both features."""

    def __init__(self, func):
        nest = self.nest = _Nest(func)
        self.main = None
        best = -1.0
        self.total_ops = 0.0
        self.total_execs = 0.0
        for st, loops, guards in nest.stores:
            trip = 1.0
            for f in loops:
                trip *= nest.extent(f.extent)
            ops = _count_ops(st.value)
            self.total_ops += ops * trip
            self.total_execs += trip
            w = trip * (1 + ops)
            if w >= best:
                best, self.main = w, (st, loops, guards, ops, trip)
        if self.main is None:
            self.loops, self.bufs, self.accesses = (), [], {}
            return
        st, loops, _, _, _ = self.main
        self.loops = loops
        self.extents = [nest.extent(f.extent) for f in loops]
        # accesses of the main store: the target, then every load of its value
        accs = [(st.buffer, st.indices)]
        accs += [(n.buffer, n.indices) for n in walk(st.value) if isinstance(n, Load)]
        uids = [f.var.uid for f in loops]
        per_buf = {}
        for buf, idx in accs:
            strides, size = _buffer_strides(buf, nest)
            flat, exact = {}, True
            for d, ix in enumerate(idx):
                coefs, _, ex = nest.lin(ix)
                exact = exact and ex
                sd = strides[d] if d < len(strides) else 1
                for u, k in coefs.items():
                    flat[u] = flat.get(u, 0.0) + k * sd
            if not exact:       # div/mod/min/max: probe var = 1 vs 0, the other vars 0
                sds = [strides[d] if d < len(strides) else 1 for d in range(len(idx))]
                base = sum(nest.ev(ix, {}) * sd for ix, sd in zip(idx, sds))
                flat = {u: sum(nest.ev(ix, {u: 1.0}) * sd for ix, sd in zip(idx, sds)) - base
                        for u in flat}
            svec = [abs(flat.get(u, 0.0)) for u in uids]
            per_buf.setdefault(buf.name, []).append((svec, size, dt.itemsize(buf.dtype)))
        self.accesses = per_buf
        names = sorted(per_buf)[:MAX_BUFS]
        self.bufs = []
        for name in names:
            lst = per_buf[name]
            svec = [max(a[0][i] for a in lst) for i in range(len(uids))]
            self.bufs.append((name, svec, lst[0][1], lst[0][2]))

    @staticmethod
    def distinct(svec, exts, lo: int, size: int, partial: float | None = None) -> float:
        """Distinct elements touched by loops ``lo..`` (inclusive, to the innermost); with
        ``partial``, loop ``lo`` runs only that many iterations."""
        prod, span = 1.0, 0.0
        for m in range(lo, len(exts)):
            e = partial if (partial is not None and m == lo) else exts[m]
            s = svec[m]
            if s > 0 and e > 1:
                prod *= e
                span += s * (e - 1)
        return min(prod, span + 1.0, float(size))


# --------------------------------------------------------------------------- itervar

def itervar_features(func) -> np.ndarray:
    """Fixed-length (``FEATURE_LEN["itervar"]``) float32 vector; see the module docstring."""
    an = _Analysis(func)
    out = np.zeros(FEATURE_LEN["itervar"], dtype=np.float32)
    nest = an.nest
    if an.main is not None:
        loops, exts = an.loops, an.extents
        n = len(loops)
        first = max(0, n - MAX_LOOPS)
        touch = [1.0] * (n + 1)
        for m in range(n - 1, -1, -1):
            touch[m] = touch[m + 1] * exts[m]
        row = []
        for slot, m in enumerate(range(first, n)):
            base = slot * LOOP_LEN
            row = [0.0] * LOOP_LEN
            row[0] = _log2p(exts[m])
            kind = loops[m].kind
            row[1 + (KINDS.index(kind) if kind in KINDS else 0)] = 1.0
            row[5] = _log2p(touch[m])
            for b, (_, svec, size, isz) in enumerate(an.bufs):
                d = an.distinct(svec, exts, m, size)
                row[6 + 3 * b] = _log2p(svec[m])
                row[7 + 3 * b] = _log2p(d * isz)
                row[8 + 3 * b] = _log2p(touch[m] / d if d > 0 else 0.0)
            out[base:base + LOOP_LEN] = row
    # globals
    g = dict.fromkeys(GLOBAL_NAMES, 0.0)
    g["log2_total_ops"] = _log2p(an.total_ops)
    g["log2_total_store_execs"] = _log2p(an.total_execs)
    g["log2_num_stores"] = _log2p(len(nest.stores))
    g["log2_num_loops"] = _log2p(nest.num_loops)
    g["num_allocs"] = float(len(nest.allocs))
    g["log2_alloc_bytes_total"] = _log2p(sum(nest.allocs))
    g["log2_alloc_bytes_max"] = _log2p(max(nest.allocs, default=0))
    g["num_guards"] = float(nest.num_guards)
    if an.main is not None:
        _, loops, guards, ops, trip = an.main
        exts = an.extents
        g["main_depth"] = float(len(loops))
        g["main_num_guards"] = float(guards)
        g["log2_main_ops"] = _log2p(ops)
        g["log2_main_trip"] = _log2p(trip)
        vec = [m for m, f in enumerate(loops) if f.kind == "vectorized"]
        if vec:
            m = vec[-1]
            g["has_vectorized"] = 1.0
            g["vectorized_is_innermost"] = float(m == len(loops) - 1)
            g["log2_vector_extent"] = _log2p(exts[m])
            svs = [a[0][m] for lst in an.accesses.values() for a in lst]
            contig = sum(1 for s in svs if s <= 1.0)
            g["vector_contig_fraction"] = contig / len(svs) if svs else 0.0
            g["vector_all_contig"] = float(contig == len(svs))
        par = [m for m, f in enumerate(loops) if f.kind == "parallel"]
        if par:
            g["has_parallel"] = 1.0
            g["log2_parallel_extent"] = _log2p(math.prod(exts[m] for m in par))
            g["parallel_level"] = float(par[0] + 1)
        unr = [exts[m] for m, f in enumerate(loops) if f.kind == "unrolled"]
        if unr:
            g["log2_unroll_extent"] = _log2p(math.prod(unr))
    g["has_symbolic"] = float(nest.symbolic)
    out[MAX_LOOPS * LOOP_LEN:] = [g[k] for k in GLOBAL_NAMES]
    return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


# --------------------------------------------------------------------------- curve

def curve_features(func) -> np.ndarray:
    """Fixed-length (``FEATURE_LEN["curve"]``) float32 vector; see the module docstring."""
    an = _Analysis(func)
    out = np.zeros(FEATURE_LEN["curve"], dtype=np.float32)
    if an.main is None:
        return out
    exts = an.extents
    n = len(exts)
    inner_trip = [1.0] * (n + 1)        # inner_trip[m]: iterations of loops m.. (m = n: 1)
    for m in range(n - 1, -1, -1):
        inner_trip[m] = inner_trip[m + 1] * exts[m]
    total = [0.0] * len(CURVE_POINTS)
    for b, (_, svec, size, isz) in enumerate(an.bufs):
        base = b * CURVE_BUF_LEN
        for p, t in enumerate(CURVE_POINTS):
            # smallest set of inner loops covering t iterations: loops m+1.. whole, loop m part
            m = n - 1
            while m >= 0 and inner_trip[m] < t:
                m -= 1
            if m < 0:
                d = an.distinct(svec, exts, 0, size) if n else 1.0
            else:
                part = min(float(exts[m]), t / inner_trip[m + 1])
                d = an.distinct(svec, exts, m, size, partial=part)
            out[base + p] = _log2p(d * isz)
            total[p] += d * isz
        for lvl in range(len(CURVE_POINTS)):
            m = n - 1 - lvl
            d = an.distinct(svec, exts, max(m, 0), size) if n else 1.0
            out[base + len(CURVE_POINTS) + lvl] = _log2p(d * isz)
    out[MAX_BUFS * CURVE_BUF_LEN:] = [_log2p(x) for x in total]
    return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


__all__ = [
    "CURVE_POINTS",
    "FEATURE_LEN",
    "GLOBAL_NAMES",
    "MAX_BUFS",
    "MAX_LOOPS",
    "curve_features",
    "itervar_features",
]
