"""Compiled modules: one LLVM module holding one or more kernels, called on numpy arrays
(with every argument checked first), timed, exported to a shared library and loaded back in
another process without re-lowering.

A module is self-describing: the generated code embeds a JSON description of its kernels
(parameter names, dtypes, shapes with symbolic dimensions, workspace size) returned by
``tensorlang_metadata()``, so a loaded ``.so`` checks its arguments exactly as the freshly
built module does.

Three ways to call a kernel, from safest to fastest:

* ``kernel(a, b, c)``: every argument is checked (dtype, shape, layout, aliasing);
* ``kernel.prepare(a, b, c)``: checked once; the returned object runs the kernel on those
  arrays with no arguments and no checks (what a graph executor calls);
* ``kernel.call_unchecked(pa, pb, pc)``: data pointers (``a.ctypes.data``), then the sizes of
  the shape variables, unchecked: a wrong pointer or size corrupts memory.

Every path raises the errors the kernel itself reports (``BoundsError`` in
``bounds_check`` builds, ``MemoryError`` when an intermediate cannot be allocated).

Workspace: heap intermediates of constant size live in a workspace, a byte buffer the
caller passes (``workspace=``, at least ``workspace_bytes`` long, 64-byte aligned: make one
with ``tl.runtime.workspace(n)``), at offsets fixed at compile time. Without one, each
Python thread gets its own workspace per module, made on first use and reused, so two
threads may call the same module at once. Intermediates of symbolic size, and those inside
a parallel loop (one per thread), are still allocated with ``aligned_alloc`` in the call.
"""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import (ArgumentError, BoundsError, TensorlangIOError, TensorlangTypeError,
                      TensorlangValueError)

_CTYPE = {"int32": ctypes.c_int32, "int64": ctypes.c_int64, "uint32": ctypes.c_uint32,
          "uint64": ctypes.c_uint64, "int16": ctypes.c_int16, "int8": ctypes.c_int8,
          "uint8": ctypes.c_uint8, "uint16": ctypes.c_uint16}

WORKSPACE_ALIGN = 64

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


def _address(a: np.ndarray) -> int:
    """The data pointer of a C-contiguous array. ctypes' ``from_buffer`` takes a quarter of
    the time of ``a.ctypes.data`` but needs a writable, non-empty buffer."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError):
        return a.ctypes.data


def workspace(nbytes: int) -> np.ndarray:
    """An uninitialised ``uint8`` array of ``nbytes`` bytes aligned to 64 bytes: a workspace
    for ``kernel(..., workspace=w)`` (``nbytes >= kernel.workspace_bytes``)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise TensorlangValueError(f"workspace: expected a byte count >= 0, got {nbytes!r}")
    buf = np.empty(int(nbytes) + WORKSPACE_ALIGN, np.uint8)
    start = -buf.ctypes.data % WORKSPACE_ALIGN
    return buf[start:start + int(nbytes)]


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


class _ErrorSlots:
    """The four int64 slots a kernel reports errors in: [code, buffer id, index, unused];
    code 0 = no error, 1 = out of bounds, 2 = allocation failed. They stay zero between
    calls: a reported error is cleared when it is raised."""

    def __init__(self):
        self.slots = (ctypes.c_int64 * 4)()
        self.address = ctypes.addressof(self.slots)


