"""Index arithmetic shared by every stage of the compiler.

* generic traversal of the frozen-dataclass IR: ``map_children``, ``children``, ``rewrite``,
  ``walk``, ``substitute``; ``rewrite`` and ``walk`` visit a node shared in several places
  once, so they are linear in the number of distinct nodes;
* interval bounds of integer expressions (``bound``), given the ranges of loop variables;
* ``simplify``: constant folding, canonical linear sums (``i*32 + j``), and the rules that
  make split/fuse index arithmetic vanish when ranges prove it (``(i*32 + j) // 32 -> i``
  when ``0 <= j < 32``), and comparisons that ranges decide.
"""

from __future__ import annotations

import dataclasses
import math

from . import dtype as dt
from .te.expr import (Binary, Call, Cast, Const, Expr, IterVar, Let, Node, Not, Select, Var, binary,
                      structural_equal,
                      cast)

INF = math.inf


# --------------------------------------------------------------------------- traversal

def _is_child(x) -> bool:
    return isinstance(x, Node) and not getattr(x, "leaf_node", False)


_FIELDS: dict = {}


def _field_names(node) -> tuple:
    """The dataclass field names of ``node``'s class (cached: ``dataclasses.fields`` is slow)."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node))
    return names


def map_children(node, f):
    """Return ``node`` with ``f`` applied to each child node (fields holding nodes or tuples of
    nodes); the same object when nothing changed."""
    changes = {}
    for name in _field_names(node):
        v = getattr(node, name)
        if _is_child(v):
            nv = f(v)
            if nv is not v:
                changes[name] = nv
        elif isinstance(v, tuple) and any(_is_child(x) for x in v):
            nv = tuple(f(x) if _is_child(x) else x for x in v)
            if any(a is not b for a, b in zip(nv, v)):
                changes[name] = nv
    return dataclasses.replace(node, **changes) if changes else node


def rewrite(node, fn):
    """Rewrite bottom-up: children first, then ``fn(node)``; ``fn`` returns a replacement
    node or ``None`` to keep the node. Memoized by identity: a node shared in several places
    is rewritten once and the result is shared (so the work is linear in the number of
    distinct nodes, and sharing survives). ``fn`` must depend on the node alone."""
    done: dict = {}

    def go(n):
        r = done.get(id(n))
        if r is None:
            m = map_children(n, go)
            out = fn(m)
            r = done[id(n)] = (n, m if out is None else out)   # n: keeps id(n) unique
        return r[1]
    return go(node)


def children(node) -> list:
    """The child nodes of ``node`` (fields holding nodes or tuples of nodes), in field order."""
    out = []
    for name in _field_names(node):
        v = getattr(node, name)
        if _is_child(v):
            out.append(v)
        elif isinstance(v, tuple):
            out.extend(x for x in v if _is_child(x))
    return out


def walk(node):
    """Yield ``node`` and every distinct node below it, parents first (depth-first, in field
    order); a node shared in several places is yielded once."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        yield n
        stack.extend(reversed(children(n)))


def substitute(node, mapping):
    """Replace variables (keys: Var or IterVar) by expressions everywhere in ``node``."""
    if not mapping:
        return node
    by_uid = {(k.var if isinstance(k, IterVar) else k).uid: v for k, v in mapping.items()}

    def fn(n):
        if isinstance(n, Var):
            return by_uid.get(n.uid)
        return None
    return rewrite(node, fn)


def free_vars(node) -> dict:
    """The variables ``node`` reads, as a dict uid -> Var (insertion ordered); the variables
    its ``Let``s bind are not free."""
    out, bound_here = {}, set()
    for n in walk(node):
        if isinstance(n, Var):
            out.setdefault(n.uid, n)
        elif isinstance(n, Let):
            bound_here.add(n.var.uid)
    return {u: v for u, v in out.items() if u not in bound_here} if bound_here else out


def may_fault(e) -> bool:
    """True when evaluating ``e`` reads memory or divides integers: it must only run where the
    surrounding condition allows (lazy if_then_else, short-circuit && and ||)."""
    from .tir.nodes import Load     # (tir builds on arith: imported here, not at the top)
    return any(isinstance(n, Load) or isinstance(n, Binary) and not dt.is_float(n.dtype)
               and n.op in ("div", "floordiv", "floormod", "truncmod") for n in walk(e))


