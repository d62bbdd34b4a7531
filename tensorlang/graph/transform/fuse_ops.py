"""FuseOps: groups ops into fused functions, one kernel each (TVM's post-dominator fusion).

Every op call ends up in exactly one group, a ``Function`` called from the main graph; the
function's ``attrs`` name its pattern kind and its anchor. How groups form:

1. **Post-dominators.** For each op node ``n``, its immediate post-dominator ``ipdom(n)``
   is the first node that every path from ``n`` to the outputs goes through (the least
   common ancestor of its users in the post-dominator tree; a graph output or a tuple user
   makes it the sink). All of ``n``'s uses then meet again at ``ipdom(n)``, so fusing the
   nodes between them never makes a value that leaves the group half-way.
2. **Anchors take their epilogues.** An output-fusable op (conv2d, dense, matmul) or a
   reduction with a tuned template (softmax, layer_norm, pools, sum, ...) fuses the path to
   its post-dominator when every node on it is element-wise or broadcast and keeps the
   anchor's output shape: the template evaluates that epilogue in registers as each output
   tile is written (``ops.common.fuse_epilogue``). For templates that see a matrix
   (``KernelSpec.rows``) the other operands must be viewable as rows or columns.
3. **Injective chains fuse.** An element-wise, broadcast or injective op whose path to its
   post-dominator is all injective (or less) joins the post-dominator's group, unless that
   group is anchored (templates take epilogues, not prologues).

At opt level 0 (``PassContext``) nothing fuses: one op per group, as TVM's fuse level 0.
"""

from __future__ import annotations

from ..ir import Attrs, Call, Constant, Function, Module, Tuple, TupleGetItem, Var
from ..op.registry import OPS, Pattern
from .pass_manager import PassContext, module_pass

SINK = object()


def pattern_of(call: Call) -> Pattern:
    """The fusion kind of an op call: its registered pattern, with reductions and
    output-fusable ops that have no tuned template counted as opaque."""
    op = OPS[call.op]
    if op.pattern in (Pattern.REDUCTION, Pattern.OUT_FUSABLE) and op.kernel is None:
        return Pattern.OPAQUE
    return op.pattern


def post_dominators(order: list, outputs) -> dict:
    """node -> its immediate post-dominator among the op calls (or SINK)."""
    users: dict = {n: [] for n in order}
    for n in order:
        if isinstance(n, Call):
            for a in n.args:
                users[a].append(n)
        elif isinstance(n, (Tuple, TupleGetItem)):
            for a in (n.fields if isinstance(n, Tuple) else (n.tuple_value,)):
                users[a].append(SINK)          # tuples are boundaries
    out_set = set(outputs)
    ipdom: dict = {}
    depth: dict = {SINK: 0}

    def lca(a, b):
        while a is not b:
            if depth[a] >= depth[b]:
                a = ipdom[a]
            else:
                b = ipdom[b]
        return a

    for n in reversed(order):
        if not isinstance(n, Call):
            continue
        us = users[n]
        if n in out_set or not us or any(u is SINK for u in us):
            p = SINK
        else:
            p = us[0]
            for u in us[1:]:
                p = lca(p, u)
        ipdom[n] = p
        depth[n] = depth[p] + 1
    return ipdom


def path_nodes(src, dst, users: dict) -> list | None:
    """The nodes on the paths from ``src`` (excluded) to ``dst`` (included)."""
    seen, stack, out = set(), [src], []
    while stack:
        n = stack.pop()
        for u in users.get(n, ()):
            if u is SINK:
                return None
            if u in seen:
                continue
            seen.add(u)
            out.append(u)
            if u is not dst:
                stack.append(u)
    return out


def kernel_view(shape: tuple, out_shape: tuple, kshape: tuple):
    """The shape an epilogue operand of ``shape`` (broadcastable to the group's output
    ``out_shape``) takes in a kernel whose output has ``kshape``, the same elements with
    dimensions merged (dense over (1, 128, 768) computes a (128, 768) matrix; a batched
    matmul merges the batch dimensions). Each merged dimension of the operand must be
    either full or broadcast (all ones); None when it is neither. A 0-d operand becomes
    all ones (one broadcast element)."""
    s = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    dims = [(o, d == o) for o, d in zip(out_shape, s) if o != 1]     # (size, full?)
    out = []
    for k in reversed(kshape):
        if k == 1:
            out.append(1)
            continue
        prod, kinds = 1, set()
        while prod < k:
            if not dims:
                return None
            o, full = dims.pop()
            prod *= o
            kinds.add(full)
        if prod != k or len(kinds) != 1:
            return None
        out.append(k if kinds.pop() else 1)
    return None if dims else tuple(reversed(out))


def rows_shape(shape: tuple) -> tuple:
    """The (rows, columns) matrix a template that sees rows makes of an output ``shape``."""
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return (rows, shape[-1])


def _epilogue_ok(anchor: Call, node, group_nodes: set) -> bool:
    if not isinstance(node, Call) or not isinstance(node.op, str):
        return False
    if pattern_of(node) > Pattern.BROADCAST or node.shape != anchor.shape:
        return False
    if OPS[anchor.op].kernel.rows:     # the kernel sees matrices: no axis or shape attributes
        rows = rows_shape(anchor.shape)
        return not any(k in ("axis", "shape") for k in node.attrs) and all(
            a in group_nodes or kernel_view(a.shape, anchor.shape, rows) is not None
            for a in node.args)
    return True


