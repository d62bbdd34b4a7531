"""User errors: every mistake raises a ``tl.TensorlangError`` (which also subclasses the
builtin exception that fits) whose message names the tensor / axis / argument at fault and
what was expected.

Mistakes caught while *defining* computations, schedules and functions are checked in this
process. Mistakes caught when *calling* a compiled function run in a fresh interpreter
(``run_python``) so that a crash in native code fails the test instead of killing pytest;
each child runs many checks and prints one JSON record per check, which the tests below
look up by label.
"""

import contextlib
import functools
import json
import re

import numpy as np
import pytest

import tensorlang as tl
from tests.conftest import run_python

# the builtin exception families a user error may also belong to
BUILTIN_BASES = (ValueError, TypeError, IndexError, OSError)


@contextlib.contextmanager
def user_error(cls, match):
    """``pytest.raises(cls, match=match)`` that also checks the error is a TensorlangError
    and subclasses a builtin exception (so ``except ValueError`` code keeps working)."""
    with pytest.raises(cls, match=match) as info:
        yield info
    err = info.value
    assert isinstance(err, tl.TensorlangError), f"{type(err).__mro__} is not a TensorlangError"
    assert isinstance(err, BUILTIN_BASES), (
        f"{type(err).__name__} ({err}) subclasses none of ValueError/TypeError/IndexError/OSError: "
        f"mro {[c.__name__ for c in type(err).__mro__]}")


# =========================================================================== tensor expressions

A = tl.placeholder((10,), name="A")
A2 = tl.placeholder((4, 5), name="A2")
I = tl.placeholder((10,), dtype="int32", name="I")
K5 = tl.reduce_axis((0, 5), name="k")


def test_errors_are_tensorlang_and_builtin_subclasses():
    for cls, base in [(tl.TensorlangValueError, ValueError), (tl.TensorlangTypeError, TypeError),
                      (tl.ScheduleError, ValueError), (tl.LoweringError, ValueError),
                      (tl.ArgumentError, ValueError), (tl.BoundsError, IndexError)]:
        assert issubclass(cls, tl.TensorlangError) and issubclass(cls, base), cls


@pytest.mark.parametrize("shape, fcompute, nargs, ndim", [
    ((4, 5), lambda i: A2[i, 0], 1, 2),
    ((4,), lambda i, j: A2[i, j], 2, 1),
    ((4, 5), lambda i, j, k: A2[i, j], 3, 2),
    ((), lambda i: A[i], 1, 0),
], ids=["too_few", "too_many", "three_for_two", "scalar_shape"])
def test_compute_wrong_fcompute_arity(shape, fcompute, nargs, ndim):
    with user_error(tl.TensorlangTypeError,
                    rf"compute 'F': fcompute takes {nargs} arguments but the shape has {ndim} dim"):
        tl.compute(shape, fcompute, name="F")


def test_compute_fcompute_not_callable():
    with user_error(tl.TensorlangTypeError, r"compute 'F': fcompute must be callable"):
        tl.compute((4,), 3.0, name="F")


@pytest.mark.parametrize("fcompute, name, ndim, nidx", [
    (lambda i: A2[i], "A2", 2, 1),
    (lambda i: A2[i, i, i], "A2", 2, 3),
    (lambda i: A[i, 0], "A", 1, 2),
    (lambda i: A[()], "A", 1, 0),
], ids=["2d_with_1", "2d_with_3", "1d_with_2", "1d_with_0"])
def test_index_with_wrong_number_of_indices(fcompute, name, ndim, nidx):
    with user_error(tl.TensorlangValueError,
                    rf"tensor '{name}' has {ndim} dimensions but was indexed with {nidx} ind"):
        tl.compute((4,), fcompute, name="F")


@pytest.mark.parametrize("fcompute", [
    lambda i: A[i * 0.5],
    lambda i: A[i + 1.5],
    lambda i: A[tl.const(1.0)],
    lambda i: A[i.astype("float32")],
    lambda i: A[1.5],
    lambda i: A[2.0],
], ids=["var_times_float", "var_plus_float", "float_const", "float_cast", "float_literal",
        "integral_float_literal"])
def test_float_index(fcompute):
    with user_error(tl.TensorlangTypeError, r"tensor 'A'.*index 0 .*(integer|int)"):
        tl.compute((4,), fcompute, name="F")


def test_slice_index():
    with user_error(tl.TensorlangTypeError, r"tensor 'A2': slices are not supported"):
        tl.compute((4,), lambda i: A2[i, :], name="F")


@pytest.mark.parametrize("fcompute", [
    lambda i: A,
    lambda i: i + A,
    lambda i: A[A],
    lambda i: A + 1,
    lambda i: 2.0 * A,
    lambda i: tl.exp(A),
], ids=["bare", "var_plus_tensor", "tensor_as_index", "tensor_plus_int", "float_times_tensor",
        "exp_of_tensor"])
def test_tensor_used_as_scalar(fcompute):
    with user_error(tl.TensorlangTypeError, r"tensor 'A' used as a scalar; index it"):
        tl.compute((10,), fcompute, name="F")


@pytest.mark.parametrize("fcompute", [
    lambda i: tl.sum(A2[i, K5], axis=K5) * 2.0,
    lambda i: 1.0 + tl.sum(A2[i, K5], axis=K5),
    lambda i: tl.exp(tl.sum(A2[i, K5], axis=K5)),
    lambda i: tl.if_then_else(i < 2, tl.sum(A2[i, K5], axis=K5), 0.0),
    lambda i: tl.sum(A2[i, K5], axis=K5).astype("float64"),
    lambda i: tl.max(tl.sum(A2[i, K5], axis=K5), axis=tl.reduce_axis((0, 3), "r")),
], ids=["times", "plus", "exp", "select", "cast", "reduce_of_reduce"])
def test_reduction_nested_inside_expression(fcompute):
    with user_error(tl.TensorlangValueError, r"compute 'E': a reduction must be the whole body"):
        tl.compute((4,), fcompute, name="E")


