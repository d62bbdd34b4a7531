"""tensorlang: a deep-learning compiler for CPUs.

Write a computation as tensor expressions (``compute``), say how to run it with a schedule
(``create_schedule`` and the stage primitives), ``lower`` it to loop IR, and ``build`` it to
machine code through LLVM. The names mirror TVM's classic ``te`` API.
"""

from . import arith, codegen, nd, runtime, schedule, target, te, testing, tir  # noqa: F401
from . import dispatch, ops  # noqa: F401,E402  (after the core: ops registers its templates)
from . import graph  # noqa: F401,E402  (the graph level, over the operator library)
from .driver import build, lower, lower_trace
from .errors import (ArgumentError, BoundsError, IRVerifyError, LoweringError, ScheduleError,
                     TensorlangError, TensorlangTypeError, TensorlangValueError)
from .device import Device, cpu, device
from .runtime import Module, load_module
from .schedule import Schedule, Stage, create_schedule, thread_axis
from .te.expr import (Expr, IterVar, Var, abs, all, any, ceil, const, cos, erf, exp, exp2, floor,
                      floordiv, floormod, if_then_else, isnan, log, log2, log10, max_value,
                      min_value, power, round, rsqrt, sigmoid, sin, sqrt, structural_equal, tanh,
                      trunc, truncdiv, truncmod, var)
from .te.expr import get_const_tuple  # noqa: F401  (TVM's topi.utils.get_const_tuple)
from .te.expr import floordiv as indexdiv, floormod as indexmod
from .te.tensor import Tensor, comm_reducer, compute, max, min, placeholder, reduce_axis, sum

__version__ = "0.1.0"


# ``import tensorlang as tvm; from tensorlang import te`` ports TVM tutorials: tvm.build,
# tvm.lower, tvm.nd.array, tvm.cpu/tvm.device, tvm.target.Target, tvm.testing, tvm.tir.*

__all__ = [
    "ArgumentError", "BoundsError", "Device", "Expr", "cpu", "device", "indexdiv", "indexmod",
    "nd", "target", "testing", "thread_axis", "te", "tir", "IRVerifyError", "IterVar", "LoweringError", "Module",
    "Schedule", "ScheduleError", "Stage", "Tensor", "TensorlangError", "TensorlangTypeError",
    "TensorlangValueError", "Var", "abs", "all", "any", "build", "ceil", "comm_reducer",
    "compute", "const", "create_schedule", "erf", "exp", "floor", "floordiv", "floormod", "get_const_tuple",
    "if_then_else", "load_module", "log", "lower", "lower_trace", "max", "max_value", "min",
    "min_value", "placeholder", "power", "reduce_axis", "rsqrt", "sigmoid", "sqrt",
    "structural_equal", "sum", "tanh", "truncdiv", "truncmod", "var", "sin", "cos", "exp2",
    "log2", "log10", "round", "trunc", "isnan",
]
