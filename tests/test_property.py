"""Property tests: random programs under random legal schedules compute what the
unscheduled program computes, and what numpy computes.

* elementwise programs: a random expression tree (``+ - *`` and a few unary functions) over
  1-3 float32 inputs that may broadcast along some axes or read them reversed, plus index
  terms such as ``(i % 3)``, on 1-3 dimensional shapes of extent 1..40;
* reduction programs: ``sum``/``max``/``min`` over one reduce axis (possibly with a nonzero
  lower bound and a ``where=`` mask) of such a tree;
* integer programs: int32 trees with ``+ - *``, floor and truncating division and modulo
  (by zero too), min/max, negation and abs, compared exactly with Python's integers.

Shapes are constant or symbolic (``tl.var``, bound at call time), and the scheduled kernel is
built with ``bounds_check=True`` in some examples, so that an out-of-bounds access raises.

A schedule is a random sequence of ``split`` (factor or nparts 1..8), ``fuse`` of adjacent
leaves of the same kind and ``reorder`` (any permutation: elementwise outputs are independent,
and for reductions every order is legal), then ``vectorize``/``unroll`` of the innermost leaf
when its extent is a small constant, and ``parallel`` of the outermost data-parallel leaf.

Hypothesis runs derandomized (a fixed seed derived from each test) so that CI is reproducible.
"""

import math
import os

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tensorlang as tl

# For a long, randomized bug hunt: TENSORLANG_PROPERTY_EXAMPLES=2000 TENSORLANG_PROPERTY_RANDOM=1
_N = int(os.environ.get("TENSORLANG_PROPERTY_EXAMPLES", "40"))
_RANDOM = os.environ.get("TENSORLANG_PROPERTY_RANDOM", "") not in ("", "0")
SETTINGS = settings(max_examples=_N, deadline=None, derandomize=not _RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

UNARY = ["neg", "abs", "tanh", "sigmoid", "sqrt_abs", "exp_tanh"]
BINARY = ["add", "sub", "mul"]
INT_UNARY = ["neg", "abs"]
INT_BINARY = ["add", "sub", "mul", "floordiv", "floormod", "truncdiv", "truncmod", "min", "max"]


# --------------------------------------------------------------------------- expression trees

def trees(n_inputs: int, ndim: int, max_leaves: int = 8, integer: bool = False):
    """Trees as nested tuples: ("in", k) | ("const", c) | ("idx", axis, modulus)
    | ("un", f, t) | ("bin", op, a, b)."""
    consts = [-7, -3, -1, 0, 1, 2, 5] if integer else [-2.0, -0.5, 0.25, 1.0, 1.5, 3.0]
    leaf = st.one_of(
        st.tuples(st.just("in"), st.integers(0, n_inputs - 1)),
        st.tuples(st.just("in"), st.integers(0, n_inputs - 1)),     # inputs twice as likely
        st.tuples(st.just("const"), st.sampled_from(consts)),
        st.tuples(st.just("idx"), st.integers(0, ndim - 1), st.integers(1, 5)),
    )

    def extend(children):
        return st.one_of(
            st.tuples(st.just("un"), st.sampled_from(INT_UNARY if integer else UNARY), children),
            st.tuples(st.just("bin"), st.sampled_from(INT_BINARY if integer else BINARY),
                      children, children),
        )
    return st.recursive(leaf, extend, max_leaves=max_leaves)


def eval_tl(t, load, idx, integer: bool = False):
    """The tensorlang expression of tree ``t``; ``load(k)`` reads input k, ``idx[d]`` is the
    index variable of axis d (an integer tree keeps index terms integers)."""
    kind = t[0]
    if kind == "in":
        return load(t[1])
    if kind == "const":
        return tl.const(t[1], "int32" if integer else "float32")
    if kind == "idx":
        v = idx[t[1]] % t[2]
        return v if integer else v.astype("float32") * 0.5
    if kind == "un":
        x = eval_tl(t[2], load, idx, integer)
        return {"neg": lambda: -x, "abs": lambda: tl.abs(x), "tanh": lambda: tl.tanh(x),
                "sigmoid": lambda: tl.sigmoid(x), "sqrt_abs": lambda: tl.sqrt(tl.abs(x) + 1.0),
                "exp_tanh": lambda: tl.exp(tl.tanh(x))}[t[1]]()
    a, b = eval_tl(t[2], load, idx, integer), eval_tl(t[3], load, idx, integer)
    return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
            "floordiv": lambda: a // b, "floormod": lambda: a % b, "truncdiv": lambda: tl.truncdiv(a, b),
            "truncmod": lambda: tl.truncmod(a, b), "min": lambda: tl.min(a, b),
            "max": lambda: tl.max(a, b)}[t[1]]()