_DATA_AXIS = tl.compute((4,), lambda i: A2[i, 0], name="D").op.axis[0]


@pytest.mark.parametrize("reducer, make_axis, shown", [
    (tl.sum, lambda i: _DATA_AXIS, r"IterVar\(i.*data\)"),
    (tl.max, lambda i: _DATA_AXIS, r"IterVar\(i.*data\)"),
    (tl.sum, lambda i: [i], r"\bi\b"),
    (tl.min, lambda i: (K5, i), r"\bi\b"),
    (tl.sum, lambda i: [3], r"3"),
    (tl.sum, lambda i: i, r"\bi\b"),   # a loop variable passed as axis=
], ids=["data_itervar", "data_itervar_max", "loop_var_in_list", "loop_var_in_tuple",
        "int_in_list", "loop_var_keyword"])
def test_non_reduce_axis_as_reduction_axis(reducer, make_axis, shown):
    name = reducer.__name__
    with user_error(tl.TensorlangTypeError, rf"{name}: axis {shown}.* is not a reduce_axis"):
        tl.compute((4,), lambda i: reducer(A2[i, 0], axis=make_axis(i)), name="F")


def test_reduction_without_axis():
    with user_error(tl.TensorlangValueError, r"sum: pass axis="):
        tl.sum(A[0])
    with user_error(tl.TensorlangValueError, r"sum: needs at least one reduce axis"):
        tl.sum(A[0], axis=[])


def test_reduction_bad_where():
    with user_error(tl.TensorlangTypeError, r"sum\(where=\.\.\.\) expects bool conditions, got `k`"):
        tl.compute((4,), lambda i: tl.sum(A2[i, K5], axis=K5, where=K5), name="F")


@pytest.mark.parametrize("dom", [5, (0, 1, 2), "0:5", None])
def test_reduce_axis_bad_domain(dom):
    with user_error(tl.TensorlangTypeError, r"reduce_axis 'kk': dom must be \(lo, hi\)"):
        tl.reduce_axis(dom, name="kk")


@pytest.mark.parametrize("make", [
    lambda d: tl.placeholder((3,), dtype=d, name="G"),
    lambda d: tl.var("n", d),
    lambda d: tl.const(1, d),
    lambda d: A[0].astype(d),
    lambda d: tl.max_value(d),
], ids=["placeholder", "var", "const", "astype", "max_value"])
@pytest.mark.parametrize("dtype", ["fp32", "float", "bfloat16", "int", "float32x4", 5, "Float32"])
def test_bad_dtype(make, dtype):
    with user_error(tl.TensorlangTypeError,
                    rf"unsupported dtype {dtype!r}; expected one of .*int32.*float32"):
        make(dtype)


def test_bad_placeholder_dtype_names_the_placeholder():
    with user_error(tl.TensorlangTypeError, r"placeholder 'G'.*unsupported dtype 'fp32'"):
        tl.placeholder((3,), dtype="fp32", name="G")


@pytest.mark.parametrize("shape, cls, match", [
    ((-1,), tl.TensorlangValueError, r"placeholder 'G': shape\[0\] = -1 is negative"),
    ((3, 2.5), tl.TensorlangTypeError, r"placeholder 'G': shape\[1\] = 2.5 is not an int"),
    ((True,), tl.TensorlangTypeError, r"placeholder 'G': shape\[0\] = True is not an int"),
    ("abc", tl.TensorlangTypeError, r"placeholder 'G': shape must be a tuple"),
    ((tl.var("m", "float32"),), tl.TensorlangTypeError,
     r"placeholder 'G': shape\[0\] `m` must be an integer"),
], ids=["negative", "float", "bool", "string", "float_var"])
def test_bad_shape(shape, cls, match):
    with user_error(cls, match):
        tl.placeholder(shape, name="G")


def test_const_out_of_range():
    with user_error(tl.TensorlangValueError, r"constant 300 does not fit in int8 \[-128, 127\]"):
        tl.const(300, "int8")
    with user_error(tl.TensorlangValueError, r"constant 1.5 is not an integer but dtype is int32"):
        tl.const(1.5, "int32")


@pytest.mark.parametrize("fn", [
    lambda: bool(tl.var("n") < 3),
    lambda: tl.compute((10,), lambda i: A[i] if A[i] > 0 else 0.0, name="F"),
    lambda: tl.compute((10,), lambda i: max(A[i], 0.0), name="F"),
    lambda: tl.compute((10,), lambda i: A[i] > 0 and A[i] < 1, name="F"),
    lambda: tl.compute((10,), lambda i: 0.0 if i < 5 else A[i], name="F"),
    lambda: tl.compute((10,), lambda i: not A[i] > 0, name="F"),
], ids=["bool_call", "if_expression", "builtin_max", "python_and", "if_on_index", "python_not"])
def test_bool_of_symbolic_expression(fn):
    with user_error(tl.TensorlangTypeError,
                    r"symbolic expression `.*` has no truth value; use tl.if_then_else"):
        fn()


@pytest.mark.parametrize("fname", ["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf",
                                   "floor", "ceil"])
def test_float_math_on_int_expression(fname):
    fn = getattr(tl, fname)
    with user_error(tl.TensorlangTypeError,
                    rf"tl.{fname} expects a float expression, got `i` of dtype int32; .*astype"):
        tl.compute((10,), lambda i: fn(i), name="F")
    with user_error(tl.TensorlangTypeError,
                    rf"tl.{fname} expects a float expression, got `I\[i\]` of dtype int32"):
        tl.compute((10,), lambda i: fn(I[i]), name="F")


