"""Tensor expressions: the *what* of a computation."""
from .expr import *  # noqa: F401,F403
from .tensor import (ComputeOp, Operation, PlaceholderOp, Tensor, comm_reducer, compute,  # noqa: F401
                     placeholder, reduce_axis)
