"""Every expression operator, dtype, math function, cast, reduction and basic schedule
primitive, built and run, checked against numpy (or exact Python-integer references).

Most elementwise tests run twice: ``plain`` (the default schedule) and ``vec`` (the innermost
axis split by 8 and vectorized, with a non-divisible tail), so that both the scalar and the
vector code paths of the code generator are exercised.
"""

import math
import operator

import numpy as np
import pytest

import tensorlang as tl

N = 37                                   # not a multiple of the vector width: there is a tail
MODES = ["plain", "vec"]
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
SIGNED = ["int8", "int16", "int32", "int64"]
FLOAT_DTYPES = ["float32", "float64"]
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + ["bool"]


# --------------------------------------------------------------------------- helpers

def _stable_rng(tag: str):
    """A generator seeded from ``tag`` (stable across processes, unlike ``hash``)."""
    return np.random.default_rng([1234] + [ord(c) for c in tag])


def _fill(shape, dtype):
    """An output array pre-filled with garbage, so that elements the kernel forgets to write
    do not happen to match the expected values."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.full(shape, np.nan, dtype)
    if dtype.kind == "b":
        return np.zeros(shape, dtype)
    return np.full(shape, 0x5A, dtype)


def _schedule(C, mode):
    s = tl.create_schedule(C.op)
    if mode == "vec":
        _, xi = s[C].split(C.op.axis[-1], factor=8)
        s[C].vectorize(xi)
    elif mode == "par_vec":
        xo, xi = s[C].split(C.op.axis[-1], factor=8)
        s[C].vectorize(xi)
        s[C].parallel(C.op.axis[0] if len(C.op.axis) > 1 else xo)
    else:
        assert mode == "plain", mode
    return s


def ew(fn, arrays, mode="plain", bounds_check=False, out_dtype=None):
    """Build and run ``C[idx] = fn(*(X[idx] for X in inputs))``; return C (numpy)."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    shape = arrays[0].shape
    phs = [tl.placeholder(a.shape, a.dtype.name, f"in{k}") for k, a in enumerate(arrays)]
    C = tl.compute(shape, lambda *idx: fn(*[p[idx] for p in phs]), name="C")
    if out_dtype is not None:
        assert C.dtype == out_dtype, (C.dtype, out_dtype)
    s = _schedule(C, mode)
    used = [k for k, p in enumerate(phs) if p in C.op.input_tensors]   # only what is read
    f = tl.build(s, [phs[k] for k in used] + [C], bounds_check=bounds_check)
    out = _fill(shape, C.dtype)
    f(*[arrays[k] for k in used], out)
    return out


def index_kernel(fn, n, dtype="int32", mode="plain"):
    """Build and run ``C[i] = fn(i)`` for ``i in range(n)`` (pure index arithmetic)."""
    C = tl.compute((n,), lambda i: tl.te.expr.cast(dtype, fn(i)), name="C")
    s = _schedule(C, mode)
    f = tl.build(s, [C])
    out = _fill((n,), dtype)
    f(out)
    return out


def wrap(v: int, dtype: str) -> int:
    """Python int ``v`` reduced to ``dtype`` with two's-complement wrap-around."""
    info = np.iinfo(dtype)
    bits = info.bits
    v &= (1 << bits) - 1
    if info.min < 0 and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def ref_int(fn, dtype, *cols):
    """Apply the Python-int function ``fn`` elementwise and wrap to ``dtype``."""
    out = [wrap(fn(*map(int, xs)), dtype) for xs in zip(*[c.ravel() for c in cols])]
    return np.array(out, dtype=dtype).reshape(cols[0].shape)


def py_floordiv(a, b): return 0 if b == 0 else a // b
def py_floormod(a, b): return 0 if b == 0 else a % b


def py_truncdiv(a, b):
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def py_truncmod(a, b): return 0 if b == 0 else a - b * py_truncdiv(a, b)


def assert_exact(got, want):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


def rand_ints(rng, dtype, n, lo=None, hi=None):
    info = np.iinfo(dtype)
    lo = info.min if lo is None else max(lo, info.min)
    hi = info.max if hi is None else min(hi, info.max)
    return rng.integers(lo, hi, size=n, endpoint=True, dtype=dtype)


# --------------------------------------------------------------------------- integer arithmetic

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_int_add_sub_mul_small(op, dtype, mode):
    rng = _stable_rng(f"asm{op}{dtype}")
    lo = -11 if dtype in SIGNED else 0
    a, b = rand_ints(rng, dtype, N, lo, 11), rand_ints(rng, dtype, N, lo, 11)
    fn = getattr(operator, op)
    got = ew(fn, [a, b], mode, out_dtype=dtype)
    assert_exact(got, ref_int(fn, dtype, a, b))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_int_add_sub_mul_wraps(op, dtype, mode):
    """Overflow wraps around (two's complement), as in numpy."""
    rng = _stable_rng(f"wrap{op}{dtype}")
    a, b = rand_ints(rng, dtype, N), rand_ints(rng, dtype, N)
    fn = getattr(operator, op)
    got = ew(fn, [a, b], mode)
    assert_exact(got, ref_int(fn, dtype, a, b))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_negation(dtype, mode):
    rng = _stable_rng(f"neg{dtype}")
    lo = -100 if dtype in SIGNED else 0
    a = rand_ints(rng, dtype, N, lo, 100)
    got = ew(lambda x: -x, [a], mode)
    assert_exact(got, ref_int(lambda x: -x, dtype, a))


def _division_operands(dtype, rng):
    info = np.iinfo(dtype)
    if dtype in SIGNED:
        a = rand_ints(rng, dtype, N, -50, 50)
        b = rand_ints(rng, dtype, N, -7, 7)
        a[:4] = [info.min, info.min, info.max, -1]
        b[:8] = [-1, 1, -1, 0, 0, -1, 1, 2]
    else:
        a = rand_ints(rng, dtype, N, 0, 100)
        b = rand_ints(rng, dtype, N, 0, 7)
        a[:2] = [info.max, info.max - 1]
        b[:4] = [1, 2, 0, 0]
    return a, b


DIV_OPS = {
    "floordiv_op": (operator.floordiv, py_floordiv),  # `//` floors (Python)
    "mod_op": (operator.mod, py_floormod),            # `%` floors (Python)
    "floordiv": (tl.floordiv, py_floordiv),
    "floormod": (tl.floormod, py_floormod),
    "truncdiv": (tl.truncdiv, py_truncdiv),
    "truncmod": (tl.truncmod, py_truncmod),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", list(DIV_OPS))
def test_int_division(op, dtype, mode):
    """Negative operands, division by zero (gives 0) and by -1 (INT_MIN / -1 wraps)."""
    rng = _stable_rng(f"div{op}{dtype}")
    a, b = _division_operands(dtype, rng)
    tfn, pfn = DIV_OPS[op]
    got = ew(tfn, [a, b], mode, out_dtype=dtype)
    assert_exact(got, ref_int(pfn, dtype, a, b))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", list(DIV_OPS))
def test_int_division_matches_numpy(op, dtype):
    """The same semantics as numpy's // and % (and np.fix(a/b) for truncation)."""
    rng = _stable_rng(f"divnp{op}{dtype}")
    a, b = _division_operands(dtype, rng)
    keep = b != 0
    if dtype in SIGNED:
        keep &= a != np.iinfo(dtype).min          # numpy overflows there (abs, / -1)
    a, b = a[keep], b[keep]
    got = ew(DIV_OPS[op][0], [a, b])
    if op in ("floordiv_op", "floordiv"):
        want = a // b
    elif op in ("mod_op", "floormod"):
        want = a % b
    elif op == "truncdiv":
        q = np.abs(a) // np.abs(b)
        want = np.where((a < 0) != (b < 0), -q, q) if dtype in SIGNED else a // b
    else:
        want = np.fmod(a, b)
    assert_exact(got, want.astype(dtype))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype,c", [(d, c) for d in ["int8", "int32", "int64", "uint8", "uint32",
                                                       "uint64"]
                                     for c in [1, 2, 3, 8, 7, -1, -3, -8, 0]
                                     if c >= 0 or d in SIGNED])