@pytest.mark.parametrize("fn, match", [
    (lambda i: tl.if_then_else(I[i], 1.0, 0.0), r"tl.if_then_else expects bool conditions, got `I\[i\]`"),
    (lambda i: tl.all(i < 3, I[i]), r"tl.all expects bool conditions, got `I\[i\]`"),
    (lambda i: tl.any(A[i]), r"tl.any expects bool conditions, got `A\[i\]` of dtype float32"),
    (lambda i: A[i] & A[i], r"operator 'and' needs bool or integer operands, got float32"),
    (lambda i: A[i] ^ 1, r"operator 'xor' needs bool or integer operands, got float32"),
    (lambda i: ~A[i], r"logical not needs a bool expression, got float32"),
    (lambda i: tl.truncdiv(A[i], 2.0), r"truncdiv needs integers, got float32"),
], ids=["select_int_cond", "all_int", "any_float", "and_float", "xor_float", "not_float",
        "truncdiv_float"])
def test_expression_type_errors(fn, match):
    with user_error(tl.TensorlangTypeError, match):
        tl.compute((10,), fn, name="F")


# =========================================================================== schedules

@pytest.fixture
def sched():
    """B[i] = sum_k X[i, k] and C[i, j] = X[i, j] * 2 in one schedule (fresh per test)."""
    X = tl.placeholder((64, 32), name="X")
    k = tl.reduce_axis((0, 32), name="k")
    B = tl.compute((64,), lambda i: tl.sum(X[i, k], axis=k), name="B")
    C = tl.compute((64, 32), lambda i, j: X[i, j] * 2.0, name="C")
    s = tl.create_schedule([B.op, C.op])
    return s, X, B, C, k


def test_split_already_split_axis(sched):
    s, X, B, C, k = sched
    i, j = C.op.axis
    s[C].split(i, factor=8)
    with user_error(tl.ScheduleError, r"stage 'C'.split: axis 'i' was already split or fused; "
                                      r".*current loops: i.outer, i.inner, j"):
        s[C].split(i, factor=2)
    fused = s[C].fuse(*s[C].leaf_iter_vars[1:])        # i.inner, j
    with user_error(tl.ScheduleError, r"stage 'C'.vectorized: axis 'j' was already split or fused"):
        s[C].vectorize(j)
    s[C].vectorize(fused)


def test_axis_of_another_stage_names_owner(sched):
    s, X, B, C, k = sched
    with user_error(tl.ScheduleError, r"stage 'B'.split: axis 'j' is not an axis of this stage; "
                                      r"it belongs to stage 'C' \(this stage's loops: i, k\)"):
        s[B].split(C.op.axis[1], factor=2)
    with user_error(tl.ScheduleError, r"stage 'C'.parallel: axis 'k' is not an axis of this stage; "
                                      r"it belongs to stage 'B'"):
        s[C].parallel(k)


def test_axis_of_no_stage(sched):
    s, X, B, C, k = sched
    other = tl.compute((3,), lambda q: X[q, 0], name="Other")
    with user_error(tl.ScheduleError, r"stage 'C'.unrolled: axis 'q' is not an axis of this stage; "
                                      r"it belongs to no stage of this schedule"):
        s[C].unroll(other.op.axis[0])


@pytest.mark.parametrize("kw, match", [
    (dict(factor=0), r"factor must be positive, got 0"),
    (dict(factor=-4), r"factor must be positive, got -4"),
    (dict(nparts=0), r"nparts must be positive, got 0"),
    (dict(nparts=-1), r"nparts must be positive, got -1"),
])
def test_split_non_positive(sched, kw, match):
    s, X, B, C, k = sched
    with user_error(tl.ScheduleError, rf"stage 'C'.split: {match}"):
        s[C].split(C.op.axis[0], **kw)


@pytest.mark.parametrize("kw, what", [
    (dict(factor=2.5), r"factor must be an int, got 2.5"),
    (dict(factor=True), r"factor must be an int, got True"),
    (dict(nparts="4"), r"nparts must be an int, got '4'"),
])
def test_split_non_int_factor(sched, kw, what):
    s, X, B, C, k = sched
    with user_error(tl.TensorlangTypeError, rf"stage 'C'.split: {what}"):
        s[C].split(C.op.axis[0], **kw)


@pytest.mark.parametrize("kw", [dict(), dict(factor=2, nparts=2)], ids=["neither", "both"])
def test_split_needs_exactly_one_of_factor_nparts(sched, kw):
    s, X, B, C, k = sched
    with user_error(tl.ScheduleError, r"stage 'C'.split\(j\): give exactly one of factor= or nparts="):
        s[C].split(C.op.axis[1], **kw)


def test_split_non_axis(sched):
    s, X, B, C, k = sched
    with user_error(tl.TensorlangTypeError, r"stage 'C'.split: expected an axis \(IterVar\), got int 0"):
        s[C].split(0, factor=2)


def test_reorder_with_axis_of_another_stage(sched):
    s, X, B, C, k = sched
    (i,) = B.op.axis
    io, ii = s[B].split(i, factor=8)
    with user_error(tl.ScheduleError, r"stage 'B'.reorder: axis 'i' is not an axis of this stage; "
                                      r"it belongs to stage 'C' \(this stage's loops: i.outer, i.inner, k\)"):
        s[B].reorder(ii, io, C.op.axis[0])
    assert [iv.name for iv in s[B].leaf_iter_vars] == ["i.outer", "i.inner", "k"]


@pytest.mark.parametrize("as_list", [False, True])
def test_reorder_duplicate_axis(sched, as_list):
    s, X, B, C, k = sched
    i, j = C.op.axis
    args = (j, i, j)
    with user_error(tl.ScheduleError, r"stage 'C'.reorder: axis 'j' given twice"):
        s[C].reorder(list(args)) if as_list else s[C].reorder(*args)
    assert [iv.name for iv in s[C].leaf_iter_vars] == ["i", "j"]


