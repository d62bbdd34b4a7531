"""The one printer of the graph IR: one line per node, with its type.

```
const @w: float32[64, 64, 3, 3]
def @main(%x: float32[1, 64, 56, 56]) {
  %0 = conv2d(%x, @w, padding=(1, 1)) : float32[1, 64, 56, 56]
  %1 = relu(%0) : float32[1, 64, 56, 56]
  return %1
}
```

Constants print as ``@name`` (unnamed ones ``@c<n>``) and are listed first; scalar
constants print inline (``1.0f``). Attributes equal to their defaults are left out. After
``FuseOps`` each fused group is a function printed before ``main``, with its pattern kind.
Module attributes that passes attach (a memory plan, layouts) print as a trailing comment.
"""

from __future__ import annotations

from .ir import Call, Constant, Function, Module, Tuple, TupleGetItem, Var, post_order


def _scalar(c: Constant) -> str:
    v = c.data.item()
    kind = c.data.dtype.kind
    suffix = {"float32": "f", "float64": "f64", "int64": "i64", "int32": "i32", "bool": ""}
    if kind == "b":
        return str(bool(v))
    return f"{v!r}{suffix.get(c.data.dtype.name, ':' + c.data.dtype.name)}"


def _attrs(call: Call) -> str:
    if not isinstance(call.op, str):
        return ""
    from .op.registry import get
    spec = get(call.op).attrs
    parts = []
    for k, v in call.attrs.items():
        default, conv = spec[k]
        try:
            if conv(default) == v:
                continue
        except (TypeError, ValueError):
            pass
        parts.append(f"{k}={v!r}")
    return "".join(", " + p for p in parts)


class _Names:
    def __init__(self):
        self.names: dict = {}
        self.consts: list = []
        self.used: set = set()

    def const(self, c: Constant) -> str:
        if c not in self.names:
            base = c.name or f"c{len(self.consts)}"
            name, k = base, 1
            while name in self.used:
                name, k = f"{base}_{k}", k + 1
            self.used.add(name)
            self.names[c] = "@" + name
            self.consts.append(c)
        return self.names[c]


def _body_lines(roots, names: _Names, params: dict, fn_names: dict, indent="  ") -> tuple:
    """The lines computing ``roots`` and the names of the roots."""
    local: dict = dict(params)
    lines = []

    def ref(n):
        if n in local:
            return local[n]
        if isinstance(n, Constant):
            return _scalar(n) if n.data.ndim == 0 else names.const(n)
        raise KeyError(n)

    counter = 0
    for n in post_order(roots):
        if n in local or isinstance(n, Constant):
            continue
        if isinstance(n, Var):
            local[n] = f"%{n.name}"
            continue
        if isinstance(n, Call):
            callee = fn_names[n.op] if isinstance(n.op, Function) else n.op
            text = f"{callee}({', '.join(ref(a) for a in n.args)}{_attrs(n)})"
        elif isinstance(n, Tuple):
            text = f"({', '.join(ref(f) for f in n.fields)})"
        elif isinstance(n, TupleGetItem):
            text = f"{ref(n.tuple_value)}.{n.index}"
        else:
            text = type(n).__name__
        name = f"%{counter}"
        counter += 1
        local[n] = name
        lines.append(f"{indent}{name} = {text} : {n.type}")
    return lines, [ref(r) for r in roots]


def to_text(mod: Module) -> str:
    names = _Names()
    fn_names: dict = {}
    fn_text = []
    for n in post_order(mod.outputs):
        if isinstance(n, Call) and isinstance(n.op, Function) and n.op not in fn_names:
            f = n.op
            fn_names[f] = f"@{f.name}"
            params = {p: f"%{p.name}" for p in f.params}
            body, (ret,) = _body_lines([f.body], names, params, fn_names)
            kind = f"  # {f.attrs!r}" if f.attrs else ""
            sig = ", ".join(f"%{p.name}: {p.type}" for p in f.params)
            fn_text.append(f"fn @{f.name}({sig}) -> {f.body.type} {{{kind}\n"
                           + "\n".join(body) + f"\n  return {ret}\n}}")
    params = {v: f"%{v.name}" for v in mod.inputs}
    body, rets = _body_lines(list(mod.outputs), names, params, fn_names)
    sig = ", ".join(f"%{v.name}: {v.type}" for v in mod.inputs)
    ret = rets[0] if len(rets) == 1 else f"({', '.join(rets)})"
    main = f"def @main({sig}) {{\n" + "\n".join(body) + f"\n  return {ret}\n}}"
    consts = [f"const {names.names[c]}: {c.type}" for c in names.consts]
    notes = [f"# {k}: {v.summary()}" if hasattr(v, "summary") else f"# {k}: {v}"
             for k, v in mod.attrs.items() if isinstance(v, (str, int, float)) or hasattr(v, "summary")]
    return "\n".join(consts + fn_text + [main] + notes)