EPS = 2.0 ** -24          # float32 unit roundoff

# unary function: (float64 reference, Lipschitz constant, ulps of error of the float32 version)
UNARY_NP = {
    "neg": (lambda x: -x, 1.0, 0),
    "abs": (np.abs, 1.0, 0),
    "tanh": (np.tanh, 1.0, 4),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), 0.25, 8),
    "sqrt_abs": (lambda x: np.sqrt(np.abs(x) + 1), 0.5, 4),
    "exp_tanh": (lambda x: np.exp(np.tanh(x)), math.e, 8),
}


def eval_np(t, arrays, grids):
    """The same tree in float64 numpy (``grids[d]``: index of axis d, broadcastable), with a
    running bound on the absolute error of a float32 evaluation: ``(value, error bound)``.
    Every float32 operation adds a few units of roundoff of its result, and the operands'
    errors propagate through it (products amplify them by the other operand)."""
    kind = t[0]
    if kind == "in":
        return arrays[t[1]].astype(np.float64), np.float64(0)
    if kind == "const":
        return np.float64(t[1]), np.float64(0)
    if kind == "idx":
        return (grids[t[1]] % t[2]).astype(np.float64) * 0.5, np.float64(0)
    if kind == "un":
        x, ex = eval_np(t[2], arrays, grids)
        f, lip, ulps = UNARY_NP[t[1]]
        out = f(x)
        return out, lip * ex + ulps * EPS * np.abs(out)
    (a, ea), (b, eb) = eval_np(t[2], arrays, grids), eval_np(t[3], arrays, grids)
    if t[1] == "mul":
        out = a * b
        err = np.abs(a) * eb + np.abs(b) * ea + ea * eb
    else:
        out = a + b if t[1] == "add" else a - b
        err = ea + eb
    # 2 roundings: FMA contraction may skip the rounding of a product feeding an addition
    return out, err + 2 * EPS * (np.abs(out) + np.abs(a * b if t[1] == "mul" else 0))


def _int_div(a, b, floor: bool):
    """Integer division with the IR's semantics (division by 0 gives 0), on int64 arrays."""
    safe = np.where(b == 0, 1, b)
    q = a // safe if floor else np.where((a < 0) != (safe < 0), -(np.abs(a) // np.abs(safe)),
                                         np.abs(a) // np.abs(safe))
    return np.where(b == 0, 0, q)


def eval_np_int(t, arrays, grids, mags):
    """The integer tree on int64 numpy arrays; the largest magnitude of every intermediate
    value goes to ``mags`` (so that a test can reject programs that would overflow int32)."""
    kind = t[0]
    if kind == "in":
        out = arrays[t[1]].astype(np.int64)
    elif kind == "const":
        out = np.int64(t[1])
    elif kind == "idx":
        out = (grids[t[1]] % t[2]).astype(np.int64)
    elif kind == "un":
        x = eval_np_int(t[2], arrays, grids, mags)
        out = -x if t[1] == "neg" else np.abs(x)
    else:
        a, b = eval_np_int(t[2], arrays, grids, mags), eval_np_int(t[3], arrays, grids, mags)
        op = t[1]
        if op in ("add", "sub", "mul"):
            out = {"add": a + b, "sub": a - b, "mul": a * b}[op]
        elif op == "floordiv":
            out = _int_div(a, b, True)
        elif op == "floormod":
            out = np.where(b == 0, 0, a - b * _int_div(a, b, True))
        elif op == "truncdiv":
            out = _int_div(a, b, False)
        elif op == "truncmod":
            out = np.where(b == 0, 0, a - b * _int_div(a, b, False))
        else:
            out = np.minimum(a, b) if op == "min" else np.maximum(a, b)
    mags.append(int(np.max(np.abs(out))) if np.size(out) else 0)
    return out


def assert_close(got, want, err, what, msg):
    """``|got - want| <= 4 * err + 1e-6`` elementwise (``err``: the error bound)."""
    tol = 4 * np.broadcast_to(err, np.shape(want)) + 1e-6
    with np.errstate(invalid="ignore"):                  # inf - inf: equal infinities are fine
        bad = ~((got == want) | (np.abs(got.astype(np.float64) - want) <= tol))
    if bad.any():
        where = tuple(int(x[0]) for x in np.nonzero(bad))
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ, first at "
                             f"{where}: got {got[where]!r}, want {want[where]!r} (tolerance "
                             f"{tol[where]:.3g})\n{msg}")


# --------------------------------------------------------------------------- random schedules

