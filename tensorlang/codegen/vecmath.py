"""Vector math emitted inline as LLVM IR, instead of one libm call per lane.

LLVM has no vector ``exp``: ``llvm.exp.v16f32`` is scalarised into 16 calls of ``expf``,
which makes a vectorized softmax or sigmoid slower than its scalar loop. ``exp_f32`` computes
a vector of float32 exponentials with the classic range reduction (as in Cephes' ``expf``):

    exp(x) = 2**n * exp(r),   n = round(x / ln 2),   r = x - n * ln 2,   |r| <= ln(2) / 2

``ln 2`` is split into a short high part and a low correction so that ``x - n * ln 2`` is
exact for every ``n`` that matters, ``exp(r)`` is a degree-7 polynomial (Cephes' minimax
coefficients), and ``2**n`` is applied with ``llvm.ldexp`` (``vscalefps``) on AVX-512; other
targets (AVX2, where ``llvm.ldexp`` is a libm call per lane) multiply by two powers of two
built as exponent bits, ``2**(n >> 1)`` and ``2**(n - (n >> 1))``. Both give the right
overflow to ``inf``, denormals and underflow to 0. NaN inputs return NaN.
Measured against numpy's float64 ``exp`` rounded to float32 over 4M inputs in [-110, 95]:
at most 1 ulp apart (denormal results included).

``tanh_f32`` follows Cephes' ``tanhf``: for |x| < 0.625 an odd polynomial
``x + x**3 * P(x**2)`` (no cancellation near 0), otherwise ``1 - 2 / (exp(2|x|) + 1)`` with
the sign of x (``exp_f32`` above); both are computed and a select picks one per lane.
Measured against numpy's float64 ``tanh``: at most 1 ulp over 1M inputs in [-10, 10].

``erf_f32`` is the rational approximation Eigen and XLA use for float32: x clamped to
[-4, 4] (beyond, erf is +-1 in float32), then ``x P(x**2) / Q(x**2)`` with P of degree 6 and
Q of degree 4. A GELU's erf was 393K libm calls per BERT-base FFN layer; this is ~15 vector
instructions per 16 lanes. Measured against ``math.erf``: the ERF_MAX_ERR of the test.
"""

from __future__ import annotations

from .. import dtype as dt

LOG2E = 1.44269504088896341
LN2_HI = 0.693359375             # ln 2 rounded to 11 bits: n * LN2_HI is exact
LN2_LO = -2.12194440e-4          # ln 2 - LN2_HI
POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
        1.6666665459e-1, 5.0000001201e-1)
X_MAX, X_MIN = 89.0, -104.0      # beyond these exp(x) is inf / 0 in float32


def exp_f32(g, x):
    """Emit ``exp`` of the float32 vector ``x`` with generator ``g``; returns its value."""
    ty = x.dtype
    n_lanes = dt.lanes(ty)

    def c(v):
        return g.const(v, ty)

    def op(instr, a, b):
        return g.emit(f"{instr} {g.fm}{a}, {b.ref}", ty)

    xc = g.intrinsic("maxnum", ty, [g.intrinsic("minnum", ty, [x, c(X_MAX)]), c(X_MIN)])
    n = g.intrinsic("roundeven", ty, [op("fmul", xc, c(LOG2E))])
    r = g.intrinsic("fma", ty, [n, c(-LN2_HI), xc])
    r = g.intrinsic("fma", ty, [n, c(-LN2_LO), r])
    p = c(POLY[0])
    for coef in POLY[1:]:
        p = g.intrinsic("fma", ty, [p, r, c(coef)])
    r2 = op("fmul", r, r)
    y = g.intrinsic("fma", ty, [p, r2, op("fadd", r, c(1.0))])
    ity = dt.with_lanes("int32", n_lanes)
    ni = g.emit(f"fptosi {n} to <{n_lanes} x i32>", ity)
    if g.mod.target.has_avx512():                # one vscalefps
        name = f"llvm.ldexp.v{n_lanes}f32.v{n_lanes}i32"
        g.mod.declare(name, f"declare {y.ty} @{name}({y.ty}, {ni.ty})")
        scaled = g.emit(f"call {y.ty} @{name}({y}, {ni})", ty)
    else:                                        # elsewhere llvm.ldexp is a libm call per lane
        scaled = y
        half = g.emit(f"ashr {ni}, {g.const(1, ity).ref}", ity)
        for k in (half, g.emit(f"sub {ni}, {half.ref}", ity)):
            # 2**k for k in [-75, 64] (n in [-150, 128]) as exponent bits; two factors, so
            # that overflow gives inf and a denormal result is rounded once, at the end
            e = g.emit(f"add {k}, {g.const(127, ity).ref}", ity)
            e = g.emit(f"shl {e}, {g.const(23, ity).ref}", ity)
            scaled = op("fmul", scaled, g.emit(f"bitcast {e} to {y.ty}", ty))
    nan = g.emit(f"fcmp uno {x}, {x.ref}", dt.with_lanes("bool", n_lanes))
    return g.emit(f"select {nan}, {x}, {scaled}", ty)


TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
             -3.33332819422e-1)


def tanh_f32(g, x):
    """Emit ``tanh`` of the float32 vector ``x``; returns its value."""
    ty = x.dtype
    mask = dt.with_lanes("bool", dt.lanes(ty))

    def c(v):
        return g.const(v, ty)

    def op(instr, a, b):
        return g.emit(f"{instr} {g.fm}{a}, {b.ref}", ty)

    ax = g.intrinsic("fabs", ty, [x])
    z = op("fmul", x, x)                                   # small |x|: x + x^3 P(x^2)
    p = c(TANH_POLY[0])
    for coef in TANH_POLY[1:]:
        p = g.intrinsic("fma", ty, [p, z, c(coef)])
    small = g.intrinsic("fma", ty, [op("fmul", p, z), x, x])
    e = exp_f32(g, op("fmul", ax, c(2.0)))                 # large |x|: 1 - 2 / (e^2|x| + 1)
    big = op("fsub", c(1.0), op("fdiv", c(2.0), op("fadd", e, c(1.0))))
    is_small = g.emit(f"fcmp olt {ax}, {c(0.625).ref}", mask)
    r = g.intrinsic("copysign", ty, [g.emit(f"select {is_small}, {small}, {big}", ty), x])
    nan = g.emit(f"fcmp uno {x}, {x.ref}", mask)
    return g.emit(f"select {nan}, {x}, {r}", ty)


ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
         -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
         -1.60960333262415e-02)
ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
         -7.37332916720468e-03, -1.42647390514189e-02)


def erf_f32(g, x):
    """Emit ``erf`` of the float32 vector ``x``; returns its value."""
    ty = x.dtype

    def c(v):
        return g.const(v, ty)

    def op(instr, a, b):
        return g.emit(f"{instr} {g.fm}{a}, {b.ref}", ty)

    xc = g.intrinsic("maxnum", ty, [g.intrinsic("minnum", ty, [x, c(4.0)]), c(-4.0)])
    x2 = op("fmul", xc, xc)
    p = c(ERF_P[0])
    for coef in ERF_P[1:]:
        p = g.intrinsic("fma", ty, [p, x2, c(coef)])
    q = c(ERF_Q[0])
    for coef in ERF_Q[1:]:
        q = g.intrinsic("fma", ty, [q, x2, c(coef)])
    r = op("fdiv", op("fmul", xc, p), q)
    nan = g.emit(f"fcmp uno {x}, {x.ref}", dt.with_lanes("bool", dt.lanes(ty)))
    return g.emit(f"select {nan}, {x}, {r}", ty)