# --------------------------------------------------------------------------- bounds

def bound(e: Expr, env: dict) -> tuple:
    """Inclusive interval ``(lo, hi)`` of the integer expression ``e`` (``-inf``/``inf`` when
    unknown). ``env`` maps variable uids to their intervals."""
    if isinstance(e, Const):
        v = e.value
        return (v, v) if isinstance(v, (int, bool)) else (-INF, INF)
    if isinstance(e, Var):
        return env.get(e.uid, (-INF, INF))
    if isinstance(e, Cast) and dt.is_int(e.dtype) and dt.is_int(e.value.dtype):
        lo, hi = bound(e.value, env)
        if dt.min_value(e.dtype) <= lo and hi <= dt.max_value(e.dtype):
            return lo, hi                     # the value fits: the cast changes nothing
        return dt.min_value(e.dtype), dt.max_value(e.dtype)
    if isinstance(e, Binary) and dt.lanes(e.dtype) == 1 and dt.is_int(e.dtype):
        (a0, a1), (b0, b1) = bound(e.a, env), bound(e.b, env)
        op = e.op
        if op == "add":
            return a0 + b0, a1 + b1
        if op == "sub":
            return a0 - b1, a1 - b0
        if op == "mul":
            ps = [_mul(x, y) for x in (a0, a1) for y in (b0, b1)]
            return min(ps), max(ps)
        if op == "min":
            return min(a0, b0), min(a1, b1)
        if op == "max":
            return max(a0, b0), max(a1, b1)
        if op == "floordiv" and b0 == b1 and b0 > 0:
            return _fdiv(a0, b0), _fdiv(a1, b0)
        if op == "floormod" and b0 == b1 and b0 > 0:
            if a0 >= 0 and a1 < b0:
                return a0, a1
            if a1 - a0 < b0 and a0 != -INF and a1 != INF and a0 % b0 <= a1 % b0:
                return a0 % b0, a1 % b0
            return 0, b0 - 1
    if isinstance(e, Select):
        (a0, a1), (b0, b1) = bound(e.true_value, env), bound(e.false_value, env)
        return min(a0, b0), max(a1, b1)
    return -INF, INF


def interval(e: Expr, env: dict):
    """Symbolic inclusive interval ``(lo, hi)`` of the index expression ``e`` when each
    variable whose uid is in ``env`` ranges over ``env[uid] = (lo, hi)`` (expressions) and
    every other variable is held fixed; ``None`` when no bound is known. Exact for sums of
    variables times constants; division, modulo, min, max and selects give a (possibly
    larger) enclosing interval."""
    if isinstance(e, Const):
        return (e, e) if dt.is_int(e.dtype) else None
    if isinstance(e, Var):
        return env.get(e.uid, (e, e))
    if isinstance(e, Cast) and dt.is_int(e.dtype) and dt.is_int(e.value.dtype) \
            and dt.itemsize(e.dtype) >= dt.itemsize(e.value.dtype):
        r = interval(e.value, env)
        return r and (cast(e.dtype, r[0]), cast(e.dtype, r[1]))
    if isinstance(e, Select):
        a, b = interval(e.true_value, env), interval(e.false_value, env)
        return a and b and (simplify(binary("min", a[0], b[0])), simplify(binary("max", a[1], b[1])))
    if not (isinstance(e, Binary) and e.op in _INDEX_OPS and is_index_expr(e.a) and is_index_expr(e.b)):
        return None
    a, b = interval(e.a, env), interval(e.b, env)
    if a is None or b is None:
        return None
    point = lambda r: structural_equal(r[0], r[1])   # noqa: E731
    op, (a0, a1), (b0, b1) = e.op, a, b
    if op == "add":
        out = (a0 + b0, a1 + b1)
    elif op == "sub":
        out = (a0 - b1, a1 - b0)
    elif op == "min" or op == "max":
        out = (binary(op, a0, b0), binary(op, a1, b1))
    elif op == "mul" and point(a) and point(b):
        out = (a0 * b0, a0 * b0)
    elif op == "mul" and (const_int(b0) is not None and point(b) or const_int(a0) is not None and point(a)):
        (x0, x1), c = (a, const_int(b0)) if point(b) and const_int(b0) is not None else (b, const_int(a0))
        out = (x0 * c, x1 * c) if c >= 0 else (x1 * c, x0 * c)
    elif op in ("floordiv", "floormod") and point(b) and (const_int(b0) or 0) > 0:
        if point(a):
            out = (binary(op, a0, b0), binary(op, a0, b0))
        elif op == "floordiv":
            out = (binary(op, a0, b0), binary(op, a1, b0))
        elif const_int(binary("floordiv", a1, b0) - binary("floordiv", a0, b0)) == 0:
            out = (binary(op, a0, b0), binary(op, a1, b0))       # one period: no wrap-around
        else:
            out = (Const(0, e.dtype), b0 - 1)
    else:
        return None
    return simplify(out[0]), simplify(out[1])


