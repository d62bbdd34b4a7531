"""Helpers shared by the op definitions: type inference through the op's own compute, and
the placeholders that stand for a call's inputs."""

from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import TensorlangTypeError, TensorlangValueError
from ...te.expr import get_const_tuple
from ..ir import GraphError, GraphTypeError, TensorType


def scalar(t: TensorType) -> float | int | bool:
    """A Python number standing for a 0-d input in a compute (its dtype's kind)."""
    return 1.0 if dt.is_float(t.dtype) else True if t.dtype == "bool" else 1


def placeholders(types) -> list:
    """A placeholder per input type; next to a tensor input, a 0-d input is a number (a
    broadcast scalar that takes the tensor's dtype, as the lowering passes scalar
    constants)."""
    numbers = any(t.shape != () for t in types)
    return [scalar(t) if t.shape == () and numbers
            else te.placeholder(t.shape, name=f"in{n}", dtype=t.dtype)
            for n, t in enumerate(types)]


def infer_by_compute(compute):
    """An ``infer`` that builds the op's compute over placeholders and reads the output's
    shape and dtype: one definition gives both the semantics and the type rules, and the
    compute's own checks become the graph's errors."""
    def infer(types, attrs):
        try:
            out = compute(placeholders(types), attrs)
        except TensorlangTypeError as e:
            raise GraphTypeError(str(e)) from None
        except TensorlangValueError as e:
            raise GraphError(str(e)) from None
        return TensorType(get_const_tuple(out.shape), out.dtype)
    return infer


def same_dtype(op: str, types) -> str:
    """The common dtype of tensor inputs (0-d constants excepted); a mismatch is an error."""
    tensors = [t for t in types if t.shape != ()] or list(types)
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise GraphTypeError(f"inputs have different dtypes {sorted(dtypes)}; insert a "
                             "G.op.cast first")
    return tensors[0].dtype