def test_fuse_non_adjacent(sched):
    s, X, B, C, k = sched
    (i,) = B.op.axis
    io, ii = s[B].split(i, factor=8)
    with user_error(tl.ScheduleError, r"stage 'B'.fuse: axes \['i.outer', 'k'\] must be adjacent "
                                      r"loops given outermost first \(current loops: i.outer, i.inner, k\)"):
        s[B].fuse(io, k)
    i, j = C.op.axis
    with user_error(tl.ScheduleError, r"stage 'C'.fuse: axes \['j', 'i'\] must be adjacent loops "
                                      r"given outermost first"):
        s[C].fuse(j, i)


def test_fuse_reduce_and_data_axes(sched):
    s, X, B, C, k = sched
    (i,) = B.op.axis
    with user_error(tl.ScheduleError, r"stage 'B'.fuse: cannot fuse reduction and data-parallel "
                                      r"axes \(i:data, k:reduce\)"):
        s[B].fuse(i, k)


def test_fuse_nothing(sched):
    s, X, B, C, k = sched
    with user_error(tl.ScheduleError, r"stage 'C'.fuse: needs at least one axis"):
        s[C].fuse()


@pytest.mark.parametrize("how", ["primitive", "pragma", "split_outer"])
def test_parallel_on_reduction_axis(sched, how):
    s, X, B, C, k = sched
    name = "k"
    if how == "split_outer":
        k, _ = s[B].split(k, factor=4)
        name = "k.outer"
    with user_error(tl.ScheduleError, rf"stage 'B'.parallel: '{name}' is a reduction axis"):
        if how == "pragma":
            s[B].pragma(k, "parallel")
        else:
            s[B].parallel(k)


def test_pragma_name_not_string(sched):
    s, X, B, C, k = sched
    with user_error(tl.TensorlangTypeError, r"stage 'C'.pragma: name must be a string"):
        s[C].pragma(C.op.axis[0], 3)


def _symbolic_stage():
    n = tl.var("n")
    X = tl.placeholder((n,), name="X")
    Y = tl.compute((n,), lambda i: X[i] + 1.0, name="Y")
    return tl.create_schedule(Y.op), X, Y


@pytest.mark.parametrize("kind", ["vectorize", "unroll"])
@pytest.mark.parametrize("which", ["whole_axis", "nparts_inner", "symbolic_factor_inner"])
@pytest.mark.parametrize("driver", ["lower", "build"])
def test_non_constant_extent_vectorize_unroll(kind, which, driver):
    s, X, Y = _symbolic_stage()
    (i,) = Y.op.axis
    if which == "whole_axis":
        target, ext = i, "n"
    elif which == "nparts_inner":
        _, target = s[Y].split(i, nparts=4)
        ext = r"\(n \+ 3\) // 4"
    else:
        m = tl.var("m")
        _, target = s[Y].split(i, factor=m)
        ext = "m"
    getattr(s[Y], kind)(target)          # accepted now: the extent is known only at lowering
    with user_error(tl.LoweringError, rf"stage 'Y': cannot {kind} axis '{target.name}' of "
                                      rf"non-constant extent `{ext}`; split it by a constant"):
        if driver == "lower":
            tl.lower(s, [X, Y])
        else:
            tl.build(s, [X, Y])


def test_vectorize_constant_split_of_symbolic_axis_is_fine():
    s, X, Y = _symbolic_stage()
    _, xi = s[Y].split(Y.op.axis[0], factor=8)
    s[Y].vectorize(xi)
    tl.lower(s, [X, Y])


def test_schedule_lookup_of_foreign_tensor(sched):
    s, X, B, C, k = sched
    D = tl.compute((4,), lambda i: X[i, 0], name="D")
    with user_error(tl.ScheduleError, r"tensor 'D' is not part of this schedule \(its outputs: B, C\)"):
        s[D]
    with user_error(tl.ScheduleError, r"tensor 'D' is not part of this schedule"):
        s[D.op]
    with user_error(tl.TensorlangTypeError, r"schedule\[\.\.\.\] expects a tensor or an operation, got 3"):
        s[3]


def test_create_schedule_errors():
    with user_error(tl.ScheduleError, r"create_schedule: 'A' is a placeholder"):
        tl.create_schedule(A.op)
    with user_error(tl.ScheduleError, r"create_schedule: 'A' is a placeholder"):
        tl.create_schedule(A)
    with user_error(tl.TensorlangTypeError, r"create_schedule expects operations \(T.op\), got 3"):
        tl.create_schedule([3])


# =========================================================================== lower / build

@pytest.fixture
def rowsum():
    X = tl.placeholder((8, 4), name="X")
    W = tl.placeholder((8,), name="W")
    k = tl.reduce_axis((0, 4), name="k")
    S = tl.compute((8,), lambda i: tl.sum(X[i, k] * W[i], axis=k), name="S")
    return tl.create_schedule(S.op), X, W, S


@pytest.mark.parametrize("driver", ["lower", "build"])
def test_placeholder_read_but_not_in_args(rowsum, driver):
    s, X, W, S = rowsum
    with user_error(tl.LoweringError, r"placeholder 'W' \(read by S\) is not in args; add it"):
        getattr(tl, driver)(s, [X, S])


@pytest.mark.parametrize("args", ["X_twice", "S_twice"])
@pytest.mark.parametrize("driver", ["lower", "build"])
def test_arg_listed_twice(rowsum, args, driver):
    s, X, W, S = rowsum
    lst, name = ([X, W, S, X], "X") if args == "X_twice" else ([X, W, S, S], "S")
    with user_error(tl.TensorlangError, rf"args: tensor '{name}' is listed twice"):
        getattr(tl, driver)(s, lst)


