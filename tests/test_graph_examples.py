"""The graph-pass examples in examples/graph/ run, keep the values, and show their effect
(the counts they print; timings are not checked)."""

import pytest

from tests.conftest import run_python

EXPECTED = {
    "constant_folding": "FoldConstant: calls 13 -> 7, nodes 22 -> 13",
    "cse": "EliminateCommonSubexpr: calls 11 -> 7, nodes 21 -> 12, "
           "constants 9 (99840 B) -> 4 (66048 B)",
    "dce": "DeadCodeElimination: calls 7 -> 4, nodes 11 -> 6",
    "simplification": "SimplifyExpr+FoldConstant: calls 12 -> 7, nodes 24 -> 12",
    "pass_ordering": "FoldConstant once more after the wrong order gives the first graph: True",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_graph_example_runs(name):
    r = run_python(f"import runpy; runpy.run_module('examples.graph.{name}', run_name='__main__')",
                   timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert any(line.startswith(EXPECTED[name]) for line in lines), r.stdout[-3000:]
    assert "same values through the interpreter: yes" in lines
    assert any(line.startswith("built: kernels") for line in lines)
    if name == "pass_ordering":
        assert "the two orders give the same graph: False" in lines
