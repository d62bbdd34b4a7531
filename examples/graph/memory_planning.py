"""PlanMemory on a small CNN: how much arena its intermediates need once blocks are reused
and handed over in place, against one buffer each (naive), at each opt level.

The network: a stem conv -> relu, two residual blocks (conv -> relu -> conv -> + input ->
relu), a global average pool and a dense layer with softmax. Each residual block's input
is read last by the block's second conv group, in its epilogue (``+ input``) at the
output's index, so that group writes its result into the input's block (an in-place pair);
a conv's data input never is. The printed IR ends with the plan's summary
(``# memory_plan: ...``); the last lines build the module and check it against the numpy
interpreter.

Run: .venv/bin/python -m examples.graph.memory_planning [--channels 16] [--size 16]
"""

import argparse

import numpy as np

import tensorlang.graph as G
from tensorlang.graph.transform.plan_memory import format_bytes


def small_cnn(rng, C=16, H=16, classes=10):
    def weight(name, *shape):
        fan_in = int(np.prod(shape[1:]))
        return G.const((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)
    x = G.var("x", (1, 3, H, H))
    h = G.op.relu(G.op.conv2d(x, weight("stem", C, 3, 3, 3), padding=1))
    for b in range(2):
        a = G.op.relu(G.op.conv2d(h, weight(f"b{b}_w1", C, C, 3, 3), padding=1))
        h = G.op.relu(G.op.conv2d(a, weight(f"b{b}_w2", C, C, 3, 3), padding=1) + h)
    pooled = G.op.reshape(G.op.global_avg_pool2d(h), newshape=(1, C))
    return G.Module([x], G.op.softmax(G.op.dense(pooled, weight("fc", classes, C)), axis=-1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--size", type=int, default=16, help="input height and width")
    a = p.parse_args()
    mod = small_cnn(np.random.default_rng(0), a.channels, a.size)

    print(f"{'opt':>3} {'groups':>6} {'naive':>10} {'planned':>10} {'peak live':>10} "
          f"{'saved':>6} {'in place':>8}")
    plans = {}
    for level in range(4):
        opt = G.optimize(mod, opt_level=level)
        plan = plans[level] = opt.attrs["memory_plan"]
        groups = sum(1 for n in opt.calls())
        print(f"{level:>3} {groups:>6} {format_bytes(plan.naive_bytes):>10} "
              f"{format_bytes(plan.planned_bytes):>10} {format_bytes(plan.peak_live_bytes):>10} "
              f"{1 - plan.arena_bytes / plan.naive_bytes:>6.0%} {len(plan.inplace):>8}")

    opt = G.optimize(mod, opt_level=3)
    plan = opt.attrs["memory_plan"]
    print("\nopt level 3, in place: (group <- the input whose block it takes over)")
    for n, src in plan.inplace:
        print(f"  {n.op.name} <- {src.op.name}  ({n.type}, offset {plan.offsets[n]})")
    print("\nopt level 3, offsets:")
    for n, off in sorted(plan.offsets.items(), key=lambda kv: kv[1]):
        print(f"  {off:>8}  {format_bytes(n.type.nbytes):>10}  {n.op.name}")
    print("\n" + str(opt))

    lib = G.build(mod, opt_level=3)
    xv = np.random.default_rng(1).standard_normal(mod.inputs[0].shape).astype(np.float32)
    err = np.abs(lib(xv) - G.evaluate(mod, xv)[0]).max()
    print(f"\nbuilt: arena {lib.arena_bytes} bytes, {lib.kernel_count} kernel calls; "
          f"max |error| vs the interpreter {err:.2e}")
    assert err < 1e-4


if __name__ == "__main__":
    main()