class Kernel:
    """One compiled function of a Module. ``kernel(a, b, c)`` checks its numpy arguments and
    writes the outputs in place."""

    def __init__(self, module: "Module", address: int, meta: dict):
        self.module = module
        self.meta = meta
        self.name = meta["name"]
        self.workspace_bytes = int(meta.get("workspace_bytes", 0))
        params = meta["params"]
        argtypes = ([ctypes.c_void_p] * len(params) + [_CTYPE[v["dtype"]] for v in meta["shape_vars"]]
                    + [ctypes.c_void_p, ctypes.c_void_p])            # workspace, error slots
        self._cfunc = ctypes.CFUNCTYPE(None, *argtypes)(address)
        self._dtypes = [np.dtype(p["dtype"]) for p in params]
        self._static = [tuple(p["shape"]) if all(isinstance(d, int) for d in p["shape"]) else None
                        for p in params]
        self._outputs = [p["name"] in meta["outputs"] for p in params]
        self._expr_dims = any(isinstance(d, list) for p in params for d in p["shape"])

    @property
    def entry_name(self) -> str:
        return self.name

    def __repr__(self):
        sig = ", ".join(f"{p['name']}: {p['dtype']}[{', '.join(map(_dim_text, p['shape']))}]"
                        for p in self.meta["params"])
        ws = f", workspace_bytes={self.workspace_bytes}" if self.workspace_bytes else ""
        return f"{self.name}({sig}){ws}"

    # ----------------------------------------------------------------- checks

    def _check(self, args) -> list:
        """The C arguments (data pointers, then shape-variable sizes) of a checked call."""
        meta = self.meta
        name = self.name
        params = meta["params"]
        if len(args) != len(params):
            raise ArgumentError(f"{name}: expected {len(params)} arguments "
                                f"({', '.join(p['name'] for p in params)}), got {len(args)}")
        bound: dict[str, int] = {}
        pointers = []
        for p, a, want, static, is_out in zip(params, args, self._dtypes, self._static, self._outputs):
            pn = p["name"]
            if not isinstance(a, np.ndarray):
                raise TensorlangTypeError(f"{name}: argument {pn!r} must be a numpy.ndarray, "
                                          f"got {type(a).__name__}")
            if a.dtype != want:
                raise TensorlangTypeError(f"{name}: argument {pn!r} has dtype {a.dtype}, expected {want}")
            if a.shape != static:
                self._check_shape(p, a, bound)
            flags = a.flags
            if not flags.c_contiguous:
                raise ArgumentError(f"{name}: argument {pn!r} is not C-contiguous; pass "
                                    "np.ascontiguousarray(x)")
            if not flags.aligned:
                raise ArgumentError(f"{name}: argument {pn!r} is not aligned to its element size")
            if is_out and not flags.writeable:
                raise ArgumentError(f"{name}: output argument {pn!r} is read-only")
            pointers.append(_address(a))
        for p, a in zip(params, args) if self._expr_dims else ():
            for d, (want_dim, got) in enumerate(zip(p["shape"], a.shape)):
                if isinstance(want_dim, list) and _eval_dim(want_dim, bound) != got:
                    raise ArgumentError(
                        f"{name}: argument {p['name']!r} has shape {list(a.shape)}, expected "
                        f"{_dim_text(want_dim)} = {_eval_dim(want_dim, bound)} in dimension {d} "
                        f"(with {', '.join(f'{k}={v}' for k, v in bound.items())})")
        # outputs must not overlap other arguments (all are contiguous: compare byte ranges)
        for x, (p, a) in enumerate(zip(params, args)):
            if self._outputs[x] and a.size:
                for y, (q, b) in enumerate(zip(params, args)):
                    if (x != y and b.size and pointers[x] < pointers[y] + b.nbytes
                            and pointers[y] < pointers[x] + a.nbytes):
                        raise ArgumentError(f"{name}: output {p['name']!r} overlaps argument "
                                            f"{q['name']!r}; outputs must not alias other arguments")
        for v in meta["shape_vars"]:
            x = bound[v["name"]]
            if x > dt.max_value(v["dtype"]):
                raise ArgumentError(f"{name}: size {v['name']}={x} does not fit in {v['dtype']}")
            pointers.append(x)
        return pointers

    def _check_shape(self, p: dict, a: np.ndarray, bound: dict) -> None:
        """Check ``a``'s shape against parameter ``p``, binding symbolic sizes in ``bound``
        (dimensions given by expressions are checked once all sizes are bound)."""
        name, pn = self.name, p["name"]
        if a.ndim != len(p["shape"]):
            raise ArgumentError(f"{name}: argument {pn!r} has {a.ndim} dimensions, expected "
                                f"{len(p['shape'])} (shape {p['shape']})")
        for d, (want_dim, got) in enumerate(zip(p["shape"], a.shape)):
            if isinstance(want_dim, int):
                if got != want_dim:
                    raise ArgumentError(f"{name}: argument {pn!r} has shape {list(a.shape)}, "
                                        f"expected {p['shape']} (dimension {d})")
            elif isinstance(want_dim, str) and bound.setdefault(want_dim, got) != got:
                raise ArgumentError(
                    f"{name}: inconsistent size for {want_dim!r}: {bound[want_dim]} from an earlier "
                    f"argument but {got} from dimension {d} of {pn!r}")

    def _workspace(self, ws) -> int | None:
        """The workspace pointer of a checked call: ``ws`` checked, or this thread's own."""
        need = self.workspace_bytes
        if ws is None:
            return self.module._thread_workspace() if need else None
        if not isinstance(ws, np.ndarray):
            raise TensorlangTypeError(f"{self.name}: workspace must be a numpy.ndarray (make one with "
                                      f"tl.runtime.workspace({need})), got {type(ws).__name__}")
        if not ws.flags.c_contiguous or not ws.flags.writeable:
            raise ArgumentError(f"{self.name}: workspace must be a writable C-contiguous array")
        if ws.nbytes < need:
            raise ArgumentError(f"{self.name}: workspace has {ws.nbytes} bytes, but this kernel needs "
                                f"{need} (kernel.workspace_bytes)")
        if not need:
            return None
        address = _address(ws)
        if address % WORKSPACE_ALIGN:
            raise ArgumentError(f"{self.name}: workspace is not aligned to {WORKSPACE_ALIGN} bytes "
                                f"(address ends in {address % WORKSPACE_ALIGN}); make one with "
                                f"tl.runtime.workspace({need})")
        return address

    def _raise(self, slots) -> None:
        """Raise the error the kernel reported in ``slots`` (and clear them)."""
        code, buf, index = slots[0], slots[1], slots[2]
        slots[0] = slots[1] = slots[2] = 0
        if code == 1:
            raise BoundsError(f"{self.name}: out-of-bounds access of buffer "
                              f"{self.meta['buffers'][buf]!r} at flat index {index} "
                              "(this call's writes may be incomplete)")
        raise MemoryError(f"{self.name}: could not allocate an intermediate buffer")

    # ----------------------------------------------------------------- calling

    def __call__(self, *args, workspace=None) -> None:
        raw = self._check(args)
        ws = self._workspace(workspace) if workspace is not None or self.workspace_bytes else None
        err = self.module._thread_errors()
        self._cfunc(*raw, ws, err.address)
        if err.slots[0]:
            self._raise(err.slots)

    def call_unchecked(self, *args, workspace=None) -> None:
        """Run the kernel on data pointers (``a.ctypes.data``, one per array parameter), then
        the sizes of its shape variables, with no checks. ``workspace``: a pointer to at
        least ``workspace_bytes`` bytes aligned to 64 (default: this thread's own)."""
        if len(args) != len(self._dtypes) + len(self.meta["shape_vars"]):
            raise ArgumentError(f"{self.name}: call_unchecked expected the data pointers of "
                                f"{', '.join(p['name'] for p in self.meta['params'])}"
                                + "".join(f", then the size {v['name']}" for v in self.meta["shape_vars"])
                                + f"; got {len(args)} arguments")
        err = self.module._thread_errors()
        if workspace is None and self.workspace_bytes:
            workspace = self.module._thread_workspace()
        self._cfunc(*args, workspace, err.address)
        if err.slots[0]:
            self._raise(err.slots)

    def prepare(self, *args, workspace=None) -> "PreparedCall":
        """Check the arrays ``args`` (and ``workspace``) once; the returned object runs the
        kernel on them with no arguments: ``p = k.prepare(a, b, c); p()``."""
        return PreparedCall(self, args, workspace)

    def time_evaluator(self, func_name=None, dev=None, number: int = 10, repeat: int = 1,
                       min_repeat_ms: float = 0, **_ignored):
        """A function that times calls: each of ``repeat`` rounds runs ``number`` calls (more
        if the round would last under ``min_repeat_ms``) after one warm-up call; it returns a
        TimeResult of seconds per call. (``func_name``/``dev`` are accepted for TVM
        compatibility and ignored.)"""
        for k, v in (("number", number), ("repeat", repeat)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ArgumentError(f"time_evaluator: {k} must be a positive int, got {v!r}")

        def evaluate(*args, workspace=None) -> TimeResult:
            call = self.prepare(*args, workspace=workspace)
            call()
            cfunc, raw = self._cfunc, call.args
            results = []
            n = number
            for _ in range(repeat):
                while True:
                    t0 = time.perf_counter()
                    for _ in range(n):
                        cfunc(*raw)
                    elapsed = time.perf_counter() - t0
                    if elapsed * 1000 >= min_repeat_ms:
                        break
                    n = max(n * 2, int(n * min_repeat_ms / max(elapsed * 1000, 1e-3)) + 1)
                results.append(elapsed / n)
            if call.errors.slots[0]:
                self._raise(call.errors.slots)
            return TimeResult(tuple(results))
        return evaluate


class PreparedCall:
    """A kernel bound to checked arrays: ``p()`` runs it with no per-call checks. It keeps the
    arrays alive, and has its own workspace and error slots: use it from one thread at a
    time (the arrays are fixed, so concurrent calls would race on the outputs anyway)."""

    def __init__(self, kernel: Kernel, arrays, ws=None):
        raw = kernel._check(arrays)
        if ws is None and kernel.workspace_bytes:
            ws = workspace(kernel.workspace_bytes)
        self.kernel = kernel
        self.errors = _ErrorSlots()
        self.args = tuple(raw) + (kernel._workspace(ws), self.errors.address)
        self._keepalive = (tuple(arrays), ws)
        self._cfunc, self._slots = kernel._cfunc, self.errors.slots

    def __call__(self) -> None:
        self._cfunc(*self.args)
        if self._slots[0]:
            self.kernel._raise(self._slots)

    def __repr__(self):
        return f"PreparedCall({self.kernel.name})"


class Module:
    """Compiled kernels sharing one piece of machine code. ``mod["name"]`` (or
    ``mod.get_function("name")``) is a Kernel; a module holding one kernel is also called,
    timed and described directly: ``f(a, b, c)``."""

    def __init__(self, meta: dict, addresses: dict, sources: dict, obj: bytes | None = None,
                 keepalive=()):
        self.target = meta["target"]
        self.kernels = {k["name"]: Kernel(self, addresses[k["name"]], k) for k in meta["kernels"]}
        self.workspace_bytes = max((k.workspace_bytes for k in self.kernels.values()), default=0)
        self._meta = meta
        self._sources = sources
        self._object = obj                    # the object code, linked by export_library
        self._keepalive = keepalive
        self._local = threading.local()

    # ----------------------------------------------------------------- kernels

    def get_function(self, name: str) -> Kernel:
        """The kernel called ``name``."""
        kernel = self.kernels.get(name)
        if kernel is None:
            raise TensorlangValueError(f"module has no function {name!r}; it has "
                                       f"{', '.join(map(repr, self.kernels))}")
        return kernel

    __getitem__ = get_function

    def __contains__(self, name) -> bool:
        return name in self.kernels

    @property
    def entry_func(self) -> Kernel:
        """The module's one kernel (a module of several has none: pick one by name)."""
        if len(self.kernels) != 1:
            raise TensorlangValueError(f"module holds {len(self.kernels)} kernels "
                                       f"({', '.join(self.kernels)}); pick one: mod[name]")
        return next(iter(self.kernels.values()))

    @property
    def entry_name(self) -> str:
        return self.entry_func.name

    @property
    def meta(self) -> dict:
        """The metadata of the module's one kernel (its params, outputs, target, ...)."""
        return self.entry_func.meta

    def __call__(self, *args, workspace=None) -> None:
        self.entry_func(*args, workspace=workspace)

    def time_evaluator(self, func_name=None, dev=None, number: int = 10, repeat: int = 1,
                       min_repeat_ms: float = 0, **kw):
        """``Kernel.time_evaluator`` of kernel ``func_name`` (default: the one kernel)."""
        kernel = self.get_function(func_name) if func_name is not None else self.entry_func
        return kernel.time_evaluator(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms, **kw)

    def __repr__(self):
        return f"Module({', '.join(map(repr, self.kernels.values()))}; target={self.target!r})"

    # ----------------------------------------------------------------- per-thread state

    def _thread_errors(self) -> _ErrorSlots:
        try:
            return self._local.errors
        except AttributeError:
            self._local.errors = _ErrorSlots()
            return self._local.errors

    def _thread_workspace(self) -> int:
        """This Python thread's workspace (for any kernel of the module), made on first use."""
        try:
            return self._local.workspace_address
        except AttributeError:
            self._local.workspace = workspace(self.workspace_bytes)
            self._local.workspace_address = self._local.workspace.ctypes.data
            return self._local.workspace_address

    # ----------------------------------------------------------------- sources and export

    def get_source(self, fmt: str = "ll") -> str:
        """``"tir"``: the loop IR; ``"ll"``: optimised LLVM IR; ``"ll_raw"``: LLVM IR as
        generated; ``"asm"``: assembly."""
        if fmt == "asm" and "asm" not in self._sources and "ll" in self._sources:
            from ..codegen.target import Target, init_llvm
            import llvmlite.binding as llvm
            init_llvm()
            mod = llvm.parse_assembly(self._sources["ll"])
            self._sources["asm"] = Target.parse(self.target).machine(pic=True).emit_assembly(mod)
        if fmt not in self._sources:
            raise TensorlangValueError(f"get_source: format {fmt!r} not available; have "
                                  f"{sorted(self._sources) + (['asm'] if 'll' in self._sources else [])}")
        return self._sources[fmt]

    def export_library(self, path: str, cc: str = "cc") -> None:
        """Write a shared library (the JIT's own object code, linked by the system ``cc``)
        that ``tl.load_module`` loads in any process. The library carries its own copy of
        the thread pool (``threadpool.object_code``, hidden symbols), so that it needs no
        runtime library; ``tl.load_module`` routes its parallel loops to the process's pool."""
        if self._object is None:
            raise TensorlangIOError("export_library: this module was loaded from a library; copy the file instead")
        out = os.path.abspath(path)
        if not os.path.isdir(os.path.dirname(out)):
            raise TensorlangIOError(f"export_library: folder {os.path.dirname(out)!r} does not exist")
        from .threadpool import object_code
        with tempfile.TemporaryDirectory() as tmp:
            o = os.path.join(tmp, "kernels.o")
            pool = os.path.join(tmp, "threadpool.o")
            with open(o, "wb") as f:
                f.write(self._object)
            with open(pool, "wb") as f:
                f.write(object_code())
            r = subprocess.run([cc, "-shared", "-pthread", "-o", out, o, pool, "-lm"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise TensorlangIOError(f"export_library: linking with {cc} failed:\n{r.stderr}")


def load_module(path: str) -> Module:
    """Load a library written by ``Module.export_library`` (all of its kernels)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
        raise TensorlangIOError(f"load_module: no such file {path!r}")
    if not os.path.isfile(path):
        raise TensorlangIOError(f"load_module: {path!r} is not a tensorlang library (not a file)")
    from ..codegen.target import init_llvm
    from .threadpool import attach
    init_llvm()   # the math libraries the kernels call
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
        get_meta = lib.tensorlang_metadata
    except (OSError, AttributeError) as e:
        raise TensorlangIOError(f"load_module: {path!r} is not a tensorlang library ({e})") from None
    attach(lib)   # its parallel loops run on this process's thread pool
    get_meta.restype = ctypes.c_char_p
    meta = json.loads(get_meta().decode())
    if "kernels" not in meta:
        raise TensorlangIOError(f"load_module: {path!r} was written by an older tensorlang "
                                "(one kernel, no workspace); build and export it again")
    addresses = {k["name"]: ctypes.cast(getattr(lib, k["name"]), ctypes.c_void_p).value
                 for k in meta["kernels"]}
    sources = {"tir": "\n\n".join(k.get("tir", "") for k in meta["kernels"])}
    return Module(meta, addresses, sources, keepalive=(lib,))