@pytest.mark.parametrize("bad, match", [
    (3, r"args: expected tensors, got int 3"),
    ("S", r"args: expected tensors, got str 'S'"),
    (np.zeros(3), r"args: expected tensors, got ndarray"),
    (None, r"args: expected tensors, got NoneType"),
    (tl.var("n"), r"args: 'n' is a variable; pass only tensors"),
], ids=["int", "str", "ndarray", "None", "var"])
@pytest.mark.parametrize("driver", ["lower", "build"])
def test_non_tensor_args(rowsum, bad, match, driver):
    s, X, W, S = rowsum
    with user_error(tl.TensorlangTypeError, match):
        getattr(tl, driver)(s, [X, W, bad, S])


@pytest.mark.parametrize("args", ["tensor", "empty", "tuple_empty", "dict"])
def test_args_not_a_list(rowsum, args):
    s, X, W, S = rowsum
    value = {"tensor": S, "empty": [], "tuple_empty": (), "dict": {"S": S}}[args]
    with user_error(tl.TensorlangTypeError, r"lower/build: args must be a non-empty list of the tensors"):
        tl.lower(s, value)


def test_build_without_args(rowsum):
    s, X, W, S = rowsum
    with user_error(tl.TensorlangTypeError, r"build: pass the argument tensors"):
        tl.build(s)


def test_arg_not_in_schedule(rowsum):
    s, X, W, S = rowsum
    other = tl.placeholder((3,), name="Other")           # an unused input is allowed (as in TVM)
    assert [b.name for b in tl.lower(s, [X, W, S, other]).params][-1] == "Other"
    foreign = tl.compute((3,), lambda i: other[i] * 2.0, name="Foreign")
    with user_error(tl.LoweringError, r"args: tensor 'Foreign' is not computed by this schedule"):
        tl.lower(s, [X, W, S, foreign])


@pytest.mark.parametrize("what", ["tensor", "list", "None"])
@pytest.mark.parametrize("driver", ["lower", "build"])
def test_not_a_schedule(rowsum, what, driver):
    s, X, W, S = rowsum
    value = {"tensor": S, "list": [s], "None": None}[what]
    with user_error(tl.TensorlangTypeError, r"(lower|build) expects a Schedule"):
        getattr(tl, driver)(value, [X, W, S])


@pytest.mark.parametrize("name", ["1bad", "my func", "", "a-b", 7])
def test_bad_function_name(rowsum, name):
    s, X, W, S = rowsum
    with user_error(tl.TensorlangTypeError, rf"function name must be an identifier, got {name!r}"):
        tl.build(s, [X, W, S], name=name)


def test_unbound_variable():
    m = tl.var("m")
    E = tl.compute((10,), lambda i: A[i] + m.astype("float32"), name="E")
    with user_error(tl.LoweringError, r"variable 'm' is used but not bound: it must appear as a "
                                      r"dimension of one of the arguments' shapes"):
        tl.lower(tl.create_schedule(E.op), [A, E])


@pytest.mark.parametrize("target, match", [
    ("cuda", r"unsupported target 'cuda'; this compiler targets CPUs"),
    ("", r"unsupported target ''"),
    ("llvm-x86", r"unsupported target 'llvm-x86'"),
    ("llvm -mcpu", r"target 'llvm -mcpu': unknown option '-mcpu' \(expected -mcpu=\.\.\. or -mattr="),
    ("llvm -device=gpu", r"target 'llvm -device=gpu': unknown option '-device=gpu'"),
    (3, r"target must be a string like 'llvm', got 3"),
    (["llvm"], r"target must be a string like 'llvm', got \['llvm'\]"),
])
def test_bad_target_string(rowsum, target, match):
    s, X, W, S = rowsum
    with user_error(tl.TensorlangValueError, match):
        tl.build(s, [X, W, S], target=target)


_TARGET_CHILD = """
import tensorlang as tl
X = tl.placeholder((8,), name="X")
Y = tl.compute((8,), lambda i: X[i] * 2.0, name="Y")
try:
    tl.build(tl.create_schedule(Y.op), [X, Y], target={target!r})
except tl.TensorlangValueError as e:
    print("RAISED", type(e).__name__, e)
else:
    print("NO ERROR")
"""


@pytest.mark.parametrize("target, fragment", [
    ("llvm -mcpu=notacpu", "notacpu"),
    ("llvm -mattr=+nosuchfeature", "nosuchfeature"),
], ids=["unknown_cpu", "unknown_feature"])
def test_unknown_cpu_or_feature_in_target(target, fragment):
    """LLVM may abort on an unknown CPU, so this runs in a child process."""
    r = run_python(_TARGET_CHILD.format(target=target))
    assert r.returncode == 0, f"child died (rc={r.returncode}):\n{r.stdout}\n{r.stderr[-3000:]}"
    assert "RAISED" in r.stdout and fragment in r.stdout, r.stdout + r.stderr[-2000:]


# =========================================================================== modules

def _small_module():
    X = tl.placeholder((8,), name="X")
    Y = tl.compute((8,), lambda i: X[i] * 2.0, name="Y")
    return tl.build(tl.create_schedule(Y.op), [X, Y], name="double")


def test_load_module_missing_file(tmp_path):
    path = str(tmp_path / "missing.so")
    with user_error(tl.TensorlangError, r"load_module: no such file '.*missing\.so'"):
        tl.load_module(path)


@pytest.mark.parametrize("kind", ["text_file", "empty_file", "directory", "other_shared_library"])
def test_load_module_not_a_tensorlang_library(tmp_path, kind):
    if kind == "text_file":
        path = tmp_path / "kernel.so"
        path.write_text("this is not a shared library\n")
    elif kind == "empty_file":
        path = tmp_path / "kernel.so"
        path.write_bytes(b"")
    elif kind == "directory":
        path = tmp_path / "kernel.so"
        path.mkdir()
    else:
        import _ctypes   # a real shared library, already loaded, without tensorlang_metadata
        path = _ctypes.__file__
    with user_error(tl.TensorlangError, r"load_module: '.*' is not a tensorlang library"):
        tl.load_module(str(path))


