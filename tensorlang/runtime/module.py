"""Compiled modules: call on numpy arrays (with every argument checked first), time, export
to a shared library, and load it back in another process without re-lowering.

A module is self-describing: the generated code embeds a JSON description of its parameters
(names, dtypes, shapes with symbolic dimensions) returned by ``tensorlang_metadata()``, so a
loaded ``.so`` checks its arguments exactly as the freshly built module does.
"""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import (ArgumentError, BoundsError, TensorlangIOError, TensorlangTypeError,
                      TensorlangValueError)

_CTYPE = {"int32": ctypes.c_int32, "int64": ctypes.c_int64, "uint32": ctypes.c_uint32,
          "uint64": ctypes.c_uint64, "int16": ctypes.c_int16, "int8": ctypes.c_int8,
          "uint8": ctypes.c_uint8, "uint16": ctypes.c_uint16}


_DIM_OPS = {"add": ("+", lambda a, b: a + b), "sub": ("-", lambda a, b: a - b),
            "mul": ("*", lambda a, b: a * b), "floordiv": ("//", lambda a, b: a // b if b else 0),
            "floormod": ("%", lambda a, b: a % b if b else 0), "min": ("min", min), "max": ("max", max)}


def _eval_dim(d, sizes: dict) -> int:
    if isinstance(d, int):
        return d
    if isinstance(d, str):
        return sizes[d]
    return _DIM_OPS[d[0]][1](_eval_dim(d[1], sizes), _eval_dim(d[2], sizes))


def _dim_text(d) -> str:
    if not isinstance(d, list):
        return str(d)
    sym = _DIM_OPS[d[0]][0]
    a, b = _dim_text(d[1]), _dim_text(d[2])
    return f"{sym}({a}, {b})" if sym in ("min", "max") else f"({a} {sym} {b})"


@dataclass(frozen=True)
class TimeResult:
    """Seconds per call: ``results`` holds one mean per repeat."""
    results: tuple

    @property
    def mean(self) -> float:
        return statistics.fmean(self.results)

    @property
    def median(self) -> float:
        return statistics.median(self.results)

    @property
    def min(self) -> float:
        return min(self.results)

    @property
    def max(self) -> float:
        return max(self.results)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.results)

    def __repr__(self):
        return f"TimeResult(mean={self.mean:.6g}s, median={self.median:.6g}s, repeats={len(self.results)})"


