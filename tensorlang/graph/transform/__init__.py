"""Graph passes, one per module, each callable as ``G.transform.<Name>()(mod) -> mod``.

The default pipeline and its order are in ``graph.pipeline``; the pass manager
(``Sequential``, ``PassContext``, instruments) in ``pass_manager``."""

from .alter_op_layout import AlterOpLayout
from .dead_code_elimination import DeadCodeElimination
from .eliminate_common_subexpr import EliminateCommonSubexpr
from .fold_constant import FoldConstant
from .fuse_ops import FuseOps
from .infer_type import InferType
from .pass_manager import (Pass, PassContext, PassInstrument, PassTimingInstrument, PrintIR,
                           Sequential, module_pass)
from .plan_memory import PlanMemory
from .simplify_expr import SimplifyExpr

PASSES = {p.__name__: p for p in (InferType, SimplifyExpr, FoldConstant, EliminateCommonSubexpr,
                                  DeadCodeElimination, AlterOpLayout, FuseOps, PlanMemory)}

__all__ = ["AlterOpLayout", "DeadCodeElimination", "EliminateCommonSubexpr", "FoldConstant",
           "FuseOps", "InferType", "PASSES", "Pass", "PassContext", "PassInstrument",
           "PassTimingInstrument", "PlanMemory", "PrintIR", "Sequential", "SimplifyExpr",
           "module_pass"]
