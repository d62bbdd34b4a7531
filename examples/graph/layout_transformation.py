"""AlterOpLayout on a small ResNet-like block: the IR before and after the pass, the layout
transforms it leaves (only at the boundaries of the blocked region), and, where the graph
level can build modules (``G.build``), the NCHW and NCHWc builds timed against each other.

The block: conv 3x3 -> per-channel scale and shift (a folded batch norm) -> relu -> conv 3x3
-> + residual -> relu -> global average pool. After the pass both convolutions are
``conv2d_NCHWc`` in the blocks the operator library's template chooses for the current
target (``ops.conv2d_NCHWc_layout``: a tuned record's, else one vector of the target), the
element-wise ops work on the blocked tensors, and the only ``layout_transform``s are the
input's and the one before the pool.

Run: .venv/bin/python -m examples.graph.layout_transformation [--rounds 7] [--size 28]
     [--target "llvm -mcpu=haswell"]
"""

import argparse
import contextlib
import statistics
import time

import numpy as np

import tensorlang as tl
import tensorlang.graph as G


def conv_block(rng, C=32, F=64, H=28, W=28):
    def const(name, *shape):
        return G.const((rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name)
    x = G.var("x", (1, C, H, W))
    y = G.op.conv2d(x, const("w1", F, C, 3, 3), padding=1)
    y = G.op.relu(y * const("scale", F, 1, 1) + const("shift", 1, F, 1, 1))
    z = G.op.relu(G.op.conv2d(y, const("w2", F, F, 3, 3), padding=1) + y)
    return G.Module([x], G.op.global_avg_pool2d(z))


def count_transforms(mod) -> int:
    return sum(1 for n in mod.calls() if n.op == "layout_transform")


def median_ms(fn, rounds: int) -> float:
    fn()                                        # warm up
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="timed calls per build (median)")
    p.add_argument("--size", type=int, default=28, help="input height and width")
    p.add_argument("--target", default=None, help="build target (default: the current one)")
    a = p.parse_args()

    with tl.target.Target(a.target) if a.target else contextlib.nullcontext():
        rng = np.random.default_rng(0)
        mod = conv_block(rng, H=a.size, W=a.size)
        print(f"# target: {tl.target.Target.current()}\n")
        print(f"# before AlterOpLayout\n{mod}\n")
        new = G.transform.AlterOpLayout()(mod)
        print(f"# after AlterOpLayout\n{new}\n")
        print(f"layout transforms: {count_transforms(mod)} before, {count_transforms(new)} after")

        x = rng.standard_normal(mod.inputs[0].shape).astype(np.float32)
        want, got = G.evaluate(mod, x)[0], G.evaluate(new, x)[0]
        err = float(np.abs(got - want).max())
        print(f"interpreter: max |NCHWc - NCHW| = {err:.2e}")
        assert err <= 1e-4 * max(1.0, float(np.abs(want).max()))

        if not hasattr(G, "build"):
            print("(G.build is not available: no timing)")
            return
        with G.PassContext(opt_level=3, disabled_pass=["AlterOpLayout"]):
            lib_nchw = G.build(mod, opt_level=3)
        lib_nchwc = G.build(mod, opt_level=3)
        outs = {}
        for name, lib in (("NCHW", lib_nchw), ("NCHWc", lib_nchwc)):
            out = lib(x)
            outs[name] = out[0] if isinstance(out, (list, tuple)) else out
            np.testing.assert_allclose(outs[name], want, rtol=1e-3, atol=1e-3)
            print(f"{name:>6}: {median_ms(lambda lib=lib: lib(x), a.rounds):8.3f} ms "
                  f"(median of {a.rounds})")


if __name__ == "__main__":
    main()
