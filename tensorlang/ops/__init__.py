"""Operators with the best schedules found for this CPU.

Each function builds the compute definition of one operator for the given shape and
returns ``(schedule, args)`` (inputs first, output last), ready for ``tl.build(schedule,
args)``. ``matmul`` and ``batch_matmul`` are autotune templates: under
``autotune.apply_history_best(log)`` they take the log's best record; otherwise the record
of the log shipped for this CPU (``shipped_log()``), if it has one for the workload;
otherwise their default schedule. ``ops.compute`` holds compute-only definitions (TOPI
conventions) to compose into larger pipelines.
"""

from pathlib import Path

from . import compute  # noqa: F401
from .conv2d import conv2d_nchw, depthwise_conv2d_nchw
from .matmul import batch_matmul, dense, matmul
from .nn import fused_elementwise, layer_norm, row_max, row_sum, softmax

LOG_FOLDER = Path(__file__).resolve().parents[2] / "tuning_logs"


def shipped_log() -> Path:
    """The log of tuned records shipped for this machine's CPU (``tuning_logs/<cpu>.jsonl``,
    ``<cpu>`` as LLVM names it); the operators apply its records automatically, and only
    records whose target is this host's."""
    from ..codegen.target import Target
    return LOG_FOLDER / f"{Target.parse('llvm').cpu}.jsonl"


def _register_shipped_log() -> None:
    from autotune.task import SHIPPED_LOGS as registry
    log = shipped_log()
    if log.exists() and str(log) not in registry:
        registry.append(str(log))


_register_shipped_log()

__all__ = ["batch_matmul", "dense", "conv2d_nchw", "depthwise_conv2d_nchw", "fused_elementwise", "layer_norm", "matmul", "row_max", "row_sum",
           "softmax"]
