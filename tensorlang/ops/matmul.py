"""Matrix products: ``matmul`` (C = A·B) and ``batch_matmul`` (C[b] = A[b]·B[b]).

Each returns ``(schedule, [A, B, C])`` with the fastest schedule found for this CPU. The
schedule, for ``M >= 8`` (rows of C):

* **packing**: B is copied into panels ``packedB[n // NB, k, n % NB]`` (NB = 32 columns), so
  that the micro-kernel reads B contiguously whatever N is (a 4 KiB row stride otherwise
  maps every row of a tile onto the same L1 sets);
* **tiling**: C is cut into 32 x NB tiles; the outer row-tile loop is parallel;
* **register blocking**: a write cache of the tile is computed at the tile; within it, a
  block of MR rows x NB columns (8 x 32 float32 = 16 zmm registers) is accumulated over the
  whole reduction: the k loop is outside the MR rows (unrolled) and the NB columns
  (vectorized), so each k step is MR broadcasts of A and MR x NB/16 FMAs on registers, with
  no load or store of the accumulators;
* the reduction is unrolled by 4 to give LLVM independent work to interleave.

For skinny products (``M < 8``, e.g. a matrix-vector product) packing B would cost as much
as the product itself: B is read in place, row by row in chunks of 1024 columns, with the
chunks split between the cores (see ``_skinny``).

Shapes need not divide the tile sizes: tails are guarded and loop partitioning moves the
guards out of the main loops.

Both operators are ``autotune`` templates (``"ops/matmul"``, ``"ops/batch_matmul"``): the
sizes above are knobs (``nb``, ``mb``, ``mr``, ``ku``; ``chunk`` and ``ku`` when M < 8)
whose defaults are the values given here, so without a tuned record the schedule is this
one, and with ``autotune.apply_history_best(log)`` the log's best record applies.
"""

from __future__ import annotations

import autotune

from .. import te
from .. import dtype as dt
from . import common
from .common import check_dims, knob, vector_lanes
from ..schedule import create_schedule

TILE_M = 32       # rows of a C tile (the parallel loop runs over M / TILE_M tiles)
K_UNROLL = 4
SKINNY_CHUNK = 1024   # columns of C per parallel iteration when M < 8



def _panel_width(n: int, lanes: int) -> int:
    """Columns of a packed B panel: two vectors, or one when N is narrower."""
    return 2 * lanes if n >= 2 * lanes else lanes


def matmul(M: int, N: int, K: int, dtype: str = "float32"):
    """C[M, N] = A[M, K] · B[K, N]. Returns ``(schedule, [A, B, C])``: the tuned record of
    an applied log (``autotune.apply_history_best``) if there is one, else the default."""
    check_dims("matmul", M=M, N=N, K=K)
    return _matmul_template(M, N, K, dt.check(dtype))


def batch_matmul(batch: int, M: int, N: int, K: int, dtype: str = "float32"):
    """C[b, M, N] = A[b, M, K] · B[b, K, N] (numpy's ``matmul`` convention). Returns
    ``(schedule, [A, B, C])``; the batch and row-tile loops are fused and run in parallel."""
    check_dims("batch_matmul", batch=batch, M=M, N=N, K=K)
    return _batch_matmul_template(batch, M, N, K, dt.check(dtype))


@autotune.template("ops/matmul", warn_fallback=False)
def _matmul_template(M, N, K, dtype):
    return _gemm((), M, N, K, dtype)


@autotune.template("ops/batch_matmul", warn_fallback=False)
def _batch_matmul_template(batch, M, N, K, dtype):
    return _gemm((batch,), M, N, K, dtype)



def dense(M: int, N: int, K: int, bias: bool = False, activation: str | None = None,
          dtype: str = "float32"):
    """Y = act(X · Wᵀ + bias) (TOPI's dense: X (M, K), W (N, K), bias (N,)). Returns
    ``(schedule, [X, W, (bias,) Y])``. The schedule is matmul's (W packed into panels, so
    its transposed layout costs nothing more) with the epilogue fused: the sum is computed
    at each tile of Y, in registers, and the bias and activation are applied as the tile is
    written, not in a second pass over memory. The template ``"ops/dense"`` is keyed by
    ``(M, N, K, dtype)`` only: a tuned record applies with or without the epilogue."""
    check_dims("dense", M=M, N=N, K=K)
    from .compute.linalg import apply_activation
    apply_activation(te.const(0.0, "float32"), activation, "dense")      # validates the name
    return _dense_template(M, N, K, dt.check(dtype), bias=bool(bias), activation=activation)


@autotune.template("ops/dense", warn_fallback=False)
def _dense_template(M, N, K, dtype, *, bias=False, activation=None):
    return _gemm((), M, N, K, dtype, transpose_b=True, bias=bias, activation=activation)