def _mul(x, y):
    if x == 0 or y == 0:
        return 0
    return x * y


def _fdiv(x, c):
    return x if x in (INF, -INF) else x // c


# --------------------------------------------------------------------------- linear forms

def linear(e: Expr):
    """Write the integer expression ``e`` as ``{term: coef}, const`` (terms are sub-expressions
    that are not sums or products by constants), or ``None`` for non-integer expressions."""
    if not (dt.is_int(e.dtype) and dt.lanes(e.dtype) == 1):
        return None
    terms: dict = {}
    const = 0

    def add(x, k):
        nonlocal const
        if isinstance(x, Const):
            const += k * x.value
        elif isinstance(x, Binary) and x.op in ("add", "sub"):
            add(x.a, k)
            add(x.b, k if x.op == "add" else -k)
        elif isinstance(x, Binary) and x.op == "mul" and isinstance(x.b, Const):
            add(x.a, k * x.b.value)
        elif isinstance(x, Binary) and x.op == "mul" and isinstance(x.a, Const):
            add(x.b, k * x.a.value)
        else:
            terms[x] = terms.get(x, 0) + k
    add(e, 1)
    return {t: c for t, c in terms.items() if c != 0}, const


def from_linear(terms: dict, const: int, dtype: str) -> Expr:
    """Rebuild ``sum(coef * term) + const``: positive terms first, then the constant when
    nothing is positive (``63 - i``), then negative terms."""
    pos = [(t, c) for t, c in terms.items() if c > 0]
    neg = [(t, -c) for t, c in terms.items() if c < 0]

    def scaled(t, c):
        return t if c == 1 else Binary("mul", t, Const(c, dtype), dtype)
    out = None
    for t, c in pos:
        out = scaled(t, c) if out is None else Binary("add", out, scaled(t, c), dtype)
    if out is None and (const != 0 or not neg):
        out, const = Const(const, dtype), 0
    for t, c in neg:
        out = (Binary("sub", Const(0, dtype), scaled(t, c), dtype) if out is None
               else Binary("sub", out, scaled(t, c), dtype))
    if const > 0:
        out = Binary("add", out, Const(const, dtype), dtype)
    elif const < 0:
        out = Binary("sub", out, Const(-const, dtype), dtype)
    return out


# --------------------------------------------------------------------------- simplifier