@pytest.mark.parametrize("path", [None, 3])
def test_load_module_bad_path_type(path):
    with user_error(tl.TensorlangError, rf"load_module: (no such file|expected a path).*{path!r}"):
        tl.load_module(path)


@pytest.fixture(scope="module")
def small_module():
    return _small_module()


def test_get_source_bad_format(small_module):
    with user_error(tl.TensorlangError, r"get_source: format 'ptx' not available; have .*'ll'.*'tir'"):
        small_module.get_source("ptx")


def test_export_library_into_missing_directory(small_module, tmp_path):
    with user_error(tl.TensorlangError, r"(?s)export_library: .*no_such_dir"):
        small_module.export_library(str(tmp_path / "no_such_dir" / "k.so"))


@pytest.mark.parametrize("kw, what", [(dict(number=0), "number"), (dict(repeat=-1), "repeat"),
                                      (dict(number=1.5), "number"), (dict(repeat=True), "repeat")])
def test_time_evaluator_bad_counts(small_module, kw, what):
    with user_error(tl.ArgumentError, rf"time_evaluator: {what} must be a positive int, got "):
        small_module.time_evaluator(**kw)


# =========================================================================== call time (child)

# run in child interpreters: each check prints one JSON record
_CHILD_PRELUDE = r'''
import json, os, tempfile
import numpy as np
import tensorlang as tl

def check(label, fn):
    try:
        fn()
    except Exception as e:
        rec = {"label": label, "error": type(e).__name__,
               "bases": [c.__name__ for c in type(e).__mro__], "message": str(e)}
    else:
        rec = {"label": label, "error": None}
    print("@@" + json.dumps(rec), flush=True)
'''

_CALL_CHILD = _CHILD_PRELUDE + r'''
def f32(*shape):
    return np.ones(shape, dtype="float32")

n = tl.var("n")
A = tl.placeholder((n,), name="A")
B = tl.placeholder((n,), name="B")
C = tl.compute((n,), lambda i: A[i] + B[i], name="C")
vadd = tl.build(tl.create_schedule(C.op), [A, B, C], name="vadd")

M = tl.placeholder((3, 4), name="M")
M2 = tl.compute((3, 4), lambda i, j: M[i, j] * 2.0, name="M2")
scale = tl.build(tl.create_schedule(M2.op), [M, M2], name="scale")

a, b = f32(8), f32(8)
check("too_few_args", lambda: vadd(a, b))
check("too_many_args", lambda: vadd(a, b, f32(8), f32(8)))
check("no_args", lambda: vadd())
check("list_not_ndarray", lambda: vadd([1.0] * 8, b, f32(8)))
check("numpy_scalar_not_ndarray", lambda: vadd(a, np.float32(1), f32(8)))
check("none_output", lambda: vadd(a, b, None))
check("wrong_dtype_input", lambda: vadd(a, b.astype("float64"), f32(8)))
check("wrong_dtype_output", lambda: vadd(a, b, np.zeros(8, "int32")))
check("wrong_shape_input", lambda: scale(f32(4, 3), f32(3, 4)))
check("wrong_shape_output", lambda: scale(f32(3, 4), f32(3, 5)))
check("wrong_ndim_2d_for_1d", lambda: vadd(f32(2, 4), b, f32(8)))
check("wrong_ndim_0d", lambda: vadd(a, np.array(1.0, "float32"), f32(8)))
check("wrong_ndim_1d_for_2d", lambda: scale(f32(12), f32(3, 4)))
check("transposed_view_input", lambda: scale(f32(4, 3).T, f32(3, 4)))
check("fortran_order_output", lambda: scale(f32(3, 4), np.asfortranarray(f32(3, 4))))
check("strided_slice_input", lambda: vadd(f32(16)[::2], b, f32(8)))
check("column_slice_input", lambda: scale(f32(3, 8)[:, :4], f32(3, 4)))
ro = f32(8); ro.flags.writeable = False
check("read_only_output", lambda: vadd(a, b, ro))
check("read_only_inputs_allowed", lambda: vadd(ro, ro, f32(8)))
check("inputs_may_alias", lambda: vadd(a, a, f32(8)))
x = np.arange(8, dtype="float32")
check("output_is_input_A", lambda: vadd(x, b, x))
check("output_is_input_B", lambda: vadd(a, x, x))
y = np.arange(16, dtype="float32")
check("output_overlaps_input_view", lambda: vadd(a, y[:8], y[4:12]))
check("inconsistent_symbolic_sizes", lambda: vadd(f32(5), f32(6), f32(5)))
check("inconsistent_output_size", lambda: vadd(f32(5), f32(5), f32(6)))

n8 = tl.var("n8", "int8")
P8 = tl.placeholder((n8,), name="P8")
Q8 = tl.compute((n8,), lambda i: P8[i] + 1.0, name="Q8")
small = tl.build(tl.create_schedule(Q8.op), [P8, Q8], name="small")
check("size_overflows_shape_var", lambda: small(f32(200), f32(200)))

def two_vars_same_name():
    n1, n2 = tl.var("n"), tl.var("n")
    P = tl.placeholder((n1,), name="P")
    Q = tl.placeholder((n2,), name="Q")
    R = tl.compute((n1,), lambda i: P[i] * 2.0, name="R")
    S = tl.compute((n2,), lambda i: Q[i] * 3.0, name="S")
    try:
        g = tl.build(tl.create_schedule([R.op, S.op]), [P, Q, R, S], name="two")
    except tl.TensorlangError as e:
        if "'n'" in str(e):
            return          # rejecting ambiguous names at build time is acceptable too
        raise
    p, q = np.arange(5, dtype="float32"), np.arange(6, dtype="float32")
    r, s = np.zeros(5, "float32"), np.zeros(6, "float32")
    g(p, q, r, s)           # two different variables: independent sizes
    assert (r == 2 * p).all() and (s == 3 * q).all(), (r, s)
check("two_vars_same_name_are_independent", two_vars_same_name)

# a module exported and loaded back checks its arguments in the same way
tmp = tempfile.TemporaryDirectory()      # removed at exit
lib = os.path.join(tmp.name, "scale.so")
scale.export_library(lib)
loaded = tl.load_module(lib)
check("loaded_wrong_shape", lambda: loaded(f32(4, 3), f32(3, 4)))
check("loaded_wrong_dtype", lambda: loaded(np.ones((3, 4)), f32(3, 4)))
check("loaded_not_contiguous", lambda: loaded(f32(4, 3).T, f32(3, 4)))
check("loaded_wrong_count", lambda: loaded(f32(3, 4)))
check("loaded_read_only_output", lambda: loaded(f32(3, 4), np.broadcast_to(f32(1, 4), (3, 4))))

# after all those rejected calls, the functions still work
def still_works():
    c = np.zeros(8, "float32")
    vadd(np.arange(8, dtype="float32"), np.full(8, 2, "float32"), c)
    assert (c == np.arange(8) + 2).all(), c
    out = np.zeros((3, 4), "float32")
    loaded(np.arange(12, dtype="float32").reshape(3, 4), out)
    assert (out == 2 * np.arange(12).reshape(3, 4)).all(), out
check("still_works", still_works)
print("@@END", flush=True)
'''

