"""The compiled model: runs the kernels of a built graph on planned memory."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from ..runtime import workspace


def as_array(x, what: str) -> np.ndarray:
    """``x`` as a numpy array: numpy arrays as they are, DLPack producers (PyTorch tensors)
    without a copy."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError) as e:
            raise ArgumentError(f"{what}: cannot read this {type(x).__name__} through DLPack "
                                f"({e}); pass a CPU tensor or a numpy array") from None
    raise ArgumentError(f"{what}: expected a numpy array or a DLPack tensor, got "
                        f"{type(x).__name__}")


def check_inputs(variables, inputs, who: str) -> list:
    """The inputs as C-contiguous arrays, checked against the graph's variables (count,
    dtype, shape), with the project's usual errors."""
    if len(inputs) != len(variables):
        names = ", ".join(v.name for v in variables)
        raise ArgumentError(f"{who}: expected {len(variables)} input{'s' if len(variables) != 1 else ''} "
                            f"({names}), got {len(inputs)}")
    out = []
    for v, x in zip(variables, inputs):
        a = as_array(x, f"{who}: input {v.name!r}")
        if a.dtype.name != v.dtype:
            raise ArgumentError(f"{who}: input {v.name!r} has dtype {a.dtype.name}, expected "
                                f"{v.dtype}")
        if a.shape != v.shape:
            raise ArgumentError(f"{who}: input {v.name!r} has shape {a.shape}, expected "
                                f"{v.shape}")
        out.append(np.ascontiguousarray(a))
    return out


# --------------------------------------------------------------------------- the plan
#
# A reference says where a kernel argument lives:
#   ("in", i)      the caller's input i            ("out", k)   output array k (fresh per call)
#   ("const", j)   constant j (folded and packed)  ("arena", o) byte offset o in the arena

@dataclass
class Step:
    kernel: str               # the kernel's name in the code module
    args: list                # references of its parameters, output last
    group: str                # the fused group it runs
    ops: list                 # the group's op names
    template: str | None      # the tuned template used, if any
    dispatch: tuple | None = None   # (workload, "log" | "shipped" | "default"), when built here


@dataclass
class InputSpec:
    name: str
    shape: tuple
    dtype: str


@dataclass
class OutputSpec:
    shape: tuple
    dtype: str
    ref: list                 # where its value is: ("out", k) or a copy of ("in"/"const") data