def _fold(op: str, a, b, dtype: str):
    """Evaluate ``a op b`` on Python constants with the IR's semantics; ``None`` if undefined."""
    isint = dt.is_int(dtype) or dt.is_bool(dtype)
    if op in ("div", "floordiv", "floormod", "truncmod") and b == 0:
        return None
    if not isint and op in ("floordiv", "floormod", "truncmod"):
        return None            # left to run time: its float rounding is not Python's
    if op == "add": r = a + b
    elif op == "sub": r = a - b
    elif op == "mul": r = a * b
    elif op == "div": r = _truncdiv(a, b) if isint else a / b
    elif op == "floordiv": r = a // b if isint else math.floor(a / b)
    elif op == "floormod": r = a % b if isint else a - math.floor(a / b) * b
    elif op == "truncmod": r = a - b * _truncdiv(a, b)
    elif op in ("min", "max") and not isint and (math.isnan(a) or math.isnan(b)): r = math.nan
    elif op == "min": r = min(a, b)
    elif op == "max": r = max(a, b)
    elif op == "eq": return a == b
    elif op == "ne": return a != b
    elif op == "lt": return a < b
    elif op == "le": return a <= b
    elif op == "gt": return a > b
    elif op == "ge": return a >= b
    elif op == "and": r = (a and b) if dt.is_bool(dtype) else a & b
    elif op == "or": r = (a or b) if dt.is_bool(dtype) else a | b
    elif op == "xor": r = (a != b) if dt.is_bool(dtype) else a ^ b
    else:
        return None
    if dt.is_int(dtype) and not dt.min_value(dtype) <= r <= dt.max_value(dtype):
        return None  # overflow: leave it to run time (wraps there)
    if dt.is_float(dtype):
        r = float(dt.to_numpy(dtype).type(r))   # round as the run-time arithmetic would
    return r


def _truncdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _merge_divmod(terms: dict, const: int):
    """Fold ``(x // c) * c*k + (x % c) * k`` back into ``x * k`` (undoing a fuse)."""
    for t, k in list(terms.items()):
        if not (isinstance(t, Binary) and t.op == "floormod" and isinstance(t.b, Const)):
            continue
        q = Binary("floordiv", t.a, t.b, t.dtype)
        if t in terms and terms.get(q) == k * t.b.value:
            del terms[t], terms[q]
            sub, c = linear(t.a)
            for x, kx in sub.items():
                terms[x] = terms.get(x, 0) + kx * k
            const += c * k
    return {t: k for t, k in terms.items() if k != 0}, const


_INDEX_OPS = ("add", "sub", "mul", "floordiv", "floormod", "min", "max")


def is_index_expr(e: Expr) -> bool:
    """True for signed 32/64-bit arithmetic of variables and constants: index arithmetic,
    which never wraps (sizes are checked), so algebra over unbounded integers is exact for it.
    Data (loads, casts, narrow or unsigned types) may wrap and is only constant-folded."""
    r = e.__dict__.get("_index")
    if r is None:
        if e.dtype not in ("int32", "int64"):
            r = False
        elif isinstance(e, (Var, Const)):
            r = True
        elif isinstance(e, Cast):        # widening int32 -> int64 is exact
            r = e.dtype == "int64" and e.value.dtype == "int32" and is_index_expr(e.value)
        else:
            r = isinstance(e, Binary) and e.op in _INDEX_OPS and is_index_expr(e.a) and is_index_expr(e.b)
        object.__setattr__(e, "_index", r)
    return r


