"""The default pass pipeline, in order: the one place that lists it.

Opt levels follow TVM's: a pass runs when the context's ``opt_level`` is at least its own.

=====  =========================  ===================================================
level  pass                       why here
=====  =========================  ===================================================
0      InferType                  check the graph as given
2      SimplifyExpr               algebra first (folds batch_norm into conv/dense),
                                  which leaves constant subgraphs behind ...
2      FoldConstant               ... that are evaluated here
3      EliminateCommonSubexpr     after folding, equal constants are equal nodes
1      DeadCodeElimination        drops what the rewrites above left unread
3      AlterOpLayout              NCHW -> NCHW{c}c convs, transforms at the boundaries
2      FoldConstant               the weights' layout transforms become constants
0      FuseOps                    groups for kernels (level 0: one op per group)
0      PlanMemory                 the arena, over the fused groups' execution order
=====  =========================  ===================================================
"""

from __future__ import annotations

from .ir import Module
from .transform import (AlterOpLayout, DeadCodeElimination, EliminateCommonSubexpr,
                        FoldConstant, FuseOps, InferType, PassContext, PlanMemory, Sequential,
                        SimplifyExpr)


def default_pipeline() -> Sequential:
    return Sequential([
        InferType(),
        SimplifyExpr(),
        FoldConstant(),
        EliminateCommonSubexpr(),
        DeadCodeElimination(),
        AlterOpLayout(),
        FoldConstant(),
        FuseOps(),
        PlanMemory(),
    ], name="default_pipeline")


def optimize(mod: Module, opt_level: int | None = None) -> Module:
    """``mod`` through the default pipeline under the current ``PassContext`` (or, given
    ``opt_level``, a context like the current one at that level)."""
    if opt_level is None:
        return default_pipeline()(mod)
    cur = PassContext.current()
    with PassContext(opt_level, cur.required_pass, cur.disabled_pass, cur.print_ir_after_all,
                     cur.instruments, cur.config):
        return default_pipeline()(mod)
