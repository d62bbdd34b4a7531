"""Targets: which CPU to generate code for, what that CPU offers, and the LLVM machinery
(parse, O3, JIT, object).

``"llvm"`` means the host CPU with all its features. A target string may name another CPU:
``"llvm -mcpu=haswell"`` or change features ``"llvm -mattr=+avx2,-avx512f"``.

As in TVM, ``with Target("llvm -mcpu=haswell"):`` makes a target the current one
(``Target.current()``, the host when no ``with`` is active): the operator library's schedules,
dispatch's record lookups and ``tl.build`` all read it, so one ``with`` builds a whole kernel
for that CPU. ``Target.info`` says what schedules need to know about the CPU (``CPUInfo``):
vector width, vector registers, FMA, and cache sizes.

A fresh LLVM TargetMachine is made for every use (reusing one after JIT creation crashed in
llvmlite 0.50 here).
"""

from __future__ import annotations

import contextvars
import ctypes
import ctypes.util
import functools
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm

from ..errors import TensorlangValueError


@functools.cache
def init_llvm() -> None:
    """Initialise LLVM once and load the libraries kernels call (the parallel runtime is
    ``runtime/threadpool.py``, compiled by LLVM itself)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    for lib in ("m", "gcc_s"):      # libm: math calls; libgcc_s: half-precision conversions
        path = ctypes.util.find_library(lib)
        if path:
            llvm.load_library_permanently(path)


@dataclass(frozen=True)
class CPUInfo:
    """What a schedule needs to know about the target CPU, read from LLVM (vector ISA) and,
    for the host, from the kernel's cache description (``/sys/devices/system/cpu``).

    ``vector_bits``: the widest float vector the CPU computes on natively (512 with AVX-512,
    256 with AVX/AVX2, else 128); ``vector_registers``: how many of them (32 with AVX-512,
    else 16); ``fma``: fused multiply-add; ``l1d_bytes``/``l2_bytes``: the data caches of one
    core. A CPU other than the host reports no caches, so a target named with ``-mcpu`` gets
    ``DEFAULT_L1D``/``DEFAULT_L2``: the smallest of x86 server and desktop cores since 2013
    (Haswell: 32 KiB and 256 KiB), so blocking chosen from them is never too large."""
    vector_bits: int
    vector_registers: int
    fma: bool
    l1d_bytes: int
    l2_bytes: int

    def lanes(self, bits: int) -> int:
        """Elements of ``bits`` bits in one vector register."""
        return max(1, self.vector_bits // bits)


DEFAULT_L1D = 32 * 1024
DEFAULT_L2 = 256 * 1024

_CURRENT: contextvars.ContextVar = contextvars.ContextVar("tensorlang_target", default=())


@dataclass(frozen=True)
class Target:
    """An LLVM CPU target: ``mcpu`` (``None``: the host) and extra ``mattr`` features. Used as
    a context manager it is the current target of the code inside (``Target.current()``)."""
    mcpu: str | None = None
    mattr: str = ""

    @staticmethod
    def current() -> "Target":
        """The innermost ``with Target(...)`` target, else the host (``"llvm"``, or the
        environment variable ``TENSORLANG_TARGET`` when it is set)."""
        stack = _CURRENT.get()
        return stack[-1] if stack else _HOST

    def __enter__(self) -> "Target":
        _CURRENT.set(_CURRENT.get() + (self,))
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.set(_CURRENT.get()[:-1])

    @property
    def info(self) -> CPUInfo:
        """Vector ISA and caches of this target (``CPUInfo``)."""
        if self.mcpu is not None or self.mattr:
            _check_cpu_and_features(self.cpu, self.features)
        return _cpu_info(self.cpu, self.features, self.mcpu is None or self.mcpu == _host_cpu())

    @staticmethod
    def create(target="llvm", host=None) -> "Target":
        """TVM's ``Target(target, host=...)``; the host is always this CPU."""
        return Target.parse(target)

    @staticmethod
    def parse(target) -> "Target":
        """A Target from a string (``None``: the current target)."""
        if isinstance(target, Target):
            return target
        if target is None:
            return Target.current()
        if not isinstance(target, str):
            raise TensorlangValueError(f"target must be a string like 'llvm', got {target!r}")
        words = shlex.split(target)
        if not words or words[0] != "llvm":
            raise TensorlangValueError(f"unsupported target {target!r}; this compiler targets CPUs: "
                                       "'llvm', 'llvm -mcpu=<cpu>', 'llvm -mattr=<+feat,...>'")
        opts = {}
        for w in words[1:]:
            key, eq, val = w.partition("=")
            if key not in ("-mcpu", "-mattr") or not eq:
                raise TensorlangValueError(f"target {target!r}: unknown option {w!r} "
                                           "(expected -mcpu=... or -mattr=...)")
            opts[key[1:]] = val
        return Target(opts.get("mcpu") or None, opts.get("mattr", ""))

    @property
    def cpu(self) -> str:
        return self.mcpu or _host_cpu()

    @property
    def features(self) -> str:
        base = _host_features() if self.mcpu is None else ""
        return ",".join(f for f in (base, self.mattr) if f)

    def __str__(self) -> str:
        parts = ["llvm", f"-mcpu={self.cpu}"]
        if self.mattr:
            parts.append(f"-mattr={self.mattr}")
        return " ".join(parts)

    @property
    def kind(self):
        """TVM compatibility: ``target.kind.name == "llvm"``."""
        from types import SimpleNamespace
        return SimpleNamespace(name="llvm")

    def has_avx512(self) -> bool:
        return self.info.vector_bits >= 512

    def machine(self, pic: bool = False):
        """A TargetMachine; ``pic=True``: position-independent code (small code model), which
        ``build`` gives the JIT so that the object it emits also links into a shared library."""
        init_llvm()
        if self.mcpu is not None or self.mattr:
            _check_cpu_and_features(self.cpu, self.features)
        t = llvm.Target.from_triple(llvm.get_process_triple())
        return t.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                       reloc="pic" if pic else "default", codemodel="jitdefault"
                                       if not pic else "default", jit=not pic)


