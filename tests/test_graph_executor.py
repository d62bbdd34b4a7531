"""The compiled module (``G.build``): profiles, the memory plan's totals, fresh outputs per
call, outputs that are inputs or constants, tuple outputs, DLPack and non-contiguous
inputs, argument errors, ``export_library`` + ``G.load_module`` in a fresh interpreter, and
how ``PassContext`` settings reach the build (disabled and required passes, printing the
IR, pass timing, opt levels)."""

import re

import numpy as np
import pytest

import tensorlang as tl
import tensorlang.graph as G
from tensorlang.errors import ArgumentError, TensorlangIOError
from tests.conftest import run_python


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def conv_net(rng):
    """conv -> batch_norm -> relu -> conv -> + residual -> max pool -> dense -> softmax."""
    x = G.var("x", (1, 4, 8, 8))
    w1, w2 = f32(rng, 8, 4, 3, 3) * 0.3, f32(rng, 8, 8, 3, 3) * 0.2
    bn = [rng.uniform(0.5, 1.5, 8).astype(np.float32) for _ in range(4)]
    y = G.op.relu(G.op.batch_norm(G.op.conv2d(x, G.const(w1, "w1"), padding=1),
                                  *[G.const(v) for v in bn]))
    z = G.op.relu(G.op.conv2d(y, G.const(w2, "w2"), padding=1) + y)
    p = G.op.flatten(G.op.max_pool2d(z, kernel=2))
    wd = f32(rng, 10, 128) * 0.1
    out = G.op.softmax(G.op.dense(p, G.const(wd, "wd")))
    return G.Module([x], out), f32(rng, 1, 4, 8, 8)


@pytest.fixture(scope="module")
def net():
    mod, x = conv_net(np.random.default_rng(3))
    return mod, x, G.build(mod, opt_level=2), G.evaluate(mod, x)[0]


def test_build_matches_the_interpreter(net):
    mod, x, lib, want = net
    got = lib(x)
    assert isinstance(got, np.ndarray) and got.shape == (1, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-5)
    assert lib.run(x).shape == (1, 10)


def test_profile_rows(net):
    mod, x, lib, _ = net
    prof = lib.profile(x, number=3)
    assert len(prof.rows) == lib.kernel_count == len(lib.steps)
    fused = [n for n in lib.graph.calls() if isinstance(n.op, G.Function)]
    assert len(prof.rows) == len(fused)
    for (kernel, ops, template, ms), step, call in zip(prof.rows, lib.steps, fused):
        assert kernel == step.kernel and kernel.startswith("graph_k") and kernel in lib.code.kernels
        assert kernel.endswith(call.op.name)
        assert ops == [n.op for n in G.post_order(call.op.body) if isinstance(n, G.Call)]
        assert ms >= 0
    assert prof.total_ms == pytest.approx(sum(r[3] for r in prof.rows))
    text = str(prof)
    assert text.splitlines()[0].split() == ["kernel", "ms", "%", "ops"]
    assert text.splitlines()[-1].startswith("total")
    assert "conv2d" in text and "[conv2d template]" in text


def test_memory_plan_totals(net):
    mod, x, lib, _ = net
    mem = lib.memory
    assert 0 < mem.planned_bytes <= mem.naive_bytes
    assert mem.planned_bytes == mem.arena_bytes == lib.arena_bytes
    # naive: every intermediate (not outputs) in its own buffer
    intermediates = [n for n in lib.graph.calls() if n not in lib.graph.outputs]
    assert mem.naive_bytes >= sum(n.type.nbytes for n in intermediates)
    assert re.match(r"planned [\d.]+ [KMG]?i?B \(arena\) vs naive [\d.]+ [KMG]?i?B", str(mem))


def test_outputs_are_fresh_arrays_per_call(rng):
    x = G.var("x", (4, 5))
    mod = G.Module([x], [G.op.relu(x), G.op.exp(x) * 2.0])
    lib = G.build(mod)
    a, b = f32(rng, 4, 5), f32(rng, 4, 5)
    r1 = lib(a)
    keep = [r.copy() for r in r1]
    r2 = lib(b)
    for p, q in zip(r1, r2):
        assert not np.shares_memory(p, q)
    for p, k in zip(r1, keep):                # the first call's results were not overwritten
        np.testing.assert_array_equal(p, k)
    np.testing.assert_array_equal(r2[0], np.maximum(b, 0))
    for r in r1 + r2:
        assert not np.shares_memory(r, a) and not np.shares_memory(r, b)


