"""``tl.target.Target("llvm")``, as in TVM (see ``tensorlang.codegen.target``)."""

from .codegen.target import Target as _Target


def Target(target="llvm", host=None) -> _Target:  # noqa: N802  (TVM's name)
    """The CPU target named by ``target`` (``"llvm"``, ``"llvm -mcpu=..."``)."""
    return _Target.create(target, host)
