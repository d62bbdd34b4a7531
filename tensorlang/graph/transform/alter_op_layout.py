"""AlterOpLayout: convolutions in the channel-blocked layout ``NCHW{c}c``, layouts carried
through the ops that can work blocked, transforms only at the boundaries (TVM's
AlterOpLayout + ConvertLayout for x86's NCHWc).

What it rewrites:

* **conv2d → conv2d_NCHWc**: a ``conv2d`` that the NCHWc template handles (groups 1,
  dilation 1, one stride and one padding for both axes, the shapes ``ops.conv2d_NCHWc``
  accepts) and whose weight is a constant (or a subgraph of constants) becomes
  ``conv2d_NCHWc(x in NCHW{ic}c, kernel_layout_transform(w, ic, oc))`` with an output in
  ``NCHW{oc}c``. The blocks ``(ic, oc)`` are ``ops.conv2d_NCHWc_layout``'s: the current
  dispatch's (a tuned record's, else the current target's vector width), never the host's.
  The weight's transform is a graph op on the constant, which ``FoldConstant`` (after this
  pass in the pipeline) packs into a constant. Grouped, depthwise and dilated convolutions
  stay NCHW, and so does a convolution whose input channels do not fill vectors (the
  3-channel stem of an image network: its input block would be 1, the kernel barely faster,
  and the transforms around its large output cost more; ResNet-50's stem measured 1.14 ms
  blocked vs 1.29 ms NCHW, plus 3.1 ms of transforms, on Zen 4).
* **propagation** (``RULES``, one rule per op): element-wise unary ops keep their input's
  block; binary broadcast ops with a blocked operand stay blocked when each other operand
  is full-shape (transformed to the block), per-channel ((C, 1, 1) or (1, C, 1, 1),
  reshaped to the blocked broadcast shape (C/c, 1, 1, c)) or a scalar; ``bias_add`` along
  the channels becomes such an add; a convolution takes a blocked input as it is when the
  blocks agree, else through one block-to-block transform.
* **boundaries**: any other op (pools, reshape, dense, tuples, ...) and every graph output
  reads NCHW: a ``layout_transform`` back is inserted before it, once per value (its
  consumers share it). A transform of a transform's output goes from the first one's
  source (so a pair that cancels, A→B→A, leaves no transform at all).

The module's outputs keep their types. The result records ``layouts``: a summary of the
converted convolutions (printed as a trailing comment of the IR)."""

from __future__ import annotations

from collections import Counter

from ... import ops
from ...ops.common import vector_lanes
from ...errors import TensorlangValueError
from ..ir import Call, Constant, GraphError, Module, Var, children, describe, post_order
from ..op import elemwise
from ..op.registry import make_call
from ..op.transform import block_of
from .pass_manager import module_pass
from .rewrite import with_args

NCHW = "NCHW"


def blocked(c: int) -> str:
    """The layout name of block ``c`` (``"NCHW"`` for 0)."""
    return f"NCHW{c}c" if c else NCHW


class _State:
    """The rewrite in progress: each old node's new value and the block it is in (0: the
    new value has the old node's type; c: it is the old NCHW value as NCHW{c}c)."""

    def __init__(self):
        self.env: dict = {}
        self.cache: dict = {}               # (node, dst layout) -> its transform
        self.const: dict = {}               # node -> whether it reads no variable
        self.convs: list = []               # (ic, oc) of each converted convolution

    def block(self, old) -> int:
        return self.env[old][1]

    def new(self, old):
        return self.env[old][0]

    def transform(self, node, src: str, dst: str):
        """``node`` (in layout ``src``) in layout ``dst``: itself when they agree, else one
        ``layout_transform`` (shared by every consumer), from the source of ``node`` when
        ``node`` is itself a transform (so that A→B→A cancels)."""
        if src == dst:
            return node
        if isinstance(node, Call) and node.op == "layout_transform" \
                and node.attrs["dst_layout"] == src:
            return self.transform(node.args[0], node.attrs["src_layout"], dst)
        key = (node, dst)
        if key not in self.cache:
            self.cache[key] = make_call("layout_transform", node, src_layout=src, dst_layout=dst)
        return self.cache[key]

    def to_block(self, old, c: int):
        """The value of ``old`` (an NCHW tensor of the original graph) in NCHW{c}c (c = 0:
        NCHW)."""
        new, b = self.env[old]
        return self.transform(new, blocked(b), blocked(c))

    def nchw(self, old):
        """The value of ``old`` with its original type (NCHW if it was blocked)."""
        new, b = self.env[old]
        return self.transform(new, blocked(b), NCHW) if b else new

    def is_constant(self, node) -> bool:
        """Whether ``node`` reads no variable (FoldConstant makes it a constant)."""
        for m in post_order(node):
            if m not in self.const:
                self.const[m] = (isinstance(m, Constant) or (
                    isinstance(m, Call) and isinstance(m.op, str) and m.args != ()
                    and all(self.const[a] for a in m.args)))
        return self.const[node]


def _call(old: Call, *args):
    return make_call(old.op, *args, **dict(old.attrs))


# --------------------------------------------------------------------------- rules
# A rule (state, old call) -> (new node, block), or None: the call is a boundary (its inputs
# go back to NCHW and it is rebuilt as it was).

