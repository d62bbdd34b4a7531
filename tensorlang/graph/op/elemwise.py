"""Element-wise and broadcast ops: unary math and activations, binary arithmetic with numpy
broadcasting, comparisons, ``where``, ``cast``, ``clip``, ``batch_norm`` (inference) and
``bias_add``. Binary ops need one dtype on both sides (a Python number takes the other
side's); mixing dtypes needs an explicit ``cast``."""

from __future__ import annotations

import math

import numpy as np

from ...ops import compute as C
from .common import infer_by_compute, same_dtype
from .registry import (OpDef, Pattern, a_choice, a_dtype, a_float, a_int, a_opt_float,
                       register)


def _erf(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _gelu(x, approximate):
    if approximate == "tanh":
        return (0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))).astype(x.dtype)
    return (0.5 * x * (1 + _erf(x / np.asarray(math.sqrt(2.0), x.dtype)))).astype(x.dtype)


UNARY = {   # name: (compute, numpy reference)
    "relu": (C.relu, lambda x: np.maximum(x, x.dtype.type(0))),
    "sigmoid": (C.sigmoid, _sigmoid),
    "tanh": (C.tanh, np.tanh),
    "exp": (C.exp, np.exp),
    "log": (C.log, np.log),
    "sqrt": (C.sqrt, np.sqrt),
    "rsqrt": (C.rsqrt, lambda x: (1 / np.sqrt(x)).astype(x.dtype)),
    "erf": (C.erf, _erf),
    "abs": (C.abs, np.abs),
    "negative": (C.negative, np.negative),
    "silu": (C.silu, lambda x: (x * _sigmoid(x)).astype(x.dtype)),
}

BINARY = {
    "add": (C.add, np.add),
    "subtract": (C.subtract, np.subtract),
    "multiply": (C.multiply, np.multiply),
    "divide": (C.divide, np.divide),
    "maximum": (C.maximum, np.maximum),
    "minimum": (C.minimum, np.minimum),
    "power": (C.power, np.power),
}

COMPARE = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less,
           "less_equal": np.less_equal, "greater": np.greater, "greater_equal": np.greater_equal}


def _like(x, dtype):
    return np.asarray(x).astype(dtype, copy=False)


def _binary_infer(compute):
    inner = infer_by_compute(compute)

    def infer(types, attrs):
        same_dtype("", types)
        return inner(types, attrs)
    return infer


for _name, (_c, _r) in UNARY.items():
    register(OpDef(_name, Pattern.ELEMWISE, infer_by_compute(lambda x, a, c=_c: c(x[0])),
                   lambda x, a, c=_c: c(x[0]), lambda x, a, r=_r: _like(r(x[0]), x[0].dtype)))

for _name, (_c, _r) in BINARY.items():
    _compute = (lambda x, a, c=_c: c(x[0], x[1]))
    register(OpDef(_name, Pattern.BROADCAST, _binary_infer(_compute), _compute,
                   lambda x, a, r=_r: _like(r(x[0], x[1]), np.result_type(x[0], x[1])),
                   arity=2))

for _name, _r in COMPARE.items():
    _compute = (lambda x, a, n=_name: C.compare(n, x[0], x[1]))
    register(OpDef(_name, Pattern.BROADCAST, _binary_infer(_compute), _compute,
                   lambda x, a, r=_r: r(x[0], x[1]), arity=2))

register(OpDef(
    "gelu", Pattern.ELEMWISE,
    infer_by_compute(lambda x, a: C.gelu(x[0], a["approximate"])),
    lambda x, a: C.gelu(x[0], a["approximate"]),
    lambda x, a: _gelu(x[0], a["approximate"]),
    attrs={"approximate": ("none", a_choice("none", "tanh"))}))

register(OpDef(
    "clip", Pattern.ELEMWISE,
    infer_by_compute(lambda x, a: C.clip(x[0], a["a_min"], a["a_max"])),
    lambda x, a: C.clip(x[0], a["a_min"], a["a_max"]),
    lambda x, a: np.clip(x[0], a["a_min"], a["a_max"]).astype(x[0].dtype),
    attrs={"a_min": (None, a_opt_float), "a_max": (None, a_opt_float)}))

register(OpDef(
    "cast", Pattern.ELEMWISE,
    infer_by_compute(lambda x, a: C.cast(x[0], a["dtype"])),
    lambda x, a: C.cast(x[0], a["dtype"]),
    lambda x, a: x[0].astype(a["dtype"]),
    attrs={"dtype": ("float32", a_dtype)}))


def _where_infer(types, attrs):
    same_dtype("where", types[1:])
    return infer_by_compute(lambda x, a: C.where(*x))(types, attrs)


register(OpDef("where", Pattern.BROADCAST, _where_infer, lambda x, a: C.where(*x),
               lambda x, a: np.where(x[0], x[1], x[2]).astype(np.result_type(x[1], x[2])),
               arity=3))


def _batch_norm_ref(x, a):
    data, gamma, beta, mean, var = x
    shape = [1] * data.ndim
    shape[a["axis"]] = -1
    scale = gamma / np.sqrt(var + np.asarray(a["epsilon"], var.dtype))
    return (data * scale.reshape(shape) + (beta - mean * scale).reshape(shape)).astype(data.dtype)


def _batch_norm(x, a):
    return C.batch_norm(*x, axis=a["axis"], epsilon=a["epsilon"])


register(OpDef(
    "batch_norm", Pattern.BROADCAST, infer_by_compute(_batch_norm), _batch_norm, _batch_norm_ref,
    attrs={"axis": (1, a_int(0)), "epsilon": (1e-5, a_float)}, arity=5,
    doc="Inference batch norm: (x - mean) / sqrt(var + epsilon) * gamma + beta along axis."))


def _bias_add_ref(x, a):
    data, b = x
    shape = [1] * data.ndim
    shape[a["axis"]] = -1
    return data + b.reshape(shape)


register(OpDef(
    "bias_add", Pattern.BROADCAST, infer_by_compute(lambda x, a: C.bias_add(x[0], x[1], a["axis"])),
    lambda x, a: C.bias_add(x[0], x[1], a["axis"]), _bias_add_ref,
    attrs={"axis": (1, a_int(0))}, arity=2))
