"""Operators with the best schedules found for this CPU.

Each function builds the compute definition of one operator for the given shape and
returns ``(schedule, args)``, ready for ``tl.build(schedule, args)``. The operator-library
issue extends this to every deep-learning operator and makes the schedules tunable.
"""

from .matmul import batch_matmul, matmul

__all__ = ["batch_matmul", "matmul"]