class _Groups:
    """Union-find of nodes; each root knows its anchor (or None)."""

    def __init__(self):
        self.parent: dict = {}
        self.anchor: dict = {}

    def add(self, n, anchor=None):
        self.parent[n] = n
        self.anchor[n] = anchor

    def find(self, n):
        while self.parent[n] is not n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, into, n):
        a, b = self.find(into), self.find(n)
        if a is not b:
            self.parent[b] = a
            self.anchor[a] = self.anchor[b] if self.anchor[a] is None else self.anchor[a]


def fuse(order: list, outputs, fuse_level: int) -> dict:
    """node -> group root, for every op call in ``order``."""
    calls = [n for n in order if isinstance(n, Call) and isinstance(n.op, str)]
    groups = _Groups()
    for n in calls:
        groups.add(n, n if pattern_of(n) in (Pattern.OUT_FUSABLE, Pattern.REDUCTION) else None)
    if fuse_level == 0:
        return {n: n for n in calls}
    ipdom = post_dominators(order, outputs)
    users: dict = {}
    out_set = set(outputs)
    for n in order:
        for a in (n.args if isinstance(n, Call) else n.fields if isinstance(n, Tuple)
                  else (n.tuple_value,) if isinstance(n, TupleGetItem) else ()):
            users.setdefault(a, []).append(n if isinstance(n, Call) else SINK)
    for n in out_set:
        users.setdefault(n, []).append(SINK)
    # phase 1: anchors take their element-wise epilogues
    for n in calls:
        if groups.anchor[groups.find(n)] is not n:
            continue
        p = ipdom[n]
        while p is not SINK:
            path = path_nodes(n, p, users)
            members = set(path or ()) | {n}
            if not path or not all(_epilogue_ok(n, m, members) and (
                    groups.find(m) is groups.find(n)
                    or groups.find(m) is m and groups.anchor[m] is None) for m in path):
                break
            for m in path:
                groups.union(n, m)
            if p in out_set:
                break
            p = ipdom[p]          # keep going: the epilogue may continue past p
    # phase 2: injective chains
    for n in calls:
        if groups.find(n) is not n or groups.anchor[n] is not None:
            continue
        if pattern_of(n) > Pattern.INJECTIVE:
            continue
        p = ipdom[n]
        if p is SINK or groups.anchor[groups.find(p)] is not None:
            continue
        path = path_nodes(n, p, users)
        if path and all(isinstance(m, Call) and pattern_of(m) <= Pattern.INJECTIVE
                        and groups.anchor[groups.find(m)] is None for m in path):
            for m in path:
                groups.union(p, m)
            groups.union(p, n)
    return {n: groups.find(n) for n in calls}


def _name(ops: list, used: dict) -> str:
    base = "fused_" + "_".join(ops[:4]) + ("_etc" if len(ops) > 4 else "")
    k = used.get(base, 0)
    used[base] = k + 1
    return f"{base}_{k}" if k else base


def group_functions(mod: Module, assign: dict) -> Module:
    """The module with each group replaced by a call of a Function over the group's inputs."""
    order = mod.nodes()
    members: dict = {}
    for n in order:
        if n in assign:
            members.setdefault(assign[n], []).append(n)
    # the node of each group that leaves it (the last in topological order)
    last = {root: ns[-1] for root, ns in members.items()}
    memo: dict = {v: v for v in mod.inputs}
    used_names: dict = {}
    for n in order:
        if n in memo:
            continue
        if isinstance(n, Call) and n in assign and last[assign[n]] is n:
            root = assign[n]
            ns = members[root]
            inside = set(ns)
            params, args, local = [], [], {}
            for m in ns:
                for a in m.args:
                    if a in inside or a in local or (isinstance(a, Constant) and a.data.ndim == 0):
                        continue
                    p = Var(f"p{len(params)}", a.type)
                    local[a] = p
                    params.append(p)
                    args.append(memo[a])
            body_memo = dict(local)
            for m in ns:
                new_args = tuple(body_memo.get(a, a) for a in m.args)
                body_memo[m] = Call(m.op, new_args, m.attrs, m.type)
            anchor = next((m for m in ns if pattern_of(m) in (Pattern.OUT_FUSABLE,
                                                              Pattern.REDUCTION)), None)
            kind = max(pattern_of(m) for m in ns)
            fn = Function(params, body_memo[n], _name([m.op for m in ns], used_names),
                          Attrs({"pattern": kind.name.lower(),
                                 **({"anchor": anchor.op} if anchor is not None else {})}))
            memo[n] = Call(fn, tuple(args), Attrs(), n.type)
        elif isinstance(n, Call) and n in assign:
            continue                  # inside a group: computed by the group's function
        elif isinstance(n, Tuple):
            memo[n] = Tuple([memo[f] for f in n.fields])
        elif isinstance(n, TupleGetItem):
            memo[n] = TupleGetItem(memo[n.tuple_value], n.index)
        elif isinstance(n, Call):         # an already fused call
            memo[n] = Call(n.op, tuple(memo[a] for a in n.args), n.attrs, n.type)
        else:
            memo[n] = n
    return mod.with_outputs([memo[o] for o in mod.outputs])


@module_pass(opt_level=0)
def FuseOps(mod: Module, fuse_opt_level: int | None = None) -> Module:
    level = PassContext.current().opt_level if fuse_opt_level is None else fuse_opt_level
    order = mod.nodes()
    if not any(isinstance(n, Call) and isinstance(n.op, str) for n in order):
        return mod                     # already fused (or nothing to fuse)
    return group_functions(mod, fuse(order, mod.outputs, level))

