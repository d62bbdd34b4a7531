"""The compiler driver: ``lower`` (schedule -> optimised loop IR) and ``build`` (-> machine
code in a callable Module).

    schedule --lower_schedule--> loop IR --PIPELINE passes--> loop IR --codegen--> LLVM IR
             --O3--> JIT machine code --runtime--> Module

Every intermediate form can be seen: ``lower_trace`` returns the IR after each pass, and
``lower(..., dump_ir=folder)`` or the environment variable ``TENSORLANG_DUMP_IR=folder``
writes one file per pass. With ``TENSORLANG_VERIFY=1`` (set by the test suite) the verifier
checks the IR after every pass.
"""

from __future__ import annotations

import os

from .errors import TensorlangTypeError
from .schedule.schedule import Schedule
from .tir.lower import lower_schedule
from .tir.nodes import PrimFunc
from .tir.passes import FLAT_AFTER, PIPELINE, verify


def lower_trace(sch: Schedule, args, name: str = "main", verify_ir: bool | None = None):
    """``[(pass name, PrimFunc after it), ...]``, starting with ``("lower", ...)``."""
    if verify_ir is None:
        verify_ir = os.environ.get("TENSORLANG_VERIFY", "") not in ("", "0")
    func = lower_schedule(sch, list(args) if isinstance(args, (list, tuple)) else args, name)
    out = [("lower", func)]
    flat = False
    if verify_ir:
        verify(func)
    for pname, p in PIPELINE:
        func = p(func)
        flat = flat or pname == FLAT_AFTER
        if verify_ir:
            verify(func, flat=flat)
        out.append((pname, func))
    return out


def lower(sch: Schedule, args, name: str = "main", simple_mode: bool = True,
          dump_ir: str | None = None, verify_ir: bool | None = None) -> PrimFunc:
    """The optimised loop-IR function of schedule ``sch`` taking ``args`` (tensors, in call
    order). ``print()`` it to read the loop nest. ``dump_ir``: a folder to write the IR after
    every pass into (``00_lower.txt``, ``01_simplify.txt``, ...)."""
    trace = lower_trace(sch, args, name, verify_ir)
    dump_ir = dump_ir or os.environ.get("TENSORLANG_DUMP_IR")
    if dump_ir:
        os.makedirs(dump_ir, exist_ok=True)
        for k, (pname, f) in enumerate(trace):
            with open(os.path.join(dump_ir, f"{k:02d}_{pname}.txt"), "w") as fh:
                fh.write(str(f) + "\n")
    return trace[-1][1]


def build(sch, args=None, target="llvm", target_host=None, name: str = "main",
          bounds_check: bool = False, fast_math: bool = False, dump_ir: str | None = None):
    """Compile ``sch`` (a Schedule, with ``args``; or a PrimFunc from ``lower``) to a callable
    Module. ``bounds_check=True`` makes every load and store check its index and raise
    ``BoundsError`` instead of touching memory outside a buffer; ``fast_math=True`` lets LLVM
    reassociate floating-point arithmetic (NaN and infinity semantics are kept).
    ``target_host`` is accepted for TVM compatibility (the host is always this CPU)."""
    from .codegen.llvm import codegen
    from .codegen.target import Target, init_llvm, parse_and_optimize
    from .runtime.module import Module
    import llvmlite.binding as llvm

    tgt = Target.parse(target)
    if isinstance(sch, PrimFunc):
        func = sch
    elif isinstance(sch, Schedule):
        if args is None:
            raise TensorlangTypeError("build: pass the argument tensors, e.g. tl.build(s, [A, B, C])")
        func = lower(sch, args, name, dump_ir=dump_ir)
    else:
        raise TensorlangTypeError(f"build expects a Schedule or a lowered function, got {type(sch).__name__}")
    ir_text, meta = codegen(func, tgt, bounds_check=bounds_check, fast_math=fast_math)
    init_llvm()
    mod = parse_and_optimize(ir_text, tgt)
    engine = llvm.create_mcjit_compiler(mod, tgt.machine())
    engine.finalize_object()
    address = engine.get_function_address(func.name)
    sources = {"tir": str(func), "ll_raw": ir_text, "ll": str(mod)}
    return Module(address, meta, sources, keepalive=(engine, mod))
