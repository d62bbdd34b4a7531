"""The dispatcher: every ATen op that one eager training step of a small MLP runs.

Every call of a PyTorch operator (``torch.relu(x)``, ``x @ w``, ``loss.backward()``'s
internal ops) goes through the *dispatcher*. An operator such as ``aten::addmm`` has one
kernel per *dispatch key*, and a tensor carries a set of keys (the script prints them:
``CPU, ADInplaceOrView, AutogradCPU, AutocastCPU``; autocast passes through while it is
off). A call runs the kernel of the highest-priority key
in the union of its inputs' sets; that kernel does its part and re-dispatches with its own
key masked out, so a call walks down a stack of layers:

    Python / C++ API            torch.nn.functional.linear(x, w, b)
      CompositeImplicitAutograd  linear -> t + addmm   (ops defined by other ops decompose
                                                       before autograd ever sees them)
      Autograd (AutogradCPU)     record a grad_fn node (AddmmBackward0) and the tensors the
                                 backward needs, then re-dispatch below autograd
      ADInplaceOrView            version counters and view metadata
      Python (TorchDispatchMode) <- a mode installed here sees the op; this script logs it
      backend kernel (CPU)       the actual computation

A ``TorchDispatchMode`` is a Python handler at the ``Python`` key, *below* autograd: it
sees each ATen op after autograd has recorded it and before the CPU kernel runs it
(``func(*args, **kwargs)`` inside the handler calls the next layer). Because it is below
autograd, it also sees the ops that ``loss.backward()`` runs: the autograd engine executes
each ``grad_fn`` node's backward formula, and those formulas are ATen ops too
(``threshold_backward``, ``mm``, ``sum.dim_IntList``, ...), dispatched like any other.

AOTAutograd (the layer of ``torch.compile`` and ``torch.export`` between Dynamo and the
backend) uses exactly this mechanism to trace: it runs the forward with *fake* tensors
(shapes and dtypes, no data) under a ``make_fx`` proxy mode -- a ``TorchDispatchMode``
that appends a graph node for each ATen op instead of logging it -- then calls
``torch.autograd.grad`` on the outputs under the same mode, so the backward formulas that
autograd runs are recorded as well. The result is a joint forward+backward ATen graph,
which a partitioner splits into the forward and backward graphs that the backend compiles.
Functionalization is one more layer in the same stack (it rewrites in-place and view ops
into out-of-place ones before they reach the tracing mode).

In the table, ``detach`` calls are autograd's own bookkeeping (saved tensors, writing
``.grad``); ``ones_like`` + ``expand`` make the gradient of ``loss`` (1.0, broadcast);
``threshold_backward`` is ReLU's backward formula and ``t`` + ``mm`` are ``addmm``'s.

Run: ``python -m examples.pytorch.dispatch``
"""

from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode


class LogOps(TorchDispatchMode):
    """Logs each ATen op that reaches the ``Python`` dispatch key: the phase it ran in,
    its name (``aten.addmm.default``: packet and overload) and the shapes of its tensor
    arguments."""

    def __init__(self):
        super().__init__()
        self.phase = "forward"
        self.calls = []                         # (phase, op name, input shapes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = tuple(tuple(a.shape) for a in torch.utils._pytree.tree_leaves((args, kwargs))
                       if isinstance(a, torch.Tensor))
        self.calls.append((self.phase, str(func), shapes))
        return func(*args, **(kwargs or {}))    # on to the next layer: the CPU kernel


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def show_shape(shapes) -> str:
    return ", ".join("[" + "x".join(map(str, s)) + "]" if s else "scalar" for s in shapes)


def print_table(calls) -> None:
    counts = Counter(calls)
    order = list(dict.fromkeys(calls))          # first-call order, duplicates merged
    print(f"{'phase':<9} {'ATen op':<32} {'input shapes':<28} {'count':>5}")
    print("-" * 77)
    for phase, op, shapes in order:
        print(f"{phase:<9} {op:<32} {show_shape(shapes):<28} {counts[phase, op, shapes]:>5}")
    per_phase = Counter(phase for phase, _, _ in calls)
    print("-" * 77)
    print(f"ATen calls: forward {per_phase['forward']}, backward {per_phase['backward']}, "
          f"total {len(calls)}")
    packets = Counter(op.rsplit(".", 1)[0] for _, op, _ in calls)
    print("per op: " + ", ".join(f"{name} x{n}" for name, n in sorted(packets.items())))


def main():
    model = mlp()
    x = torch.randn(3, 4)
    print(f"dispatch keys of an input:     {torch._C._dispatch_keys(x)}")
    print(f"dispatch keys of a parameter:  {torch._C._dispatch_keys(model[0].weight)}")

    log = LogOps()
    with log:
        loss = model(x).sum()
        log.phase = "backward"
        loss.backward()
    print(f"\nLinear(4->8) -> ReLU -> Linear(8->2), batch 3, loss = sum: "
          f"{len(log.calls)} ATen calls\n")
    print_table(log.calls)

    forward_ops = {op for phase, op, _ in log.calls if phase == "forward"}
    print(f"\nnn.Linear reached the mode as t + addmm (decomposed above autograd): "
          f"{'aten.addmm.default' in forward_ops and 'aten.linear.default' not in forward_ops}")
    print(f"grad of the first weight has shape {tuple(model[0].weight.grad.shape)}")


if __name__ == "__main__":
    main()
