"""Tunable templates used by the example jobs (examples/jobs/*.toml) and ``make demo``."""

import autotune
import tensorlang as tl


@autotune.template("demo/matmul")
def matmul(N, L, M):
    """C = A·B in the shape of tensorlang.ops.matmul's schedule, with its sizes as knobs: B
    packed into panels of ``nb`` columns, C tiles of ``mb`` rows, a write cache per tile
    whose ``mr`` rows x ``nb`` columns accumulate in registers, the reduction unrolled by
    ``ku``."""
    cfg = autotune.get_config()
    cfg.define_knob("nb", [16, 32, 64])
    cfg.define_knob("mb", [8, 16, 32, 64])
    cfg.define_knob("mr", [1, 2, 4, 8])
    cfg.define_knob("ku", [1, 2, 4, 8])
    nb, mb = cfg["nb"].val, cfg["mb"].val
    A = tl.placeholder((N, L), name="A")
    B = tl.placeholder((L, M), name="B")
    k = tl.reduce_axis((0, L), name="k")
    PB = tl.compute((M // nb, L, nb), lambda x, y, z: B[y, x * nb + z], name="packedB")
    C = tl.compute((N, M), lambda i, j: tl.sum(A[i, k] * PB[j // nb, k, j % nb], axis=k), name="C")
    s = tl.create_schedule(C.op)
    CC = s.cache_write(C, "global")
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], mb, nb)
    s[C].vectorize(ni)
    s[C].parallel(mo)
    s[CC].compute_at(s[C], no)
    mc, nc = s[CC].op.axis
    mco, mci = s[CC].split(mc, factor=cfg["mr"].val)
    ko, ki = s[CC].split(s[CC].op.reduce_axis[0], factor=cfg["ku"].val)
    s[CC].reorder(mco, ko, ki, mci, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(mci)
    s[CC].unroll(ki)
    x, _, z = s[PB].op.axis
    s[PB].vectorize(z)
    s[PB].parallel(x)
    return s, [A, B, C]


@autotune.template("demo/conv2d")
def conv2d(C, H, F, K):
    """A stride-1 'same' conv2d (NCHW, batch 1): output-channel and column tiles, vectorized
    columns, parallel rows, padding computed per output row or at the root."""
    pad = K // 2
    A = tl.placeholder((1, C, H, H), name="A")
    W = tl.placeholder((F, C, K, K), name="W")
    P = tl.compute((1, C, H + 2 * pad, H + 2 * pad), lambda n, c, y, x: tl.if_then_else(
        tl.all(y >= pad, y < H + pad, x >= pad, x < H + pad), A[n, c, y - pad, x - pad], 0.0),
        name="P")
    rc = tl.reduce_axis((0, C), name="rc")
    ry = tl.reduce_axis((0, K), name="ry")
    rx = tl.reduce_axis((0, K), name="rx")
    O = tl.compute((1, F, H, H), lambda n, f, y, x: tl.sum(
        P[n, rc, y + ry, x + rx] * W[f, rc, ry, rx], axis=[rc, ry, rx]), name="O")
    s = tl.create_schedule(O.op)
    OL = s.cache_write(O, "global")
    n, f, y, x = O.op.axis
    cfg = autotune.get_config()
    cfg.define_split("tile_f", f, num_outputs=2, max_factor=32)
    cfg.define_split("tile_x", x, num_outputs=2, policy="power2", max_factor=32)
    fo, fi = cfg["tile_f"].apply(s, O, f)
    xo, xi = cfg["tile_x"].apply(s, O, x)
    s[O].reorder(n, y, fo, xo, fi, xi)
    s[O].vectorize(xi)
    s[O].parallel(y)
    s[OL].compute_at(s[O], xo)
    _, fc, _, xc = s[OL].op.axis
    s[OL].reorder(*s[OL].op.reduce_axis, fc, xc)
    cfg.define_knob("unroll_f", [0, 1])
    if cfg["unroll_f"].val:
        s[OL].unroll(fc)
    s[OL].vectorize(xc)
    cfg.define_knob("pad_at_row", [0, 1])
    if cfg["pad_at_row"].val:
        s[P].compute_at(s[O], y)
    return s, [A, W, O]
