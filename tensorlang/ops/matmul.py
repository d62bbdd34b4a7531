"""Matrix products: ``matmul`` (C = A·B) and ``batch_matmul`` (C[b] = A[b]·B[b]).

Each returns ``(schedule, [A, B, C])``: the tuned record for the current target if a log has
one, else a default schedule whose sizes are derived from the target
(``tl.target.Target.current().info``: vector width and register count). For rows of C at
least as many as a register tile has (``mr``):

* **packing**: B is copied into panels ``packedB[n // NB, k, n % NB]`` (NB = two vectors:
  32 float32 columns with AVX-512, 16 with AVX2), so that the micro-kernel reads B
  contiguously whatever N is (a 4 KiB row stride otherwise maps every row of a tile onto
  the same L1 sets);
* **tiling**: C is cut into MB x NB tiles (MB = 4 register tiles); the outer row-tile loop
  is parallel;
* **register blocking**: a write cache of the tile is computed at the tile; within it, a
  block of MR rows x NB columns is accumulated over the reduction, MR the most rows whose
  accumulators, B loads and A broadcast fit the vector registers (``register_rows``:
  8 x 2 zmm of AVX-512's 32, 6 x 2 ymm of AVX2's 16, BLIS's Haswell tile): the k loop is
  outside the MR rows (unrolled) and the NB columns (vectorized), so each k step is MR
  broadcasts of A and MR x NB/lanes FMAs on registers, with no load or store of the
  accumulators;
* the reduction is unrolled by 4 to give LLVM independent work to interleave; it can be
  blocked (knob ``kc``) so that a KC x NB piece of the panel stays in L1 across the tile's
  register blocks. Off by default: on Zen 4 blocking did not pay at the benchmark's shapes
  (the panel streams from L2 fast enough); tuning finds it where it does.

For skinny products (fewer rows than a register tile, e.g. a matrix-vector product)
packing B would cost as much as the product itself: B is read in place, row by row in
chunks of 1024 columns, with the chunks split between the cores (see ``_skinny``).

Shapes need not divide the tile sizes: tails are guarded and loop partitioning moves the
guards out of the main loops.

Both operators are ``autotune`` templates (``"ops/matmul"``, ``"ops/batch_matmul"``): the
sizes above are knobs (``nb``, ``mb``, ``mr``, ``kc``, ``ku``; ``chunk`` and ``ku`` when
skinny) whose defaults are the values given here, so without a tuned record the schedule
is this one, and with ``autotune.apply_history_best(log)`` the log's best record applies.
"""

from __future__ import annotations


from ..dispatch import get_config, template
from .. import te
from .. import dtype as dt
from ..schedule import create_schedule
from ..te.expr import get_const_tuple
from .common import (accumulator, check_dims, check_weights, epilogue_of, fused_output,
                     input_tagged, knob, register_rows, vector_lanes)
from .compute import linalg

ROW_BLOCKS = 4      # register tiles per C tile: mb = 4 x mr rows (the parallel loop runs over M / mb)
K_UNROLL = 4
SKINNY_CHUNK = 1024   # columns of C per parallel iteration when M < mr



def _panel_width(n: int, lanes: int) -> int:
    """Columns of a packed B panel: two vectors, or one when N is narrower."""
    return 2 * lanes if n >= 2 * lanes else lanes


def matmul(M: int, N: int, K: int, dtype: str = "float32", epilogue=None,
           weights: str = "inline"):
    """C[M, N] = A[M, K] · B[K, N]. Returns ``(schedule, [A, B, *epilogue inputs, C])``: the
    tuned record of an applied log (``autotune.apply_history_best``) if there is one, else
    the default. ``epilogue``: a function of C building element-wise stages over it
    (``common.fuse_epilogue``), evaluated as each tile of C is written. ``weights``:
    ``"inline"`` packs B inside the kernel; ``"prepacked"`` takes B already packed into
    panels (args ``[A, packedB, ...]``); ``"pack"`` returns the packing kernel
    ``(schedule, [B, packedB])``, built from the same config, to run once at load time."""
    check_dims("matmul", M=M, N=N, K=K)
    return _matmul_template(M, N, K, dt.check(dtype),
                            epilogue=epilogue_of("matmul", epilogue, -1),
                            weights=check_weights("matmul", weights))


