"""autotune: spaces, templates and dispatch, logs, measurement in isolated workers, tuners,
resume, the CLI. Tuner tests use a fake builder/runner (a deterministic cost per config), so
they take milliseconds and are reproducible; the measurement tests use real workers."""

import json
import warnings

import numpy as np
import pytest

import autotune
import tensorlang as tl
from tensorlang.dispatch import record
from autotune.cli import main as cli
from autotune.measure import BuildResult, ErrorClass, MeasureResult
from tensorlang.dispatch import SpaceError
from tests import autotune_templates as T  # noqa: F401  (registers the templates)


@pytest.fixture(scope="module")
def task():
    return autotune.create_task("test/matmul", args=(64, 32, 48, "float32"))


# ----------------------------------------------------------------------------- spaces

def test_space_size_str_and_get(task):
    sp = task.config_space
    assert len(sp) == 7 * 10 * 2            # factors of 64 and of 48, times vec
    assert "tile_y (split)" in str(sp) and "140 configs" in str(sp).replace("ConfigSpace: ", "")
    c = sp.get(139)
    assert c.index == 139 and sp.from_json(c.to_json()) == c
    assert c["tile_y"].size[0] == -1 and 64 % c["tile_y"].size[1] == 0
    with pytest.raises(SpaceError, match="outside the space of 140"):
        sp.get(140)


def test_a_record_older_than_a_knob_takes_its_default_and_unknown_knobs_fail():
    sp = autotune.ConfigSpace()
    sp.define_knob("nb", [16, 32], default=32)
    sp.define_knob("kc", [0, 128], default=0)          # a knob added after the record
    assert sp.from_json({"nb": 16}).to_json() == {"nb": 16, "kc": 0}
    with pytest.raises(SpaceError, match=r"knobs \['nb', 'zz'\] do not match the space's \['kc', 'nb'\]"):
        sp.from_json({"nb": 16, "zz": 1})


def test_split_policies_and_limits():
    sp = autotune.ConfigSpace()
    sp.define_split("f", 12, num_outputs=2, policy="factors")
    sp.define_split("p", 12, num_outputs=2, policy="power2")
    sp.define_split("v", 12, num_outputs=3, policy="verbose", max_factor=4)
    assert [e.size for e in sp.knobs["f"].entities] == [[-1, d] for d in (1, 2, 3, 4, 6, 12)]
    assert [e.size for e in sp.knobs["p"].entities] == [[-1, d] for d in (1, 2, 4, 8)]
    assert all(max(e.size[1:]) <= 4 for e in sp.knobs["v"].entities)
    with pytest.raises(SpaceError, match="num_outputs must be 2..4"):
        sp.define_split("x", 12, num_outputs=5)
    with pytest.raises(SpaceError, match="policy must be"):
        sp.define_split("y", 12, policy="odd")
    with pytest.raises(SpaceError, match="defined twice"):
        sp.define_split("f", 12)


def test_reorder_annotate_knob_entities_apply():
    A = tl.placeholder((8, 8), name="A")
    B = tl.compute((8, 8), lambda i, j: A[i, j] + 1.0, name="B")
    sp = autotune.ConfigSpace()
    i, j = B.op.axis
    sp.define_reorder("r", [i, j], policy="all")
    sp.define_reorder("c", [i, j], policy="candidate", candidate=[[j, i]])
    sp.define_annotate("a", [i, j], policy="try_unroll_vec")
    sp.define_knob("k", ["x", "y", "z"])
    assert len(sp) == 2 * 1 * 4 * 3
    assert sp.knobs["c"].entities[0].perm == [1, 0]
    assert [e.anns for e in sp.knobs["a"].entities] == [
        ["none", "none"], ["none", "vec"], ["unroll", "unroll"], ["unroll", "vec"]]
    s = tl.create_schedule(B.op)
    sp.knobs["c"].entities[0].apply(s, B, [i, j])
    sp.knobs["a"].entities[1].apply(s, B, [j, i])
    text = str(tl.lower(s, [A, B]))
    a, b = np.random.rand(8, 8).astype("float32"), np.zeros((8, 8), "float32")
    tl.build(s, [A, B])(a, b)
    np.testing.assert_allclose(b, a + 1)
    assert "ramp" in text                     # the inner loop (i after the reorder) is vectorized