_BOUNDS_CHILD = _CHILD_PRELUDE + r'''
def build(outs, args, name, **kw):
    s = tl.create_schedule([t.op for t in outs])
    return tl.build(s, args, name=name, bounds_check=True, **kw)

P = tl.placeholder((10,), name="P")
O = tl.compute((10,), lambda i: P[i + 1], name="O")
shift = build([O], [P, O], "shift")
p, o = np.arange(10, dtype="float32"), np.zeros(10, "float32")
check("read_past_end", lambda: shift(p, o))
check("read_past_end_again", lambda: shift(p, o))

O2 = tl.compute((10,), lambda i: P[i - 1], name="O2")
back = build([O2], [P, O2], "back")
check("negative_index", lambda: back(p, o))

k = tl.reduce_axis((0, 4), name="k")
W = tl.compute((10,), lambda i: tl.sum(P[i + k], axis=k), name="W")
window = build([W], [P, W], "window")
check("in_reduction", lambda: window(p, o))

T = tl.compute((10,), lambda i: P[i] * 2.0, name="T")
U = tl.compute((10,), lambda i: T[i + 3], name="U")
inter = build([U], [P, U], "inter")
check("intermediate_buffer", lambda: inter(p, o))

# out of bounds or not depending on the sizes given at call time
n, m = tl.var("n"), tl.var("m")
Q = tl.placeholder((n,), name="Q")
R = tl.compute((m,), lambda i: Q[i * 2], name="R")
every2 = build([R], [Q, R], "every2")
check("symbolic_sizes", lambda: every2(np.arange(10, dtype="float32"), np.zeros(8, "float32")))

def call_after_oob():
    q = np.arange(20, dtype="float32")
    r = np.zeros(8, "float32")
    every2(q, r)
    assert (r == q[::2][:8]).all(), r
    o2 = np.zeros(10, "float32")
    try:
        shift(p, o2)
    except tl.BoundsError:
        pass
    else:
        raise AssertionError("shift stopped raising BoundsError")
    c = np.zeros(10, "float32")
    def ok_kernel():
        Z = tl.compute((10,), lambda i: P[9 - i], name="Z")
        return build([Z], [P, Z], "rev")
    ok_kernel()(p, c)
    assert (c == p[::-1]).all(), c
check("call_after_oob", call_after_oob)

def parallel_oob():
    R2 = tl.compute((m,), lambda i: Q[i * 2], name="R2")
    s = tl.create_schedule(R2.op)
    xo, xi = s[R2].split(R2.op.axis[0], factor=4)
    s[R2].parallel(xo)
    g = tl.build(s, [Q, R2], name="par", bounds_check=True)
    g(np.ones(1000, "float32"), np.zeros(1000, "float32"))
check("parallel_loop", parallel_oob)

def vectorized_oob():
    V = tl.compute((16,), lambda i: P[i + 1], name="V")
    s = tl.create_schedule(V.op)
    _, xi = s[V].split(V.op.axis[0], factor=8)
    s[V].vectorize(xi)
    g = tl.build(s, [P, V], name="vec", bounds_check=True)
    g(p, np.zeros(16, "float32"))
check("vectorized_loop", vectorized_oob)
print("@@END", flush=True)
'''


@functools.lru_cache(maxsize=None)
def _child_records(which: str):
    code = {"call": _CALL_CHILD, "bounds": _BOUNDS_CHILD}[which]
    r = run_python(code)
    records = {}
    for line in r.stdout.splitlines():
        if line.startswith("@@{"):
            rec = json.loads(line[2:])
            records[rec["label"]] = rec
    return r, records


def _expect(which, label, error, match):
    r, records = _child_records(which)
    tail = f"\n--- child stdout tail:\n{r.stdout[-1500:]}\n--- child stderr tail:\n{r.stderr[-3000:]}"
    assert r.returncode == 0, f"child process died with rc={r.returncode}{tail}"
    assert "@@END" in r.stdout, f"child did not finish{tail}"
    assert label in records, f"no record for {label!r}{tail}"
    rec = records[label]
    if error is None:
        assert rec["error"] is None, f"{label}: unexpected {rec['error']}: {rec.get('message')}"
        return
    assert rec["error"] is not None, f"{label}: no error was raised"
    assert error in rec["bases"], f"{label}: expected {error}, got {rec['error']}: {rec['message']}"
    assert "TensorlangError" in rec["bases"], rec
    assert any(b in rec["bases"] for b in ("ValueError", "TypeError", "IndexError")), rec
    assert re.search(match, rec["message"]), (
        f"{label}: message {rec['message']!r} does not match {match!r}")


