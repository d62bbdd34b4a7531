"""Targets: which CPU to generate code for, and the LLVM machinery (parse, O3, JIT, object).

``"llvm"`` means the host CPU with all its features (here AVX-512). A target string may name
another CPU: ``"llvm -mcpu=skylake-avx512"`` or add features ``"llvm -mattr=+avx2,-avx512f"``.
A fresh LLVM TargetMachine is made for every use (reusing one after JIT creation crashed in
llvmlite 0.50 here).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import shlex
import subprocess
import sys
from dataclasses import dataclass

import llvmlite.binding as llvm

from ..errors import TensorlangValueError


@functools.cache
def init_llvm() -> ctypes.CDLL:
    """Initialise LLVM once and load the runtime libraries; returns the libgomp handle."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    path = ctypes.util.find_library("gomp") or "libgomp.so.1"
    gomp = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)    # the parallel runtime (GOMP_parallel)
    llvm.load_library_permanently(path)
    for lib in ("m", "gcc_s"):      # libm: math calls; libgcc_s: half-precision conversions
        path = ctypes.util.find_library(lib)
        if path:
            llvm.load_library_permanently(path)
    return gomp


@dataclass(frozen=True)
class Target:
    """An LLVM CPU target: ``mcpu`` (``None``: the host) and extra ``mattr`` features."""
    mcpu: str | None = None
    mattr: str = ""

    @staticmethod
    def create(target="llvm", host=None) -> "Target":
        """TVM's ``Target(target, host=...)``; the host is always this CPU."""
        return Target.parse(target)

    @staticmethod
    def parse(target) -> "Target":
        if isinstance(target, Target):
            return target
        if target is None:
            target = "llvm"
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
        init_llvm()
        return self.mcpu or llvm.get_host_cpu_name()

    @property
    def features(self) -> str:
        init_llvm()
        base = llvm.get_host_cpu_features().flatten() if self.mcpu is None else ""
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
        feats = self.features
        if "+avx512f" in feats:
            return "-avx512f" not in self.mattr
        return self.mcpu is not None and any(k in self.mcpu for k in ("avx512", "znver4", "znver5",
                                                                        "sapphire", "icelake", "cascade"))

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
