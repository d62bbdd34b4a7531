"""The pass infrastructure, after TVM's: passes, ``Sequential``, ``PassContext``,
instruments.

* A ``Pass`` is a named function ``Module -> Module`` with an ``opt_level``: a
  ``Sequential`` runs it when the current context's opt level is at least that, unless the
  context disables it, and always when the context requires it.
* ``PassContext(opt_level=2, required_pass=[], disabled_pass=[], print_ir_after_all=False,
  instruments=[], config={})`` is a ``with`` context (a stack: the innermost applies);
  outside any, the context has opt level 2, as TVM's default.
* Instruments see every pass run: ``PassTimingInstrument`` records how long each pass
  took (``render()`` prints the table, as TVM's pass timing does); ``PrintIR`` prints
  the module after chosen passes.
"""

from __future__ import annotations

import contextvars
import time

from ...errors import TensorlangTypeError, TensorlangValueError
from ..ir import Module


class Pass:
    """A module pass: ``pass_(mod) -> mod``. Called directly it always runs (as
    ``G.transform.FoldConstant()(mod)``); inside a ``Sequential`` the context decides."""

    def __init__(self, fn, name: str, opt_level: int = 0, required: tuple = ()):
        self.fn, self.name, self.opt_level, self.required = fn, name, opt_level, tuple(required)

    def __call__(self, mod: Module) -> Module:
        if not isinstance(mod, Module):
            raise TensorlangTypeError(f"{self.name}: expected a G.Module, got {type(mod).__name__}")
        ctx = PassContext.current()
        for inst in ctx.instruments:
            inst.run_before_pass(mod, self)
        out = self.fn(mod)
        for inst in ctx.instruments:
            inst.run_after_pass(out, self)
        if ctx.print_ir_after_all and not isinstance(self, Sequential):
            print(f"# IR after {self.name}\n{out}\n")
        return out

    def __repr__(self):
        return f"{self.name}(opt_level={self.opt_level})"


def module_pass(opt_level: int, name: str | None = None):
    """Decorator: a function ``(mod, **options) -> mod`` becomes a pass constructor
    ``Name(**options) -> Pass``, as ``G.transform.FoldConstant()``."""
    def wrap(fn):
        pass_name = name or fn.__name__

        def make(**options) -> Pass:
            return Pass(lambda mod: fn(mod, **options), pass_name, opt_level)
        make.__name__ = make.__qualname__ = pass_name
        make.__doc__ = fn.__doc__
        make.opt_level = opt_level
        return make
    return wrap


class Sequential(Pass):
    """Passes run in order, each if the current ``PassContext`` enables it."""

    def __init__(self, passes, opt_level: int = 0, name: str = "Sequential"):
        passes = list(passes)
        for p in passes:
            if not isinstance(p, Pass):
                raise TensorlangTypeError(f"Sequential: expected passes (G.transform.Name()), "
                                          f"got {type(p).__name__}")
        self.passes = passes
        super().__init__(self._run, name, opt_level)

    def _run(self, mod: Module) -> Module:
        ctx = PassContext.current()
        for p in self.passes:
            if ctx.pass_enabled(p):
                mod = p(mod)
        return mod

    def __repr__(self):
        return f"Sequential([{', '.join(p.name for p in self.passes)}])"


_CONTEXT: contextvars.ContextVar = contextvars.ContextVar("graph_pass_context", default=None)


class PassContext:
    """The settings passes run under (``with G.PassContext(opt_level=3): ...``)."""

    def __init__(self, opt_level: int = 2, required_pass=(), disabled_pass=(),
                 print_ir_after_all: bool = False, instruments=(), config=None):
        if isinstance(opt_level, bool) or not isinstance(opt_level, int) or not 0 <= opt_level <= 4:
            raise TensorlangValueError(f"PassContext: opt_level must be an int from 0 to 4, "
                                       f"got {opt_level!r}")
        from . import PASSES
        for what, names in (("required_pass", required_pass), ("disabled_pass", disabled_pass)):
            if isinstance(names, str):
                raise TensorlangTypeError(f"PassContext: {what} must be a list of pass names, "
                                          f"got the string {names!r}")
            unknown = [n for n in names if n not in PASSES]
            if unknown:
                raise TensorlangValueError(f"PassContext: {what} names unknown passes "
                                           f"{unknown}; passes: {', '.join(PASSES)}")
        self.opt_level = opt_level
        self.required_pass = tuple(required_pass)
        self.disabled_pass = tuple(disabled_pass)
        self.print_ir_after_all = bool(print_ir_after_all)
        self.instruments = tuple(instruments)
        self.config = dict(config or {})
        self._token = []

    @staticmethod
    def current() -> "PassContext":
        ctx = _CONTEXT.get()
        return ctx if ctx is not None else _DEFAULT

    def pass_enabled(self, p: Pass) -> bool:
        if p.name in self.required_pass:
            return True
        if p.name in self.disabled_pass:
            return False
        return p.opt_level <= self.opt_level

    def __enter__(self):
        self._token.append(_CONTEXT.set(self))
        for inst in self.instruments:
            inst.enter_pass_ctx()
        return self

    def __exit__(self, *exc):
        for inst in self.instruments:
            inst.exit_pass_ctx()
        _CONTEXT.reset(self._token.pop())


_DEFAULT = PassContext.__new__(PassContext)
_DEFAULT.__dict__.update(opt_level=2, required_pass=(), disabled_pass=(), print_ir_after_all=False,
                         instruments=(), config={}, _token=[])


class PassInstrument:
    """Base of instruments: hooks around every pass that runs in the context."""

    def enter_pass_ctx(self): pass
    def exit_pass_ctx(self): pass
    def run_before_pass(self, mod, p): pass
    def run_after_pass(self, mod, p): pass


class PassTimingInstrument(PassInstrument):
    """Records the wall time of every pass run; ``render()`` is the table."""

    def __init__(self):
        self.timings: list = []        # (pass name, seconds)
        self._start: list = []

    def run_before_pass(self, mod, p):
        self._start.append(time.perf_counter())

    def run_after_pass(self, mod, p):
        if not isinstance(p, Sequential):
            self.timings.append((p.name, time.perf_counter() - self._start[-1]))
        self._start.pop()

    def render(self) -> str:
        total = sum(t for _, t in self.timings)
        rows = [f"{name:<28} {t * 1e3:9.2f} ms" for name, t in self.timings]
        return "\n".join(rows + [f"{'total':<28} {total * 1e3:9.2f} ms"])


class PrintIR(PassInstrument):
    """Prints the module after each pass named in ``after`` (all passes when empty)."""

    def __init__(self, after=()):
        self.after = tuple(after)

    def run_after_pass(self, mod, p):
        if not isinstance(p, Sequential) and (not self.after or p.name in self.after):
            print(f"# IR after {p.name}\n{mod}\n")