# the target outside any ``with``: the host, or ``$TENSORLANG_TARGET`` (e.g. "llvm
# -mcpu=haswell", to build and test another CPU's code on this one)
_HOST = Target.parse(os.environ.get("TENSORLANG_TARGET") or "llvm")


@functools.cache
def _host_cpu() -> str:
    init_llvm()
    return llvm.get_host_cpu_name()


@functools.cache
def _host_features() -> str:
    init_llvm()
    return llvm.get_host_cpu_features().flatten()


# Each probe is a function over one vector type; the assembly LLVM emits for the target says
# whether the CPU computes it natively (a zmm/ymm register) and whether it has FMA.
_ISA_PROBES = {
    512: ("<16 x float>", "zmm", "fadd"),
    256: ("<8 x float>", "ymm", "fadd"),
    "fma": ("<8 x float>", "vfmadd", "fma"),
}


@functools.cache
def _cpu_info(cpu: str, features: str, is_host: bool) -> CPUInfo:
    """Ask LLVM how it compiles a few vector functions for this CPU (an ISA read from the
    code itself, so ``-mattr=-avx512f`` or an unknown CPU name give the right answer), and
    the host's caches from sysfs."""
    t = llvm.Target.from_triple(llvm.get_process_triple())
    native = {}
    for key, (vty, reg, op) in _ISA_PROBES.items():
        body = (f"  %y = call {vty} @llvm.fma.v8f32({vty} %x, {vty} %x, {vty} %x)" if op == "fma"
                else f"  %y = fadd {vty} %x, %x")
        ir = (f"define void @f(ptr %p) #0 {{\n  %x = load {vty}, ptr %p\n{body}\n"
              f"  store {vty} %y, ptr %p\n  ret void\n}}\n"
              f"declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)\n"
              f'attributes #0 = {{ "min-legal-vector-width"="512" }}\n')
        tm = t.create_target_machine(cpu=cpu, features=features, opt=2)
        native[key] = reg in tm.emit_assembly(llvm.parse_assembly(ir))
    bits = 512 if native[512] else 256 if native[256] else 128
    l1d, l2 = _host_caches() if is_host else (None, None)
    return CPUInfo(vector_bits=bits, vector_registers=32 if bits == 512 else 16,
                   fma=native["fma"], l1d_bytes=l1d or DEFAULT_L1D, l2_bytes=l2 or DEFAULT_L2)


def _host_caches() -> tuple:
    """(L1 data, L2) bytes of cpu0 from sysfs; None for what it does not report."""
    found = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((d / f).read_text().strip() for f in ("level", "type", "size"))
            mult = {"K": 1024, "M": 1024 * 1024}.get(size[-1:], 1)
            if kind in ("Data", "Unified"):
                found.setdefault(level, int(size.rstrip("KM")) * mult)
        except (OSError, ValueError):
            continue
    return found.get("1"), found.get("2")


_PROBE = """
import sys, llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter()
t = llvm.Target.from_triple(llvm.get_process_triple())
tm = t.create_target_machine(cpu=sys.argv[1], features=sys.argv[2], opt=2)
m = llvm.parse_assembly("define i32 @f(i32 %x) {\\n  ret i32 %x\\n}\\n")
tm.emit_assembly(m)
"""


@functools.cache
def _check_cpu_and_features(cpu: str, features: str) -> None:
    """LLVM aborts the process on some unknown CPUs and only warns about unknown features, so
    a named target is tried once in a child process and rejected with LLVM's own words."""
    r = subprocess.run([sys.executable, "-c", _PROBE, cpu, features], capture_output=True, text=True)
    bad = [line for line in r.stderr.splitlines()
           if "not a recognized" in line or "not a recognizable" in line or "LLVM ERROR" in line]
    if r.returncode != 0 or bad:
        raise TensorlangValueError(f"target -mcpu={cpu} -mattr={features}: LLVM rejects it: "
                                   + ("; ".join(bad) or r.stderr.strip()[-300:]))


def parse_and_optimize(ir_text: str, target: Target, opt_level: int = 3):
    """Parse LLVM IR text, verify it, and run LLVM's O3 pipeline (new pass manager)."""
    init_llvm()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    tm = target.machine()
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    # Vector code comes from the schedule (vectorize), so LLVM's loop vectorizer is off: it
    # would second-guess the schedule, and it miscompiled a guarded gather here (masked
    # gathers through poison pointers). The SLP vectorizer stays on.
    pto.loop_vectorization = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def triple_and_layout(target: Target) -> tuple[str, str]:
    tm = target.machine()
    return llvm.get_process_triple(), str(tm.target_data)
