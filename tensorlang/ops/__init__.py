"""Operators with the best schedules found for this CPU.

Each function builds the compute definition of one operator for the given shape and
returns ``(schedule, args)`` (inputs first, output last), ready for ``tl.build(schedule,
args)``. The operator-library issue extends this to every deep-learning operator and makes
the schedules tunable.
"""

from . import compute  # noqa: F401
from .conv2d import conv2d_nchw, depthwise_conv2d_nchw
from .matmul import batch_matmul, matmul
from .nn import fused_elementwise, layer_norm, row_max, row_sum, softmax

__all__ = ["batch_matmul", "conv2d_nchw", "depthwise_conv2d_nchw", "fused_elementwise", "layer_norm", "matmul", "row_max", "row_sum",
           "softmax"]
