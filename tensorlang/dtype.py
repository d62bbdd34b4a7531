"""Data types as strings, TVM style: ``"float32"``, ``"int8"``, ``"bool"``, ``"handle"``,
and vectors of them written ``"float32x16"`` (a scalar type followed by ``x`` and the lane count)."""

import re

import numpy as np

from .errors import TensorlangTypeError

SCALAR_TYPES = {
    "bool": 1, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
    "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64,
    "float16": 16, "float32": 32, "float64": 64,
}
_VEC = re.compile(r"^([a-z]+[0-9]*)x([0-9]+)$")


def check(dtype) -> str:
    """Return ``dtype`` as a canonical scalar dtype string, or raise a clear error."""
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dtype = np.dtype(dtype).name
    if not isinstance(dtype, str) or dtype not in SCALAR_TYPES:
        raise TensorlangTypeError(
            f"unsupported dtype {dtype!r}; expected one of {', '.join(SCALAR_TYPES)}")
    return dtype


def lanes(dtype: str) -> int:
    m = _VEC.match(dtype)
    return int(m.group(2)) if m else 1


def element(dtype: str) -> str:
    m = _VEC.match(dtype)
    return m.group(1) if m else dtype


def with_lanes(dtype: str, n: int) -> str:
    base = element(dtype)
    return base if n == 1 else f"{base}x{n}"


def is_float(dtype: str) -> bool:
    return element(dtype).startswith("float")


def is_uint(dtype: str) -> bool:
    return element(dtype).startswith("uint")


def is_int(dtype: str) -> bool:
    """True for signed and unsigned integers (not bool)."""
    return element(dtype).startswith(("int", "uint"))


def is_bool(dtype: str) -> bool:
    return element(dtype) == "bool"


def bits(dtype: str) -> int:
    return SCALAR_TYPES[element(dtype)]


def to_numpy(dtype: str) -> np.dtype:
    return np.dtype(element(dtype))


def itemsize(dtype: str) -> int:
    return to_numpy(dtype).itemsize


def promote(a: str, b: str) -> str:
    """The dtype of a binary operation between two scalar dtypes (wider wins, float beats int)."""
    if a == b:
        return a
    if is_float(a) != is_float(b):
        return a if is_float(a) else b
    if is_bool(a):
        return b
    if is_bool(b):
        return a
    if is_uint(a) == is_uint(b) or is_float(a):
        return a if bits(a) >= bits(b) else b
    signed, unsigned = (b, a) if is_uint(a) else (a, b)   # mixed: a signed type holding both
    if bits(signed) > bits(unsigned):
        return signed
    return f"int{min(64, 2 * bits(unsigned))}"


def max_value(dtype: str):
    dt = to_numpy(check(dtype))
    if dtype == "bool":
        return True
    return float(np.finfo(dt).max) if is_float(dtype) else int(np.iinfo(dt).max)


def min_value(dtype: str):
    dt = to_numpy(check(dtype))
    if dtype == "bool":
        return False
    return float(np.finfo(dt).min) if is_float(dtype) else int(np.iinfo(dt).min)