def _simplify_binary(e: Binary, env: dict) -> Expr | None:
    a, b, op, dtype = e.a, e.b, e.op, e.dtype
    if dt.lanes(dtype) != 1:
        return None
    if isinstance(a, Const) and isinstance(b, Const):
        r = _fold(op, a.value, b.value, a.dtype)
        return None if r is None else Const(r, dtype)
    isint = is_index_expr(a) and is_index_expr(b)
    if op in ("add", "sub", "mul") and isint:
        return from_linear(*_merge_divmod(*linear(e)), dtype)
    if op == "sub" and isinstance(b, Const) and b.value == 0 and math.copysign(1, b.value) > 0:
        return a                                   # x - 0 == x (x - (-0.0) is not, for x = -0.0)
    if op == "mul" and isinstance(b, Const) and b.value == 1:
        return a
    if op in ("floordiv", "floormod") and isint and isinstance(b, Const) and b.value > 0:
        c = b.value
        if c == 1:
            return a if op == "floordiv" else Const(0, dtype)
        if op == "floordiv" and isinstance(a, Binary) and a.op == "floordiv" \
                and isinstance(a.b, Const) and a.b.value > 0:
            return simplify(Binary("floordiv", a.a, Const(a.b.value * c, dtype), dtype), env)
        terms, k = linear(a)
        q_terms = {t: co // c for t, co in terms.items() if co % c == 0}
        r_terms = {t: co for t, co in terms.items() if co % c != 0}
        q_const, r_const = k // c, k % c
        r = from_linear(r_terms, r_const, dtype)
        lo, hi = bound(r, env)
        if 0 <= lo and hi < c:
            return from_linear(q_terms, q_const, dtype) if op == "floordiv" else r
        if op == "floormod" and (q_terms or r_const != k):     # (x + 32) % 7 == (x + 4) % 7
            return Binary("floormod", r, b, dtype)
        if op == "floordiv" and r_terms and (q_terms or q_const):
            # (c*q + r) // c == q + r // c
            inner = Binary("floordiv", r, b, dtype)
            return simplify(Binary("add", from_linear(q_terms, q_const, dtype), inner, dtype), env)
        return None
    if op in ("min", "max") and isint:
        d = const_int(Binary("sub", a, b, dtype)) if not (isinstance(a, Const) or isinstance(b, Const)) else None
        if d is not None:                   # x + 1 vs x: the difference decides
            return a if (d <= 0) == (op == "min") else b
        if all(isinstance(x, Binary) and x.op == "floordiv" for x in (a, b)) \
                and structural_equal(a.b, b.b) \
                and isinstance(a.b, Const) and a.b.value > 0:
            d = simplify(Binary("sub", b.a, a.a, dtype), env)   # x // c vs (x + d) // c
            if isinstance(d, Const):
                return (a if (d.value >= 0) == (op == "min") else b)
        (a0, a1), (b0, b1) = bound(a, env), bound(b, env)
        if a1 <= b0:
            return a if op == "min" else b
        if b1 <= a0:
            return b if op == "min" else a
        return None
    if op in ("lt", "le", "gt", "ge", "eq", "ne") and isint:
        lo, hi = bound(simplify(Binary("sub", a, b, a.dtype), env), env)
        decide = {
            "lt": (hi < 0, lo >= 0), "le": (hi <= 0, lo > 0),
            "gt": (lo > 0, hi <= 0), "ge": (lo >= 0, hi < 0),
            "eq": (lo == hi == 0, lo > 0 or hi < 0), "ne": (lo > 0 or hi < 0, lo == hi == 0),
        }[op]
        if decide[0]:
            return Const(True, "bool")
        if decide[1]:
            return Const(False, "bool")
        return None
    if op in ("and", "or") and dt.is_bool(dtype):
        for x, y in ((a, b), (b, a)):
            if isinstance(x, Const):
                if op == "and":
                    return y if x.value else Const(False, "bool")
                return Const(True, "bool") if x.value else y
    return None


def simplify(e, env: dict | None = None):
    """Simplify an expression bottom-up. ``env`` maps variable uids to inclusive ranges."""
    env = env or {}

    def fn(n):
        if isinstance(n, Binary):
            return _simplify_binary(n, env)
        if isinstance(n, Not) and isinstance(n.a, Const):
            return Const(not n.a.value, "bool")
        if isinstance(n, Select) and isinstance(n.cond, Const):
            return n.true_value if n.cond.value else n.false_value
        if isinstance(n, Cast) and isinstance(n.value, Const):
            return cast(n.dtype, n.value)
        if isinstance(n, Call) and n.name == "abs" and isinstance(n.args[0], Const) \
                and not dt.is_float(n.dtype):
            return Const(abs(n.args[0].value), n.dtype)
        return None
    if not isinstance(e, Expr):
        raise TypeError(f"simplify expects an expression, got {type(e).__name__}")
    return rewrite(e, fn)


def const_int(e) -> int | None:
    """The Python int value of ``e`` if it simplifies to an integer constant, else ``None``."""
    if isinstance(e, int):
        return e
    e = simplify(e) if isinstance(e, Expr) else e
    return e.value if isinstance(e, Const) and dt.is_int(e.dtype) else None


def ceildiv(a: Expr, b: Expr) -> Expr:
    return simplify(binary("floordiv", binary("add", a, binary("sub", b, 1)), b))


__all__ = ["map_children", "rewrite", "children", "walk", "substitute", "free_vars", "bound", "interval", "linear",
           "from_linear", "simplify", "const_int", "ceildiv"]