def apply_random_schedule(data, stage, extents: dict) -> list:
    """Apply a random legal sequence of primitives to ``stage``; ``extents`` maps each root
    axis to its (constant) extent and is updated with the new axes. Returns a description."""
    log = []
    for _ in range(data.draw(st.integers(0, 5), label="n_steps")):
        leaves = list(stage.leaf_iter_vars)
        prim = data.draw(st.sampled_from(["split", "split", "fuse", "reorder"]), label="primitive")
        if prim == "split":
            iv = data.draw(st.sampled_from(leaves), label="split axis")
            k = data.draw(st.integers(1, 8), label="split amount")
            ext = extents[iv]
            if data.draw(st.booleans(), label="by factor"):
                o, i = stage.split(iv, factor=k)
                extents[o], extents[i] = (None if ext is None else -(-ext // k)), k
                log.append(f"split({iv.name}, factor={k})")
            else:
                o, i = stage.split(iv, nparts=k)
                extents[o], extents[i] = k, (None if ext is None else -(-ext // k))
                log.append(f"split({iv.name}, nparts={k})")
        elif prim == "fuse":
            pairs = [n for n in range(len(leaves) - 1) if leaves[n].kind == leaves[n + 1].kind]
            if not pairs:
                continue
            n = data.draw(st.sampled_from(pairs), label="fuse at")
            fu = stage.fuse(leaves[n], leaves[n + 1])
            a, b = extents[leaves[n]], extents[leaves[n + 1]]
            extents[fu] = None if a is None or b is None else a * b
            log.append(f"fuse({leaves[n].name}, {leaves[n + 1].name})")
        else:
            perm = data.draw(st.permutations(leaves), label="reorder")
            stage.reorder(*perm)
            log.append(f"reorder({', '.join(iv.name for iv in perm)})")
    leaves = list(stage.leaf_iter_vars)
    inner = leaves[-1]
    ann = data.draw(st.sampled_from(["none", "vectorize", "unroll"]), label="innermost")
    annotated = None
    if ann != "none" and extents[inner] is not None and extents[inner] <= 16:
        getattr(stage, ann)(inner)
        annotated = inner
        log.append(f"{ann}({inner.name})")
    data_leaves = [iv for iv in leaves if iv.kind == "data"]
    if data_leaves and data_leaves[0] is not annotated and data.draw(st.booleans(), label="par"):
        stage.parallel(data_leaves[0])
        log.append(f"parallel({data_leaves[0].name})")
    return log


# --------------------------------------------------------------------------- elementwise programs

@st.composite
def elementwise_programs(draw):
    ndim = draw(st.integers(1, 3), label="ndim")
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=ndim, max_size=ndim), label="shape"))
    n_inputs = draw(st.integers(1, 3), label="n_inputs")
    inputs = []
    for k in range(n_inputs):
        dims = tuple(range(ndim)) if k == 0 else tuple(
            d for d in range(ndim) if draw(st.booleans(), label=f"in{k} uses axis"))
        flips = tuple(d for d in dims if draw(st.booleans(), label=f"in{k} reversed"))
        inputs.append((dims, flips))
    tree = draw(trees(n_inputs, ndim), label="tree")
    symbolic = draw(st.booleans(), label="symbolic shape")
    return shape, inputs, tree, symbolic


@st.composite
def integer_programs(draw):
    shape, inputs, _, symbolic = draw(elementwise_programs())
    tree = draw(trees(len(inputs), len(shape), max_leaves=6, integer=True), label="int tree")
    return shape, inputs, tree, symbolic


def build_elementwise(shape, inputs, tree, symbolic, dtype="float32"):
    """``C = tree(inputs)``; with ``symbolic`` every extent is a ``tl.var``."""
    ext = [tl.var(f"n{d}") for d in range(len(shape))] if symbolic else list(shape)
    phs = [tl.placeholder(tuple(ext[d] for d in dims), dtype, f"in{k}")
           for k, (dims, _) in enumerate(inputs)]

    def body(*idx):
        def load(k):
            dims, flips = inputs[k]
            return phs[k][tuple((ext[d] - 1 - idx[d]) if d in flips else idx[d] for d in dims)]
        return eval_tl(tree, load, idx, integer=dtype == "int32")
    C = tl.compute(tuple(ext), body, name="C")
    assert C.dtype == dtype
    used = [k for k, p in enumerate(phs) if p in C.op.input_tensors]
    return [phs[k] for k in used], used, C


def _broadcast_inputs(shape, inputs, arrays):
    full = []
    for (dims, flips), a in zip(inputs, arrays):
        if flips:
            a = np.flip(a, axis=tuple(dims.index(d) for d in flips))
        full.append(a.reshape(tuple(shape[d] if d in dims else 1 for d in range(len(shape)))))
    return full, np.meshgrid(*[np.arange(n) for n in shape], indexing="ij", sparse=True)


def numpy_elementwise(shape, inputs, tree, arrays):
    full, grids = _broadcast_inputs(shape, inputs, arrays)
    out, err = eval_np(tree, full, grids)
    return np.broadcast_to(out, shape), np.broadcast_to(err, shape)


def _run(sched, args, arrays, out_shape, dtype="float32", bounds_check=False):
    f = tl.build(sched, args, bounds_check=bounds_check)
    # unwritten elements show up (NaN, or a value no test program computes)
    out = np.full(out_shape, np.nan if dtype == "float32" else -123456789, dtype)
    f(*arrays, out)
    return out


def _scheduled(data, C):
    """A random schedule of ``C``; extents are None where symbolic."""
    s = tl.create_schedule(C.op)
    extents = {iv: tl.arith.const_int(iv.dom.extent) for iv in C.op.axis + C.op.reduce_axis}
    log = apply_random_schedule(data, s[C], extents)
    bounds_check = data.draw(st.booleans(), label="bounds_check")
    return s, log + (["bounds_check"] if bounds_check else []), bounds_check


@SETTINGS
@given(prog=elementwise_programs(), data=st.data())
def test_random_elementwise_program_under_random_schedule(prog, data):
    shape, inputs, tree, symbolic = prog
    rng = np.random.default_rng(len(repr(prog)))
    arrays = [rng.uniform(-1, 1, tuple(shape[d] for d in dims)).astype(np.float32)
              for dims, _ in inputs]
    want, err = numpy_elementwise(shape, inputs, tree, arrays)

    phs, used, C = build_elementwise(shape, inputs, tree, symbolic)
    args = [arrays[k] for k in used]
    base = _run(tl.create_schedule(C.op), phs + [C], args, shape)

    phs2, _, C2 = build_elementwise(shape, inputs, tree, symbolic)
    s, log, bounds_check = _scheduled(data, C2)
    got = _run(s, phs2 + [C2], args, shape, bounds_check=bounds_check)

    msg = f"shape={shape} inputs={inputs} tree={tree} symbolic={symbolic} schedule={log}"
    # the same float32 operations in another loop order: equal up to rounding (FMA contraction)
    assert_close(got, base.astype(np.float64), 2 * err, "scheduled vs unscheduled", msg)
    assert_close(base, want, err, "unscheduled vs numpy", msg)
    assert_close(got, want, err, "scheduled vs numpy", msg)


@SETTINGS
@given(prog=integer_programs(), data=st.data())
def test_random_integer_program_under_random_schedule(prog, data):
    shape, inputs, tree, symbolic = prog
    rng = np.random.default_rng(len(repr(prog)))
    arrays = [rng.integers(-20, 21, tuple(shape[d] for d in dims)).astype(np.int32)
              for dims, _ in inputs]
    full, grids = _broadcast_inputs(shape, inputs, arrays)
    mags = []
    want = np.broadcast_to(eval_np_int(tree, full, grids, mags), shape).astype(np.int64)
    assume(max(mags) < 2**31)          # no int32 overflow anywhere: the result is defined

    phs, used, C = build_elementwise(shape, inputs, tree, symbolic, "int32")
    args = [arrays[k] for k in used]
    base = _run(tl.create_schedule(C.op), phs + [C], args, shape, "int32")

    phs2, _, C2 = build_elementwise(shape, inputs, tree, symbolic, "int32")
    s, log, bounds_check = _scheduled(data, C2)
    got = _run(s, phs2 + [C2], args, shape, "int32", bounds_check)

    msg = f"shape={shape} inputs={inputs} tree={tree} symbolic={symbolic} schedule={log}"
    np.testing.assert_array_equal(base, want, err_msg="unscheduled vs Python integers\n" + msg)
    np.testing.assert_array_equal(got, want, err_msg="scheduled vs Python integers\n" + msg)


# --------------------------------------------------------------------------- reduction programs

@st.composite
def reduction_programs(draw):
    ndim = draw(st.integers(1, 2), label="data ndim")
    shape = tuple(draw(st.lists(st.integers(1, 24), min_size=ndim, max_size=ndim), label="shape"))
    rext = draw(st.integers(1, 40), label="reduce extent")
    lo = draw(st.sampled_from([0, 0, 1, 3]), label="reduce lower bound")
    reducer = draw(st.sampled_from(["sum", "max", "min"]), label="reducer")
    n_inputs = draw(st.integers(1, 2), label="n_inputs")
    # each input reads the data axes and/or the reduce axis ("r"); input 0 reads both
    layouts = [tuple(range(ndim)) + ("r",)] + [
        draw(st.sampled_from([tuple(range(ndim)) + ("r",), ("r",), tuple(range(ndim))]),
             label="layout") for _ in range(n_inputs - 1)]
    tree = draw(trees(n_inputs, ndim + 1, max_leaves=6), label="tree")
    where = draw(st.sampled_from([None, "k_mod", "k_vs_i", "data"]), label="where")
    return shape, rext, lo, reducer, layouts, tree, where


def build_reduction(shape, rext, lo, reducer, layouts, tree, where):
    ndim = len(shape)
    phs = [tl.placeholder(tuple(shape[d] if d != "r" else rext + lo for d in lay), "float32",
                          f"in{k}") for k, lay in enumerate(layouts)]
    k = tl.reduce_axis((lo, lo + rext), "k")

    def body(*idx):
        def load(n):
            return phs[n][tuple(k if d == "r" else idx[d] for d in layouts[n])]
        expr = eval_tl(tree, load, list(idx) + [k - lo])
        cond = {None: None, "k_mod": (k % 3 != 1), "k_vs_i": (k - lo <= idx[0] + 2),
                "data": load(0) > 0}[where]
        return getattr(tl, reducer)(expr, axis=k, where=cond)
    C = tl.compute(shape, body, name="C")
    assert len(C.op.reduce_axis) == 1 and ndim == len(C.op.axis)
    used = [n for n, p in enumerate(phs) if p in C.op.input_tensors]
    return [phs[n] for n in used], used, C


def numpy_reduction(shape, rext, lo, reducer, layouts, tree, where, arrays):
    ndim = len(shape)
    full_shape = shape + (rext,)
    full = []
    for lay, a in zip(layouts, arrays):
        a = a[..., lo:] if "r" in lay else a          # k runs over [lo, lo + rext)
        full.append(a.reshape(tuple(shape[d] if d in lay else 1 for d in range(ndim))
                              + ((rext,) if "r" in lay else (1,))))
    grids = np.meshgrid(*[np.arange(n) for n in full_shape], indexing="ij", sparse=True)
    vals, err = eval_np(tree, full, grids)
    vals, err = np.broadcast_to(vals, full_shape), np.broadcast_to(err, full_shape)
    kk = grids[ndim] + lo
    mask = {None: np.ones(full_shape, bool), "k_mod": np.broadcast_to(kk % 3 != 1, full_shape),
            "k_vs_i": np.broadcast_to(grids[ndim] <= grids[0] + 2, full_shape),
            "data": np.broadcast_to(full[0] > 0, full_shape)}[where]
    ident = {"sum": 0.0, "max": -np.inf, "min": np.inf}[reducer]     # float identities
    out = getattr(np, reducer)(np.where(mask, vals, ident), axis=ndim)
    if reducer == "sum":   # each float32 addition rounds; the partial sums are below sum |v|
        err = (np.where(mask, err, 0).sum(axis=ndim)
               + 2 * EPS * rext * np.where(mask, np.abs(vals), 0).sum(axis=ndim))
    else:
        err = np.where(mask, err, 0).max(axis=ndim)
    return out, err


@SETTINGS
@given(prog=reduction_programs(), data=st.data())
def test_random_reduction_program_under_random_schedule(prog, data):
    shape, rext, lo, reducer, layouts, tree, where = prog
    rng = np.random.default_rng(len(repr(prog)))
    arrays = [rng.uniform(-1, 1, tuple(shape[d] if d != "r" else rext + lo for d in lay))
              .astype(np.float32) for lay in layouts]
    want, err = numpy_reduction(shape, rext, lo, reducer, layouts, tree, where, arrays)

    phs, used, C = build_reduction(*prog)
    args = [arrays[n] for n in used]
    base = _run(tl.create_schedule(C.op), phs + [C], args, shape)

    phs2, _, C2 = build_reduction(*prog)
    s, log, bounds_check = _scheduled(data, C2)
    got = _run(s, phs2 + [C2], args, shape, bounds_check=bounds_check)

    msg = f"prog={prog} schedule={log}"
    # a sum may add in another order under the schedule; max/min may not differ at all except
    # by the rounding of the (per-element) expression
    assert_close(got, base.astype(np.float64), 2 * err, "scheduled vs unscheduled", msg)
    assert_close(base, want, err, "unscheduled vs numpy", msg)
    assert_close(got, want, err, "scheduled vs numpy", msg)