def batch_matmul(batch: int, M: int, N: int, K: int, dtype: str = "float32", epilogue=None,
                 weights: str = "inline"):
    """C[b, M, N] = A[b, M, K] · B[b, K, N] (numpy's ``matmul`` convention). Returns
    ``(schedule, [A, B, *epilogue inputs, C])``; the batch and row-tile loops are fused and
    run in parallel. ``epilogue`` and ``weights`` as in ``matmul``."""
    check_dims("batch_matmul", batch=batch, M=M, N=N, K=K)
    return _batch_matmul_template(batch, M, N, K, dt.check(dtype),
                                  epilogue=epilogue_of("batch_matmul", epilogue, -1),
                                  weights=check_weights("batch_matmul", weights))


@template("ops/matmul", warn_fallback=False)
def _matmul_template(M, N, K, dtype, *, epilogue=None, weights="inline"):
    return _gemm((), M, N, K, dtype, epilogue=epilogue, weights=weights)


@template("ops/batch_matmul", warn_fallback=False)
def _batch_matmul_template(batch, M, N, K, dtype, *, epilogue=None, weights="inline"):
    return _gemm((batch,), M, N, K, dtype, epilogue=epilogue, weights=weights)


def dense(M: int, N: int, K: int, bias: bool = False, activation: str | None = None,
          dtype: str = "float32", residual: bool = False, epilogue=None,
          weights: str = "inline"):
    """Y = act(X · Wᵀ + bias + residual) (TOPI's dense: X (M, K), W (N, K), bias (N,)).
    Returns ``(schedule, [X, W, (bias,) (residual,) Y])``, or with ``epilogue`` (instead of
    the keywords) ``[X, W, *epilogue inputs, Y]``. The schedule is matmul's (W packed into
    panels, so its transposed layout costs nothing more) with the epilogue fused: the sum is
    computed at each tile of Y, in registers, and the epilogue applied as the tile is
    written, not in a second pass over memory. The template ``"ops/dense"`` is keyed by
    ``(M, N, K, dtype)`` only: a tuned record applies with or without the epilogue.
    ``weights`` as in ``matmul`` (the packed layout of W is the same as B's)."""
    check_dims("dense", M=M, N=N, K=K)
    return _dense_template(M, N, K, dt.check(dtype),
                           epilogue=epilogue_of("dense", epilogue, 1, bias, residual, activation),
                           weights=check_weights("dense", weights))


@template("ops/dense", warn_fallback=False)
def _dense_template(M, N, K, dtype, *, epilogue=None, weights="inline"):
    return _gemm((), M, N, K, dtype, transpose_b=True, epilogue=epilogue, weights=weights)


