"""The graph level: a whole network as one object (``tensorlang.graph``, usually ``G``).

Build a graph with ``var``, ``const`` and the ops of ``G.op`` (or import one from PyTorch),
wrap it in a ``Module``, optimise it with the pass pipeline (``optimize``, ``transform``,
``PassContext``), and ``build`` it into a compiled model whose kernels are the operator
library's tuned templates with fused epilogues, run on planned memory.
"""

from . import op  # noqa: F401
from .ir import (Attrs, Call, Constant, Function, GraphError, GraphTypeError, Module, Node,
                 Tuple, TupleGetItem, TensorType, TupleType, Var, post_order, structural_equal,
                 structural_hash)
from .builder import const, var
from .interpreter import evaluate
from . import transform  # noqa: F401
from .transform import PassContext, PassTimingInstrument, PrintIR, Sequential
from .pipeline import default_pipeline, optimize
from .build import build
from .export import load_module
from .executor import CompiledModule
from .serialize import from_json, to_json

__all__ = ["Attrs", "Call", "Constant", "Function", "GraphError", "GraphTypeError", "Module",
           "Node", "TensorType", "Tuple", "TupleGetItem", "TupleType", "Var", "const",
           "evaluate", "op", "PassContext", "PassTimingInstrument", "PrintIR", "Sequential",
           "default_pipeline", "optimize", "transform", "build", "load_module", "CompiledModule",
           "from_json", "to_json", "post_order", "structural_equal", "structural_hash", "var"]
