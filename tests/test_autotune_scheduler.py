"""The task scheduler: budget, warm-up, gradient allocation, early stopping, resume, the
estimate, and one real run through LocalRunner. Most tests use a fake runner whose costs
are a known function of the config, so the scheduler's decisions can be checked exactly."""

import json
import math

import numpy as np
import pytest

import autotune
from autotune.measure import ErrorClass, MeasureResult
from autotune.scheduler import BatchStream, TaskScheduler, model_curve, tune_tasks
from tensorlang.dispatch import record

from . import autotune_templates  # noqa: F401  (registers test/matmul)


class FakeRunner:
    """Streaming runner with ``slots`` slots; a config's cost is ``cost(task, config)``."""

    def __init__(self, cost, slots: int = 2):
        self.cost, self.n = cost, slots
        self.pending, self.measured = [], []

    def start(self):
        pass

    @property
    def slots(self):
        return self.n - len(self.pending)

    @property
    def busy(self):
        return len(self.pending)

    def submit(self, task, config, handle=None):
        self.pending.append((task, config, handle))

    def poll(self, timeout=0.0):
        out, self.pending = self.pending[:1], self.pending[1:]
        self.measured += [(json.dumps(t.workload), c.index) for t, c, _ in out]
        return [(h, MeasureResult([self.cost(t, c)])) for t, c, h in out]


def task(n, weight):
    t = autotune.create_task("test/matmul", [n, n, n])
    t.weight = weight
    return t


def improving(t, c):
    """Each task's cost falls with its config index (so a tuner keeps finding better ones):
    a task's room to improve is proportional to its size."""
    return t.args[0] * 1e-6 * (1 + 1.0 / (1 + c.index))


def test_budget_warm_up_and_the_heavier_task_gets_more(tmp_path):
    heavy, light = task(64, 20), task(32, 1)
    runner = FakeRunner(improving)
    s = TaskScheduler([heavy, light], tmp_path / "log.jsonl", runner, tuner="grid",
                      round_trials=4, progress=False)
    est = s.run(40)
    assert s.total_trials == 40 == len(runner.measured)
    trials = [t.trials for t in s.tuners]
    assert trials[1] >= 4 and trials[0] >= 3 * trials[1]        # warm-up: a round each
    assert [w for w, _ in runner.measured[:8]] == [json.dumps(heavy.workload)] * 4 + [json.dumps(light.workload)] * 4
    expect = sum(t.weight * min(improving(t, c) for _, c, _ in s.tuners[k].history)
                 for k, t in enumerate([heavy, light]))
    assert est == pytest.approx(expect)
    # every measurement is in the log, and the log's curve ends at the estimate
    assert len(record.load_from_file(tmp_path / "log.jsonl")) == 40
    curve = model_curve(tmp_path / "log.jsonl", [{"workload": t.workload, "weight": t.weight}
                                                  for t in (heavy, light)])
    assert curve[-1] == (40, pytest.approx(est))
    assert all(b[1] <= a[1] for a, b in zip(curve, curve[1:]))
    assert s.curve[-1][1] == pytest.approx(est)


def test_a_task_that_stopped_improving_leaves_and_the_rest_goes_on(tmp_path):
    flat, other = task(64, 5), task(48, 5)
    calls = iter(range(1, 1000))

    def cost(t, c):              # flat never improves after its first; other always does
        return 1e-3 if t is flat else 1e-3 / next(calls)
    s = TaskScheduler([flat, other], tmp_path / "log.jsonl", FakeRunner(cost, 1), tuner="grid",
                      round_trials=4, early_stopping=6, eps=0.0, progress=False)
    s.run(60)
    assert s.dead[0] and s.tuners[0].trials == 7                    # best at trial 1, then 6 more
    assert s.tuners[1].trials == 60 - 7


def test_exhausted_spaces_end_the_run_before_the_budget(tmp_path):
    a = task(8, 1)                                     # a small space: every config measured
    s = TaskScheduler([a], tmp_path / "log.jsonl", FakeRunner(improving), tuner="grid",
                      progress=False)
    s.run(10_000)
    assert s.tuners[0].trials == len(a.config_space) and s.dead[0]


def test_resume_measures_nothing_twice_and_counts_toward_the_budget(tmp_path):
    log = tmp_path / "log.jsonl"
    tasks = [task(64, 3), task(32, 1)]
    first = FakeRunner(improving)
    TaskScheduler(tasks, log, first, tuner="random", round_trials=4, progress=False).run(20)
    again = FakeRunner(improving)
    s = TaskScheduler([task(64, 3), task(32, 1)], log, again, tuner="random", round_trials=4,
                      progress=False)
    assert s.resumed == 20
    s.run(36)
    assert len(again.measured) == 16 and s.total_trials == 36
    assert not set(first.measured) & set(again.measured)
    assert len(record.load_from_file(log)) == 36


