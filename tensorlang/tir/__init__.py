"""Loop IR: nodes, lowering from schedules, passes, printer."""
from .lower import lower_schedule  # noqa: F401
from .nodes import (Allocate, Broadcast, Buffer, For, IfThenElse, Load, PrimFunc, Ramp, Seq,  # noqa: F401
                    Stmt, Store)
from .printer import to_text  # noqa: F401