def gemm_knobs(cfg, M: int, N: int, dtype: str) -> dict:
    """The GEMM knobs, their defaults derived from the target (module docstring): panel
    width ``nb``, row tile ``mb``, register rows ``mr``, reduction block ``kc`` (0: the
    whole reduction) and unroll ``ku``."""
    lanes = vector_lanes(dtype)
    nb = _panel_width(N, lanes)
    mr = register_rows(nb // lanes)
    return dict(
        nb=knob(cfg, "nb", [lanes, 2 * lanes, 4 * lanes], nb),
        mb=knob(cfg, "mb", [8, 16, 24, 32, 48, 64], min(ROW_BLOCKS * mr, M)),
        mr=knob(cfg, "mr", [1, 2, 4, 6, 8, 12], mr),
        kc=knob(cfg, "kc", [0, 64, 128, 256, 512], 0),      # off by default (docstring)
        ku=knob(cfg, "ku", [1, 2, 4, 8], K_UNROLL))


def _gemm(batch: tuple, M: int, N: int, K: int, dtype: str, transpose_b: bool = False,
          epilogue=None, weights: str = "inline"):
    """The template body: compute from ``compute.linalg`` (``pack_panels`` +
    ``matmul_packed``, or the plain product for skinny shapes), then ``schedule_gemm``."""
    cfg = get_config()
    A = te.placeholder((*batch, M, K), name="A", dtype=dtype)
    B = te.placeholder((*batch, N, K) if transpose_b else (*batch, K, N), name="B", dtype=dtype)
    skinny = M < register_rows(2)        # fewer rows than a register tile
    if skinny and not transpose_b and epilogue is None and weights == "inline":
        lanes = vector_lanes(dtype)
        chunk = knob(cfg, "chunk", [256, 512, 1024, 2048], SKINNY_CHUNK)
        ku = knob(cfg, "ku", [1, 2, 4, 8], K_UNROLL)
        C = linalg.batch_matmul(A, B) if batch else linalg.matmul(A, B)
        return _skinny(C, lanes, chunk, ku), [A, B, C]
    PB = linalg.pack_panels(B, gemm_knobs(cfg, M, N, dtype)["nb"], transpose_b)
    if weights == "pack":
        s = create_schedule(PB.op)
        _schedule_pack(s, PB)
        return s, [B, PB]
    if weights == "prepacked":
        B = PB = te.placeholder(get_const_tuple(PB.shape), name="packedB", dtype=dtype)
    s, out, _, extra = fused_output(
        "dense", lambda name: linalg.matmul_packed(A, PB, N, name=name), epilogue,
        known=[A, B], name="C")
    schedule_gemm(cfg, s, [out])
    return s, [A, B, *extra, out]


def _schedule_pack(s, PB) -> None:
    *pb, x, y, z = s[PB].op.axis
    s[PB].vectorize(z)
    s[PB].parallel(s[PB].fuse(*pb, x) if pb else x)


def schedule_gemm(cfg, s, outs) -> None:
    """The tiled, register-blocked schedule of the module docstring, with the knobs of
    ``cfg`` (``gemm_knobs``): the product (tag ``"matmul"``, or its write cache when it is
    the output) is computed at each tile of the output stage (the product or its
    epilogue's final stage); the packing stage (tag ``"pack_panels"``), if the kernel packs,
    runs in parallel over panels."""
    k = {name: cfg[name].val for name in ("nb", "mb", "mr", "kc", "ku")}
    out, CC, product = accumulator(s, outs, "matmul")
    *b, m, n = out.op.axis
    mo, no, mi, ni = s[out].tile(m, n, k["mb"], k["nb"])
    s[out].vectorize(ni)
    s[out].parallel(s[out].fuse(*b, mo) if b else mo)
    s[CC].compute_at(s[out], no)
    *_, mc, nc = s[CC].op.axis
    kk, = s[CC].op.reduce_axis
    mco, mci = s[CC].split(mc, factor=k["mr"])
    if k["kc"]:
        kb, kk = s[CC].split(kk, factor=k["kc"])
    ko, ki = s[CC].split(kk, factor=k["ku"])
    s[CC].reorder(*([kb] if k["kc"] else []), mco, ko, ki, mci, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(mci)
    s[CC].unroll(ki)
    packed = input_tagged(product, "pack_panels")
    if packed is not None:
        _schedule_pack(s, packed)


def _skinny(C, lanes, chunk, ku):
    """Fewer rows than a register tile: no packing. Column chunks of up to 1024 (split between the cores)
    accumulate in a write cache over the reduction, k outside the chunk's vectors: every k
    step reads one contiguous 4 KiB piece of a row of B. (Register-sized chunks of 64
    columns would read B in 256-byte pieces 16 KiB apart, one TLB page each: 1.7x slower
    for 1 x 4096 x 4096.)"""
    s = create_schedule(C.op)
    CC = s.cache_write(C, "global")
    *b, m, n = C.op.axis
    N = get_const_tuple(C.shape)[-1]
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
    return s
