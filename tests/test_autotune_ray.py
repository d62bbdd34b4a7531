"""Tuning jobs on Ray: job-file validation (no Ray needed), and, on real Ray clusters
started here (marked serial: each starts Ray, and they must not share the machine with the
parallel test workers), an embedded-cluster job, a worker node removed mid-job, a driver
killed mid-job and resumed, and a segfaulting candidate recorded once."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter

import pytest

import autotune
from tensorlang.dispatch import record
from autotune.job import JobError, load_job, run_job
from tests import autotune_templates  # noqa: F401  (registers the templates)
from tests.conftest import ROOT

JOB = """
modules = ["tests.autotune_templates"]
log = "{log}"
[measure]
number = 1
repeat = 1
timeout = {timeout}
{extra}
[[task]]
template = "test/matmul"
args = [64, 64, 64]
trials = {trials}
tuner = "xgb"
[[task]]
template = "test/matmul"
args = [32, 64, 48]
trials = {trials}
tuner = "random"
"""


def _job(tmp_path, trials=8, timeout=10, extra="", name="job.toml"):
    log = tmp_path / "log.jsonl"
    path = tmp_path / name
    path.write_text(JOB.format(log=log, trials=trials, timeout=timeout, extra=extra))
    return path, log


def _unique_per_workload(recs):
    return all(n == 1 for n in Counter((record.wkey(r), json.dumps(r["config"], sort_keys=True))
                                       for r in recs).values())


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("text,match", [
    ('log = "x"\nbogus = 1\n[[task]]\ntemplate="test/matmul"\nargs=[8,8,8]\ntrials=1',
     r"job.toml: unknown key 'bogus'"),
    ('log = "x"\n[measure]\nnumbr = 1\n[[task]]\ntemplate="test/matmul"\nargs=[8,8,8]\ntrials=1',
     r"job.toml: unknown key measure.'numbr'"),
    ('log = "x"\nmodules = ["no_such_module_xyz"]\n[[task]]\ntemplate="t"\nargs=[]\ntrials=1',
     r"job.toml: modules: cannot import 'no_such_module_xyz'"),
    ('log = "x"\n[[task]]\ntemplate="nope"\nargs=[]\ntrials=1',
     r"job.toml: task\[0\].template: no template named 'nope'"),
    ('log = "x"\n[[task]]\ntemplate="test/matmul"\nargs=[8, "x", 8]\ntrials=1',
     r"job.toml: task\[0\].args \[8, 'x', 8\]: the template rejects them"),
    ('log = "x"\n[[task]]\ntemplate="test/matmul"\nargs=[8,8,8]\ntrials=1\ntuner="bayes"',
     r"job.toml: task\[0\].tuner must be one of"),
    ('log = "x"\n[[task]]\ntemplate="test/matmul"\nargs=[8,8,8]', r"job.toml: task\[0\].trials is required"),
    ('[[task]]\ntemplate="test/matmul"\nargs=[8,8,8]\ntrials=1', r"job.toml: log .* is required"),
    ('log = "x"\n[ray]\ncpus_per_measurement = "two"\n[[task]]\ntemplate="test/matmul"\nargs=[8,8,8]\ntrials=1',
     r"job.toml: ray.cpus_per_measurement = 'two' has the wrong type"),
    ("log = [", r"job.toml: not valid TOML"),
])
def test_bad_job_files_fail_before_any_work(tmp_path, text, match):
    (tmp_path / "job.toml").write_text(text)
    with pytest.raises(JobError, match=match):
        load_job(tmp_path / "job.toml")


def test_an_existing_log_needs_resume(tmp_path):
    path, log = _job(tmp_path)
    log.write_text("{}\n")
    with pytest.raises(JobError, match="already has records: pass --resume"):
        run_job(path, progress=False)


# ----------------------------------------------------------------------------- on Ray

@pytest.mark.serial
def test_job_on_the_embedded_cluster(tmp_path):
    import ray
    from autotune.job import make_runner
    from autotune.ray_runner import _cmdline, descendants
    path, log = _job(tmp_path, trials=8)
    runner = make_runner(load_job(path))
    rows = run_job(path, progress=False, runner=runner)
    assert not ray.is_initialized()                   # the embedded cluster was shut down
    rep = runner.shutdown_report                      # ... and all its processes have exited
    assert rep["processes"] >= 3 and rep["left"] == [] and rep["killed"] == [], rep
    assert not [p for p in descendants() if "ray" in _cmdline(p)]
    recs = record.load_from_file(log)
    assert len(recs) == 16 and _unique_per_workload(recs)
    assert all(r["result"]["error"] is None and r["host"]["cpu"] for r in recs)
    assert [r["trials"] for r in rows] == [8, 8] and all(r["best_gflops"] > 0 for r in rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no fallback: the log's best applies
        with autotune.apply_history_best(log):
            autotune_templates.matmul(64, 64, 64)


@pytest.mark.serial
def test_worker_node_removed_mid_job_loses_no_trial(tmp_path):
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    try:
        path, log = _job(tmp_path, trials=12)
        runner = autotune.RayRunner(address=cluster.address, number=1, repeat=1, timeout=10)
        done = {}
        th = threading.Thread(target=lambda: done.setdefault("rows", run_job(path, progress=False,
                                                                            runner=runner)))
        th.start()
        deadline = time.time() + 120
        while (not log.exists() or len(log.read_text().splitlines()) < 4) and time.time() < deadline:
            time.sleep(0.2)
        cluster.remove_node(workers[0])                # its raylet is killed mid-job
        th.join(300)
        assert not th.is_alive() and "rows" in done
        recs = record.load_from_file(log)
        assert len(recs) == 24 and _unique_per_workload(recs)
        assert sum(r["result"]["error"] is None for r in recs) >= 22
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.mark.serial
def test_driver_killed_mid_job_then_resumed(tmp_path):
    path, log = _job(tmp_path, trials=10)
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "autotune", "tune", str(path), "--no-progress"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 5) and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # a torn last line is expected here
        first = record.load_from_file(log)
    assert 5 <= len(first) < 20
    r = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = record.load_from_file(log)
    assert len(recs) == 20 and _unique_per_workload(recs)
    assert recs[:len(first)] == first                  # nothing lost, nothing re-measured


@pytest.mark.serial
def test_segfaulting_candidate_is_recorded_once(tmp_path):
    log = tmp_path / "bad.jsonl"
    path = tmp_path / "bad.toml"
    path.write_text(f"""
