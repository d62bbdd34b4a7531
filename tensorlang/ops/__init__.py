"""Operators with the best schedules found for this CPU.

Each function builds the compute definition of one operator for the given shape and
returns ``(schedule, args)`` (inputs first, output last), ready for ``tl.build(schedule,
args)``. Every operator but ``row_sum``, ``row_max`` and ``fused_elementwise`` is an
autotune template (``"ops/<name>"``): under ``autotune.apply_history_best(log)`` it takes
the log's best record; otherwise the record of the log shipped for this CPU
(``shipped_log()``), if it has one for the workload; otherwise its default schedule.
``injective`` schedules any element-wise, broadcast or layout operator of ``compute`` by
name, ``reduce`` any reduction. ``ops.compute`` holds compute-only definitions (TOPI
conventions) to compose into larger pipelines.
"""

from ..dispatch import shipped_log  # noqa: F401
from . import compute  # noqa: F401
from .conv2d import conv2d_nchw, depthwise_conv2d_nchw
from .conv2d_layouts import conv2d_NCHWc, conv2d_NCHWc_layout, conv2d_nhwc
from .injective import injective, schedule_injective
from .matmul import batch_matmul, dense, matmul
from .nn import (batch_norm, fused_elementwise, layer_norm, log_softmax, rms_norm, row_max,
                 row_sum, softmax)
from .pool import avg_pool2d, max_pool2d
from .reduction import global_avg_pool2d, reduce

__all__ = ["avg_pool2d", "batch_matmul", "batch_norm", "conv2d_NCHWc", "conv2d_NCHWc_layout", "conv2d_nchw",
           "conv2d_nhwc", "dense", "depthwise_conv2d_nchw", "fused_elementwise",
           "global_avg_pool2d", "injective", "layer_norm", "log_softmax", "matmul", "max_pool2d",
           "reduce", "rms_norm", "shipped_log", "row_max", "row_sum", "schedule_injective", "softmax"]
