"""Task extraction: the tunable workloads a whole model's build dispatches to.

``extract_tasks(mod)`` runs the graph pipeline (``G.optimize`` at ``opt_level``) and lowers
every fused group exactly as ``G.build`` does, recording the workload each templated
kernel looks up: the same canonical key the build will look up, so a record tuned for a
task always applies (fused epilogues are not part of the workload: a fused kernel reuses
the plain operator's record). Equal workloads become one task whose ``weight`` is how many
kernel calls per run use it. Also from a PyTorch model: ``extract_tasks(model,
example_inputs)`` (through ``torch.export`` and the front end).
"""

from __future__ import annotations

import collections
import contextlib
import json

from tensorlang import graph as G
from tensorlang.codegen.target import Target
from tensorlang.dispatch import Task, create_task
from tensorlang.graph.build import group_key
from tensorlang.graph.lower import lower_group
from tensorlang.graph.transform import FuseOps


def extract_tasks(mod, example_inputs=None, opt_level: int = 3, target=None) -> list[Task]:
    """The tasks of ``mod`` (a ``G.Module``, or a PyTorch module with ``example_inputs``),
    heaviest first (weight x flop); each has ``.weight``, ``.workload``, ``.flop``."""
    if not isinstance(mod, G.Module):
        import torch
        from tensorlang.frontend import from_exported_program
        if example_inputs is None:
            raise TypeError("extract_tasks: a PyTorch model needs example_inputs")
        mod = from_exported_program(torch.export.export(mod, tuple(example_inputs)))
    with Target(target) if target is not None else contextlib.nullcontext():
        opt = G.optimize(mod, opt_level)
        if any(isinstance(n, G.Call) and isinstance(n.op, str) for n in opt.nodes()):
            opt = FuseOps(fuse_opt_level=0)(opt)
        weights: collections.Counter = collections.Counter()
        lowered: dict = {}
        for n in opt.nodes():
            if isinstance(n, G.Call) and isinstance(n.op, G.Function):
                key = group_key(n)
                if key not in lowered:
                    lowered[key] = lower_group(n, "extract").dispatch
                if lowered[key] is not None:
                    weights[json.dumps(lowered[key][0])] += 1
        tasks = []
        for key, weight in weights.items():
            name, args = json.loads(key)
            task = create_task(name, args, target)
            task.weight = weight
            tasks.append(task)
    return sorted(tasks, key=lambda t: -t.weight * t.flop)
