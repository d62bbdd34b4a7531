"""FoldConstant: what depends only on constants is computed once, at compile time.

The graph below prepares its weights inside the graph, as exported models often do: the
dense weight is stored transposed and scaled per row, the bias is a sum of two vectors, the
input normalisation divides by ``sqrt(var + eps)`` of constant statistics. ``FoldConstant``
evaluates each of those subgraphs with the interpreter (the ops' numpy references) and
replaces it by one constant, named after its first named input (``@w_raw``, ``@b1``,
``@var``), so the built model runs only the calls that read the input ``%x``.

One constant subgraph is left alone on purpose: ``broadcast_to`` of a one-element constant
to (8, 128) would store a 4 KiB constant made of one number; folding only trades memory for
nothing, so FoldConstant skips calls that grow more than 4x (and past 1 KiB) by
broadcasting.

Run: python -m examples.graph.constant_folding
"""

import numpy as np

import tensorlang.graph as G
from examples.graph.common import demonstrate


def model(rng) -> G.Module:
    f = lambda *s: rng.standard_normal(s).astype(np.float32)    # noqa: E731
    x = G.var("x", (8, 64))
    w = G.op.multiply(G.op.transpose(G.const(f(64, 128), "w_raw")),
                      G.op.reshape(G.const(np.abs(f(128)), "row_scale"), newshape=(128, 1)))
    bias = G.const(f(128), "b1") + G.const(f(128), "b2")
    sigma = G.op.sqrt(G.const(np.abs(f(64)) + 0.5, "var") + 1e-5)
    xn = (x - G.const(f(64), "mu")) / sigma
    y = G.op.relu(G.op.dense(xn, w) + bias)
    half = G.op.broadcast_to(G.const(np.float32([0.5]), "half"), shape=(8, 128))
    return G.Module([x], y * half)


def main():
    rng = np.random.default_rng(0)
    demonstrate("FoldConstant", model(rng), [rng.standard_normal((8, 64)).astype(np.float32)])


if __name__ == "__main__":
    main()
