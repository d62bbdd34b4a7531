"""The graph IR: a small network written with ``G``, printed, evaluated and compiled.

Every node is immutable and typed when it is made (shape and dtype inferred by the op's own
compute definition), so a mistake is reported where it is made, naming the node. The
printed module is the one text form of every stage; ``G.to_json`` is the serialized form
that ``export_library`` stores.

Run: ``python -m examples.graph.graph_ir``
"""

import json

import numpy as np

from tensorlang import graph as G


def block():
    rng = np.random.default_rng(0)
    x = G.var("x", (1, 16, 28, 28))
    w = G.const(rng.standard_normal((16, 16, 3, 3)).astype("float32") * 0.1, name="conv.weight")
    gamma, beta, mean = (G.const(rng.standard_normal(16).astype("float32"), name=f"bn.{n}")
                         for n in ("weight", "bias", "running_mean"))
    var = G.const(rng.random(16).astype("float32") + 0.5, name="bn.running_var")
    y = G.op.conv2d(x, w, padding=1)
    y = G.op.batch_norm(y, gamma, beta, mean, var, epsilon=1e-5)
    y = G.op.relu(y) + x                        # Python operators build nodes too
    return G.Module([x], [y]), w


def main():
    mod, w = block()
    print("== the graph, one line per node with its type ==")
    print(mod)
    x = np.random.default_rng(1).standard_normal((1, 16, 28, 28)).astype("float32")
    ref = G.evaluate(mod, x)[0]                 # the numpy interpreter: the graph's meaning
    lib = G.build(mod, opt_level=3)
    out = lib(x)
    print(f"\ncompiled: {lib}")
    print(f"max |compiled - interpreter| = {np.abs(out - ref).max():.2e}")
    try:
        G.op.conv2d(G.var("img", (1, 3, 8, 8)), w)      # 3 channels into a 16-channel conv
    except G.GraphError as e:
        print(f"\na mistake is reported where it is made:\n  {e}")
    text = json.dumps(G.to_json(mod))
    print(f"\nJSON form: {len(text)} characters, {len(G.to_json(mod)['nodes'])} nodes")


if __name__ == "__main__":
    main()
