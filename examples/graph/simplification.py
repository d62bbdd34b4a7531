"""SimplifyExpr: algebra on the graph, by a table of rewrite rules.

The graph below is what an exporter might produce for a small classifier on NHWC input:
a transpose to NCHW, a convolution followed by an inference batch norm, a pair of
transposes that cancel, an ``x * 1`` and a ``cast`` to the dtype it already has left over
from tracing, a flatten written as two reshapes, and a dense layer with its own batch norm.

``SimplifyExpr`` (rules in ``tensorlang/graph/transform/simplify_expr.py``) removes the
identities, composes the transposes and reshapes, and folds each batch norm into the
weights of the conv or dense before it: ``W * scale`` per output channel, plus one add of
``shift``. It writes ``scale = gamma * rsqrt(var + eps)`` and ``shift = beta - mean * scale``
as graph ops on the constants, which ``FoldConstant`` then evaluates: after both passes the
network is transpose, conv2d, add, relu, reshape, dense, add.

Run: python -m examples.graph.simplification
"""

import numpy as np

import tensorlang.graph as G
from examples.graph.common import check_values, compare_built, effect, show


def model(rng) -> G.Module:
    f = lambda *s: rng.standard_normal(s).astype(np.float32)    # noqa: E731

    def bn(y, c, axis):
        return G.op.batch_norm(y, G.const(rng.uniform(0.5, 1.5, c).astype(np.float32), "gamma"),
                               G.const(f(c), "beta"), G.const(f(c), "mean"),
                               G.const(rng.uniform(0.5, 2, c).astype(np.float32), "var"),
                               axis=axis)
    x = G.var("x", (1, 12, 12, 8))                                      # NHWC
    y = G.op.conv2d(G.op.transpose(x, axes=(0, 3, 1, 2)), G.const(f(16, 8, 3, 3), "w1"),
                    padding=1)
    y = G.op.relu(bn(y, 16, 1))
    y = G.op.transpose(G.op.transpose(y, axes=(0, 2, 3, 1)), axes=(0, 3, 1, 2))
    y = G.op.cast(y * 1.0, dtype="float32")
    y = G.op.reshape(G.op.reshape(y, newshape=(1, 16, 144)), newshape=(1, 2304))
    return G.Module([x], bn(G.op.dense(y, G.const(f(10, 2304), "w2")), 10, 1))


def main():
    rng = np.random.default_rng(0)
    mod = model(rng)
    simple = G.transform.SimplifyExpr()(mod)
    folded = G.transform.FoldConstant()(simple)
    show("before SimplifyExpr", mod)
    show("after SimplifyExpr", simple)
    show("after SimplifyExpr and FoldConstant", folded)
    effect("SimplifyExpr", mod, simple)
    effect("SimplifyExpr+FoldConstant", mod, folded)
    inputs = [rng.standard_normal((1, 12, 12, 8)).astype(np.float32)]
    check_values(mod, folded, inputs, rtol=1e-4)
    compare_built(mod, folded, inputs)


if __name__ == "__main__":
    main()
