"""Pass ordering: SimplifyExpr then FoldConstant is not FoldConstant then SimplifyExpr.

The model is two conv + batch norm + relu layers. ``SimplifyExpr`` folds each batch norm
into its conv: the weights become ``W * reshape(scale)`` and a ``reshape(shift)`` is added,
with ``scale = gamma * rsqrt(var + eps)`` and ``shift = beta - mean * scale`` written as graph
ops on the constants. It does not evaluate them: evaluating is ``FoldConstant``'s job.

* SimplifyExpr -> FoldConstant: the constant subgraphs SimplifyExpr left are folded; each
  layer is conv2d, add, relu, with the folded weight and one per-channel shift.
* FoldConstant -> SimplifyExpr: before SimplifyExpr there was nothing to fold (a batch
  norm reads the conv of ``%x``, not only constants), and after it nothing folds them: the
  ``add``, ``rsqrt``, ``multiply``, ``subtract`` and ``reshape`` on the batch norm's vectors
  and the ``multiply`` of the weights stay in the graph and would run at every inference.

So a rewrite that produces constant work must run before the pass that folds it; the
default pipeline runs SimplifyExpr before FoldConstant (and FoldConstant again after
AlterOpLayout, whose weight layout transforms are constant work too). Running FoldConstant
once more after the wrong order recovers the first graph.

Run: python -m examples.graph.pass_ordering
"""

import numpy as np

import tensorlang.graph as G
from examples.graph.common import check_values, compare_built, effect, show


def model(rng) -> G.Module:
    f = lambda *s: rng.standard_normal(s).astype(np.float32)    # noqa: E731
    x = G.var("x", (1, 8, 16, 16))
    y = x
    for i, (ci, co) in enumerate([(8, 16), (16, 16)]):
        y = G.op.conv2d(y, G.const(f(co, ci, 3, 3), f"w{i}"), padding=1)
        y = G.op.batch_norm(y, G.const(rng.uniform(0.5, 1.5, co).astype(np.float32), f"gamma{i}"),
                            G.const(f(co), f"beta{i}"), G.const(f(co), f"mean{i}"),
                            G.const(rng.uniform(0.5, 2, co).astype(np.float32), f"var{i}"))
        y = G.op.relu(y)
    return G.Module([x], y)


def main():
    rng = np.random.default_rng(0)
    mod = model(rng)
    simplify, fold = G.transform.SimplifyExpr(), G.transform.FoldConstant()
    right = fold(simplify(mod))
    wrong = simplify(fold(mod))
    show("the model", mod)
    show("SimplifyExpr -> FoldConstant", right)
    show("FoldConstant -> SimplifyExpr", wrong)
    effect("SimplifyExpr -> FoldConstant", mod, right)
    effect("FoldConstant -> SimplifyExpr", mod, wrong)
    print(f"the two orders give the same graph: {G.structural_equal(right, wrong)}")
    print(f"FoldConstant once more after the wrong order gives the first graph: "
          f"{G.structural_equal(right, fold(wrong))}")
    inputs = [rng.standard_normal((1, 8, 16, 16)).astype(np.float32)]
    check_values(mod, right, inputs, rtol=1e-4)
    check_values(mod, wrong, inputs, rtol=1e-4)
    compare_built(wrong, right, inputs)


if __name__ == "__main__":
    main()