def test_failures_count_as_trials_and_a_task_that_never_runs_is_given_up(tmp_path):
    good, broken = task(32, 1), task(48, 1)

    class Failing(FakeRunner):
        def poll(self, timeout=0.0):
            return [(h, r if h[0] == 0 else MeasureResult([], ErrorClass.RUNTIME, "boom"))
                    for h, r in super().poll(timeout)]
    s = TaskScheduler([good, broken], tmp_path / "log.jsonl", Failing(improving, 1), tuner="grid",
                      round_trials=4, progress=False)
    assert s.run(30) is None                          # no estimate without every task
    assert s.dead[1] and s.tuners[1].trials == 4 and s.tuners[1].errors == {"runtime_error": 4}
    assert s.tuners[0].trials == 26


def test_batch_stream_groups_a_round_per_task():
    calls = []

    class Builder:
        def build(self, task, configs):
            return configs

    class Runner:
        def run(self, task, builds):
            calls.append((task.workload, len(builds)))
            return [MeasureResult([1e-3]) for _ in builds]
    a, b = task(16, 1), task(24, 1)
    st = BatchStream(Builder(), Runner(), 4)
    for t, i in [(a, 0), (b, 1), (a, 2)]:
        st.submit(t, t.config_space.get(i), handle=i)
    assert st.slots == 1 and st.busy == 3
    assert [h for h, _ in st.poll()] == [0, 2, 1] and st.busy == 0
    assert calls == [(a.workload, 2), (b.workload, 1)]


def test_tune_tasks_with_the_local_runner(tmp_path):
    """A real run: two tasks, every candidate built and timed in worker processes."""
    log = tmp_path / "mm.jsonl"
    tasks = [task(32, 2), task(16, 1)]
    s = tune_tasks(tasks, 12, log, tuner="random", round_trials=3, progress=False,
                   measure_option=autotune.measure_option(
                       builder=autotune.LocalBuilder(n_parallel=1),
                       runner=autotune.LocalRunner(number=1, repeat=1)))
    rows = s.summary()
    assert sum(r["trials"] for r in rows) == 12 and all(r["best_ms"] for r in rows)
    recs = record.load_from_file(log)
    assert len(recs) == 12 and all(not r["result"]["error"] for r in recs)
    assert s.estimate() == pytest.approx(sum(r["weight"] * r["best_ms"] for r in rows) / 1e3)
    with autotune.apply_history_best(log) as ctx:
        for r in rows:
            assert ctx.query(tasks[0].target, r["workload"]) == r["best_config"]


def test_bad_arguments_are_errors(tmp_path):
    with pytest.raises(ValueError, match="no tasks"):
        TaskScheduler([], tmp_path / "l.jsonl", FakeRunner(improving))
    with pytest.raises(ValueError, match="tuner must be one of"):
        TaskScheduler([task(8, 1)], tmp_path / "l.jsonl", FakeRunner(improving), tuner="magic")


# ----------------------------------------------------------------------------- [[model]] jobs

MODEL_JOB = """
log = "{log}"
[[model]]
name = "tiny"
entry = "tests.autotune_templates:tiny_resnet"
trials = {trials}
round_trials = 2
tuner = "random"
"""


def test_a_model_table_with_every_key(tmp_path):
    from autotune.job import ModelSpec, load_job
    (tmp_path / "job.toml").write_text(
        'log = "x"\n[[model]]\nname = "m"\nentry = "tests.autotune_templates:tiny_resnet"\n'
        'args = [16]\ntrials = 5\ntuner = "ga"\nearly_stopping = 3\nseed = 2\nopt_level = 2\n'
        'round_trials = 4\nfixed_layout = false\n')
    (m,) = load_job(tmp_path / "job.toml").models
    assert m == ModelSpec("m", "tests.autotune_templates:tiny_resnet", 5, [16], "ga", 3, 2, 2, 4,
                          False)


@pytest.mark.parametrize("table,match", [
    ('name = "m"\ntrials = 5', r"job.toml: model\[0\].entry is required"),
    ('name = "m"\nentry = "tests.autotune_templates"\ntrials = 5',
     r"job.toml: model\[0\].entry 'tests.autotune_templates' must be 'module:function'"),
    ('name = "m"\nentry = "no_such_mod_q:f"\ntrials = 5', r"model\[0\].entry 'no_such_mod_q:f': cannot import"),
    ('name = "m"\nentry = "tests.autotune_templates:nope"\ntrials = 5', r"has no 'nope'"),
    ('name = "m"\nentry = "tests.autotune_templates:tiny_resnet"\ntrials = 0',
     r"model\[0\].trials must be at least 1"),
    ('name = "m"\nentry = "tests.autotune_templates:tiny_resnet"\ntrials = 5\ntuner = "bayes"',
     r"model\[0\].tuner must be one of \['auto'"),
    ('name = "m"\nentry = "tests.autotune_templates:tiny_resnet"\ntrials = 5\nlayers = 3',
     r"unknown key model\[0\].'layers'"),
    ('name = "m"\nentry = "tests.autotune_templates:tiny_resnet"\ntrials = true',
     r"model\[0\].trials = True has the wrong type"),
    ('name = "m"\nentry = "tests.autotune_templates:tiny_resnet"\ntrials = 5\nfixed_layout = 1',
     r"model\[0\].fixed_layout = 1 has the wrong type"),
])
def test_bad_model_tables_fail_before_any_work(tmp_path, table, match):
    from autotune.job import JobError, load_job
    (tmp_path / "job.toml").write_text(f'log = "x"\n[[model]]\n{table}\n')
    with pytest.raises(JobError, match=match):
        load_job(tmp_path / "job.toml")


