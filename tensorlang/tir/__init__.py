"""Loop IR: nodes, lowering from schedules, passes, printer."""
from .lower import lower_schedule  # noqa: F401
from .nodes import (Allocate, Broadcast, Buffer, For, IfThenElse, Load, PrimFunc, Ramp, Seq,  # noqa: F401
                    Stmt, Store)
from .printer import to_text  # noqa: F401

# TVM's ``tvm.tir`` helpers used by tutorials
from ..te.expr import (Cast, Var, all, any, const, floordiv, floormod, if_then_else,  # noqa: F401,E402
                       max_value, min_value, truncdiv, truncmod)
from ..te.expr import floordiv as indexdiv, floormod as indexmod  # noqa: F401,E402
from ..te.expr import if_then_else as Select  # noqa: F401,E402  (evaluated lazily; same results)