# ----------------------------------------------------------------------------- dispatch

def test_fallback_warns_once_then_apply_config_and_history_best(task, tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        T.matmul(64, 32, 48, "float32")
        T.matmul(64, 32, 48, "float32")
    assert len([x for x in w if "fallback config" in str(x.message)]) == 1
    cfg = task.config_space.get(5)
    with autotune.ApplyConfig(cfg):
        s, args = T.matmul(64, 32, 48, "float32")
    text = str(tl.lower(s, args))
    assert f"range({64 // cfg['tile_y'].size[1]})" in text     # the chosen split applied
    assert ("ramp" in text) == bool(cfg["vec"].val)
    # two logs, nested: the innermost context wins
    fast, slow = task.config_space.get(3), task.config_space.get(100)
    for path, c in ((tmp_path / "a.jsonl", fast), (tmp_path / "b.jsonl", slow)):
        record.append(path, record.make_record(task, c, MeasureResult([0.001])))
    with autotune.apply_history_best(tmp_path / "a.jsonl") as outer:
        with autotune.apply_history_best(str(tmp_path / "b.jsonl")):
            assert outer.query(task.target, task.workload) == fast.to_json()
            s, args = T.matmul(64, 32, 48, "float32")
    with autotune.ApplyConfig(slow):
        s2, args2 = T.matmul(64, 32, 48, "float32")
    assert str(tl.lower(s, args)) == str(tl.lower(s2, args2))


def test_history_best_picks_fastest_same_target_and_skips_invalid(task, tmp_path):
    path = tmp_path / "log.jsonl"
    good, better = task.config_space.get(1), task.config_space.get(2)
    record.append(path, record.make_record(task, good, MeasureResult([0.002])))
    record.append(path, record.make_record(task, better, MeasureResult([0.001])))
    failed = record.make_record(task, task.config_space.get(3), MeasureResult([], ErrorClass.RUNTIME, "x"))
    record.append(path, failed)
    other = record.make_record(task, task.config_space.get(4), MeasureResult([0.0001]))
    other["target"] = "llvm -mcpu=some-other-cpu"
    record.append(path, other)
    ctx = autotune.apply_history_best(path)
    assert ctx.query(task.target, task.workload) == better.to_json()
    bad = record.make_record(task, good, MeasureResult([0.00001]))
    bad["config"]["tile_y"] = [-1, 5]           # 5 does not divide 64: not in the space
    with autotune.apply_history_best([bad]):
        with pytest.warns(UserWarning, match="skipping a record"):
            T.matmul(64, 32, 48, "float32")


def test_get_config_outside_a_template_is_an_error():
    with pytest.raises(SpaceError, match="outside a template"):
        autotune.get_config()


def test_workload_args_must_be_json():
    with pytest.raises(SpaceError, match="must be JSON values"):
        autotune.create_task("test/matmul", args=(64, object(), 48))
    with pytest.raises(SpaceError, match="no template named 'nope'"):
        autotune.create_task("nope", args=())


def test_task_flop_counts_multiply_and_add(task):
    assert task.flop == 2 * 64 * 32 * 48


# ----------------------------------------------------------------------------- logs

def test_log_round_trip_torn_and_malformed_lines(task, tmp_path):
    path = tmp_path / "log.jsonl"
    recs = [record.make_record(task, task.config_space.get(i), MeasureResult([0.001 * (i + 1)]))
            for i in range(3)]
    for r in recs:
        record.append(path, r)
    text = path.read_text().splitlines()
    text.insert(1, '{"version": 1, "workload": "broken"}')
    text.insert(2, "not json at all")
    path.write_text("\n".join(text) + "\n" + text[-1][:40])       # a torn last line
    with pytest.warns(UserWarning) as w:
        back = record.load_from_file(path)
    msgs = [str(x.message) for x in w]
    assert any(":2: skipping a bad record: workload" in m for m in msgs)
    assert any(":3: skipping a bad record: not JSON" in m for m in msgs)
    assert any(":6:" in m and "torn last line" in m for m in msgs)
    assert back == json.loads(json.dumps(recs))
    out = tmp_path / "best.jsonl"
    with pytest.warns(UserWarning):
        assert record.pick_best(path, out) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (best,) = record.load_from_file(out)
    assert best["config"] == recs[0]["config"]


# ----------------------------------------------------------------------------- tuners

class FakeBuilder:
    def build(self, task, configs):
        return [BuildResult(f"fake-{c.index}") for c in configs]


class FakeRunner:
    """A deterministic cost: fastest at index ``best``; every 7th config fails."""

    def __init__(self, best=77):
        self.best, self.calls = best, []

    def run(self, task, builds):
        out = []
        for b in builds:
            i = int(b.path.split("-")[1])
            self.calls.append(i)
            if i % 7 == 3:
                out.append(MeasureResult([], ErrorClass.WRONG_ANSWER, "fake"))
            else:
                out.append(MeasureResult([1e-3 * (1 + abs(i - self.best) / 10)]))
        return out


def _fake():
    return {"builder": FakeBuilder(), "runner": FakeRunner()}


@pytest.mark.parametrize("name", ["GridSearchTuner", "RandomTuner", "GATuner", "XGBTuner"])
def test_tuners_find_good_configs_and_never_repeat(task, name):
    opt = _fake()
    tuner = getattr(autotune, name)(task, seed=3)
    if name == "XGBTuner":
        tuner.plan_size = 16
    if name == "GATuner":
        tuner.pop_size = 16
    tuner.tune(80, opt)
    calls = opt["runner"].calls
    assert len(calls) == 80 and len(set(calls)) == 80
    assert tuner.errors.get("wrong_answer", 0) == sum(1 for i in calls if i % 7 == 3)
    assert tuner.best_cost == min(1e-3 * (1 + abs(i - 77) / 10) for i in calls if i % 7 != 3)
    if name != "GridSearchTuner":
        assert abs(tuner.best_config.index - 77) <= 20


@pytest.mark.parametrize("name", ["RandomTuner", "GATuner", "XGBTuner"])
def test_same_seed_same_proposals(task, name):
    runs = []
    for _ in range(2):
        opt = _fake()
        tuner = getattr(autotune, name)(task, seed=11)
        if name == "XGBTuner":
            tuner.plan_size = 16
        tuner.tune(48, opt)
        runs.append(opt["runner"].calls)
    assert runs[0] == runs[1]


def test_early_stopping(task):
    opt = {"builder": FakeBuilder(), "runner": FakeRunner(best=0)}
    tuner = autotune.GridSearchTuner(task)
    tuner.tune(140, opt, early_stopping=20)
    assert tuner.trials < 140 and tuner.trials - tuner.best_trial >= 20


def test_resume_skips_measured_configs(task, tmp_path):
    log = tmp_path / "run.jsonl"
    first = _fake()
    autotune.RandomTuner(task, seed=1).tune(30, first, callbacks=[autotune.callback.log_to_file(log)])
    second = _fake()
    tuner = autotune.RandomTuner(task, seed=1)
    assert tuner.resume(log) == 30
    tuner.tune(50, second, callbacks=[autotune.callback.log_to_file(log)])
    assert len(second["runner"].calls) == 20
    assert not set(second["runner"].calls) & set(first["runner"].calls)
    assert len(record.load_from_file(log)) == 50


@pytest.mark.parametrize("features", ["itervar", "knob"])
def test_xgb_transfer_learning_loads_other_workloads(task, tmp_path, features):
    other = autotune.create_task("test/matmul", args=(32, 32, 48, "float32"))
    log = tmp_path / "other.jsonl"
    autotune.RandomTuner(other, seed=0).tune(20, _fake(), callbacks=[autotune.callback.log_to_file(log)])
    tuner = autotune.XGBTuner(task, seed=0, feature_type=features)
    assert tuner.load_history(log) == sum(1 for r in record.load_from_file(log) if not r["result"]["error"])
    assert len(tuner.base_x) == len(tuner.base_y) > 0


# ----------------------------------------------------------------------------- measurement

def test_misbehaving_candidates_are_recorded_and_none_is_fatal(tmp_path):
    task = autotune.create_task("test/misbehaving", args=(64,))
    builder = autotune.LocalBuilder(timeout=3, n_parallel=2)
    runner = autotune.LocalRunner(number=1, repeat=1, timeout=3)
    try:
        tuner = autotune.GridSearchTuner(task)
        log = tmp_path / "bad.jsonl"
        tuner.tune(6, {"builder": builder, "runner": runner},
                   callbacks=[autotune.callback.log_to_file(log)])
    finally:
        builder.close()
        runner.close()
    errors = [r["result"]["error"] for r in record.load_from_file(log)]
    assert errors[0] is None
    assert errors[1].startswith("instantiation_error: ValueError: this config cannot be scheduled")
    assert errors[2].startswith("build_timeout:")
    assert errors[3].startswith("build_error: the worker process died (exit code -11)")
    assert errors[4].startswith("wrong_answer: 64 of 64 values of B differ")
    assert errors[5].startswith("run_timeout:")
    assert tuner.best_config.index == 0 and tuner.trials == 6


def test_end_to_end_real_measurement_and_deploy(tmp_path, capsys):
    task = autotune.create_task("test/matmul", args=(64, 64, 64, "float32"))
    log = tmp_path / "mm.jsonl"
    opt = autotune.measure_option(autotune.LocalBuilder(timeout=10, n_parallel=2),
                                  autotune.LocalRunner(number=2, repeat=2, timeout=10))
    tuner = autotune.RandomTuner(task, seed=0)
    tuner.tune(8, opt, callbacks=[autotune.callback.log_to_file(log),
                                  autotune.callback.progress_bar(8)])
    opt["builder"].close()
    opt["runner"].close()
    recs = record.load_from_file(log)
    assert len(recs) == 8 and all(r["result"]["error"] is None for r in recs)
    assert all(len(r["result"]["costs"]) == 2 and r["flop"] == 2 * 64 ** 3 for r in recs)
    with autotune.apply_history_best(log):
        s, args = T.matmul(64, 64, 64, "float32")
    f = tl.build(s, args)
    a, b = np.random.rand(64, 64).astype("float32"), np.random.rand(64, 64).astype("float32")
    c = np.zeros((64, 64), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    # the CLI on the same log
    assert cli(["show", str(log)]) == 0
    out = capsys.readouterr().out
    assert "trials 8, errors 0" in out and "GFLOPS" in out
    assert cli(["best", str(log), "-o", str(tmp_path / "best.jsonl")]) == 0
    assert cli(["plot", str(log), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert cli(["validate", str(tmp_path / "best.jsonl"), "-m", "tests.autotune_templates"]) == 0
    assert "ok" in capsys.readouterr().out


def test_best_merges_logs_and_keeps_only_what_a_base_lacks(tmp_path):
    """``pick_best`` over several logs (the output may be one of them), and ``beyond``: the
    records a log consulted before ``base`` should add (what ``<cpu>.models.jsonl`` is)."""
    a = autotune.create_task("test/matmul", args=(16, 16, 16, "float32"))
    b = autotune.create_task("test/matmul", args=(32, 32, 32, "float32"))
    c = autotune.create_task("test/matmul", args=(48, 48, 48, "float32"))
    base, new, out = tmp_path / "base.jsonl", tmp_path / "new.jsonl", tmp_path / "out.jsonl"

    def rec(task, i, cost):
        return record.make_record(task, task.config_space.get(i), autotune.MeasureResult([cost]))
    for r in (rec(a, 0, 1.0), rec(b, 0, 1.0)):
        record.append(base, r)
    for r in (rec(a, 1, 2.0), rec(b, 1, 0.5), rec(b, 2, 0.7), rec(c, 0, 3.0)):
        record.append(new, r)
    assert record.pick_best([new], out, beyond=base) == 2       # b faster, c missing; a slower
    got = {json.dumps(r["workload"]): r["result"]["costs"] for r in record.load_from_file(out)}
    assert got == {json.dumps(b.workload): [0.5], json.dumps(c.workload): [3.0]}
    assert record.pick_best([base, new], base) == 3              # a merge into one of them
    assert sorted(record.cost(r) for r in record.load_from_file(base)) == [0.5, 1.0, 3.0]


def test_cli_missing_file_is_a_clear_error(capsys, tmp_path):
    assert cli(["show", str(tmp_path / "nope.jsonl")]) == 2
    assert "No such file" in capsys.readouterr().err


@pytest.mark.parametrize("features", ["itervar", "knob"])
def test_xgb_with_history_guides_its_first_batch(task, tmp_path, features):
    """After load_history the model exists before any own measurement, and its first batch
    differs from the random batch of a tuner without history."""
    other = autotune.create_task("test/matmul", args=(32, 32, 48, "float32"))
    log = tmp_path / "other.jsonl"
    autotune.RandomTuner(other, seed=0).tune(40, _fake(), callbacks=[autotune.callback.log_to_file(log)])
    warm = autotune.XGBTuner(task, seed=0, epsilon=0.0, feature_type=features)
    warm.load_history(log)
    cold = autotune.XGBTuner(task, seed=0, epsilon=0.0, feature_type=features)
    assert warm.model is not None and cold.model is None
    assert [c.index for c in warm.next_batch(8)] != [c.index for c in cold.next_batch(8)]


def test_knob_features_compare_configs_across_workloads():
    """The same knob values give the same features in two workloads' spaces (which is
    what lets a model trained on one rank the other's configs), whatever their indices."""
    from autotune.xgb_tuner import knob_features
    a = autotune.create_task("test/matmul", args=(64, 64, 64, "float32")).config_space
    b = autotune.create_task("test/matmul", args=(32, 64, 48, "float32")).config_space
    knobs = {"tile_y": [-1, 4], "tile_x": [-1, 8], "vec": 1}
    ca = a.from_json({**knobs, "tile_x": [-1, 16]})
    cb = b.from_json(knobs)
    fa, fb = knob_features(ca), knob_features(cb)
    assert fa.shape == fb.shape == (5,)
    np.testing.assert_allclose(fa, np.log2(1 + np.array([1, 16, 1, 4, 1])))   # sorted by knob name
    np.testing.assert_allclose(fb[2:], fa[2:])
    assert ca.index != cb.index


def test_flop_ignores_index_arithmetic_and_copies():
    from tensorlang.dispatch.task import flop_count
    A = tl.placeholder((16, 8), name="A")
    B = tl.placeholder((8, 32), name="B")
    k = tl.reduce_axis((0, 8), name="k")
    PB = tl.compute((2, 8, 16), lambda x, y, z: B[y, x * 16 + z], name="PB")
    C = tl.compute((16, 32), lambda i, j: tl.sum(A[i, k] * PB[j // 16, k, j % 16], axis=k), name="C")
    assert flop_count([C.op]) == 2 * 16 * 32 * 8