def _gemm(batch: tuple, M: int, N: int, K: int, dtype: str, transpose_b: bool = False,
          bias: bool = False, activation: str | None = None):
    """The schedule, with its sizes as tuning knobs (defaults: the values described in the
    module docstring). ``transpose_b``: B is (N, K) (dense's weights); ``bias`` and
    ``activation``: an epilogue stage Y over C, with C computed at Y's tiles."""
    lanes = vector_lanes(dtype)
    nb = len(batch)
    epilogue = bias or activation is not None
    A = te.placeholder((*batch, M, K), name="A", dtype=dtype)
    B = te.placeholder((*batch, N, K) if transpose_b else (*batch, K, N), name="B", dtype=dtype)
    k = te.reduce_axis((0, K), name="k")
    cfg = autotune.get_config()

    def b_at(bi, kk, nn):
        return B[(*bi, nn, kk)] if transpose_b else B[(*bi, kk, nn)]

    if M < 8 and not transpose_b and not epilogue:
        chunk = knob(cfg, "chunk", [256, 512, 1024, 2048], SKINNY_CHUNK)
        return _skinny(A, B, k, batch, M, N, lanes, chunk, knob(cfg, "ku", [1, 2, 4, 8], K_UNROLL))
    NB = knob(cfg, "nb", [lanes, 2 * lanes, 4 * lanes], _panel_width(N, lanes))
    tile_m = knob(cfg, "mb", [8, 16, 32, 64], min(TILE_M, M))
    MR = knob(cfg, "mr", [1, 2, 4, 8], 8 if dt.bits(dtype) <= 32 else 4)   # MR x NB: 16 registers
    ku = knob(cfg, "ku", [1, 2, 4, 8], K_UNROLL)
    npanel = -(-N // NB)
    if N % NB == 0:
        PB = te.compute((*batch, npanel, K, NB),
                        lambda *i: b_at(i[:nb], i[nb + 1], i[nb] * NB + i[nb + 2]),
                        name="packedB")
    else:                                        # the last panel is padded with zeros
        PB = te.compute((*batch, npanel, K, NB),
                        lambda *i: te.if_then_else(i[nb] * NB + i[nb + 2] < N,
                                                   b_at(i[:nb], i[nb + 1], i[nb] * NB + i[nb + 2]),
                                                   te.const(0, dtype)),
                        name="packedB")
    s, out, CC, extra = common.output_stages(
        "dense", lambda name: te.compute((*batch, M, N), lambda *i: te.sum(
            A[(*i[:nb], i[nb], k)] * PB[(*i[:nb], i[nb + 1] // NB, k, i[nb + 1] % NB)], axis=k),
            name=name),
        (*batch, M, N), lambda *i: i[-1], N, dtype, bias=bias, activation=activation,
        name="Y" if epilogue else "C")
    args = [A, B, *extra]
    *b, m, n = out.op.axis
    mo, no, mi, ni = s[out].tile(m, n, tile_m, NB)
    s[out].vectorize(ni)
    s[out].parallel(s[out].fuse(*b, mo) if b else mo)
    s[CC].compute_at(s[out], no)
    *_, mc, nc = s[CC].op.axis
    kk, = s[CC].op.reduce_axis
    mco, mci = s[CC].split(mc, factor=MR)
    ko, ki = s[CC].split(kk, factor=ku)
    s[CC].reorder(mco, ko, ki, mci, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(mci)
    s[CC].unroll(ki)
    *pb, x, y, z = s[PB].op.axis
    s[PB].vectorize(z)
    s[PB].parallel(s[PB].fuse(*pb, x) if pb else x)
    return s, args + [out]


def _skinny(A, B, k, batch, M, N, lanes, chunk, ku):
    """Fewer than 8 rows: no packing. Column chunks of up to 1024 (split between the cores)
    accumulate in a write cache over the reduction, k outside the chunk's vectors: every k
    step reads one contiguous 4 KiB piece of a row of B. (Register-sized chunks of 64
    columns would read B in 256-byte pieces 16 KiB apart, one TLB page each: 1.7x slower
    for 1 x 4096 x 4096.)"""
    nb = len(batch)
    C = te.compute((*batch, M, N),
                   lambda *i: te.sum(A[(*i[:nb], i[nb], k)] * B[(*i[:nb], k, i[nb + 1])], axis=k),
                   name="C")
    s = create_schedule(C.op)
    CC = s.cache_write(C, "global")
    *b, m, n = C.op.axis
    NB = min(chunk, -(-N // lanes) * lanes)
    no, ni = s[C].split(n, factor=NB)
    s[C].reorder(*b, no, m, ni)
    s[C].vectorize(ni)
    outer = s[C].fuse(*b, no) if b else no
    s[C].parallel(outer)
    s[CC].compute_at(s[C], outer)
    *_, mc, nc = s[CC].op.axis
    kk, = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kk, factor=ku)
    nco, nci = s[CC].split(nc, factor=4 * lanes)
    s[CC].reorder(ko, nco, ki, mc, nci)
    s[CC].vectorize(nci)
    s[CC].unroll(mc)
    s[CC].unroll(ki)
    return s, [A, B, C]
