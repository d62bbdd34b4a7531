"""EliminateCommonSubexpr: structurally equal nodes become one node.

Bottom-up, each node (rebuilt over its inputs' surviving nodes) is keyed with
``ir.structural_key`` (op, attributes and inputs; one memo for the whole graph, so linear):
the first node of each key is kept and later ones are replaced by it. Two calls of the same
op with the same attributes on the same inputs are computed once; constants with equal
digests (same bytes, dtype and shape, whatever their names) merge into the first one, and
with them whatever was computed from them. Variables are never merged (each is an input).
"""

from __future__ import annotations

from ..ir import Module, structural_key
from .pass_manager import module_pass
from .rewrite import rewrite


@module_pass(opt_level=3)
def EliminateCommonSubexpr(mod: Module) -> Module:
    memo: dict = {}
    first: dict = {}

    def merge(n):
        return first.setdefault(structural_key(n, memo), n)
    return rewrite(mod, merge)