def test_int_division_by_constant(c, dtype, mode):
    rng = _stable_rng(f"divc{c}{dtype}")
    lo = -60 if dtype in SIGNED else 0
    a = rand_ints(rng, dtype, N, lo, 60)
    if dtype in SIGNED:
        a[0] = np.iinfo(dtype).min
    a[1] = np.iinfo(dtype).max
    cases = [
        (lambda x: x // c, py_floordiv),
        (lambda x: x % c, py_floormod),
        (lambda x: tl.truncdiv(x, c), py_truncdiv),
        (lambda x: tl.truncmod(x, c), py_truncmod),
    ]
    for tfn, pfn in cases:
        got = ew(tfn, [a], mode)
        assert_exact(got, ref_int(lambda x: pfn(x, c), dtype, a))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16"])
def test_int_constant_dividend(dtype, mode):
    rng = _stable_rng(f"divd{dtype}")
    lo = -9 if dtype in SIGNED else 0
    b = rand_ints(rng, dtype, N, lo, 9)
    b[:2] = [0, 1]
    cases = [(lambda y: 100 // y, lambda y: py_floordiv(100, y)),
             (lambda y: 100 % y, lambda y: py_floormod(100, y)),
             (lambda y: tl.truncdiv(100, y), lambda y: py_truncdiv(100, y)),
             (lambda y: 7 - y, lambda y: 7 - y)]
    for tfn, pfn in cases:
        got = ew(tfn, [b], mode)
        assert_exact(got, ref_int(pfn, dtype, b))


def _edge_values(dtype):
    info = np.iinfo(dtype)
    vals = [info.min, info.min + 1, -7, -3, -1, 0, 1, 3, 7, info.max // 3, info.max - 1, info.max]
    if info.bits == 64:
        vals += [2**62 + 1, -(2**62) - 1, 2**53 + 1]
    return sorted({v for v in vals if info.min <= v <= info.max})


FOLD_OPS = {
    "add": (operator.add, operator.add), "sub": (operator.sub, operator.sub),
    "mul": (operator.mul, operator.mul), "truncdiv": (tl.truncdiv, py_truncdiv),
    "floordiv": (operator.floordiv, py_floordiv), "mod": (operator.mod, py_floormod),
    "truncmod": (tl.truncmod, py_truncmod), "min": (tl.min, min), "max": (tl.max, max),
    "and": (operator.and_, operator.and_), "or": (operator.or_, operator.or_),
    "xor": (operator.xor, operator.xor),
    "lt": (operator.lt, operator.lt), "le": (operator.le, operator.le),
    "eq": (operator.eq, operator.eq), "ne": (operator.ne, operator.ne),
}


def _select_tree(i, exprs, lo=0):
    """``exprs[i - lo]`` as a balanced tree of if_then_else (shallow for the simplifier)."""
    if len(exprs) == 1:
        return exprs[0]
    mid = len(exprs) // 2
    return tl.if_then_else(i < lo + mid, _select_tree(i, exprs[:mid], lo),
                           _select_tree(i, exprs[mid:], lo + mid))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", list(FOLD_OPS))
def test_constant_folding_matches_runtime(op, dtype):
    """``c1 op c2`` on constants (folded by the simplifier) gives what the same operation on
    loaded values gives at run time, and what Python's integers give (wrapped to dtype)."""
    vals = _edge_values(dtype)
    pairs = [(x, y) for x in vals for y in vals]
    a = np.array([x for x, _ in pairs], dtype)
    b = np.array([y for _, y in pairs], dtype)
    tfn, pfn = FOLD_OPS[op]
    want = ref_int(pfn, dtype, a, b) if op not in ("lt", "le", "eq", "ne") else \
        np.array([pfn(x, y) for x, y in pairs])
    runtime = ew(tfn, [a, b])
    assert_exact(runtime, want)
    consts = [tfn(tl.const(x, dtype), tl.const(y, dtype)) for x, y in pairs]
    C = tl.compute((len(pairs),), lambda i: _select_tree(i, consts), name="C")
    f = tl.build(tl.create_schedule(C.op), [C])
    folded = _fill((len(pairs),), C.dtype)
    f(folded)
    bad = [(pairs[n], folded[n], want[n]) for n in range(len(pairs)) if folded[n] != want[n]]
    assert not bad, f"folded {op} on {dtype}: (a, b), got, want: {bad[:5]}"


@pytest.mark.parametrize("v", [0.1, 1 / 3, 16777217.0, 2.0**-140, 1e30])
def test_float32_constant_is_a_float32_value(v):
    """A float32 constant behaves as ``np.float32(v)``, folded or not: converting it to float64
    or int64, subtracting and comparing give what the same float32 value loaded from memory
    gives."""
    x32 = np.float32(v)
    near = np.float32(np.nextafter(x32, np.float32(0)))    # the float32 just below
    cases = [
        (lambda c: c.astype("float64"), lambda x: np.float64(x)),
        (lambda c: c.astype("int64") if abs(v) < 2**62 else c.astype("float64"),
         lambda x: np.int64(x) if abs(v) < 2**62 else np.float64(x)),
        (lambda c: (c - tl.const(float(near), "float32")).astype("float64"),
         lambda x: np.float64(x - near)),
        (lambda c: c == tl.const(float(x32), "float32"), lambda x: x == x32),
        (lambda c: (c * 3.0).astype("float64"), lambda x: np.float64(x * np.float32(3))),
    ]
    A = np.array([x32], np.float32)
    for tfn, nfn in cases:
        want = nfn(x32)
        runtime = ew(lambda t: tfn(t), [A])
        assert runtime[0] == want, ("runtime", runtime[0], want)
        C = tl.compute((1,), lambda i: tfn(tl.const(v, "float32")), name="C")
        f = tl.build(tl.create_schedule(C.op), [C])
        folded = _fill((1,), C.dtype)
        f(folded)
        assert folded[0] == want, ("folded", folded[0], want)


# index arithmetic: these go through the simplifier with known loop ranges.
def _mn(a, b): return min(a, b) if isinstance(a, int) and isinstance(b, int) else tl.min(a, b)
def _mx(a, b): return max(a, b) if isinstance(a, int) and isinstance(b, int) else tl.max(a, b)
def _td(a, b): return py_truncdiv(a, b) if isinstance(a, int) else tl.truncdiv(a, b)
def _tm(a, b): return py_truncmod(a, b) if isinstance(a, int) else tl.truncmod(a, b)
def _sel(c, t, f): return (t if c else f) if isinstance(c, bool) else tl.if_then_else(c, t, f)


INDEX_EXPRS = {
    "floordiv_neg": lambda i: (i - 17) // 4,
    "floormod_neg": lambda i: (i - 17) % 4,
    "floormod_scaled": lambda i: (i * 6 - 17) % 4,
    "floordiv_exact": lambda i: (i * 3 + 2) // 3,
    "merge_divmod": lambda i: (i // 4) * 4 + i % 4,
    "merge_divmod_scaled": lambda i: (i // 5) * 15 + (i % 5) * 3 - i * 3,
    "nested_floordiv": lambda i: (i + 3) // 4 // 2,
    "floordiv_negconst": lambda i: (i - 20) // -3,
    "floormod_negconst": lambda i: (i - 20) % -3,
    "mod_of_mod": lambda i: ((i * 7) % 12) // 5,
    "mod_sum": lambda i: (i % 6 + i % 4) % 5,
    "split_like": lambda i: ((i // 8) * 8 + i % 8 + 1) // 8,
    "div_plus": lambda i: (i * 4 + 3) // 4 + (i * 4 + 3) % 4,
    "truncdiv": lambda i: _td(i - 20, 3),
    "truncmod": lambda i: _tm(i - 20, 3),
    "truncdiv_neg": lambda i: _td(20 - i, -6),
    "min": lambda i: _mn(i, 17) + _mn(i - 30, -5),
    "max": lambda i: _mx(i - 5, 3) - _mx(i // 2, 10),
    "select": lambda i: _sel(i % 3 == 0, i // 3, -(i % 3)),
    "big_coeff": lambda i: (i * 1000003 - 5000) // 1000,
    "fuse_like_2d": lambda i: (i // 7) * 7 + (i % 7),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(INDEX_EXPRS))
def test_index_arithmetic(name, mode):
    fn = INDEX_EXPRS[name]
    n = 40
    got = index_kernel(fn, n, mode=mode)
    want = np.array([wrap(fn(i), "int32") for i in range(n)], np.int32)
    assert_exact(got, want)


@pytest.mark.parametrize("mode", MODES)
def test_index_arithmetic_2d(mode):
    C = tl.compute((6, 7), lambda i, j: (i * 7 + j) // 7 * 100 + (i * 7 + j) % 7
                   + (j - 3) // 2 * 10000, name="C")
    s = _schedule(C, mode)
    f = tl.build(s, [C])
    out = _fill((6, 7), "int32")
    f(out)
    i, j = np.meshgrid(np.arange(6), np.arange(7), indexing="ij")
    assert_exact(out, (i * 100 + j + (j - 3) // 2 * 10000).astype(np.int32))


@pytest.mark.parametrize("mode", MODES)
def test_computed_indices_gather(mode):
    """Loads at computed (non-contiguous, wrapping, reversed) indices."""
    n = 40
    a = np.arange(n, dtype=np.float32) * 1.5
    A = tl.placeholder((n,), "float32", "A")
    C = tl.compute((n,), lambda i: A[(i * 3 + 5) % n] + A[n - 1 - i] * 100 + A[i // 2], name="C")
    s = _schedule(C, mode)
    f = tl.build(s, [A, C])
    out = _fill((n,), "float32")
    f(a, out)
    i = np.arange(n)
    np.testing.assert_allclose(out, a[(i * 3 + 5) % n] + a[n - 1 - i] * 100 + a[i // 2], rtol=1e-6)


# --------------------------------------------------------------------------- float arithmetic

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv"])
def test_float_arith(op, dtype, mode):
    rng = _stable_rng(f"farith{op}{dtype}")
    a = rng.standard_normal(N).astype(dtype) * 10
    b = (rng.uniform(0.5, 3.0, N) * rng.choice([-1, 1], N)).astype(dtype)
    fn = getattr(operator, op)
    got = ew(fn, [a, b], mode, out_dtype=dtype)
    rtol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(got, fn(a, b), rtol=rtol)
    assert got.dtype == dtype


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_division_by_zero(dtype, mode):
    a = np.array([1.0, -2.0, 0.0, 3.5, -0.0, np.inf, 0.0, 5.0] * 5, dtype)
    b = np.array([0.0, 0.0, 0.0, -0.0, 1.0, 2.0, np.inf, -np.inf] * 5, dtype)
    got = ew(operator.truediv, [a, b], mode)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = a / b
    np.testing.assert_array_equal(got, want)
    finite = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[finite]), np.signbit(want[finite]))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_floordiv_floormod_truncmod(dtype, mode):
    rng = _stable_rng(f"ffdiv{dtype}")
    a = (rng.integers(-40, 40, N) * 0.25).astype(dtype)
    b = rng.choice([0.5, 1.5, -2.0, 3.0, -0.75, 1.0], N).astype(dtype)
    np.testing.assert_array_equal(ew(operator.floordiv, [a, b], mode), np.floor_divide(a, b))
    np.testing.assert_array_equal(ew(tl.floordiv, [a, b], mode), np.floor_divide(a, b))
    np.testing.assert_allclose(ew(operator.mod, [a, b], mode), np.mod(a, b), atol=1e-6)
    np.testing.assert_allclose(ew(tl.floormod, [a, b], mode), np.mod(a, b), atol=1e-6)
    np.testing.assert_allclose(ew(tl.truncmod, [a, b], mode), np.fmod(a, b), atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_negation_and_literals(dtype, mode):
    rng = _stable_rng(f"flit{dtype}")
    a = (rng.uniform(0.5, 4.0, N) * rng.choice([-1, 1], N)).astype(dtype)
    cases = [
        (lambda x: -x, lambda x: -x),
        (lambda x: 2 - x, lambda x: 2 - x),
        (lambda x: 1.0 / x, lambda x: 1.0 / x),
        (lambda x: x * 2.5 + 1, lambda x: x * 2.5 + 1),
        (lambda x: 3 * x - 0.5, lambda x: 3 * x - 0.5),
        (lambda x: x / 4, lambda x: x / 4),           # an int literal: still true division
    ]
    for tfn, nfn in cases:
        got = ew(tfn, [a], mode, out_dtype=dtype)
        np.testing.assert_allclose(got, nfn(a).astype(dtype), rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_negation_keeps_signed_zero(dtype, mode):
    """``-x`` flips the sign bit, as numpy's negative does: -(+0.0) is -0.0."""
    a = np.array([0.0, -0.0, 1.5, -2.0] * 3, dtype)
    got = ew(lambda x: -x, [a], mode)
    np.testing.assert_array_equal(got, -a)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(-a))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(ew(lambda x: 1.0 / -x, [a], mode), 1.0 / -a)


@pytest.mark.parametrize("mode", MODES)
def test_mixed_dtype_promotion(mode):
    rng = _stable_rng("promo")
    i8 = rand_ints(rng, "int8", N, -100, 100)
    i32 = rand_ints(rng, "int32", N, -100000, 100000)
    i64 = rand_ints(rng, "int64", N, -(2**40), 2**40)
    u8 = rand_ints(rng, "uint8", N)
    f32 = rng.standard_normal(N).astype(np.float32)
    f64 = rng.standard_normal(N)

    got = ew(operator.add, [i8, i32], mode, out_dtype="int32")
    assert_exact(got, i8.astype(np.int32) + i32)
    got = ew(operator.mul, [i32, i64], mode, out_dtype="int64")
    assert_exact(got, i32.astype(np.int64) * i64)
    got = ew(operator.sub, [u8, i32], mode, out_dtype="int32")
    assert_exact(got, u8.astype(np.int32) - i32)
    got = ew(operator.add, [f32, f64], mode, out_dtype="float64")
    np.testing.assert_allclose(got, f32.astype(np.float64) + f64, rtol=1e-14)
    got = ew(operator.add, [i32, f32], mode, out_dtype="float32")
    np.testing.assert_allclose(got, i32.astype(np.float32) + f32, rtol=1e-6)
    got = ew(lambda x: x * 2.5, [i32], mode, out_dtype="float32")
    np.testing.assert_allclose(got, i32.astype(np.float32) * np.float32(2.5), rtol=1e-6)
    got = ew(lambda x: x / 2.0, [i8], mode, out_dtype="float32")      # float division
    np.testing.assert_allclose(got, i8.astype(np.float32) / 2, rtol=1e-6)
    got = ew(lambda x: x + 1, [u8], mode, out_dtype="uint8")           # literal takes the dtype
    assert_exact(got, u8 + np.uint8(1))


# --------------------------------------------------------------------------- comparisons, logic

CMP_OPS = ["lt", "le", "gt", "ge", "eq", "ne"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "uint8", "int32", "uint32",
                                   "int64", "uint64"])
def test_comparisons(dtype, mode):
    rng = _stable_rng(f"cmp{dtype}")
    if dtype.startswith("float"):
        a = rng.integers(-3, 4, N).astype(dtype)
        b = rng.integers(-3, 4, N).astype(dtype)
        a[:4] = [np.nan, 1.0, np.nan, np.inf]
        b[:4] = [1.0, np.nan, np.nan, np.inf]
    else:
        a = rand_ints(rng, dtype, N)
        b = rand_ints(rng, dtype, N)
        b[N // 2:] = a[N // 2:]             # equal pairs too
        info = np.iinfo(dtype)
        a[:3], b[:3] = [info.min, info.max, info.max], [info.max, info.min, 0]
    for op in CMP_OPS:
        got = ew(getattr(operator, op), [a, b], mode, out_dtype="bool")
        assert_exact(got, getattr(operator, op)(a, b))


@pytest.mark.parametrize("mode", MODES)
def test_comparison_with_literals(mode):
    a = np.arange(-5, 5, dtype=np.int32)
    f = np.linspace(-2, 2, 10).astype(np.float32)
    assert_exact(ew(lambda x: x < 2, [a], mode), a < 2)
    assert_exact(ew(lambda x: 0 <= x, [a], mode), a >= 0)
    assert_exact(ew(lambda x: x == -3, [a], mode), a == -3)
    assert_exact(ew(lambda x: x != 0, [a], mode), a != 0)
    assert_exact(ew(lambda x: x > 0.5, [f], mode), f > 0.5)
    assert_exact(ew(lambda x: x <= 1, [f], mode), f <= 1)


@pytest.mark.parametrize("mode", MODES)
def test_logical_ops(mode):
    rng = _stable_rng("logic")
    a, b, c = (rng.integers(0, 2, N).astype(bool) for _ in range(3))
    assert_exact(ew(lambda x, y, z: x & y, [a, b, c], mode), a & b)
    assert_exact(ew(lambda x, y, z: x | y, [a, b, c], mode), a | b)
    assert_exact(ew(lambda x, y, z: x ^ y, [a, b, c], mode), a ^ b)
    assert_exact(ew(lambda x, y, z: ~x, [a, b, c], mode), ~a)
    assert_exact(ew(lambda x, y, z: ~(x & y) | z, [a, b, c], mode), ~(a & b) | c)
    assert_exact(ew(lambda x, y, z: tl.all(x, y, z), [a, b, c], mode), a & b & c)
    assert_exact(ew(lambda x, y, z: tl.any(x, y, z), [a, b, c], mode), a | b | c)
    assert_exact(ew(lambda x, y, z: tl.all(x), [a, b, c], mode), a)
    assert_exact(ew(lambda x, y, z: tl.all(x, ~y), [a, b, c], mode), a & ~b)
    assert_exact(ew(lambda x, y, z: tl.any(~x, tl.all(y, z)), [a, b, c], mode), ~a | (b & c))
    assert_exact(ew(lambda x, y, z: x & True, [a, b, c], mode), a)
    assert_exact(ew(lambda x, y, z: x | False, [a, b, c], mode), a)
    assert_exact(ew(lambda x, y, z: tl.all() & x, [a, b, c], mode), a)
    assert_exact(ew(lambda x, y, z: tl.any() | x, [a, b, c], mode), a)
    assert_exact(ew(lambda x, y, z: x == y, [a, b, c], mode), a == b)
    assert_exact(ew(lambda x, y, z: x != y, [a, b, c], mode), a != b)


@pytest.mark.parametrize("mode", MODES)
def test_logic_of_comparisons(mode):
    x = np.linspace(-3, 3, N).astype(np.float32)
    y = np.arange(N, dtype=np.int32) - N // 2
    assert_exact(ew(lambda u, v: tl.all(u > -1, u < 2, v != 0), [x, y], mode),
                 (x > -1) & (x < 2) & (y != 0))
    assert_exact(ew(lambda u, v: tl.any(u < -2, v > 10), [x, y], mode), (x < -2) | (y > 10))
    assert_exact(ew(lambda u, v: ~(u > 0), [x, y], mode), ~(x > 0))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "uint64"])
def test_bitwise_int_ops(dtype, mode):
    rng = _stable_rng(f"bits{dtype}")
    a, b = rand_ints(rng, dtype, N), rand_ints(rng, dtype, N)
    assert_exact(ew(operator.and_, [a, b], mode), a & b)
    assert_exact(ew(operator.or_, [a, b], mode), a | b)
    assert_exact(ew(operator.xor, [a, b], mode), a ^ b)


def test_type_errors():
    A = tl.placeholder((4,), "float32", "A")
    I = tl.placeholder((4,), "int32", "I")
    with pytest.raises(tl.TensorlangTypeError):
        tl.compute((4,), lambda i: A[i] & A[i])
    with pytest.raises(tl.TensorlangTypeError):
        tl.compute((4,), lambda i: ~A[i])
    with pytest.raises(tl.TensorlangTypeError):
        tl.compute((4,), lambda i: tl.exp(I[i]))
    with pytest.raises(tl.TensorlangTypeError):
        tl.compute((4,), lambda i: tl.truncdiv(A[i], 2.0))
    with pytest.raises(tl.TensorlangTypeError):
        tl.compute((4,), lambda i: tl.if_then_else(I[i], 1, 2))
    with pytest.raises(tl.TensorlangTypeError):
        tl.all(I[0] + 1)
    with pytest.raises(tl.TensorlangTypeError):
        bool(A[0] < 1.0)


# --------------------------------------------------------------------------- if_then_else

@pytest.mark.parametrize("mode", MODES)
def test_if_then_else_values(mode):
    rng = _stable_rng("ite")
    a = rng.standard_normal(N).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    got = ew(lambda x, y: tl.if_then_else(x > 0, x, y * 2), [a, b], mode)
    np.testing.assert_allclose(got, np.where(a > 0, a, b * 2), rtol=1e-6)
    i = rand_ints(rng, "int32", N, -5, 5)
    got = ew(lambda x: tl.if_then_else(x % 2 == 0, x // 2, 3 * x + 1), [i], mode, out_dtype="int32")
    assert_exact(got, np.where(i % 2 == 0, i // 2, 3 * i + 1).astype(np.int32))
    # branches of different dtypes are promoted
    got = ew(lambda x: tl.if_then_else(x > 0, x, 0.5), [i], mode, out_dtype="float32")
    np.testing.assert_allclose(got, np.where(i > 0, i, 0.5).astype(np.float32))
    # nested
    got = ew(lambda x, y: tl.if_then_else(x > 0, tl.if_then_else(y > 0, 1.0, 2.0), 3.0),
             [a, b], mode)
    np.testing.assert_allclose(got, np.where(a > 0, np.where(b > 0, 1.0, 2.0), 3.0))


@pytest.mark.parametrize("mode", MODES)
def test_if_then_else_guards_division_by_zero(mode):
    rng = _stable_rng("iteguard")
    a = rand_ints(rng, "int32", N, -50, 50)
    b = rand_ints(rng, "int32", N, -3, 3)
    got = ew(lambda x, y: tl.if_then_else(y != 0, x // y, -1000), [a, b], mode)
    assert_exact(got, ref_int(lambda x, y: x // y if y else -1000, "int32", a, b))


PAD_MODES = ["plain", "vec", "split4_vec", "parallel", "unroll"]


def _pad_schedule(P, mode):
    s = tl.create_schedule(P.op)
    ax = P.op.axis[-1]
    if mode == "vec":
        _, xi = s[P].split(ax, factor=8)
        s[P].vectorize(xi)
    elif mode == "split4_vec":
        _, xi = s[P].split(ax, factor=4)
        s[P].vectorize(xi)
    elif mode == "parallel":
        s[P].parallel(P.op.axis[0])
    elif mode == "unroll":
        _, xi = s[P].split(ax, factor=4)
        s[P].unroll(xi)
    return s


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("n", [1, 5, 16, 17])
def test_if_then_else_padding_1d(n, mode):
    """The padded load in the false branch is never executed (bounds_check proves it)."""
    A = tl.placeholder((n,), "float32", "A")
    P = tl.compute((n + 2,), lambda i: tl.if_then_else(tl.all(i >= 1, i < n + 1), A[i - 1], 0.0),
                   name="P")
    f = tl.build(_pad_schedule(P, mode), [A, P], bounds_check=True)
    a = np.arange(1, n + 1, dtype=np.float32)
    out = _fill((n + 2,), "float32")
    f(a, out)
    np.testing.assert_array_equal(out, np.pad(a, 1))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_if_then_else_padding_2d(mode):
    h, w, p = 5, 7, 2
    A = tl.placeholder((h, w), "float32", "A")
    P = tl.compute((h + 2 * p, w + 2 * p), lambda i, j: tl.if_then_else(
        tl.all(i >= p, i < h + p, j >= p, j < w + p), A[i - p, j - p], -1.0), name="P")
    f = tl.build(_pad_schedule(P, mode), [A, P], bounds_check=True)
    a = np.arange(h * w, dtype=np.float32).reshape(h, w)
    out = _fill((h + 2 * p, w + 2 * p), "float32")
    f(a, out)
    np.testing.assert_array_equal(out, np.pad(a, p, constant_values=-1.0))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_if_then_else_padding_any(mode):
    """The same padding written with tl.any and the branches swapped."""
    n = 13
    A = tl.placeholder((n,), "int32", "A")
    P = tl.compute((n + 6,), lambda i: tl.if_then_else(tl.any(i < 3, i >= n + 3), 0, A[i - 3]),
                   name="P")
    f = tl.build(_pad_schedule(P, mode), [A, P], bounds_check=True)
    a = np.arange(1, n + 1, dtype=np.int32)
    out = _fill((n + 6,), "int32")
    f(a, out)
    assert_exact(out, np.pad(a, 3))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_if_then_else_guarded_indirect_load(mode):
    """A data-dependent index is only dereferenced when the condition says it is valid."""
    m, n = 10, 24
    T = tl.placeholder((m,), "float32", "T")
    I = tl.placeholder((n,), "int32", "I")
    C = tl.compute((n,), lambda i: tl.if_then_else(tl.all(I[i] >= 0, I[i] < m), T[I[i]], -1.0),
                   name="C")
    f = tl.build(_pad_schedule(C, mode), [T, I, C], bounds_check=True)
    t = np.arange(m, dtype=np.float32) * 10
    idx = np.array([0, 9, 10, -1, 5, 1000, -1000, 3] * 3, dtype=np.int32)
    out = _fill((n,), "float32")
    f(t, idx, out)
    ok = (idx >= 0) & (idx < m)
    np.testing.assert_array_equal(out, np.where(ok, t[np.clip(idx, 0, m - 1)], -1.0))


def test_bounds_check_catches_out_of_bounds_read():
    """Sanity check of the tool the padding tests rely on."""
    n = 8
    A = tl.placeholder((n,), "float32", "A")
    B = tl.compute((n,), lambda i: A[i + 1], name="B")
    f = tl.build(tl.create_schedule(B.op), [A, B], bounds_check=True)
    with pytest.raises(tl.BoundsError):
        f(np.zeros(n, np.float32), np.zeros(n, np.float32))


# --------------------------------------------------------------------------- elementwise min/max

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "uint8", "int32", "int64",
                                   "uint32", "uint64"])
def test_elementwise_min_max(dtype, mode):
    rng = _stable_rng(f"minmax{dtype}")
    if dtype.startswith("float"):
        a = rng.standard_normal(N).astype(dtype)
        b = rng.standard_normal(N).astype(dtype)
        a[:2] = [np.inf, -np.inf]
    else:
        a, b = rand_ints(rng, dtype, N), rand_ints(rng, dtype, N)
    assert_exact(ew(tl.max, [a, b], mode, out_dtype=dtype), np.maximum(a, b))
    assert_exact(ew(tl.min, [a, b], mode, out_dtype=dtype), np.minimum(a, b))
    assert_exact(ew(lambda x, y: tl.max(tl.min(x, y), tl.min(y, x)), [a, b], mode),
                 np.minimum(a, b))


@pytest.mark.parametrize("mode", MODES)
def test_elementwise_min_max_nan_propagates(mode):
    a = np.array([np.nan, 1.0, np.nan, -2.0] * 4, np.float32)
    b = np.array([1.0, np.nan, np.nan, 3.0] * 4, np.float32)
    assert_exact(ew(tl.max, [a, b], mode), np.maximum(a, b))
    assert_exact(ew(tl.min, [a, b], mode), np.minimum(a, b))


@pytest.mark.parametrize("mode", MODES)
def test_elementwise_min_max_with_literals(mode):
    rng = _stable_rng("relu")
    a = rng.standard_normal(N).astype(np.float32)
    i = rand_ints(rng, "int32", N, -20, 20)
    assert_exact(ew(lambda x: tl.max(x, 0.0), [a], mode), np.maximum(a, np.float32(0)))
    assert_exact(ew(lambda x: tl.max(x, 0), [a], mode), np.maximum(a, np.float32(0)))
    assert_exact(ew(lambda x: tl.min(tl.max(x, -0.5), 0.5), [a], mode), np.clip(a, -0.5, 0.5))
    assert_exact(ew(lambda x: tl.min(x, 7), [i], mode), np.minimum(i, 7))
    assert_exact(ew(lambda x: tl.max(-3, x), [i], mode), np.maximum(i, -3))


# --------------------------------------------------------------------------- math functions

def _vec_erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


MATH = {
    # name: (tl function, reference on float64, domain sampler)
    "exp": (tl.exp, np.exp, lambda r, n: r.uniform(-20, 20, n)),
    "log": (tl.log, np.log, lambda r, n: r.uniform(1e-3, 100, n)),
    "sqrt": (tl.sqrt, np.sqrt, lambda r, n: r.uniform(0, 100, n)),
    "rsqrt": (tl.rsqrt, lambda x: 1 / np.sqrt(x), lambda r, n: r.uniform(1e-3, 100, n)),
    "tanh": (tl.tanh, np.tanh, lambda r, n: r.uniform(-10, 10, n)),
    "sigmoid": (tl.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda r, n: r.uniform(-30, 30, n)),
    "abs": (tl.abs, np.abs, lambda r, n: r.uniform(-10, 10, n)),
    "floor": (tl.floor, np.floor, lambda r, n: np.round(r.uniform(-10, 10, n) * 4) / 4),
    "ceil": (tl.ceil, np.ceil, lambda r, n: np.round(r.uniform(-10, 10, n) * 4) / 4),
    "erf": (tl.erf, _vec_erf, lambda r, n: r.uniform(-4, 4, n)),
}
EXACT_MATH = ("abs", "floor", "ceil", "sqrt")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", list(MATH))
def test_math_functions(name, dtype, mode):
    tfn, ref, sample = MATH[name]
    x = sample(_stable_rng(f"math{name}"), N).astype(dtype)
    got = ew(tfn, [x], mode, out_dtype=dtype)
    want = ref(x.astype(np.float64)).astype(dtype)
    if name in EXACT_MATH:
        np.testing.assert_array_equal(got, want)
    elif dtype == "float32":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_math_special_values(dtype, mode):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5] * 2, dtype)
    with np.errstate(all="ignore"):
        for tfn, ref in [(tl.exp, np.exp), (tl.tanh, np.tanh), (tl.abs, np.abs),
                         (tl.floor, np.floor), (tl.ceil, np.ceil), (tl.sqrt, np.sqrt),
                         (tl.log, np.log), (tl.erf, _vec_erf)]:
            got = ew(tfn, [x], mode)
            np.testing.assert_allclose(got, ref(x.astype(np.float64)).astype(dtype), rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_power(dtype, mode):
    rng = _stable_rng("power")
    x = rng.uniform(0.1, 10, N).astype(dtype)
    y = rng.uniform(-3, 3, N).astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    got = ew(tl.power, [x, y], mode, out_dtype=dtype)
    np.testing.assert_allclose(got, np.power(x.astype(np.float64), y).astype(dtype), rtol=rtol)
    got = ew(lambda a: tl.power(a, 2), [x], mode, out_dtype=dtype)
    np.testing.assert_allclose(got, (x.astype(np.float64) ** 2).astype(dtype), rtol=rtol)
    got = ew(lambda a: tl.power(a, 0.5), [x], mode, out_dtype=dtype)
    np.testing.assert_allclose(got, np.sqrt(x.astype(np.float64)).astype(dtype), rtol=rtol)
    neg = -x
    got = ew(lambda a: tl.power(a, 3), [neg], mode)
    np.testing.assert_allclose(got, (neg.astype(np.float64) ** 3).astype(dtype), rtol=rtol)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", SIGNED + ["uint8", "uint32"])
def test_abs_int(dtype, mode):
    rng = _stable_rng(f"absint{dtype}")
    lo = -100 if dtype in SIGNED else 0
    a = rand_ints(rng, dtype, N, lo, 100)
    a[0] = np.iinfo(dtype).max
    if dtype in SIGNED:
        a[1] = np.iinfo(dtype).min + 1
        a[2] = np.iinfo(dtype).min            # wraps to itself, as in numpy
    got = ew(tl.abs, [a], mode, out_dtype=dtype)
    assert_exact(got, np.abs(a))


@pytest.mark.parametrize("mode", MODES)
def test_math_composition(mode):
    rng = _stable_rng("mathcomp")
    x = rng.uniform(-2, 2, N).astype(np.float32)
    got = ew(lambda a: tl.exp(tl.tanh(a)) * tl.sigmoid(a) + tl.sqrt(tl.abs(a)) - tl.erf(a / 2),
             [x], mode)
    x64 = x.astype(np.float64)
    want = np.exp(np.tanh(x64)) / (1 + np.exp(-x64)) + np.sqrt(np.abs(x64)) - _vec_erf(x64 / 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- casts

CAST_DTYPES = ["float32", "float64", "int32", "int64", "int8", "uint8", "bool"]
_CANDIDATES = [-3e9, -70000.25, -200.5, -129.0, -128.0, -127.9, -100.7, -3.5, -1.2, -0.6, 0.0,
               0.4, 1.0, 2.9, 100.3, 126.99, 127.0, 127.5, 128.0, 200.2, 255.0, 255.9, 256.0,
               1000.5, 70000.25, 2**31 - 1.0, 3e9, 2.0**40 + 1, -(2.0**40) - 3]


def _fits(v: float, dtype: str) -> bool:
    if dtype in ("float32", "float64", "bool"):
        return True
    info = np.iinfo(dtype)
    return info.min <= math.trunc(v) <= info.max


def _cast_source(src: str, dst: str) -> np.ndarray:
    """Values of ``src`` whose conversion to ``dst`` is defined (no out-of-range float->int)."""
    if src == "bool":
        return np.array([True, False, True, True, False], dtype=bool)
    vals = []
    for v in _CANDIDATES:
        if src not in FLOAT_DTYPES:
            v = float(math.trunc(v))
            if not _fits(v, src):
                continue
        v = np.array(v).astype(src)            # the value as ``src`` holds it (rounded)
        if _fits(float(v), dst):
            vals.append(v)
    return np.array(vals, dtype=src)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dst", CAST_DTYPES)
@pytest.mark.parametrize("src", CAST_DTYPES)
def test_cast(src, dst, mode):
    a = _cast_source(src, dst)
    got = ew(lambda x: x.astype(dst), [a], mode, out_dtype=dst)
    assert_exact(got, a.astype(dst))


@pytest.mark.parametrize("dst", CAST_DTYPES)
@pytest.mark.parametrize("src", CAST_DTYPES)
def test_cast_of_constant_matches_runtime_cast(src, dst):
    """Constant folding of a cast agrees with the cast done at run time."""
    vals = _cast_source(src, dst)
    consts = [tl.const(v.item(), src).astype(dst) for v in vals]

    def body(i):
        out = consts[-1]
        for k in range(len(vals) - 2, -1, -1):
            out = tl.if_then_else(i == k, consts[k], out)
        return out
    D = tl.compute((len(vals),), body, name="D")
    f = tl.build(tl.create_schedule(D.op), [D])
    out = _fill((len(vals),), dst)
    f(out)
    assert_exact(out, vals.astype(dst))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src,dst", [("int32", "int8"), ("int32", "uint8"), ("int64", "int32"),
                                     ("int8", "uint8"), ("uint8", "int8"), ("int64", "uint8")])
def test_integer_narrowing_wraps(src, dst, mode):
    """Integer to integer conversion keeps the low bits (numpy's astype does the same)."""
    a = rand_ints(_stable_rng(f"narrow{src}{dst}"), src, N)
    assert_exact(ew(lambda x: x.astype(dst), [a], mode), a.astype(dst))


@pytest.mark.parametrize("mode", MODES)
def test_cast_chains(mode):
    x = np.linspace(-300, 300, N).astype(np.float32)
    got = ew(lambda v: v.astype("int32").astype("int8").astype("float64"), [x], mode)
    assert_exact(got, x.astype(np.int32).astype(np.int8).astype(np.float64))
    got = ew(lambda v: (v > 0).astype("int32") + (v < -100).astype("float32"), [x], mode)
    assert_exact(got, ((x > 0).astype(np.int32) + (x < -100)).astype(np.float32))


# --------------------------------------------------------------------------- max_value/min_value

@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_max_min_value(dtype):
    C = tl.compute((3,), lambda i: tl.if_then_else(i == 0, tl.max_value(dtype),
                                                   tl.if_then_else(i == 1, tl.min_value(dtype),
                                                                   tl.const(0, dtype))), name="C")
    assert C.dtype == dtype
    f = tl.build(tl.create_schedule(C.op), [C])
    out = _fill((3,), dtype)
    f(out)
    if dtype == "bool":
        want = np.array([True, False, False])
    elif dtype.startswith("float"):
        fi = np.finfo(dtype)
        want = np.array([fi.max, fi.min, 0], dtype)
    else:
        ii = np.iinfo(dtype)
        want = np.array([ii.max, ii.min, 0], dtype)
    assert_exact(out, want)


@pytest.mark.parametrize("dtype", INT_DTYPES + FLOAT_DTYPES)
def test_max_min_value_in_arithmetic(dtype):
    """Compare data against the extreme values at run time (a clamp)."""
    rng = _stable_rng(f"clamp{dtype}")
    a = rand_ints(rng, dtype, N) if dtype in INT_DTYPES else rng.standard_normal(N).astype(dtype)
    got = ew(lambda x: tl.if_then_else(tl.all(x <= tl.max_value(dtype), x >= tl.min_value(dtype)),
                                       x, tl.const(0, dtype)), [a])
    assert_exact(got, a)
    got = ew(lambda x: tl.min(x, tl.max_value(dtype)), [a])
    assert_exact(got, a)
    got = ew(lambda x: tl.max(x, tl.min_value(dtype)), [a])
    assert_exact(got, a)


# --------------------------------------------------------------------------- reductions

def _reduce_build(make, arrays, out_shape, out_dtype, schedule=None, bounds_check=False):
    phs = [tl.placeholder(a.shape, a.dtype.name, f"in{k}") for k, a in enumerate(arrays)]
    C = make(*phs)
    assert C.dtype == out_dtype
    s = tl.create_schedule(C.op)
    if schedule is not None:
        schedule(s, C)
    f = tl.build(s, phs + [C], bounds_check=bounds_check)
    out = _fill(out_shape, out_dtype)
    f(*arrays, out)
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("red", ["sum", "max", "min"])
def test_reduce_basic(red, dtype):
    rng = _stable_rng(f"red{red}{dtype}")
    m, n = 9, 23
    a = (rng.standard_normal((m, n)) * 10).astype(dtype) if dtype.startswith("float") \
        else rand_ints(rng, dtype, (m, n), -1000, 1000)
    reducer = getattr(tl, red)

    def make(A):
        k = tl.reduce_axis((0, n), "k")
        return tl.compute((m,), lambda i: reducer(A[i, k], axis=k), name="C")
    got = _reduce_build(make, [a], (m,), dtype)
    want = getattr(np, red)(a, axis=1)
    if dtype.startswith("float"):
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12)
    else:
        assert_exact(got, want.astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8", "int64", "uint64"])
@pytest.mark.parametrize("red", ["sum", "max", "min"])
def test_reduce_where(red, dtype):
    """``where=`` masks elements; a row with nothing selected gets the reducer's identity."""
    rng = _stable_rng(f"redw{red}{dtype}")
    m, n = 8, 19
    if dtype == "float32":
        a = rng.standard_normal((m, n)).astype(dtype)
    else:
        a = rand_ints(rng, dtype, (m, n), 0 if red == "sum" else None, 5 if red == "sum" else None)
    reducer = getattr(tl, red)

    def make(A):
        k = tl.reduce_axis((0, n), "k")
        # row 0 selects nothing; other rows select a triangle and the odd columns
        return tl.compute((m,), lambda i: reducer(A[i, k], axis=k,
                                                 where=tl.all(i > 0, tl.any(k < i, k % 2 == 1))),
                          name="C")
    got = _reduce_build(make, [a], (m,), dtype)
    i, k = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    mask = (i > 0) & ((k < i) | (k % 2 == 1))
    if dtype == "float32":
        ident = {"sum": 0.0, "max": -np.inf, "min": np.inf}[red]   # float identities are -inf/+inf
    else:
        ident = {"sum": 0, "max": np.iinfo(dtype).min, "min": np.iinfo(dtype).max}[red]
    want = getattr(np, red)(np.where(mask, a, np.array(ident, dtype)), axis=1).astype(dtype)
    if dtype == "float32":
        np.testing.assert_allclose(got, want, rtol=1e-5)
    else:
        assert_exact(got, want)
    assert got[0] == np.array(ident, dtype)


def test_reduce_where_on_data():
    rng = _stable_rng("redwdata")
    m, n = 6, 30
    a = rng.standard_normal((m, n)).astype(np.float32)

    def make(A):
        k = tl.reduce_axis((0, n), "k")
        return tl.compute((m,), lambda i: tl.sum(A[i, k], axis=k, where=A[i, k] > 0), name="C")
    got = _reduce_build(make, [a], (m,), "float32")
    np.testing.assert_allclose(got, np.where(a > 0, a, 0).sum(1), rtol=1e-5)


def test_custom_reducer_product():
    prod = tl.comm_reducer(lambda x, y: x * y, lambda t: tl.const(1, t), name="prod")
    rng = _stable_rng("prod")
    m, n = 7, 12
    a = rng.uniform(0.5, 1.5, (m, n)).astype(np.float32)
    b = rand_ints(rng, "int64", (m, n), -3, 3)

    def make(A):
        k = tl.reduce_axis((0, n), "k")
        return tl.compute((m,), lambda i: prod(A[i, k], axis=k), name="C")
    np.testing.assert_allclose(_reduce_build(make, [a], (m,), "float32"), a.prod(1), rtol=1e-5)
    assert_exact(_reduce_build(make, [b], (m,), "int64"), b.prod(1))

    def make_where(A):
        k = tl.reduce_axis((0, n), "k")
        return tl.compute((m,), lambda i: prod(A[i, k], axis=k, where=k >= i), name="C")
    i, k = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    assert_exact(_reduce_build(make_where, [b], (m,), "int64"), np.where(k >= i, b, 1).prod(1))


def test_custom_reducer_elementwise_combine():
    prod = tl.comm_reducer(lambda x, y: x * y, lambda t: tl.const(1, t), name="prod")
    a = np.arange(1, 11, dtype=np.float32)
    b = np.arange(10, 0, -1).astype(np.float32)
    np.testing.assert_array_equal(ew(lambda x, y: prod(x, y), [a, b]), a * b)


def test_custom_reducer_sum_of_squares_and_absmax():
    sumsq = tl.comm_reducer(lambda x, y: x + y, lambda t: tl.const(0, t), name="sumsq")
    absmax = tl.comm_reducer(lambda x, y: tl.max(tl.abs(x), tl.abs(y)),
                             lambda t: tl.const(0, t), name="absmax")
    rng = _stable_rng("sumsq")
    m, n = 5, 33
    a = rng.standard_normal((m, n)).astype(np.float32)

    def make(A):
        k = tl.reduce_axis((0, n), "k")
        return tl.compute((m,), lambda i: sumsq(A[i, k] * A[i, k], axis=k), name="C")
    np.testing.assert_allclose(_reduce_build(make, [a], (m,), "float32"), (a * a).sum(1), rtol=1e-5)

    def make2(A):
        k = tl.reduce_axis((0, n), "k")
        return tl.compute((m,), lambda i: absmax(A[i, k], axis=k), name="C")
    np.testing.assert_allclose(_reduce_build(make2, [a], (m,), "float32"), np.abs(a).max(1))


def test_custom_reducer_with_min_value_identity():
    mymax = tl.comm_reducer(lambda x, y: tl.if_then_else(x > y, x, y), tl.min_value, name="mymax")
    rng = _stable_rng("mymax")
    a = rand_ints(rng, "int16", (4, 21))

    def make(A):
        k = tl.reduce_axis((0, 21), "k")
        return tl.compute((4,), lambda i: mymax(A[i, k], axis=k), name="C")
    assert_exact(_reduce_build(make, [a], (4,), "int16"), a.max(1))


SCHED_2AX = {
    "plain": None,
    "split_k": lambda s, C: s[C].split(C.op.reduce_axis[0], factor=4),
    "split_both_k": lambda s, C: (s[C].split(C.op.reduce_axis[0], factor=3),
                                  s[C].split(C.op.reduce_axis[1], nparts=2)),
    "reorder_k_outer": lambda s, C: s[C].reorder(C.op.reduce_axis[1], C.op.reduce_axis[0],
                                                 C.op.axis[0]),
    "fuse_k": lambda s, C: s[C].fuse(C.op.reduce_axis[0], C.op.reduce_axis[1]),
    "parallel_i": lambda s, C: s[C].parallel(C.op.axis[0]),
}


@pytest.mark.parametrize("sched", list(SCHED_2AX))
def test_reduce_over_two_axes(sched):
    rng = _stable_rng(f"red2{sched}")
    m, p, q = 6, 7, 5
    a = rng.standard_normal((m, p, q)).astype(np.float32)

    def make(A):
        k1, k2 = tl.reduce_axis((0, p), "k1"), tl.reduce_axis((0, q), "k2")
        return tl.compute((m,), lambda i: tl.sum(A[i, k1, k2], axis=[k1, k2]), name="C")
    got = _reduce_build(make, [a], (m,), "float32", SCHED_2AX[sched])
    np.testing.assert_allclose(got, a.sum((1, 2)), rtol=1e-5, atol=1e-6)

    def make_max(A):
        k1, k2 = tl.reduce_axis((0, p), "k1"), tl.reduce_axis((0, q), "k2")
        return tl.compute((m,), lambda i: tl.max(A[i, k1, k2], axis=(k1, k2)), name="C")
    got = _reduce_build(make_max, [a], (m,), "float32", SCHED_2AX[sched])
    np.testing.assert_array_equal(got, a.max((1, 2)))


@pytest.mark.parametrize("split", [None, 3, "nparts"])
def test_reduce_axis_nonzero_lower_bound(split):
    rng = _stable_rng("redlo")
    m, n = 5, 20
    a = rng.standard_normal((m, n)).astype(np.float32)

    def make(A):
        k = tl.reduce_axis((3, 17), "k")
        return tl.compute((m,), lambda i: tl.sum(A[i, k] * (k - 2).astype("float32"), axis=k,
                                                 where=tl.any(k < 10, k > 10)), name="C")

    def sched(s, C):
        if split == "nparts":
            s[C].split(C.op.reduce_axis[0], nparts=4)
        elif split is not None:
            s[C].split(C.op.reduce_axis[0], factor=split)
    got = _reduce_build(make, [a], (m,), "float32", sched)
    k = np.arange(3, 17)
    w = np.where(k != 10, k - 2, 0).astype(np.float32)
    np.testing.assert_allclose(got, (a[:, 3:17] * w).sum(1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lo", [0, 3])
def test_reduce_axis_compared_with_eq_ne(lo):
    """``k == c`` and ``k != c`` on a reduce axis (an IterVar, as in TVM) build comparisons."""
    n = 8
    a = np.arange(1, n + 1, dtype=np.float32).reshape(1, n)

    def make_ne(A):
        k = tl.reduce_axis((lo, n), "k")
        return tl.compute((1,), lambda i: tl.sum(A[i, k], axis=k, where=k != 5), name="C")

    def make_eq(A):
        k = tl.reduce_axis((lo, n), "k")
        return tl.compute((1,), lambda i: tl.sum(A[i, k], axis=k, where=k == 5), name="C")
    ks = np.arange(lo, n)
    np.testing.assert_array_equal(_reduce_build(make_ne, [a], (1,), "float32"),
                                  [a[0, ks[ks != 5]].sum()])
    np.testing.assert_array_equal(_reduce_build(make_eq, [a], (1,), "float32"), [a[0, 5]])


def test_reduce_axis_symbolic_bounds():
    n = tl.var("n")
    A = tl.placeholder((n,), "float32", "A")
    k = tl.reduce_axis((1, n), "k")
    C = tl.compute((1,), lambda _: tl.max(A[k], axis=k), name="C")
    f = tl.build(tl.create_schedule(C.op), [A, C], bounds_check=True)
    for size in (2, 5, 100):
        a = np.arange(size, dtype=np.float32)[::-1].copy()
        out = _fill((1,), "float32")
        f(a, out)
        assert out[0] == a[1:].max()


def _mm_tile_vec(s, C):
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[C].reorder(xo, yo, C.op.reduce_axis[0], xi, yi)
    s[C].vectorize(yi)


def _mm_k_outermost(s, C):
    s[C].reorder(C.op.reduce_axis[0], *C.op.axis)


def _mm_split_k_reorder(s, C):
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=5)
    s[C].reorder(ko, C.op.axis[0], ki, C.op.axis[1])


def _mm_parallel_unroll(s, C):
    s[C].parallel(C.op.axis[0])
    _, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].unroll(ki)


MATMUL_SCHED = {"plain": None, "tile_vec": _mm_tile_vec, "k_outermost": _mm_k_outermost,
                "split_k_reorder": _mm_split_k_reorder, "parallel_unroll": _mm_parallel_unroll}


@pytest.mark.parametrize("dtype", ["float32", "int32"])
@pytest.mark.parametrize("sched", list(MATMUL_SCHED))
def test_matmul(sched, dtype):
    rng = _stable_rng(f"mm{sched}")
    m, kk, n = 13, 11, 19
    if dtype == "float32":
        a = rng.standard_normal((m, kk)).astype(dtype)
        b = rng.standard_normal((kk, n)).astype(dtype)
    else:
        a = rand_ints(rng, dtype, (m, kk), -9, 9)
        b = rand_ints(rng, dtype, (kk, n), -9, 9)

    def make(A, B):
        k = tl.reduce_axis((0, kk), "k")
        return tl.compute((m, n), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    got = _reduce_build(make, [a, b], (m, n), dtype, MATMUL_SCHED[sched])
    if dtype == "float32":
        np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)
    else:
        assert_exact(got, a @ b)


def test_reduction_feeding_elementwise():
    """Two stages: a row max, then a softmax-like elementwise stage reading it."""
    m, n = 4, 10
    a = _stable_rng("softmax").standard_normal((m, n)).astype(np.float32)
    A = tl.placeholder((m, n), "float32", "A")
    k = tl.reduce_axis((0, n), "k")
    M = tl.compute((m,), lambda i: tl.max(A[i, k], axis=k), name="M")
    E = tl.compute((m, n), lambda i, j: tl.exp(A[i, j] - M[i]), name="E")
    k2 = tl.reduce_axis((0, n), "k2")
    S = tl.compute((m,), lambda i: tl.sum(E[i, k2], axis=k2), name="S")
    Y = tl.compute((m, n), lambda i, j: E[i, j] / S[i], name="Y")
    f = tl.build(tl.create_schedule(Y.op), [A, Y], bounds_check=True)
    out = _fill((m, n), "float32")
    f(a, out)
    e = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("symbolic", [False, True])
@pytest.mark.parametrize("sched", ["plain", "both_stages"])
def test_two_stage_pipeline(sched, symbolic):
    """An intermediate tensor (on the heap: large or symbolic) read with a shifted index."""
    n = tl.var("n") if symbolic else 20000
    A = tl.placeholder((n,), "float32", "A")
    B = tl.compute((n,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i] + tl.if_then_else(i > 0, B[i - 1], 0.0), name="C")
    s = tl.create_schedule(C.op)
    if sched == "both_stages":
        bo, bi = s[B].split(B.op.axis[0], factor=16)
        s[B].vectorize(bi)
        s[B].parallel(bo)
        co, ci = s[C].split(C.op.axis[0], factor=8)
        s[C].vectorize(ci)
        s[C].parallel(co)
    f = tl.build(s, [A, C], bounds_check=True)
    for size in ([1, 17, 20000] if symbolic else [20000]):
        a = np.arange(size, dtype=np.float32)
        out = _fill((size,), "float32")
        f(a, out)
        b = a * 2
        np.testing.assert_array_equal(out, b + np.concatenate([[0], b[:-1]]))


# --------------------------------------------------------------------------- symbolic extents

SYM_SIZES = [1, 15, 16, 17, 10000]


def _sym_kernel(mode):
    n = tl.var("n")
    A = tl.placeholder((n,), "float32", "A")
    B = tl.placeholder((n,), "float32", "B")
    C = tl.compute((n,), lambda i: A[i] * 2.0 + B[i] - (i % 3).astype("float32"), name="C")
    s = tl.create_schedule(C.op)
    if mode == "split16_vec":
        _, xi = s[C].split(C.op.axis[0], factor=16)
        s[C].vectorize(xi)
    elif mode == "split16_vec_parallel":
        xo, xi = s[C].split(C.op.axis[0], factor=16)
        s[C].vectorize(xi)
        s[C].parallel(xo)
    elif mode == "nparts":
        _, xi = s[C].split(C.op.axis[0], nparts=3)
    elif mode == "split_unroll":
        _, xi = s[C].split(C.op.axis[0], factor=4)
        s[C].unroll(xi)
    return A, B, C, tl.build(s, [A, B, C])


@pytest.mark.parametrize("mode", ["plain", "split16_vec", "split16_vec_parallel", "nparts",
                                  "split_unroll"])
def test_symbolic_extent_1d(mode):
    *_, f = _sym_kernel(mode)
    rng = _stable_rng(f"sym{mode}")
    for size in SYM_SIZES:
        a = rng.standard_normal(size).astype(np.float32)
        b = rng.standard_normal(size).astype(np.float32)
        out = _fill((size,), "float32")
        f(a, b, out)
        want = a * 2 + b - (np.arange(size) % 3).astype(np.float32)
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6, err_msg=f"n={size}")


@pytest.mark.parametrize("mode", ["plain", "split16_vec"])
def test_symbolic_extent_int64_var(mode):
    """A symbolic extent declared ``tl.var("n", "int64")``."""
    n = tl.var("n", "int64")
    A = tl.placeholder((n,), "float32", "A")
    C = tl.compute((n,), lambda i: A[i] * 2.0, name="C")
    s = tl.create_schedule(C.op)
    if mode == "split16_vec":
        _, xi = s[C].split(C.op.axis[0], factor=16)
        s[C].vectorize(xi)
    f = tl.build(s, [A, C])
    for size in SYM_SIZES:
        a = np.arange(size, dtype=np.float32)
        out = _fill((size,), "float32")
        f(a, out)
        np.testing.assert_array_equal(out, a * 2)


@pytest.mark.parametrize("mode", ["plain", "split16_vec"])
def test_symbolic_extent_zero(mode):
    *_, f = _sym_kernel(mode)
    out = np.zeros(0, np.float32)
    f(np.zeros(0, np.float32), np.zeros(0, np.float32), out)


@pytest.mark.parametrize("mode", ["plain", "split16_vec", "fuse_split_vec", "tile"])
def test_symbolic_extent_2d(mode):
    n, m = tl.var("n"), tl.var("m")
    A = tl.placeholder((n, m), "float32", "A")
    R = tl.placeholder((m,), "float32", "R")
    C = tl.compute((n, m), lambda i, j: A[i, j] * R[j] + i.astype("float32"), name="C")
    s = tl.create_schedule(C.op)
    i, j = C.op.axis
    if mode == "split16_vec":
        _, ji = s[C].split(j, factor=16)
        s[C].vectorize(ji)
    elif mode == "fuse_split_vec":
        fu = s[C].fuse(i, j)
        _, fi = s[C].split(fu, factor=16)
        s[C].vectorize(fi)
    elif mode == "tile":
        *_, ji = s[C].tile(i, j, 3, 16)
        s[C].vectorize(ji)
    f = tl.build(s, [A, R, C])
    rng = _stable_rng(f"sym2{mode}")
    for rows, cols in [(1, 1), (3, 15), (4, 16), (5, 17), (2, 10000), (17, 33)]:
        a = rng.standard_normal((rows, cols)).astype(np.float32)
        r = rng.standard_normal(cols).astype(np.float32)
        out = _fill((rows, cols), "float32")
        f(a, r, out)
        want = a * r + np.arange(rows, dtype=np.float32)[:, None]
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6, err_msg=f"{rows}x{cols}")


@pytest.mark.parametrize("mode", ["plain", "split_k", "vec_i"])
def test_symbolic_reduction(mode):
    n, m = tl.var("n"), tl.var("m")
    A = tl.placeholder((m, n), "float32", "A")
    k = tl.reduce_axis((0, n), "k")
    C = tl.compute((m,), lambda i: tl.sum(A[i, k], axis=k), name="C")
    s = tl.create_schedule(C.op)
    if mode == "split_k":
        s[C].split(k, factor=16)
    elif mode == "vec_i":
        io, ii = s[C].split(C.op.axis[0], factor=16)
        s[C].reorder(io, k, ii)
        s[C].vectorize(ii)
    f = tl.build(s, [A, C])
    rng = _stable_rng(f"symred{mode}")
    for rows, cols in [(1, 1), (15, 16), (16, 17), (17, 15), (3, 10000)]:
        a = rng.standard_normal((rows, cols)).astype(np.float32)
        out = _fill((rows,), "float32")
        f(a, out)
        np.testing.assert_allclose(out, a.sum(1), rtol=1e-4, atol=1e-4, err_msg=f"{rows}x{cols}")


# --------------------------------------------------------------------------- schedule primitives

def _run_2d(sched, shape=(37, 23), dtype="float32", bounds_check=False):
    h, w = shape
    A = tl.placeholder(shape, dtype, "A")
    B = tl.placeholder((w,), dtype, "B")
    C = tl.compute(shape, lambda i, j: A[i, j] * 3 + B[j] - (i * 2).astype(dtype), name="C")
    s = tl.create_schedule(C.op)
    sched(s, C)
    f = tl.build(s, [A, B, C], bounds_check=bounds_check)
    rng = _stable_rng(f"run2d{shape}")
    a = (rng.standard_normal(shape) * 10).astype(dtype) if dtype.startswith("float") \
        else rand_ints(rng, dtype, shape, -20, 20)
    b = (rng.standard_normal(w) * 10).astype(dtype) if dtype.startswith("float") \
        else rand_ints(rng, dtype, w, -20, 20)
    out = _fill(shape, dtype)
    f(a, b, out)
    want = (a * 3 + b - (np.arange(h) * 2)[:, None]).astype(dtype)
    if dtype.startswith("float"):
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    else:
        assert_exact(out, want)


def _split_factor(s, C):
    s[C].split(C.op.axis[1], factor=5)


def _split_nparts(s, C):
    s[C].split(C.op.axis[0], nparts=5)


def _split_both(s, C):
    s[C].split(C.op.axis[0], nparts=4)
    s[C].split(C.op.axis[1], factor=6)


def _split_twice(s, C):
    jo, ji = s[C].split(C.op.axis[1], factor=8)
    jio, jii = s[C].split(ji, factor=3)
    s[C].vectorize(jii)


def _split_factor_larger_than_extent(s, C):
    _, ji = s[C].split(C.op.axis[1], factor=32)
    s[C].vectorize(ji)


def _nparts_larger_than_extent(s, C):
    s[C].split(C.op.axis[0], nparts=50)


def _split_outer_then_vec(s, C):
    jo, ji = s[C].split(C.op.axis[1], nparts=3)
    jio, jii = s[C].split(ji, factor=4)
    s[C].vectorize(jii)


def _fuse_split_vec(s, C):
    fu = s[C].fuse(*C.op.axis)
    _, fi = s[C].split(fu, factor=8)
    s[C].vectorize(fi)


def _fuse_split_vec_parallel(s, C):
    fu = s[C].fuse(*C.op.axis)
    fo, fi = s[C].split(fu, factor=16)
    s[C].vectorize(fi)
    s[C].parallel(fo)


def _split_then_fuse(s, C):
    io, ii = s[C].split(C.op.axis[0], factor=4)
    jo, ji = s[C].split(C.op.axis[1], factor=5)
    s[C].reorder(io, jo, ii, ji)
    fu = s[C].fuse(ii, ji)
    s[C].unroll(fu)


def _tile(s, C):
    s[C].tile(C.op.axis[0], C.op.axis[1], 8, 5)


def _tile_vec(s, C):
    *_, yi = s[C].tile(C.op.axis[0], C.op.axis[1], 6, 4)
    s[C].vectorize(yi)


def _tile_vec_parallel(s, C):
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], 10, 8)
    s[C].vectorize(yi)
    s[C].parallel(xo)


def _tile_fuse_parallel(s, C):
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    fo = s[C].fuse(xo, yo)
    s[C].parallel(fo)
    s[C].unroll(xi)
    s[C].vectorize(yi)


def _reorder(s, C):
    s[C].reorder(C.op.axis[1], C.op.axis[0])


def _reorder_vec_outer(s, C):
    s[C].reorder(C.op.axis[1], C.op.axis[0])
    _, ii = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(ii)           # strided (non-contiguous) vector accesses


def _unroll_inner(s, C):
    _, ji = s[C].split(C.op.axis[1], factor=4)
    s[C].unroll(ji)


def _unroll_whole_axis(s, C):
    s[C].unroll(C.op.axis[1])


def _parallel_outer(s, C):
    s[C].parallel(C.op.axis[0])


def _parallel_inner(s, C):
    s[C].parallel(C.op.axis[1])


def _parallel_split(s, C):
    io, _ = s[C].split(C.op.axis[0], nparts=3)
    s[C].parallel(io)


def _vectorize_whole_axis(s, C):
    s[C].vectorize(C.op.axis[1])


def _pragmas(s, C):
    _, ji = s[C].split(C.op.axis[1], factor=8)
    s[C].pragma(ji, "vectorize")
    s[C].pragma(C.op.axis[0], "parallel")
    s[C].pragma(C.op.axis[0], "my_note", 3)


SCHEDULES = {f.__name__.lstrip("_"): f for f in [
    _split_factor, _split_nparts, _split_both, _split_twice, _split_factor_larger_than_extent,
    _nparts_larger_than_extent, _split_outer_then_vec, _fuse_split_vec, _fuse_split_vec_parallel,
    _split_then_fuse, _tile, _tile_vec, _tile_vec_parallel, _tile_fuse_parallel, _reorder,
    _reorder_vec_outer, _unroll_inner, _unroll_whole_axis, _parallel_outer, _parallel_inner,
    _parallel_split, _vectorize_whole_axis, _pragmas]}


@pytest.mark.parametrize("dtype", ["float32", "int32", "int8"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_primitives(name, dtype):
    _run_2d(SCHEDULES[name], dtype=dtype)


@pytest.mark.parametrize("name", ["split_factor", "fuse_split_vec", "tile_vec", "split_twice",
                                  "tile_fuse_parallel", "parallel_split"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 23), (16, 16), (17, 3)])
def test_schedule_primitives_small_shapes(name, shape):
    _run_2d(SCHEDULES[name], shape=shape)


@pytest.mark.parametrize("name", ["split_twice", "fuse_split_vec", "tile_vec",
                                  "vectorize_whole_axis", "reorder_vec_outer",
                                  "tile_vec_parallel", "split_factor", "tile", "parallel_outer"])
def test_schedule_primitives_with_bounds_check(name):
    """``bounds_check=True`` builds of (vectorized) schedules run and give the same results."""
    _run_2d(SCHEDULES[name], bounds_check=True)


@pytest.mark.parametrize("mode", ["plain", "split16_vec"])
def test_symbolic_extent_with_bounds_check(mode):
    n = tl.var("n")
    A = tl.placeholder((n,), "float32", "A")
    C = tl.compute((n,), lambda i: A[i] + 1.0, name="C")
    s = tl.create_schedule(C.op)
    if mode == "split16_vec":
        _, xi = s[C].split(C.op.axis[0], factor=16)
        s[C].vectorize(xi)
    f = tl.build(s, [A, C], bounds_check=True)
    for size in SYM_SIZES:
        a = np.arange(size, dtype=np.float32)
        out = _fill((size,), "float32")
        f(a, out)
        np.testing.assert_array_equal(out, a + 1)


@pytest.mark.parametrize("sched", ["plain", "tile_vec"])
def test_matmul_with_bounds_check(sched):
    m, kk, n = 5, 6, 19
    a = np.arange(m * kk, dtype=np.float32).reshape(m, kk) / 7
    b = np.arange(kk * n, dtype=np.float32).reshape(kk, n) / 5

    def make(A, B):
        k = tl.reduce_axis((0, kk), "k")
        return tl.compute((m, n), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    got = _reduce_build(make, [a, b], (m, n), "float32", MATMUL_SCHED[sched], bounds_check=True)
    np.testing.assert_allclose(got, a @ b, rtol=1e-5)


def test_fuse_three_axes_then_split_vectorize():
    shape = (3, 5, 7)
    A = tl.placeholder(shape, "float32", "A")
    C = tl.compute(shape, lambda i, j, k: A[i, j, k] + (i * 100 + j * 10 + k).astype("float32"),
                   name="C")
    s = tl.create_schedule(C.op)
    fu = s[C].fuse(*C.op.axis)
    fo, fi = s[C].split(fu, factor=4)
    s[C].vectorize(fi)
    s[C].parallel(fo)
    f = tl.build(s, [A, C])
    a = np.zeros(shape, np.float32)
    out = _fill(shape, "float32")
    f(a, out)
    i, j, k = np.meshgrid(*map(np.arange, shape), indexing="ij")
    np.testing.assert_array_equal(out, (i * 100 + j * 10 + k).astype(np.float32))


def test_reorder_3d_permutations():
    import itertools
    shape = (3, 4, 5)
    a = np.arange(60, dtype=np.float32).reshape(shape)
    for perm in itertools.permutations(range(3)):
        A = tl.placeholder(shape, "float32", "A")
        C = tl.compute(shape, lambda i, j, k: A[i, j, k] * 2, name="C")
        s = tl.create_schedule(C.op)
        s[C].reorder(*[C.op.axis[p] for p in perm])
        s[C].vectorize(C.op.axis[perm[-1]])
        f = tl.build(s, [A, C])
        out = _fill(shape, "float32")
        f(a, out)
        np.testing.assert_array_equal(out, a * 2, err_msg=str(perm))


def test_vectorize_reduce_axis_whose_body_does_not_read_it():
    """A vectorized reduce axis must still run every iteration of the update (here the
    summand does not depend on k: the sum is n * A[i])."""
    A = tl.placeholder((4,), "float32", "A")
    k = tl.reduce_axis((0, 8), "k")
    C = tl.compute((4,), lambda i: tl.sum(A[i], axis=k), name="C")
    s = tl.create_schedule(C.op)
    s[C].vectorize(k)
    f = tl.build(s, [A, C])
    a = np.arange(1, 5, dtype=np.float32)
    out = _fill((4,), "float32")
    f(a, out)
    np.testing.assert_array_equal(out, 8 * a)


def test_vectorize_reduce_axis():
    """Vectorizing a reduce axis (the update cannot be a vector store) stays correct."""
    rng = _stable_rng("vecred")
    a = rng.standard_normal((5, 8)).astype(np.float32)
    A = tl.placeholder((5, 8), "float32", "A")
    k = tl.reduce_axis((0, 8), "k")
    C = tl.compute((5,), lambda i: tl.sum(A[i, k], axis=k), name="C")
    s = tl.create_schedule(C.op)
    s[C].vectorize(k)
    f = tl.build(s, [A, C])
    out = _fill((5,), "float32")
    f(a, out)
    np.testing.assert_allclose(out, a.sum(1), rtol=1e-5, atol=1e-6)


def test_parallel_loop_split_by_loop_partition():
    """A parallel loop that loop partitioning cuts in two (its first part runs serially)."""
    A = tl.placeholder((8,), "float32", "A")
    C = tl.compute((8,), lambda i: A[i] + 1.0, name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], nparts=7)      # xi extent 2; 7 * 2 > 8
    xoo, xoi = s[C].split(xo, nparts=3)              # xoi extent 3; 3 * 3 > 7
    s[C].parallel(xoo)
    f = tl.build(s, [A, C])
    a = np.arange(8, dtype=np.float32)
    out = _fill((8,), "float32")
    f(a, out)
    np.testing.assert_array_equal(out, a + 1)


def test_reduce_where_reading_data_with_inexact_reduce_splits():
    """``where=`` that reads memory is only evaluated inside the split's bounds."""
    A = tl.placeholder((1,), "float32", "A")
    k = tl.reduce_axis((0, 1), "k")
    C = tl.compute((1,), lambda _: tl.sum(A[k], axis=k, where=A[k] > 0), name="C")
    s = tl.create_schedule(C.op)
    ko, _ = s[C].split(k, nparts=3)
    s[C].split(ko, nparts=2)
    f = tl.build(s, [A, C], bounds_check=True)
    out = _fill((1,), "float32")
    f(np.array([2.0], np.float32), out)
    assert out[0] == 2.0


def test_reduce_where_reading_data_with_inexact_split_larger():
    rng = _stable_rng("whereoob")
    m, n = 5, 29
    a = rng.standard_normal((m, n)).astype(np.float32)
    A = tl.placeholder((m, n), "float32", "A")
    k = tl.reduce_axis((0, n), "k")
    C = tl.compute((m,), lambda i: tl.max(A[i, k], axis=k, where=A[i, k] < 0.5), name="C")
    s = tl.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=4)
    s[C].split(ko, nparts=3)
    s[C].reorder(ki, C.op.axis[0])
    f = tl.build(s, [A, C], bounds_check=True)
    out = _fill((m,), "float32")
    f(a, out)
    np.testing.assert_array_equal(out, np.where(a < 0.5, a, np.finfo(np.float32).min).max(1))


def test_schedule_errors():
    A = tl.placeholder((8, 8), "float32", "A")
    k = tl.reduce_axis((0, 8), "k")
    C = tl.compute((8,), lambda i: tl.sum(A[i, k], axis=k), name="C")
    s = tl.create_schedule(C.op)
    with pytest.raises(tl.ScheduleError):
        s[C].split(C.op.axis[0], factor=0)
    with pytest.raises(tl.ScheduleError):
        s[C].split(C.op.axis[0])
    with pytest.raises(tl.ScheduleError):
        s[C].fuse(C.op.axis[0], k)
    with pytest.raises(tl.ScheduleError):
        s[C].parallel(k)
    io, ii = s[C].split(C.op.axis[0], factor=4)
    with pytest.raises(tl.ScheduleError):
        s[C].split(C.op.axis[0], factor=2)           # already split
    n = tl.var("n")
    B = tl.placeholder((n,), "float32", "B")
    D = tl.compute((n,), lambda i: B[i], name="D")
    s2 = tl.create_schedule(D.op)
    s2[D].vectorize(D.op.axis[0])
    with pytest.raises(tl.LoweringError):
        tl.build(s2, [B, D])


@pytest.mark.parametrize("mode", MODES)
def test_elementwise_min_max_signed_zeros_as_numpy(mode):
    """numpy returns the second operand of two zeros: maximum(-0.0, 0.0) is 0.0 and
    maximum(0.0, -0.0) is -0.0 (IEEE maximum would give 0.0 for both)."""
    a = np.array([-0.0, 0.0, -0.0, 0.0] * 4, np.float32)
    b = np.array([0.0, -0.0, -0.0, 0.0] * 4, np.float32)
    for fn, ref in ((tl.max, np.maximum), (tl.min, np.minimum)):
        got = ew(fn, [a, b], mode)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref(a, b)))