CALL_CASES = [
    ("too_few_args", "ArgumentError", r"^vadd: expected 3 arguments \(A, B, C\), got 2$"),
    ("too_many_args", "ArgumentError", r"^vadd: expected 3 arguments \(A, B, C\), got 4$"),
    ("no_args", "ArgumentError", r"expected 3 arguments .*got 0"),
    ("list_not_ndarray", "TensorlangTypeError", r"vadd: argument 'A' must be a numpy\.ndarray, got list"),
    ("numpy_scalar_not_ndarray", "TensorlangTypeError", r"argument 'B' must be a numpy\.ndarray, got float32"),
    ("none_output", "TensorlangTypeError", r"argument 'C' must be a numpy\.ndarray, got NoneType"),
    ("wrong_dtype_input", "TensorlangTypeError", r"argument 'B' has dtype float64, expected float32"),
    ("wrong_dtype_output", "TensorlangTypeError", r"argument 'C' has dtype int32, expected float32"),
    ("wrong_shape_input", "ArgumentError", r"scale: argument 'M' has shape \[4, 3\], expected \[3, 4\]"),
    ("wrong_shape_output", "ArgumentError",
     r"argument 'M2' has shape \[3, 5\], expected \[3, 4\] \(dimension 1\)"),
    ("wrong_ndim_2d_for_1d", "ArgumentError", r"argument 'A' has 2 dimensions, expected 1"),
    ("wrong_ndim_0d", "ArgumentError", r"argument 'B' has 0 dimensions, expected 1"),
    ("wrong_ndim_1d_for_2d", "ArgumentError", r"argument 'M' has 1 dimensions, expected 2"),
    ("transposed_view_input", "ArgumentError", r"argument 'M' is not C-contiguous"),
    ("fortran_order_output", "ArgumentError", r"argument 'M2' is not C-contiguous"),
    ("strided_slice_input", "ArgumentError", r"argument 'A' is not C-contiguous"),
    ("column_slice_input", "ArgumentError", r"argument 'M' is not C-contiguous"),
    ("read_only_output", "ArgumentError", r"output argument 'C' is read-only"),
    ("read_only_inputs_allowed", None, None),
    ("inputs_may_alias", None, None),
    ("output_is_input_A", "ArgumentError", r"output 'C' overlaps argument 'A'"),
    ("output_is_input_B", "ArgumentError", r"output 'C' overlaps argument 'B'"),
    ("output_overlaps_input_view", "ArgumentError", r"output 'C' overlaps argument 'B'"),
    ("inconsistent_symbolic_sizes", "ArgumentError",
     r"inconsistent size for 'n': 5 from an earlier argument but 6 from dimension 0 of 'B'"),
    ("inconsistent_output_size", "ArgumentError", r"inconsistent size for 'n': 5 .* 6 .*of 'C'"),
    ("size_overflows_shape_var", "ArgumentError", r"size n8=200 does not fit in int8"),
    ("two_vars_same_name_are_independent", None, None),
    ("loaded_wrong_shape", "ArgumentError", r"scale: argument 'M' has shape \[4, 3\], expected \[3, 4\]"),
    ("loaded_wrong_dtype", "TensorlangTypeError", r"argument 'M' has dtype float64, expected float32"),
    ("loaded_not_contiguous", "ArgumentError", r"argument 'M' is not C-contiguous"),
    ("loaded_wrong_count", "ArgumentError", r"expected 2 arguments \(M, M2\), got 1"),
    ("loaded_read_only_output", "ArgumentError", r"argument 'M2'.*(read-only|not C-contiguous)"),
    ("still_works", None, None),
]


@pytest.mark.parametrize("label, error, match", CALL_CASES, ids=[c[0] for c in CALL_CASES])
def test_call_time_argument_checks(label, error, match):
    _expect("call", label, error, match)


BOUNDS_CASES = [
    ("read_past_end", r"^shift: out-of-bounds access of buffer 'P' at flat index 10\b"),
    ("read_past_end_again", r"^shift: out-of-bounds access of buffer 'P' at flat index 10\b"),
    ("negative_index", r"^back: out-of-bounds access of buffer 'P' at flat index -1\b"),
    ("in_reduction", r"^window: out-of-bounds access of buffer 'P' at flat index 1[0-2]\b"),
    ("intermediate_buffer", r"^inter: out-of-bounds access of buffer 'T' at flat index 1[0-2]\b"),
    ("symbolic_sizes", r"^every2: out-of-bounds access of buffer 'Q' at flat index 1[0-4]\b"),
    ("parallel_loop", r"^par: out-of-bounds access of buffer 'Q'"),
    ("vectorized_loop", r"^vec: out-of-bounds access of buffer 'P'"),
]


@pytest.mark.parametrize("label, match", BOUNDS_CASES, ids=[c[0] for c in BOUNDS_CASES])
def test_bounds_check_raises_bounds_error(label, match):
    _expect("bounds", label, "BoundsError", match)


def test_process_survives_out_of_bounds_and_keeps_calling():
    _expect("bounds", "call_after_oob", None, None)


@pytest.mark.parametrize("expr", [lambda n: n / 2, lambda n: 7 / n, lambda n: n / n])
def test_integer_true_division_is_ambiguous(expr):
    n = tl.var("n")
    with user_error(tl.TensorlangTypeError, r"divides integers, which is ambiguous; use `//`"):
        expr(n)