class CompiledModule:
    """A built graph: ``lib(*inputs)`` runs it; ``lib.profile(*inputs)`` times each kernel;
    ``lib.memory`` is the memory plan; ``lib.export_library(path)`` writes one file.

    Inputs are checked once per call (count, dtype, shape); then the kernels run through
    their unchecked entry points on precomputed pointers (arena and constants fixed at
    build time), one after another. The arena is reused across calls, so a module runs one
    call at a time (as TVM's graph executor does); outputs are fresh arrays each call."""

    def __init__(self, code, steps, inputs, outputs, constants, arena_bytes, memory,
                 graph_json=None, structure=None, compile_seconds: float | None = None,
                 graph=None):
        self.code = code                      # the runtime Module holding every kernel
        self.steps = steps
        self.inputs = inputs
        self.outputs = outputs
        self.constants = constants
        self.arena_bytes = arena_bytes
        self.memory = memory
        self.graph_json = graph_json
        self.structure = structure            # how outputs nest: an int k or a list of them
        self.compile_seconds = compile_seconds
        self.graph = graph                    # the optimised module (None once loaded)
        self._arena = workspace(max(arena_bytes, 1))
        self._prepare()

    @property
    def kernel_count(self) -> int:
        """Kernel calls per run."""
        return len(self.steps)

    def dispatch_report(self) -> dict:
        """Kernel calls per config source: ``{"log": n, "shipped": n, "default": n,
        "untemplated": n}``: which kernels used tuned records (an applied
        ``apply_history_best`` log, the log shipped for this CPU) and which their template's
        defaults (as built; a loaded module does not know)."""
        out: dict = {}
        for st in self.steps:
            key = st.dispatch[1] if st.dispatch else "untemplated"
            out[key] = out.get(key, 0) + 1
        return out

    def _address(self, ref, in_ptrs, out_ptrs):
        kind, v = ref
        if kind == "arena":
            return self._arena.ctypes.data + v
        if kind == "const":
            return self.constants[v].ctypes.data
        return (in_ptrs if kind == "in" else out_ptrs)[v]

    def _prepare(self):
        """Per step: the kernel's unchecked entry, its fixed pointers, and the slots filled
        per call (inputs and outputs); the shape and dtype of each output array (one per
        stored result: a node returned twice has one)."""
        slot = {o.ref[1]: o for o in self.outputs if o.ref[0] == "out"}
        self._out_slots = [(slot[k].shape, slot[k].dtype) for k in range(len(slot))]
        self._calls = []
        for st in self.steps:
            kernel = self.code[st.kernel]
            fixed, slots = [], []
            for pos, (kind, v) in enumerate(st.args):
                if kind in ("in", "out"):
                    fixed.append(0)
                    slots.append((pos, kind == "out", v))
                else:
                    fixed.append(self._address((kind, v), None, None))
            self._calls.append((kernel.call_unchecked, fixed, slots))

    def _run(self, arrays, timed=None):
        in_ptrs = [a.ctypes.data for a in arrays]
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_slots]
        out_ptrs = [o.ctypes.data for o in outs]
        for n, (call, fixed, slots) in enumerate(self._calls):
            args = list(fixed)
            for pos, is_out, v in slots:
                args[pos] = out_ptrs[v] if is_out else in_ptrs[v]
            if timed is None:
                call(*args)
            else:
                timed(n, call, args)
        results = []
        for o in self.outputs:
            kind, v = o.ref
            if kind == "out":
                results.append(outs[v])
            elif kind == "in":
                results.append(arrays[v].copy())
            else:
                results.append(self.constants[v].reshape(o.shape).copy())
        return self._nest(results)

    def _nest(self, flat):
        def build(s):
            return flat[s] if isinstance(s, int) else tuple(build(x) for x in s)
        out = [build(s) for s in self.structure]
        return out[0] if len(out) == 1 else out

    def __call__(self, *inputs):
        return self._run(check_inputs(self.inputs, inputs, "CompiledModule"))

    run = __call__

    def profile(self, *inputs, number: int = 10) -> "Profile":
        """Per-kernel times (median of ``number`` runs of each kernel in place, after one
        warm-up run of the whole graph), as TVM's debug executor reports them."""
        arrays = check_inputs(self.inputs, inputs, "profile")
        self._run(arrays)
        samples = [[] for _ in self.steps]

        def timed(n, call, args):
            for _ in range(number):
                t0 = time.perf_counter()
                call(*args)
                samples[n].append(time.perf_counter() - t0)
        self._run(arrays, timed)
        return Profile([(st.kernel, st.ops, st.template, statistics.median(s) * 1e3)
                        for st, s in zip(self.steps, samples)])

    def __repr__(self):
        return (f"CompiledModule({len(self.inputs)} inputs, {len(self.outputs)} outputs, "
                f"{self.kernel_count} kernel calls, {len(self.code.kernels)} kernels, "
                f"arena {self.arena_bytes} bytes)")

    # ----------------------------------------------------------------- export

    def export_library(self, path: str) -> None:
        """One file: the kernels' shared library with the graph, the plan and the constants
        appended (``G.load_module`` reads them; the loader needs no graph passes)."""
        from .export import write_payload
        self.code.export_library(path)
        write_payload(path, self)


@dataclass
class Profile:
    rows: list      # (kernel, ops, template, ms)

    @property
    def total_ms(self) -> float:
        return sum(r[3] for r in self.rows)

    def __str__(self):
        total = self.total_ms or 1.0
        lines = [f"{'kernel':<40} {'ms':>9} {'%':>6}  ops"]
        for name, ops, template, ms in self.rows:
            lines.append(f"{name[:40]:<40} {ms:9.3f} {100 * ms / total:6.1f}  "
                         f"{'+'.join(ops)}{'  [' + template + ' template]' if template else ''}")
        lines.append(f"{'total':<40} {self.total_ms:9.3f}")
        return "\n".join(lines)

    __repr__ = __str__