def test_model_job_tunes_times_and_resumes(tmp_path):
    """A [[model]] job: tasks extracted, measured, the summary written with the latency
    before and after; run again with more trials and --resume, nothing is measured twice."""
    from autotune.job import load_job, run_job, summary_table
    from autotune.model import read_summary, summary_path
    from tensorlang import graph as G
    from tests.autotune_templates import tiny_resnet
    log, path = tmp_path / "m.jsonl", tmp_path / "job.toml"

    def run(trials, resume):
        path.write_text(MODEL_JOB.format(log=log, trials=trials))
        stream = BatchStream(autotune.LocalBuilder(n_parallel=1),
                             autotune.LocalRunner(number=1, repeat=1), 2)
        return run_job(load_job(path), resume=resume, progress=False, runner=stream)
    (row,) = run(10, False)
    mod, _ = tiny_resnet()
    tasks = autotune.extract_tasks(mod)
    s = read_summary(summary_path(log, "tiny"))
    assert [t["workload"] for t in s["tasks"]] == [t.workload for t in tasks]
    assert row["trials"] == s["trials"] == 10 and len(record.load_from_file(log)) == 10
    assert s["before_s"] > 0 and s["after_s"] > 0 and s["rest_s"] > 0
    def templated(d):            # tuned blocks may add layout transforms, not templated kernels
        return sum(n for k, n in d.items() if k != "untemplated")
    assert templated(s["after_dispatch"]) == templated(s["before_dispatch"])
    assert "tiny" in summary_table([row])
    (row,) = run(16, True)
    recs = record.load_from_file(log)
    keys = [(record.wkey(r), json.dumps(r["config"], sort_keys=True)) for r in recs]
    assert len(recs) == 16 == len(set(keys)) and row["trials"] == 16
    s = read_summary(summary_path(log, "tiny"))
    assert s["resumed"] == 10
    # autotune plot replays the log into the end-to-end curve of the summary
    from autotune.cli import main as cli
    png = tmp_path / "curve.png"
    assert cli(["plot", str(summary_path(log, "tiny")), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert cli(["plot", str(summary_path(log, "tiny")), str(log), "-o", str(png)]) == 2
    # what the job applies is the log's best per workload: built under it, the model is right
    mod, ins = tiny_resnet()
    with autotune.apply_history_best(log):
        lib = G.build(mod, opt_level=3)
    assert lib.dispatch_report().get("log", 0) >= 1
    np.testing.assert_allclose(lib(*ins), G.evaluate(mod, *ins)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fixed", [True, False])
def test_layout_knobs_keep_the_planned_layout_unless_freed(fixed, tmp_path):
    conv = autotune.create_task("ops/conv2d_NCHWc", [1, 32, 8, 8, 32, 1, 1, 1, 0, "float32"])
    conv.weight = 1
    runner = FakeRunner(lambda t, c: 1e-3 / (1 + c.index % 13))
    s = TaskScheduler([conv], tmp_path / "log.jsonl", runner, tuner="random", fixed_layout=fixed,
                      progress=False)
    s.run(40)
    planned = conv.config_space.fallback().to_json()
    blocks = {(conv.config_space.get(i).to_json()["ic_bn"],
               conv.config_space.get(i).to_json()["oc_bn"]) for _, i in runner.measured}
    if fixed:                    # every config of the planned blocks, then the task is done
        space = conv.config_space
        same = sum(1 for i in range(len(space)) if (space.get(i).to_json()["ic_bn"],
                   space.get(i).to_json()["oc_bn"]) == (planned["ic_bn"], planned["oc_bn"]))
        assert blocks == {(planned["ic_bn"], planned["oc_bn"])}
        assert len(runner.measured) == s.tuners[0].trials == same < 40 and s.dead[0]
    else:
        assert len(blocks) > 1 and len(runner.measured) == 40


def test_a_shipped_record_is_measured_first(tmp_path, monkeypatch):
    """The config the build uses now (a record shipped for the CPU) is the first trial, so
    the tuned result is never slower than what the build had."""
    import importlib
    t = task(64, 1)
    shipped = t.config_space.get(len(t.config_space) - 1)
    log = tmp_path / "shipped.jsonl"
    record.append(log, record.make_record(t, shipped, MeasureResult([1e-3])))
    monkeypatch.setattr(importlib.import_module("tensorlang.dispatch.task"), "EXTRA_LOGS",
                        [str(log)])
    runner = FakeRunner(improving, 1)
    TaskScheduler([t], tmp_path / "log.jsonl", runner, tuner="random", progress=False).run(5)
    assert runner.measured[0] == (json.dumps(t.workload), shipped.index)
    assert runner.measured[1] == (json.dumps(t.workload), t.config_space.fallback().index)