def test_output_that_is_an_input_or_a_constant(rng):
    x = G.var("x", (2, 3))
    c = np.arange(4, dtype=np.float32)
    mod = G.Module([x], [x, G.const(c, "c"), G.op.relu(x)])
    for level in (0, 2):
        lib = G.build(mod, opt_level=level)
        a = f32(rng, 2, 3)
        got = lib(a)
        assert isinstance(got, list) and len(got) == 3
        np.testing.assert_array_equal(got[0], a)
        assert not np.shares_memory(got[0], a)          # a copy, not the caller's array
        np.testing.assert_array_equal(got[1], c)
        got[1][:] = -1                                  # the caller may write its copy ...
        np.testing.assert_array_equal(lib(a)[1], c)     # ... without changing the module
        np.testing.assert_array_equal(got[2], np.maximum(a, 0))
    only_input = G.build(G.Module([x], x))
    a = f32(rng, 2, 3)
    np.testing.assert_array_equal(only_input(a), a)
    assert only_input.kernel_count == 0


def test_tuple_outputs(rng):
    x = G.var("x", (2, 6))
    parts = G.op.split(x, 3, axis=1)
    mod = G.Module([x], [parts, G.op.sum(x, axis=1)])
    lib = G.build(mod)
    a = f32(rng, 2, 6)
    got = lib(a)
    want = G.evaluate(mod, a)
    assert isinstance(got, list) and isinstance(got[0], tuple) and len(got[0]) == 3
    for g, w, n in zip(got[0], want[0], np.split(a, 3, axis=1)):
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(g, n)
    np.testing.assert_allclose(got[1], a.sum(axis=1), rtol=1e-5)
    single = G.build(G.Module([x], G.op.split(x, 2, axis=1)))(a)
    assert isinstance(single, tuple) and [s.shape for s in single] == [(2, 3), (2, 3)]
    np.testing.assert_array_equal(single[1], a[:, 3:])


def test_torch_inputs_through_dlpack(rng):
    torch = pytest.importorskip("torch")
    x, y = G.var("x", (3, 4)), G.var("y", (3, 4))
    mod = G.Module([x, y], G.op.relu(x * y + 1.0))
    lib = G.build(mod)
    tx, ty = torch.randn(3, 4), torch.randn(3, 4)
    got = lib(tx, ty)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, torch.relu(tx * ty + 1).numpy(), rtol=1e-6)
    # contiguous float32: numpy reads the tensor's memory, no copy
    from tensorlang.graph.executor import as_array
    assert as_array(tx, "x").ctypes.data == tx.data_ptr()
    # a non-contiguous tensor is read correctly too
    tt = torch.randn(4, 3).t()
    np.testing.assert_allclose(lib(tt, ty), torch.relu(tt * ty + 1).numpy(), rtol=1e-6)
    with pytest.raises(ArgumentError, match=r"input 'y' has dtype float64, expected float32"):
        lib(tx, ty.double())


def test_non_contiguous_numpy_input(rng):
    x = G.var("x", (3, 4))
    mod = G.Module([x], G.op.softmax(x * 2.0))
    lib = G.build(mod)
    views = {"transposed": f32(rng, 4, 3).T, "strided": f32(rng, 3, 8)[:, ::2],
             "negative": f32(rng, 3, 4)[:, ::-1]}
    for what, v in views.items():
        assert not v.flags.c_contiguous, what
        keep = v.copy()
        np.testing.assert_allclose(lib(v), G.evaluate(mod, np.ascontiguousarray(v))[0],
                                   rtol=1e-5, atol=1e-7, err_msg=what)
        np.testing.assert_array_equal(v, keep)


def test_call_errors_name_the_input(rng):
    x, t = G.var("x", (2, 3)), G.var("tokens", (4,), "int64")
    mod = G.Module([x, t], [G.op.relu(x), G.op.cast(t, dtype="float32")])
    lib = G.build(mod)
    a, ids = f32(rng, 2, 3), np.arange(4)
    with pytest.raises(ArgumentError, match=r"CompiledModule: expected 2 inputs \(x, tokens\), "
                                            r"got 1"):
        lib(a)
    with pytest.raises(ArgumentError, match=r"expected 2 inputs \(x, tokens\), got 3"):
        lib(a, ids, ids)
    with pytest.raises(ArgumentError, match=r"CompiledModule: input 'tokens' has dtype int32, "
                                            r"expected int64"):
        lib(a, ids.astype(np.int32))
    with pytest.raises(ArgumentError, match=r"CompiledModule: input 'x' has shape \(3, 2\), "
                                            r"expected \(2, 3\)"):
        lib(a.T.copy(), ids)
    with pytest.raises(ArgumentError, match=r"input 'x': expected a numpy array or a DLPack "
                                            r"tensor, got list"):
        lib(a.tolist(), ids)
    with pytest.raises(ArgumentError, match=r"profile: input 'x' has dtype float64"):
        lib.profile(a.astype(np.float64), ids)
    assert issubclass(ArgumentError, tl.TensorlangError)
    out = lib(a, ids)                         # still usable after the errors
    np.testing.assert_array_equal(out[1], ids.astype(np.float32))


