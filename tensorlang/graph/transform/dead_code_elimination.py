"""DeadCodeElimination: drops what the outputs do not need.

A module holds only what is reachable from its outputs, so a dead node cannot survive a
rewrite; what DCE removes is the dead parts *inside* nodes: tuple fields never read (a
``Tuple`` that is only indexed becomes the fields read) and ``TupleGetItem`` of a literal
tuple (replaced by the field). The printed graph (and the node count) show the effect on a
graph whose outputs were narrowed (``mod.with_outputs``) or rewritten by other passes."""

from __future__ import annotations

from ..ir import Module, Tuple, TupleGetItem
from .pass_manager import module_pass
from .rewrite import rewrite


def _forward_tuple_fields(n):
    if isinstance(n, TupleGetItem) and isinstance(n.tuple_value, Tuple):
        return n.tuple_value.fields[n.index]
    return None


@module_pass(opt_level=1)
def DeadCodeElimination(mod: Module) -> Module:
    return rewrite(mod, _forward_tuple_fields)
