"""Compute-only operator definitions (TOPI conventions): functions that take and return
tensors, to compose into larger pipelines; schedule them with ``tl.create_schedule`` or the
templates of ``tensorlang.ops``."""

from .linalg import batch_matmul, dense, matmul  # noqa: F401
