"""Templates used by the autotune tests (a module, so that worker processes import it)."""

import os
import signal
import time

import autotune
import tensorlang as tl


@autotune.template("test/matmul")
def matmul(N, L, M, dtype="float32"):
    A = tl.placeholder((N, L), name="A", dtype=dtype)
    B = tl.placeholder((L, M), name="B", dtype=dtype)
    k = tl.reduce_axis((0, L), name="k")
    C = tl.compute((N, M), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tl.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotune.get_config()
    cfg.define_split("tile_y", y, num_outputs=2)
    cfg.define_split("tile_x", x, num_outputs=2)
    cfg.define_knob("vec", [0, 1])
    yo, yi = cfg["tile_y"].apply(s, C, y)
    xo, xi = cfg["tile_x"].apply(s, C, x)
    s[C].reorder(yo, xo, k, yi, xi)
    if cfg["vec"].val:
        s[C].vectorize(xi)
    return s, [A, B, C]


@autotune.template("test/misbehaving")
def misbehaving(n):
    """Knob "mode": 0 correct, 1 raises while scheduling, 2 hangs while building (the
    template sleeps), 3 crashes the builder, 4 computes a wrong answer, 5 runs (almost)
    forever."""
    A = tl.placeholder((n,), name="A")
    cfg = autotune.get_config()
    cfg.define_knob("mode", [0, 1, 2, 3, 4, 5])
    mode = cfg["mode"].val
    if mode == 1:
        raise ValueError("this config cannot be scheduled")
    if mode == 2:
        time.sleep(60)
    if mode == 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == 5:
        r1 = tl.reduce_axis((0, 1 << 20), name="r1")
        r2 = tl.reduce_axis((0, 1 << 20), name="r2")
        T = tl.compute((1,), lambda _: tl.sum((r1 + r2).astype("float32"), axis=[r1, r2]), name="T")
        B = tl.compute((n,), lambda i: A[i] * 2.0 + T[0] * 0.0, name="B")
    else:
        B = tl.compute((n,), lambda i: A[i] * (3.0 if mode == 4 else 2.0), name="B")
    return tl.create_schedule(B.op), [A, B]


def tiny_resnet(image=32):
    """A model entry for ``[[model]]`` job tests: a small ResNet as a graph module."""
    from tensorlang.graph import models
    return models.resnet50(layers=(1, 1, 1, 1), image=image, width=0.125)
