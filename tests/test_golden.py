"""Golden IR text: the printed loop IR of a few schedules, compared with tests/golden/*.txt.

Regenerate after an intended change with ``make golden`` (``pytest tests/test_golden.py
--update-golden``) and review the diff.
"""

import os

import pytest

import tensorlang as tl
from examples.demo_matmul import matmul_schedule

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def gemm_tiled():
    """The issue's schedule, as the demo builds it: tile 32x32, split k by 4, reorder,
    vectorize, unroll, parallel."""
    s, args = matmul_schedule(1024, 1024, 1024)
    return s, args, "mm"


def tail_split_vectorized():
    """A non-divisible split: the main body is vectorized, the tail is a 4-lane vector."""
    A = tl.placeholder((100,), name="A")
    B = tl.compute((100,), lambda i: tl.exp(A[i]) + 1.0, name="B")
    s = tl.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=16)
    s[B].vectorize(xi)
    return s, [A, B], "tail"


def symbolic_rows():
    """Symbolic extent n: the main loop runs n // 8 guard-free tiles, the tail is guarded."""
    n = tl.var("n")
    A = tl.placeholder((n, 64), name="A")
    k = tl.reduce_axis((0, 64), name="k")
    R = tl.compute((n,), lambda i: tl.sum(A[i, k] * A[i, k], axis=k), name="R")
    s = tl.create_schedule(R.op)
    io, ii = s[R].split(R.op.axis[0], factor=8)
    s[R].parallel(io)
    return s, [A, R], "sumsq"


def fuse_split_padding():
    """Fuse, split, and zero padding with if_then_else."""
    H = W = 10
    A = tl.placeholder((H, W), name="A")
    P = tl.compute((H + 2, W + 2), lambda i, j: tl.if_then_else(
        tl.all(i >= 1, i <= H, j >= 1, j <= W), A[i - 1, j - 1], 0.0), name="P")
    s = tl.create_schedule(P.op)
    f = s[P].fuse(*P.op.axis)
    fo, fi = s[P].split(f, factor=8)
    s[P].unroll(fi)
    return s, [A, P], "pad"


def two_stages():
    """An intermediate tensor (allocated on the stack) feeding an output."""
    A = tl.placeholder((64,), name="A")
    T = tl.compute((64,), lambda i: A[i] * 2.0, name="T")
    B = tl.compute((64,), lambda i: T[i] + T[63 - i], name="B")
    s = tl.create_schedule(B.op)
    return s, [A, B], "two_stages"


def stencil_compute_at():
    """A 3-point stencil's producer computed at the consumer's tile: 10 elements per tile of
    8 (8 + a halo of 2), allocated inside the tile loop; the last tile is partial."""
    A = tl.placeholder((100,), name="A")
    B = tl.compute((100,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((98,), lambda i: B[i] + B[i + 1] + B[i + 2], name="C")
    s = tl.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    return s, [A, C], "stencil"


def gemm_write_cache():
    """Step 5 of the six-step GEMM at 64^3: packed B, a 32x32 write cache computed at the
    block, k split by 4 and unrolled, the cache's columns vectorized."""
    from examples.gemm_six_steps import gemm
    s, args = gemm(5, 64, 64, 64)
    return s, args, "gemm_cache"


def rfactor_parallel_sum():
    """The example's two-stage sum: 2 parallel parts, each accumulated 16 lanes wide."""
    from examples.softmax_rows import parallel_sum
    s, args = parallel_sum(1000)
    return s, args, "psum"


def softmax_at_row():
    """Row softmax: max, exponentials and sum computed at the row, 16 lanes wide."""
    from examples.softmax_rows import softmax
    s, args = softmax(8, 40)
    return s, args, "softmax"


def ops_matmul():
    """tensorlang.ops.matmul: packed B panels and an 8 x 32 register block of C per k."""
    s, args = tl.ops.matmul(64, 64, 64)
    return s, args, "matmul"


CASES = [gemm_tiled, tail_split_vectorized, symbolic_rows, fuse_split_padding, two_stages,
         stencil_compute_at, gemm_write_cache, rfactor_parallel_sum, softmax_at_row, ops_matmul]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_golden_ir(case, update_golden):
    # the operator library's schedules follow the target: the golden text is an AVX-512
    # target's default schedule on whichever CPU the tests run
    with tl.target.Target("llvm -mcpu=skylake-avx512"), tl.dispatch.untuned():
        s, args, name = case()
    check_golden(case.__name__, str(tl.lower(s, args, name=name)) + "\n", update_golden, "IR")


def check_golden(name: str, text: str, update_golden: bool, what: str) -> None:
    """``text`` must equal the golden file ``name``.txt (written, and the test failed, when
    it is missing; rewritten under ``make golden``)."""
    path = os.path.join(GOLDEN, f"{name}.txt")
    if update_golden or not os.path.exists(path):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        if not update_golden:
            pytest.fail(f"golden file {path} was missing and has been written; review and commit it")
    with open(path) as f:
        assert text == f.read(), f"{what} of {name} changed; run `make golden` if intended"


# --------------------------------------------------------------------------- graph IR

def graph_conv_block():
    """A conv block as the graph level prints it: conv -> batch_norm -> relu -> conv ->
    + residual -> relu -> max pool."""
    import numpy as np
    import tensorlang.graph as G
    rng = np.random.default_rng(0)

    def c(name, *shape):
        return G.const(rng.uniform(0.5, 1.5, shape).astype(np.float32), name)
    x = G.var("x", (1, 8, 14, 14))
    y = G.op.conv2d(x, c("w1", 16, 8, 3, 3), padding=1)
    y = G.op.relu(G.op.batch_norm(y, c("gamma", 16), c("beta", 16), c("mean", 16), c("var", 16)))
    z = G.op.relu(G.op.conv2d(y, c("w2", 16, 16, 3, 3), padding=1) + y)
    return G.Module([x], G.op.max_pool2d(z, kernel=2))


def graph_conv_block_opt3():
    """The block after ``G.optimize(mod, opt_level=3)``: batch_norm folded into the first
    conv, both convs NCHW8c with their epilogues fused, layout transforms at the ends."""
    import tensorlang.graph as G
    return G.optimize(graph_conv_block(), opt_level=3)


GRAPH_CASES = [graph_conv_block, graph_conv_block_opt3]


@pytest.mark.parametrize("case", GRAPH_CASES, ids=[c.__name__ for c in GRAPH_CASES])
def test_golden_graph_ir(case, update_golden):
    # a fixed target (the layouts AlterOpLayout picks follow its vector width) and no tuning
    # records; the memory plan's note is left out (its numbers are the planner's own tests')
    with tl.target.Target("llvm -mcpu=haswell"), tl.dispatch.untuned():
        text = "\n".join(line for line in str(case()).splitlines()
                         if not line.startswith("# memory_plan")) + "\n"
    check_golden(case.__name__, text, update_golden, "graph IR")
