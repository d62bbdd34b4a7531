"""DeadCodeElimination: what no output needs goes.

A module holds only the nodes its outputs reach, so narrowing the outputs
(``mod.with_outputs``) already drops whole branches; what DCE removes is the dead part
*inside* a node that is still reached: a ``Tuple`` of which only some fields are read.
``split`` makes a tuple of its parts; below only part 1 of four is used (and the module
first returned a second output, dropped here). Before DCE, ``%t.1`` keeps the whole tuple
alive: four slices are computed, three of them for nothing. DCE replaces ``TupleGetItem``
of a literal tuple by its field, and the other slices (and the tuple) become unreachable.

Run: python -m examples.graph.dce
"""

import numpy as np

import tensorlang.graph as G
from examples.graph.common import check_values, compare_built, effect, show


def model() -> G.Module:
    x = G.var("x", (32, 64))
    parts = G.op.split(G.op.tanh(x), 4, axis=0)
    debug = G.op.sum(G.op.concatenate(parts[0], parts[2], parts[3]), axis=1)
    return G.Module([x], [G.op.exp(parts[1]) * 2.0, debug])


def main():
    full = model()
    mod = full.with_outputs(full.outputs[:1])       # the debug output is no longer wanted
    out = G.transform.DeadCodeElimination()(mod)
    show("the model with both outputs", full)
    show("its first output only, before DeadCodeElimination", mod)
    show("after DeadCodeElimination", out)
    effect("narrowing the outputs", full, mod)
    effect("DeadCodeElimination", mod, out)
    inputs = [np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)]
    check_values(mod, out, inputs)
    compare_built(mod, out, inputs)


if __name__ == "__main__":
    main()