modules = ["tests.autotune_templates"]
log = "{log}"
[measure]
number = 1
repeat = 1
timeout = 3
[[task]]
template = "test/misbehaving"
args = [64]
trials = 6
tuner = "grid"
""")
    run_job(path, progress=False)
    recs = record.load_from_file(log)
    assert len(recs) == 6 and _unique_per_workload(recs)
    errors = {r["config"]["mode"]: (r["result"]["error"] or "").split(":")[0] for r in recs}
    assert errors == {0: "", 1: "instantiation_error", 2: "build_timeout", 3: "build_error",
                      4: "wrong_answer", 5: "run_timeout"}


@pytest.mark.serial
def test_a_required_cpu_model_no_node_has_is_a_clear_error():
    import ray
    runner = autotune.RayRunner(cpu_model="No Such CPU", num_workers=1)
    try:
        with pytest.raises(RuntimeError, match="no node of the cluster has CPU model 'No Such CPU'"):
            runner.start()
    finally:
        runner.close()
    assert not ray.is_initialized()


def test_tune_library_without_job_files_is_a_clear_error(tmp_path):
    from autotune.library import tune_library
    with pytest.raises(JobError, match="no job file matches"):
        tune_library(str(tmp_path / "none_*.toml"), output=tmp_path / "out.jsonl")


@pytest.mark.serial
def test_tune_library_keeps_the_best_of_every_job_and_the_records_apply(tmp_path):
    """Two job files (one log each) tuned in turn, their best records merged into one log,
    which `applicable_records` then lists for this host once it is a shipped log."""
    from autotune.library import tune_library
    from tensorlang import dispatch
    for name in ("ops_a", "ops_b"):
        (tmp_path / f"{name}.toml").write_text(
            JOB.format(log=tmp_path / f"{name}.jsonl", trials=3, timeout=10, extra="")
            .replace("[32, 64, 48]", "[32, 64, 48]" if name == "ops_a" else "[16, 32, 16]"))
    out = tune_library(str(tmp_path / "ops_*.toml"), output=tmp_path / "cpu.jsonl",
                       progress=False)
    best = record.load_from_file(out)
    logs = record.load_from_file(tmp_path / "ops_a.jsonl") + record.load_from_file(tmp_path / "ops_b.jsonl")
    measured = {record.wkey(x) for x in logs if record.cost(x) < float("inf")}
    assert len(best) == len(measured) and {record.wkey(r) for r in best} == measured
    assert '["test/matmul", [64, 64, 64]]' in measured        # tuned by both jobs, kept once
    for r in best:
        assert record.cost(r) == min(record.cost(x) for x in logs if record.wkey(x) == record.wkey(r))
    dispatch.EXTRA_LOGS.append(str(out))
    try:
        listed = autotune.applicable_records()
        assert {record.wkey(r) for r in listed} >= {record.wkey(r) for r in best}
        assert all(r["log"] == str(out) for r in listed if r["workload"][0] == "test/matmul")
        # tuned for this host's target: they do not apply when building for another CPU
        assert not any(r["log"] == str(out) for r in autotune.applicable_records("llvm -mcpu=nehalem"))
    finally:
        dispatch.EXTRA_LOGS.remove(str(out))
    with pytest.raises(JobError, match="already has records"):
        tune_library(str(tmp_path / "ops_*.toml"), output=tmp_path / "cpu.jsonl", progress=False)


def test_records_command_names_the_target_and_the_log(capsys):
    from autotune import cli
    assert cli.main(["records", "--target", "llvm -mcpu=znver5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("target llvm -mcpu=znver5: ") and "tuned record(s) apply" in out
    assert "znver5.jsonl" in out and '"ops/matmul"' in out
    assert cli.main(["records", "--target", "llvm -mcpu=nehalem"]) == 0
    assert "no tuned record applies" in capsys.readouterr().out
    assert cli.main(["records", "--target", "llvm -mcpu=bogus"]) == 2
    assert "LLVM rejects it" in capsys.readouterr().err


@pytest.mark.serial
def test_model_job_on_the_embedded_cluster(tmp_path):
    """A [[model]] job through the CLI, as a user runs it: tasks measured on the embedded
    cluster, the summary written, every templated kernel of the model tuned by the log."""
    from autotune.cli import main as cli
    from autotune.model import read_summary, summary_path
    log, path = tmp_path / "m.jsonl", tmp_path / "job.toml"
    path.write_text(f'log = "{log}"\n[measure]\nnumber = 1\nrepeat = 1\n'
                    f'[[model]]\nname = "tiny"\nentry = "tests.autotune_templates:tiny_resnet"\n'
                    f'trials = 40\nround_trials = 2\nearly_stopping = 4\n')
    assert cli(["tune", str(path), "--no-progress"]) == 0
    s = read_summary(summary_path(log, "tiny"))
    recs = record.load_from_file(log)
    assert len(recs) == s["trials"] <= 40 and _unique_per_workload(recs)
    assert {json.dumps(r["workload"]) for r in recs} == {json.dumps(t["workload"]) for t in s["tasks"]}
    assert s["after_dispatch"].get("default", 0) == 0 and s["after_dispatch"]["log"] > 0
    assert s["estimate_s"] > 0 and s["after_s"] > 0
