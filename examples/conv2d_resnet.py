"""Conv2d NCHW for the ResNet-50 3x3 layer (1x64x56x56 input, 64 filters 3x3, padding 1),
scheduled with tensorlang's multi-stage primitives and compared with a numpy reference.

The schedule:

* the zero-padding stage is computed at the output row (or inlined, ``--pad inline``): only
  the three padded input rows a row of outputs needs are built, just before they are used;
* the output is accumulated in a write cache computed at a tile of 16 output channels x 16
  output columns, so that the 16 accumulators stay in vector registers: for every (input
  channel, filter row, filter column) the tile multiplies one 16-wide vector of inputs by 16
  broadcast weights (the last tile of each row is 8 wide: 56 = 3 * 16 + 8);
* the output rows are split between the cores.

The numpy reference is im2col (a strided view of the padded input, copied into a
(64*3*3) x (56*56) matrix) times the weights, which numpy hands to OpenBLAS.

Run: .venv/bin/python examples/conv2d_resnet.py [--rounds 7] [--pad at|inline] [--show-ir]
"""

import argparse

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import tensorlang as tl

from tensorlang.runtime import interleaved


def conv2d_nchw(N, CI, H, W, CO, KH, KW, pad, dtype="float32"):
    """Compute definition: returns (A, Wt, Apad, O) for stride 1 and ``pad`` zero padding."""
    A = tl.placeholder((N, CI, H, W), name="A", dtype=dtype)
    Wt = tl.placeholder((CO, CI, KH, KW), name="W", dtype=dtype)
    Apad = tl.compute(
        (N, CI, H + 2 * pad, W + 2 * pad),
        lambda n, c, y, x: tl.if_then_else(
            tl.all(y >= pad, y < H + pad, x >= pad, x < W + pad), A[n, c, y - pad, x - pad],
            tl.const(0, dtype)),
        name="Apad")
    rc = tl.reduce_axis((0, CI), name="rc")
    ry = tl.reduce_axis((0, KH), name="ry")
    rx = tl.reduce_axis((0, KW), name="rx")
    OH, OW = H + 2 * pad - KH + 1, W + 2 * pad - KW + 1
    O = tl.compute((N, CO, OH, OW),
                   lambda n, f, y, x: tl.sum(Apad[n, rc, y + ry, x + rx] * Wt[f, rc, ry, rx],
                                             axis=[rc, ry, rx]),
                   name="O")
    return A, Wt, Apad, O


def schedule(N=1, CI=64, H=56, W=56, CO=64, KH=3, KW=3, pad=1, pad_at="row", fblock=16, xblock=16):
    """The schedule described in the module docstring; ``pad_at`` is ``"row"`` or ``"inline"``."""
    A, Wt, Apad, O = conv2d_nchw(N, CI, H, W, CO, KH, KW, pad)
    s = tl.create_schedule(O.op)
    OL = s.cache_write(O, "global")
    n, f, y, x = O.op.axis
    fo, fi = s[O].split(f, factor=fblock)
    xo, xi = s[O].split(x, factor=xblock)
    s[O].reorder(n, y, fo, xo, fi, xi)
    s[O].vectorize(xi)
    s[O].parallel(y)
    s[OL].compute_at(s[O], xo)
    nc, fc, yc, xc = s[OL].op.axis
    rc, ry, rx = s[OL].op.reduce_axis
    s[OL].reorder(nc, yc, rc, ry, rx, fc, xc)
    s[OL].unroll(fc)
    s[OL].vectorize(xc)
    if pad_at == "inline":
        s[Apad].compute_inline()
    else:
        s[Apad].compute_at(s[O], y)
        s[Apad].vectorize(s[Apad].op.axis[3])
    return s, [A, Wt, O]


def conv2d_numpy(a, w, pad):
    """Reference conv2d (NCHW, stride 1) by im2col and a matrix product."""
    n, ci, h, wd = a.shape
    co, _, kh, kw = w.shape
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(ap, (kh, kw), axis=(2, 3))      # n, ci, oh, ow, kh, kw
    oh, ow = win.shape[2], win.shape[3]
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, ci * kh * kw, oh * ow)
    return (w.reshape(co, -1) @ cols).reshape(n, co, oh, ow)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pad", choices=["row", "inline"], default="row")
    ap.add_argument("--show-ir", action="store_true")
    args = ap.parse_args()
    shape = dict(N=1, CI=64, H=56, W=56, CO=64, KH=3, KW=3, pad=1)
    s, targs = schedule(**shape, pad_at=args.pad)
    if args.show_ir:
        print(tl.lower(s, targs, name="conv2d"))
    f = tl.build(s, targs, name="conv2d")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    o = np.zeros((1, 64, 56, 56), dtype=np.float32)
    f(a, w, o)
    np.testing.assert_allclose(o, conv2d_numpy(a, w, 1), rtol=1e-4, atol=1e-3)
    flop = 2.0 * 64 * 56 * 56 * 64 * 3 * 3
    t = interleaved({"ours": lambda: f(a, w, o), "numpy": lambda: conv2d_numpy(a, w, 1)},
                    rounds=args.rounds, number=5)
    print(f"conv2d NCHW 1x64x56x56, 64 filters 3x3, pad 1, float32, "
          f"{tl.runtime.get_num_threads()} threads (padding {'inlined' if args.pad == 'inline' else 'at the output row'})")
    for name, label in (("ours", "tensorlang"), ("numpy", "numpy im2col+matmul")):
        med, lo, hi = t[name]
        print(f"  {label:<22}: {med * 1e3:7.3f} ms  {flop / med / 1e9:6.1f} GFLOPS "
              f"(spread {lo * 1e3:.3f}-{hi * 1e3:.3f} ms)")
    print(f"  ratio numpy/tensorlang : {t['numpy'][0] / t['ours'][0]:6.2f}x")


if __name__ == "__main__":
    main()