def _unary(st: _State, n: Call):
    """Element-wise: the same op on the blocked input."""
    b = st.block(n.args[0])
    return (_call(n, st.new(n.args[0])), b) if b else None


def _per_channel(node, C: int, c: int):
    """A per-channel operand ((C, 1, 1) or (1, C, 1, 1), or the (C,) of bias_add) as the
    blocked broadcast shape (C/c, 1, 1, c) (its elements in the same order)."""
    return make_call("reshape", node, newshape=(C // c, 1, 1, c))


def _broadcast(st: _State, n: Call):
    """A binary broadcast op with a blocked operand: blocked if the others are full-shape,
    per-channel or scalars."""
    c = next((st.block(a) for a in n.args if st.block(a)), 0)
    out = n.type.shape
    if not c or len(out) != 4:
        return None
    C = out[1]
    args = []
    for a in n.args:
        s = a.type.shape
        if st.block(a) or s == out:
            if s != out:
                return None
            args.append(st.to_block(a, c))
        elif a.type.size == 1 and len(s) <= 4:
            args.append(st.new(a))
        elif s in ((C, 1, 1), (1, C, 1, 1)) and C % c == 0:
            args.append(_per_channel(st.new(a), C, c))
        else:
            return None
    return _call(n, *args), c


def _bias_add(st: _State, n: Call):
    """bias_add along the channels of a blocked input: add of the reshaped bias."""
    x, bias = n.args
    c = st.block(x)
    if not c or n.attrs["axis"] != 1 or len(x.type.shape) != 4:
        return None
    return make_call("add", st.new(x), _per_channel(st.new(bias), x.type.shape[1], c)), c


def _conv2d(st: _State, n: Call):
    """conv2d → conv2d_NCHWc with the template's blocks, when the template handles it."""
    x, w = n.args
    a = n.attrs
    (sh, sw), (ph, pw) = a["stride"], a["padding"]
    if a["groups"] != 1 or a["dilation"] != (1, 1) or sh != sw or ph != pw \
            or not st.is_constant(st.new(w)):
        return None
    (N, CI, H, W), (CO, _, KH, KW) = x.type.shape, w.type.shape
    try:
        ic, oc = ops.conv2d_NCHWc_layout(N, CI, H, W, CO, KH, KW, sh, ph, x.type.dtype)
    except TensorlangValueError:
        return None
    if CI % ic or CO % oc or CI % vector_lanes(x.type.dtype):
        return None           # channels that do not fill vectors (the RGB stem) gain nothing
    wb = make_call("kernel_layout_transform", st.new(w), ic=ic, oc=oc)
    y = make_call("conv2d_NCHWc", st.to_block(x, ic), wb, stride=a["stride"],
                  padding=a["padding"])
    st.convs.append((ic, oc))
    return y, oc


def _layout_transform(st: _State, n: Call):
    """A transform of the graph itself: to NCHW, its result is carried in the block its
    input is in (converted only where read NCHW); to a block, it goes from where its input
    is now (so a pair that cancels leaves nothing)."""
    x = n.args[0]
    new, b = st.env[x]
    here = blocked(b) if b else n.attrs["src_layout"]
    if n.attrs["dst_layout"] == NCHW and here != NCHW:
        return new, block_of(here)
    if not b:
        return None
    return st.transform(new, here, n.attrs["dst_layout"]), 0


_ELEMWISE = (*elemwise.UNARY, "gelu", "clip", "cast")
_BROADCAST = (*elemwise.BINARY, *elemwise.COMPARE)

RULES = {
    **{name: _unary for name in _ELEMWISE},
    **{name: _broadcast for name in _BROADCAST},
    "bias_add": _bias_add,
    "conv2d": _conv2d,
    "layout_transform": _layout_transform,
}
"""Which ops carry a blocked layout and how; every other op is a boundary."""


def _summary(st: _State, mod: Module) -> str:
    kinds = Counter(f"NCHW{ic}c->NCHW{oc}c" for ic, oc in st.convs)
    transforms = sum(1 for n in mod.nodes()
                     if isinstance(n, Call) and n.op == "layout_transform")
    convs = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in kinds.items())
    return f"{len(st.convs)} conv2d_NCHWc ({convs}), {transforms} layout_transform"


@module_pass(opt_level=3)
def AlterOpLayout(mod: Module) -> Module:
    st = _State()
    for n in post_order(mod.outputs):
        if n in st.env:
            continue
        out = None
        if isinstance(n, (Var, Constant)):
            out = (n, 0)
        elif isinstance(n, Call) and isinstance(n.op, str) and n.op in RULES:
            out = RULES[n.op](st, n)
        if out is None:                                 # a boundary: inputs as they were
            out = (with_args(n, [st.nchw(a) for a in children(n)]), 0)
        st.env[n] = out
    if not st.convs:
        return mod
    outputs = [st.nchw(o) for o in mod.outputs]
    for old, new in zip(mod.outputs, outputs):
        if old.type != new.type:                        # a broken rule, not a user error
            raise GraphError(f"AlterOpLayout: the output {describe(old)} became {new.type}")
    out = mod.with_outputs(outputs)
    return out.with_attrs(layouts=_summary(st, out))