# --------------------------------------------------------------------------- export

def test_export_and_load_in_a_fresh_process(net, tmp_path):
    mod, x, lib, want = net
    path = str(tmp_path / "net.so")
    lib.export_library(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", lib(x))
    r = run_python(f"""
        import numpy as np
        import tensorlang.graph as G
        lib = G.load_module({path!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        got = lib(x)
        np.save({str(tmp_path / 'got.npy')!r}, got)
        print("kernels", lib.kernel_count, "inputs", [(i.name, i.shape) for i in lib.inputs])
        prof = lib.profile(x, number=1)
        print("rows", len(prof.rows))
    """)
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "got.npy")
    np.testing.assert_array_equal(got, np.load(tmp_path / "want.npy"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert f"kernels {lib.kernel_count} inputs [('x', (1, 4, 8, 8))]" in r.stdout
    assert f"rows {lib.kernel_count}" in r.stdout


def test_export_of_tuple_and_constant_outputs(tmp_path, rng):
    x = G.var("x", (2, 6))
    mod = G.Module([x], [G.op.split(x, 2, axis=1), G.const(np.arange(3.0, dtype=np.float32)),
                         G.op.exp(x)])
    lib = G.build(mod)
    path = str(tmp_path / "t.so")
    lib.export_library(path)
    loaded = G.load_module(path)                  # in this process too
    a = f32(rng, 2, 6)
    want, got = lib(a), loaded(a)
    assert isinstance(got[0], tuple) and len(got[0]) == 2
    for w, g in zip([*want[0], *want[1:]], [*got[0], *got[1:]]):
        np.testing.assert_array_equal(g, w)
    assert loaded.graph_json == lib.graph_json


def test_load_module_errors(tmp_path):
    missing = str(tmp_path / "nope.so")
    with pytest.raises(TensorlangIOError, match=r"load_module: no such file '.*nope\.so'"):
        G.load_module(missing)
    text = tmp_path / "notes.txt"
    text.write_text("not a library at all " * 4)
    with pytest.raises(TensorlangIOError, match=r"is not a compiled graph \(no payload"):
        G.load_module(str(text))
    tiny = tmp_path / "tiny.bin"
    tiny.write_bytes(b"abc")
    with pytest.raises(TensorlangIOError, match=r"is not a compiled graph"):
        G.load_module(str(tiny))
    with pytest.raises(TensorlangIOError, match=r"no such file"):
        G.load_module(str(tmp_path))              # a directory
    assert issubclass(TensorlangIOError, tl.TensorlangError)


def test_load_module_of_a_single_kernel_library(tmp_path):
    """A plain kernel library (tl.build's export) is not a compiled graph."""
    A = tl.placeholder((8,), name="A")
    B = tl.compute((8,), lambda i: A[i] + 1.0, name="B")
    path = str(tmp_path / "k.so")
    tl.build(tl.create_schedule(B.op), [A, B], name="k").export_library(path)
    with pytest.raises(TensorlangIOError, match=r"not a compiled graph \(no payload; a single "
                                                r"kernel library loads with tl.load_module\)"):
        G.load_module(path)


# --------------------------------------------------------------------------- PassContext

def small(rng):
    x = G.var("x", (1, 4, 6, 6))
    y = G.op.relu(G.op.conv2d(x, G.const(f32(rng, 4, 4, 3, 3) * 0.3), padding=1) * 2.0 + 1.0)
    return G.Module([x], G.op.sigmoid(y)), f32(rng, 1, 4, 6, 6)


def test_disabled_fuse_ops_still_builds_one_kernel_per_op(rng):
    """(Regression: the build's fallback FuseOps ran after PlanMemory, whose plan, keyed by
    the unfused calls, was kept: ``KeyError: fused_conv2d(...)`` in ``G.build``.)"""
    mod, a = small(rng)
    with G.PassContext(opt_level=2, disabled_pass=["FuseOps"]):
        opt = G.optimize(mod)
        lib = G.build(mod)
    assert not any(isinstance(n.op, G.Function) for n in opt.calls())   # FuseOps did not run
    ops = [n.op for n in opt.calls()]
    assert lib.kernel_count == len(ops) == len(lib.graph.calls())
    assert [s.ops for s in lib.steps] == [[op] for op in ops]
    np.testing.assert_allclose(lib(a), G.evaluate(mod, a)[0], rtol=1e-5, atol=1e-6)
    fused = G.build(mod, opt_level=2)
    assert fused.kernel_count < lib.kernel_count


def test_required_pass_runs_below_its_level(rng):
    x = G.var("x", (2, 3))
    c = G.const(np.ones((2, 3), np.float32))
    mod = G.Module([x], x + (c * 2.0))
    with G.PassContext(opt_level=0):
        assert [n.op for n in G.optimize(mod).calls()
                if isinstance(n.op, str)] == []             # fused, but not folded:
        body = [n.op for f in G.optimize(mod).calls() for n in G.post_order(f.op.body)
                if isinstance(n, G.Call)]
        assert sorted(body) == ["add", "multiply"]
    with G.PassContext(opt_level=0, required_pass=["FoldConstant"]):
        opt = G.optimize(mod)
    body = [n.op for f in opt.calls() for n in G.post_order(f.op.body) if isinstance(n, G.Call)]
    assert body == ["add"]
    with G.PassContext(opt_level=0, required_pass=["FoldConstant"]):
        lib = G.build(mod)
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(lib(a), a + 2)


def test_print_ir_after_all(capsys, rng):
    mod, _ = small(rng)
    with G.PassContext(opt_level=3, print_ir_after_all=True):
        G.optimize(mod)
    out = capsys.readouterr().out
    names = re.findall(r"^# IR after (\w+)$", out, re.M)
    assert names == [p.name for p in G.default_pipeline().passes]
    assert names[-2:] == ["FuseOps", "PlanMemory"]
    assert "def @main(%x: float32[1, 4, 6, 6])" in out
    with G.PassContext(opt_level=3):
        G.optimize(mod)
    assert capsys.readouterr().out == ""
    with G.PassContext(opt_level=3, instruments=[G.PrintIR(after=["FuseOps"])]):
        G.optimize(mod)
    assert re.findall(r"^# IR after (\w+)$", capsys.readouterr().out, re.M) == ["FuseOps"]


def test_pass_timing_lists_every_pass(rng):
    mod, _ = small(rng)
    timing = G.PassTimingInstrument()
    with G.PassContext(opt_level=3, instruments=[timing]):
        G.optimize(mod)
    names = [p.name for p in G.default_pipeline().passes]
    assert [n for n, _ in timing.timings] == names
    assert all(t >= 0 for _, t in timing.timings)
    rows = timing.render().splitlines()
    assert [r.split()[0] for r in rows] == names + ["total"]
    assert all(re.search(r"\d+\.\d\d ms$", r) for r in rows)
    # at level 0 the level-2 and level-3 passes are skipped
    t0 = G.PassTimingInstrument()
    with G.PassContext(opt_level=0, instruments=[t0]):
        G.optimize(mod)
    assert [n for n, _ in t0.timings] == ["InferType", "FuseOps", "PlanMemory"]


def test_opt_levels_differ_in_kernel_grouping(rng):
    mod, a = small(rng)
    with G.PassContext(opt_level=0):
        o0 = G.optimize(mod)
    with G.PassContext(opt_level=3):
        o3 = G.optimize(mod)
    groups0 = [[n.op for n in G.post_order(c.op.body) if isinstance(n, G.Call)]
               for c in o0.calls()]
    groups3 = [[n.op for n in G.post_order(c.op.body) if isinstance(n, G.Call)]
               for c in o3.calls()]
    assert groups0 == [["conv2d"], ["multiply"], ["add"], ["relu"], ["sigmoid"]]
    assert len(groups3) < len(groups0)
    assert any(len(g) > 1 for g in groups3)      # the conv takes its epilogue
    assert G.optimize(mod, opt_level=0).calls()[0].op.name == o0.calls()[0].op.name
    for level in (0, 3):
        lib = G.build(mod, opt_level=level)
        assert lib.kernel_count == len(groups0 if level == 0 else groups3)
        np.testing.assert_allclose(lib(a), G.evaluate(mod, a)[0], rtol=1e-5, atol=1e-6)
