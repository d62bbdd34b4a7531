"""Operator fusion: the same network compiled with one kernel per op (opt level 0) and with
``FuseOps`` grouping ops (opt level 1, where nothing else changes the graph).

``FuseOps`` is TVM's post-dominator fusion over pattern kinds: a convolution or dense
(output-fusable) takes the element-wise ops that follow it as its template's epilogue,
evaluated in registers as each output tile is written; chains of element-wise, broadcast
and injective ops become one loop nest. Fewer kernels means fewer passes over memory: the
unfused network writes and re-reads every intermediate.

Run: ``python -m examples.graph.fusion``
"""

import numpy as np

from tensorlang import graph as G
from tensorlang.runtime import interleaved


def network():
    rng = np.random.default_rng(0)
    x = G.var("x", (1, 64, 56, 56))
    y = x
    for i in range(2):
        w = G.const(rng.standard_normal((64, 64, 3, 3)).astype("float32") * 0.05, name=f"w{i}")
        b = G.const(rng.standard_normal((64, 1, 1)).astype("float32") * 0.1, name=f"b{i}")
        y = G.op.clip(G.op.conv2d(y, w, padding=1) + b, a_min=0.0, a_max=6.0)
    y = G.op.sigmoid(y) * y + x                     # a swish-like tail and a residual
    return G.Module([x], [y])


def main():
    mod = network()
    with G.PassContext(opt_level=1):
        fused = G.optimize(mod)
    print("== after FuseOps (opt level 1) ==")
    print(fused)
    x = np.random.default_rng(1).standard_normal((1, 64, 56, 56)).astype("float32")
    libs = {"unfused (opt 0)": G.build(mod, opt_level=0), "fused (opt 1)": G.build(mod, opt_level=1)}
    ref = G.evaluate(mod, x)[0]
    for name, lib in libs.items():
        assert np.allclose(lib(x), ref, rtol=1e-4, atol=1e-4), name
    times = interleaved({name: (lambda lib=lib: lib(x)) for name, lib in libs.items()},
                        rounds=5, number=5)
    print(f"\n{'':<18} {'kernels':>8} {'median ms':>10}")
    for name, lib in libs.items():
        print(f"{name:<18} {lib.kernel_count:>8} {times[name][0] * 1e3:>10.3f}")
    print("\n== per-kernel profile, fused ==")
    print(libs["fused (opt 1)"].profile(x))


if __name__ == "__main__":
    main()
