"""``tl.target.Target("llvm")``, as in TVM (see ``tensorlang.codegen.target``)."""

from .codegen.target import CPUInfo, Target as _Target  # noqa: F401


def Target(target="llvm", host=None) -> _Target:  # noqa: N802  (TVM's name)
    """The CPU target named by ``target`` (``"llvm"``, ``"llvm -mcpu=..."``); ``with
    Target(...):`` makes it the current target (``Target.current()``)."""
    return _Target.create(target, host)


Target.current = _Target.current

