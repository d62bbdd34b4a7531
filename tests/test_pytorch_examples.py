"""The PyTorch examples in examples/pytorch/ run and show what they teach: which capture
method keeps or loses the control flow (capture.py) and the ATen ops of an eager training
step seen from a TorchDispatchMode (dispatch.py). The tensorlang part of capture.py is
checked only when ``tensorlang.frontend`` exists."""

import importlib.util

import pytest

from tests.conftest import run_python

pytest.importorskip("torch")


def run_example(name):
    # alter_sys: the example must be sys.modules['__main__'], where Dynamo's guards look
    # up the globals of the frames they compiled (as under ``python -m``)
    r = run_python(f"import runpy; runpy.run_module('examples.pytorch.{name}', "
                   f"run_name='__main__', alter_sys=True)", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.splitlines()


def test_capture_example():
    lines = run_example("capture")
    out = "\n".join(lines)
    assert any(line.startswith("TracerWarning: Converting a tensor to a Python boolean")
               for line in lines), out[-3000:]
    assert "top-level prim::If nodes: 2, prim::Loop nodes: 1" in lines
    assert any(line.startswith("symbolic_trace(Gate) fails: TraceError") for line in lines)
    assert "graph count: 2" in lines
    assert "graph break count: 1" in lines
    assert any(line.startswith("export(Gate) fails:") for line in lines)
    assert "torch.ops.higher_order.cond" in out
    assert "torch.cond program vs eager: relu branch max abs diff 0.00e+00, " \
           "tanh branch 0.00e+00" in lines
    assert any(line.startswith("--- backward graph:") for line in lines)
    if importlib.util.find_spec("tensorlang.frontend") is None:
        assert any("skipping the tensorlang part" in line for line in lines)
        return
    diffs = [line for line in lines if "vs eager" in line and "tensorlang" in line]
    assert len(diffs) == 3, out[-3000:]
    for line in diffs:
        assert float(line.rsplit(" ", 1)[1]) < 1e-4, line


def test_dispatch_example():
    lines = run_example("dispatch")
    out = "\n".join(lines)
    ops = [line.split()[1] for line in lines
           if line.startswith(("forward ", "backward ")) and len(line.split()) > 2]
    assert "aten.addmm.default" in ops and "aten.mm.default" in ops, out[-3000:]
    assert "aten.threshold_backward.default" in ops
    assert "ATen calls: forward 7, backward 22, total 29" in lines
    assert "nn.Linear reached the mode as t + addmm (decomposed above autograd): True" in lines
