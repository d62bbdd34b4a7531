"""Tensor expressions: the *what* of a computation.

Also the namespace TVM code knows as ``tvm.te``: ``from tensorlang import te`` then
``te.placeholder``, ``te.compute``, ``te.create_schedule``, ``te.sum``, ... work as in TVM.
"""
from .expr import *  # noqa: F401,F403
from .expr import all, any, abs  # noqa: F401  (builtins' names, not exported by *)
from .tensor import (ComputeOp, Operation, PlaceholderOp, Tensor, comm_reducer, compute,  # noqa: F401
                     max, min, placeholder, reduce_axis, sum)


def create_schedule(ops):
    """``tensorlang.create_schedule`` (here for ``te.create_schedule``, as in TVM)."""
    from ..schedule.schedule import create_schedule as create
    return create(ops)


def thread_axis(*args, **kwargs):
    """GPU thread axes (TVM): not available on a CPU compiler; raises a clear error."""
    from ..schedule.schedule import thread_axis as make
    return make(*args, **kwargs)
