"""EliminateCommonSubexpr: a computation written twice is computed once.

Front ends often emit the same work more than once: a weight shared by two layers exported
as two tensors (tied embeddings, a block applied twice), a normalisation recomputed in each
branch. Below, branches ``a`` and ``b`` compute ``gelu(dense(layer_norm(x)))`` with copies of
the same gamma, beta and weight (equal bytes, different names); branch ``c`` has its own
weight. CSE keys each node by ``ir.structural_key`` (op, attributes, inputs; constants by
the digest of their bytes): the copies of the constants merge first, then every call on
them, so branch ``b`` disappears into ``a`` while ``c`` stays: a third of the constant bytes
and four of the eleven kernels go.

Run: python -m examples.graph.cse
"""

import numpy as np

import tensorlang.graph as G
from examples.graph.common import demonstrate


def model(rng) -> G.Module:
    f = lambda *s: rng.standard_normal(s).astype(np.float32)    # noqa: E731
    x = G.var("x", (16, 64))
    gamma, beta, w, w_c = f(64), f(64), f(128, 64), f(128, 64)

    def branch(name, weight):
        ln = G.op.layer_norm(x, G.const(gamma, f"gamma_{name}"), G.const(beta, f"beta_{name}"))
        return G.op.gelu(G.op.dense(ln, G.const(weight, f"w_{name}")))
    return G.Module([x], branch("a", w) + branch("b", w) + branch("c", w_c))


def main():
    rng = np.random.default_rng(0)
    demonstrate("EliminateCommonSubexpr", model(rng), [rng.standard_normal((16, 64)).astype(np.float32)])


if __name__ == "__main__":
    main()
