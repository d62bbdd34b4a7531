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

from .errors import TensorlangTypeError, TensorlangValueError
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


def build(sch, args=None, target=None, target_host=None, name: str = "main",
          bounds_check: bool = False, fast_math: bool = False, dump_ir: str | None = None):
    """Compile ``sch`` (a Schedule, with ``args``; or a PrimFunc from ``lower``) to a callable
    Module. Several kernels go into one module (one LLVM module, one object code for the
    JIT and ``export_library``) when ``sch`` is a list of PrimFuncs
    (``tl.lower(s, args, name=...)``) or a dict ``{name: (schedule, args)}``; ``mod[name]``
    is then each kernel.
    ``bounds_check=True`` makes every load and store check its index and raise
    ``BoundsError`` instead of touching memory outside a buffer; ``fast_math=True`` lets LLVM
    reassociate floating-point arithmetic (NaN and infinity semantics are kept).
    ``target``: a target string or ``Target`` (default: the current target, see
    ``tl.target.Target``: the host unless inside ``with Target(...)``). ``target_host`` is
    accepted for TVM compatibility (the host is always this CPU)."""
    from .codegen.llvm import codegen
    from .codegen.target import Target, init_llvm, parse_and_optimize
    from .runtime.module import Module
    import llvmlite.binding as llvm

    tgt = Target.parse(target)
    funcs = _kernels(sch, args, name, dump_ir)
    ir_text, meta = codegen(funcs, tgt, bounds_check=bounds_check, fast_math=fast_math, name=name)
    init_llvm()
    mod = parse_and_optimize(ir_text, tgt)
    # position-independent code, so that the object the JIT loads also links into a shared
    # library: the object cache hands it to us, and export_library only has to link it
    engine = llvm.create_mcjit_compiler(mod, tgt.machine(pic=True))
    objects = []
    engine.set_object_cache(lambda _module, obj: objects.append(obj))
    engine.finalize_object()
    addresses = {k["name"]: engine.get_function_address(k["name"]) for k in meta["kernels"]}
    sources = {"tir": "\n\n".join(str(f) for f in funcs), "ll_raw": ir_text, "ll": str(mod)}
    return Module(meta, addresses, sources, obj=objects[0], keepalive=(engine, mod))


def _kernels(sch, args, name: str, dump_ir) -> list:
    """The PrimFuncs ``build`` compiles into one module."""
    if isinstance(sch, PrimFunc):
        return [sch]
    if isinstance(sch, Schedule):
        if args is None:
            raise TensorlangTypeError("build: pass the argument tensors, e.g. tl.build(s, [A, B, C])")
        return [lower(sch, args, name, dump_ir=dump_ir)]
    if not isinstance(sch, (list, tuple, dict)):
        raise TensorlangTypeError(f"build expects a Schedule, a lowered function, a list of lowered "
                                  f"functions or a dict of them, got {type(sch).__name__}")
    if args is not None:
        raise TensorlangTypeError(f"build expects a Schedule with args; several kernels come without "
                                  f"args, as a list of tl.lower(s, args, name=...) or a dict "
                                  f"{{name: (schedule, args)}} (got a {type(sch).__name__} and args)")
    funcs = []
    if isinstance(sch, dict):
        for key, item in sch.items():
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Schedule)):
                raise TensorlangTypeError(f"build: kernel {key!r} must be (schedule, args), "
                                          f"got {type(item).__name__}")
            funcs.append(lower(item[0], item[1], key, dump_ir=os.path.join(dump_ir, str(key))
                               if dump_ir else None))
    else:
        for k, item in enumerate(sch):
            if not isinstance(item, PrimFunc):
                raise TensorlangTypeError(f"build: item {k} of the list must be a PrimFunc from "
                                          f"tl.lower(s, args, name=...), got {type(item).__name__}")
            funcs.append(item)
    if not funcs:
        raise TensorlangValueError("build: no kernels given")
    names = [f.name for f in funcs]
    for n in names:
        if names.count(n) > 1:
            raise TensorlangValueError(f"build: kernel name {n!r} is used twice")
    return funcs