class Module:
    """A compiled function. Call it with numpy arrays: ``f(a, b, c)`` writes ``c`` in place."""

    def __init__(self, address: int, meta: dict, sources: dict, keepalive=()):
        self.meta = meta
        self.entry_name = meta["name"]
        self._sources = sources
        self._keepalive = keepalive
        argtypes = ([ctypes.c_void_p] * len(meta["params"])
                    + [_CTYPE[v["dtype"]] for v in meta["shape_vars"]] + [ctypes.c_void_p])
        self._cfunc = ctypes.CFUNCTYPE(None, *argtypes)(address)
        self._dtypes = [np.dtype(p["dtype"]) for p in meta["params"]]

    def get_function(self, name: str) -> "Module":
        """The function called ``name`` (a module holds one: this one)."""
        if name != self.entry_name:
            raise TensorlangValueError(f"module has no function {name!r}; it has {self.entry_name!r}")
        return self

    __getitem__ = get_function

    @property
    def entry_func(self) -> "Module":
        return self

    def __repr__(self):
        sig = ", ".join(f"{p['name']}: {p['dtype']}[{', '.join(map(_dim_text, p['shape']))}]"
                        for p in self.meta["params"])
        return f"Module({self.entry_name}({sig}), target={self.meta['target']!r})"

    # ----------------------------------------------------------------- calling

    def _check(self, args) -> list:
        meta = self.meta
        name = self.entry_name
        params = meta["params"]
        if len(args) != len(params):
            raise ArgumentError(f"{name}: expected {len(params)} arguments "
                                f"({', '.join(p['name'] for p in params)}), got {len(args)}")
        bound: dict[str, int] = {}
        for p, a, want in zip(params, args, self._dtypes):
            pn = p["name"]
            if not isinstance(a, np.ndarray):
                raise TensorlangTypeError(f"{name}: argument {pn!r} must be a numpy.ndarray, "
                                          f"got {type(a).__name__}")
            if a.dtype != want:
                raise TensorlangTypeError(f"{name}: argument {pn!r} has dtype {a.dtype}, expected {want}")
            if a.ndim != len(p["shape"]):
                raise ArgumentError(f"{name}: argument {pn!r} has {a.ndim} dimensions, expected "
                                    f"{len(p['shape'])} (shape {p['shape']})")
            for d, (want_dim, got) in enumerate(zip(p["shape"], a.shape)):
                if isinstance(want_dim, list):
                    continue                      # an expression: checked once all sizes are bound
                if isinstance(want_dim, int):
                    if got != want_dim:
                        raise ArgumentError(f"{name}: argument {pn!r} has shape {list(a.shape)}, "
                                            f"expected {p['shape']} (dimension {d})")
                elif bound.setdefault(want_dim, got) != got:
                    raise ArgumentError(
                        f"{name}: inconsistent size for {want_dim!r}: {bound[want_dim]} from an earlier "
                        f"argument but {got} from dimension {d} of {pn!r}")
            if not a.flags.c_contiguous:
                raise ArgumentError(f"{name}: argument {pn!r} is not C-contiguous; pass "
                                    "np.ascontiguousarray(x)")
            if not a.flags.aligned:
                raise ArgumentError(f"{name}: argument {pn!r} is not aligned to its element size")
            if pn in meta["outputs"] and not a.flags.writeable:
                raise ArgumentError(f"{name}: output argument {pn!r} is read-only")
        for p, a in zip(params, args):
            for d, (want_dim, got) in enumerate(zip(p["shape"], a.shape)):
                if isinstance(want_dim, list) and _eval_dim(want_dim, bound) != got:
                    raise ArgumentError(
                        f"{name}: argument {p['name']!r} has shape {list(a.shape)}, expected "
                        f"{_dim_text(want_dim)} = {_eval_dim(want_dim, bound)} in dimension {d} "
                        f"(with {', '.join(f'{k}={v}' for k, v in bound.items())})")
        for x, (p, a) in enumerate(zip(params, args)):
            if p["name"] in meta["outputs"] and a.size:
                for y, (q, b) in enumerate(zip(params, args)):
                    if x != y and b.size and np.may_share_memory(a, b):
                        raise ArgumentError(f"{name}: output {p['name']!r} overlaps argument "
                                            f"{q['name']!r}; outputs must not alias other arguments")
        values = []
        for v in meta["shape_vars"]:
            x = bound[v["name"]]
            if x > dt.max_value(v["dtype"]):
                raise ArgumentError(f"{name}: size {v['name']}={x} does not fit in {v['dtype']}")
            values.append(x)
        return [a.ctypes.data for a in args] + values

    def _run(self, raw: list) -> None:
        err = np.zeros(4, dtype=np.int64)
        self._cfunc(*raw, err.ctypes.data)
        if err[0] == 1:
            buf = self.meta["buffers"][int(err[1])]
            raise BoundsError(f"{self.entry_name}: out-of-bounds access of buffer {buf!r} at flat "
                              f"index {int(err[2])} (this call's writes may be incomplete)")
        if err[0] == 2:
            raise MemoryError(f"{self.entry_name}: could not allocate an intermediate buffer")

    def __call__(self, *args) -> None:
        self._run(self._check(args))

    def time_evaluator(self, func_name=None, dev=None, number: int = 10, repeat: int = 1,
                       min_repeat_ms: float = 0, **_ignored):
        """A function that times calls: each of ``repeat`` rounds runs ``number`` calls (more
        if the round would last under ``min_repeat_ms``) after one warm-up call; it returns a
        TimeResult of seconds per call. (``func_name``/``dev`` are accepted for TVM
        compatibility and ignored.)"""
        for k, v in (("number", number), ("repeat", repeat)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ArgumentError(f"time_evaluator: {k} must be a positive int, got {v!r}")

        def evaluate(*args) -> TimeResult:
            raw = self._check(args)
            self._run(raw)
            results = []
            n = number
            for _ in range(repeat):
                while True:
                    t0 = time.perf_counter()
                    for _ in range(n):
                        self._cfunc(*raw, _SCRATCH.ctypes.data)
                    elapsed = time.perf_counter() - t0
                    if elapsed * 1000 >= min_repeat_ms:
                        break
                    n = max(n * 2, int(n * min_repeat_ms / max(elapsed * 1000, 1e-3)) + 1)
                results.append(elapsed / n)
            return TimeResult(tuple(results))
        return evaluate

    # ----------------------------------------------------------------- sources and export

    def get_source(self, fmt: str = "ll") -> str:
        """``"tir"``: the loop IR; ``"ll"``: optimised LLVM IR; ``"ll_raw"``: LLVM IR as
        generated; ``"asm"``: assembly."""
        if fmt == "asm" and "asm" not in self._sources and "ll" in self._sources:
            from ..codegen.target import Target, init_llvm
            import llvmlite.binding as llvm
            init_llvm()
            mod = llvm.parse_assembly(self._sources["ll"])
            self._sources["asm"] = Target.parse(self.meta["target"]).machine().emit_assembly(mod)
        if fmt not in self._sources:
            raise TensorlangValueError(f"get_source: format {fmt!r} not available; have "
                                  f"{sorted(self._sources) + (['asm'] if 'll' in self._sources else [])}")
        return self._sources[fmt]

    def export_library(self, path: str, cc: str = "cc") -> None:
        """Write a shared library (LLVM object code linked by the system ``cc``) that
        ``tl.load_module`` loads in any process."""
        if "ll" not in self._sources:
            raise TensorlangIOError("export_library: this module was loaded from a library; copy the file instead")
        from ..codegen.target import Target, init_llvm
        import llvmlite.binding as llvm
        init_llvm()
        mod = llvm.parse_assembly(self._sources["ll"])
        obj = Target.parse(self.meta["target"]).machine(pic=True).emit_object(mod)
        out = os.path.abspath(path)
        if not os.path.isdir(os.path.dirname(out)):
            raise TensorlangIOError(f"export_library: folder {os.path.dirname(out)!r} does not exist")
        with tempfile.TemporaryDirectory() as tmp:
            o = os.path.join(tmp, "kernel.o")
            with open(o, "wb") as f:
                f.write(obj)
            r = subprocess.run([cc, "-shared", "-o", out, o, "-lgomp", "-lm"], capture_output=True, text=True)
            if r.returncode != 0:
                raise TensorlangIOError(f"export_library: linking with {cc} failed:\n{r.stderr}")


_SCRATCH = np.zeros(4, dtype=np.int64)    # error slots for timing runs (arguments already checked)


def load_module(path: str) -> Module:
    """Load a library written by ``Module.export_library``."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
        raise TensorlangIOError(f"load_module: no such file {path!r}")
    if not os.path.isfile(path):
        raise TensorlangIOError(f"load_module: {path!r} is not a tensorlang library (not a file)")
    from ..codegen.target import init_llvm
    init_llvm()   # loads libgomp into the process
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
        get_meta = lib.tensorlang_metadata
    except (OSError, AttributeError) as e:
        raise TensorlangIOError(f"load_module: {path!r} is not a tensorlang library ({e})") from None
    get_meta.restype = ctypes.c_char_p
    meta = json.loads(get_meta().decode())
    address = ctypes.cast(getattr(lib, meta["name"]), ctypes.c_void_p).value
    return Module(address, meta, {"tir": meta.get("tir", "")}, keepalive=(lib,))
