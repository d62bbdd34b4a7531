"""Tuning jobs: several tasks tuned together on a Ray cluster, from a TOML file.

    modules = ["examples.tuning_templates"]   # imported first: they register the templates
    log = "tuning_logs/demo.jsonl"

    [measure]                 # optional: number, repeat, min_repeat_ms, timeout, build_timeout
    number = 3

    [ray]                     # optional: address, cpus_per_measurement, num_workers,
    cpus_per_measurement = 1  #           resources (a table), cpu_model

    [[task]]                  # one table per task
    template = "demo/matmul"
    args = [256, 256, 256]
    trials = 64
    tuner = "xgb"             # xgb | ga | random | grid | auto (default xgb)
    early_stopping = 32       # optional; seed = 0 by default

    [[model]]                 # one table per model: all its tasks share one budget
    name = "resnet50"
    entry = "benchmarks.models:job_model"   # module:function returning (model, inputs)
    args = ["resnet50"]       # optional: the function's arguments
    trials = 2000             # the model's total budget (task scheduler: scheduler.py)
    tuner = "auto"            # auto (grid for small spaces, else xgb) | xgb | ga | random | grid
    early_stopping = 200      # optional, per task; opt_level = 3, round_trials = 8, seed = 0,
                              # fixed_layout = true (see scheduler.py)

A job needs at least one ``[[task]]`` or ``[[model]]``. ``load_job`` checks everything before any work starts and raises ``JobError`` naming the
file and the key: unknown keys, missing or ill-typed values, unimportable modules, unknown
templates, arguments the template rejects, model entries that do not resolve. ``run_job`` keeps every measurement slot of the
cluster busy across the tasks (a finished measurement frees a slot for whichever task is
next in turn), streams each result into its tuner and into the log as it arrives (the log
is written by this process only, one flushed line per record), and with ``resume=True``
continues from the log without measuring anything twice. A model is loaded, its tasks
extracted (``extract_tasks``) and its latency measured before any tuning; its tasks are
then tuned by the task scheduler (resuming from whatever the log already holds), and
after the cluster has shut down its latency is measured again under the log; the figures
and the tasks go to its summary file (``model.summary_path``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tensorlang.errors import TensorlangError

from tensorlang.dispatch import TEMPLATES, Task, record

from .scheduler import TUNERS, TaskScheduler, make_tuner
_TOP = {"modules", "log", "measure", "ray", "task", "model"}
_MEASURE = {"number": int, "repeat": int, "min_repeat_ms": (int, float), "timeout": (int, float),
            "build_timeout": (int, float)}
_RAY = {"address": str, "cpus_per_measurement": (int, float), "num_workers": int,
        "resources": dict, "cpu_model": str}
_TASK = {"template": str, "args": list, "trials": int, "tuner": str, "early_stopping": int,
         "seed": int}
_MODEL = {"name": str, "entry": str, "args": list, "trials": int, "tuner": str,
          "early_stopping": int, "seed": int, "opt_level": int, "round_trials": int,
          "fixed_layout": bool}


class JobError(TensorlangError):
    """A job file that cannot run, with the file and key named."""


@dataclass
class TaskSpec:
    template: str
    args: list
    trials: int
    tuner: str = "xgb"
    early_stopping: int | None = None
    seed: int = 0
    task: Task | None = None


@dataclass
class ModelSpec:
    name: str
    entry: str
    trials: int
    args: list = field(default_factory=list)
    tuner: str = "auto"
    early_stopping: int | None = None
    seed: int = 0
    opt_level: int = 3
    round_trials: int = 8
    fixed_layout: bool = True


@dataclass
class Job:
    path: str
    modules: list
    log: str
    tasks: list
    measure: dict = field(default_factory=dict)
    ray: dict = field(default_factory=dict)
    models: list = field(default_factory=list)


def _check_table(path, where, table, schema):
    if not isinstance(table, dict):
        raise JobError(f"{path}: {where} must be a table")
    for key, value in table.items():
        if key not in schema:
            raise JobError(f"{path}: unknown key {where + '.' if where else ''}{key!r}; "
                           f"expected one of {sorted(schema)}")
        typ = schema[key]
        if typ is not None and (not isinstance(value, typ)
                                or (isinstance(value, bool) and typ is not bool)):
            raise JobError(f"{path}: {where + '.' if where else ''}{key} = {value!r} has the "
                           f"wrong type")


def load_job(path) -> Job:
    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise JobError(f"{path}: cannot read the job file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise JobError(f"{path}: not valid TOML ({e})") from None
    _check_table(path, "", data, {k: None for k in _TOP})
    modules = data.get("modules", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise JobError(f"{path}: modules must be a list of module names")
    if not isinstance(data.get("log"), str) or not data["log"]:
        raise JobError(f"{path}: log (the path of the tuning log) is required")
    measure, ray_opts = data.get("measure", {}), data.get("ray", {})
    _check_table(path, "measure", measure, _MEASURE)
    _check_table(path, "ray", ray_opts, _RAY)
    if "." not in sys.path:
        sys.path.insert(0, ".")
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:                          # noqa: BLE001 - reported with the key
            raise JobError(f"{path}: modules: cannot import {m!r}: {type(e).__name__}: {e}") from None
    tasks, models = data.get("task", []), data.get("model", [])
    if not isinstance(tasks, list) or not isinstance(models, list) or not (tasks or models):
        raise JobError(f"{path}: at least one [[task]] or [[model]] table is required")
    specs = []
    for n, t in enumerate(tasks):
        where = f"task[{n}]"
        _check_table(path, where, t, _TASK)
        for key in ("template", "args", "trials"):
            if key not in t:
                raise JobError(f"{path}: {where}.{key} is required")
        if t["template"] not in TEMPLATES:
            raise JobError(f"{path}: {where}.template: no template named {t['template']!r} "
                           f"(registered: {sorted(TEMPLATES)})")
        if t.get("tuner", "xgb") not in TUNERS:
            raise JobError(f"{path}: {where}.tuner must be one of {list(TUNERS)}, got {t['tuner']!r}")
        if t["trials"] < 1:
            raise JobError(f"{path}: {where}.trials must be at least 1")
        spec = TaskSpec(**t)
        try:
            spec.task = Task(spec.template, spec.args)
        except Exception as e:                          # noqa: BLE001 - reported with the key
            raise JobError(f"{path}: {where}.args {spec.args!r}: the template rejects them: "
                           f"{type(e).__name__}: {e}") from None
        specs.append(spec)
    return Job(path, modules, data["log"], specs, measure, ray_opts,
               [_model_spec(path, n, m) for n, m in enumerate(models)])


def _model_spec(path, n, m) -> ModelSpec:
    from .model import ModelError, resolve
    where = f"model[{n}]"
    _check_table(path, where, m, _MODEL)
    for key in ("name", "entry", "trials"):
        if key not in m:
            raise JobError(f"{path}: {where}.{key} is required")
    if m.get("tuner", "auto") not in TUNERS:
        raise JobError(f"{path}: {where}.tuner must be one of {list(TUNERS)}, got {m['tuner']!r}")
    for key in ("trials", "round_trials"):
        if m.get(key, 1) < 1:
            raise JobError(f"{path}: {where}.{key} must be at least 1")
    try:
        resolve(m["entry"])
    except ModelError as e:
        raise JobError(f"{path}: {where}.{e}") from None
    return ModelSpec(**m)


def _tuner(spec: TaskSpec):
    """A [[task]]'s tuner: one task gets the time to lower configs for IR features."""
    return make_tuner(spec.task, spec.tuner, spec.seed, features="itervar")


def make_runner(job: Job, address: str | None = None):
    """The ``RayRunner`` of ``job`` (its [ray] and [measure] tables; ``address`` overrides
    the job's)."""
    from .ray_runner import RayRunner
    ray_opts = dict(job.ray)
    return RayRunner(address=address or ray_opts.pop("address", None),
                     **{k: v for k, v in ray_opts.items() if k != "address"}, **job.measure)


def measurement_threads(job: Job) -> int:
    """Threads the job's candidates were timed with: a measurement's parallel loops get the
    CPUs its actor holds (``cpus_per_measurement``, default 1; see ``RayRunner``)."""
    return max(1, int(job.ray.get("cpus_per_measurement", 1)))


def run_job(job: Job | str, address: str | None = None, resume: bool = False,
            progress: bool = True, runner=None) -> list[dict]:
    """Tune every task and model of ``job``; returns one summary dict per task and per
    model. The runner (``make_runner(job, address)`` unless given) is closed before the
    models are timed after tuning: an embedded Ray cluster is shut down and its processes
    have exited by then."""
    if not isinstance(job, Job):
        job = load_job(job)
    log = Path(job.log)
    if log.exists() and log.stat().st_size and not resume:
        raise JobError(f"{job.path}: the log {job.log} already has records: pass --resume to "
                       f"continue it, or choose another log")
    log.parent.mkdir(parents=True, exist_ok=True)
    models = [_prepare_model(job, spec) for spec in job.models]     # timed on a quiet machine
    runner = runner or make_runner(job, address)
    try:
        rows = _tune_task_specs(job, runner, log, resume, progress) if job.tasks else []
        for spec, m in zip(job.models, models):
            m["scheduler"] = sched = TaskScheduler(
                m["tasks"], log, runner, tuner=spec.tuner, rest_s=m["summary"]["rest_s"],
                round_trials=spec.round_trials, early_stopping=spec.early_stopping,
                fixed_layout=spec.fixed_layout, progress=progress, seed=spec.seed)
            sched.run(spec.trials)
    finally:
        runner.close()
    return rows + [_finish_model(job, spec, m) for spec, m in zip(job.models, models)]


def _prepare_model(job: Job, spec: ModelSpec) -> dict:
    """Load the model, extract its tasks, time it as it builds now (shipped logs and the
    log's records so far applied) and write its summary file."""
    from tensorlang import graph as G
    from tensorlang.dispatch import apply_history_best
    from .extract import extract_tasks
    from .model import (latency_s, load_model, read_summary, summary_path, untemplated_s,
                        write_summary)
    mod, inputs = load_model(spec.entry, spec.args)
    tasks = extract_tasks(mod, opt_level=spec.opt_level)
    ctx = apply_history_best(job.log) if Path(job.log).exists() else contextlib.nullcontext()
    with ctx:
        lib = G.build(mod, opt_level=spec.opt_level)
    summary = {"model": spec.name, "entry": spec.entry, "args": spec.args, "log": job.log,
               "target": tasks[0].target if tasks else None, "opt_level": spec.opt_level,
               "tasks": [{"workload": t.workload, "weight": t.weight, "flop": t.flop} for t in tasks],
               "rest_s": untemplated_s(lib, inputs), "before_s": latency_s(lib, inputs),
               "before_dispatch": lib.dispatch_report()}
    path = summary_path(job.log, spec.name)
    if path.exists():            # resumed: "before" stays what it was before the first run
        old = read_summary(path)
        if old["tasks"] == summary["tasks"]:
            summary.update({k: old[k] for k in ("rest_s", "before_s", "before_dispatch")})
    write_summary(path, summary)
    return {"mod": mod, "inputs": inputs, "tasks": tasks, "summary": summary}


def _finish_model(job: Job, spec: ModelSpec, m: dict) -> dict:
    """Build the model under the log, time it, and complete its summary file."""
    from tensorlang import graph as G
    from tensorlang.dispatch import apply_history_best
    from .model import latency_s, summary_path, untemplated_s, write_summary
    sched = m["scheduler"]
    with apply_history_best(job.log):
        lib = G.build(m["mod"], opt_level=spec.opt_level)
    summary = m["summary"]
    est = sched.estimate()
    summary.update({"trials": sched.total_trials, "resumed": sched.resumed,
                    "wall_s": sched.wall_s, "start_estimate_s": sched.start_estimate,
                    "estimate_s": est, "after_s": latency_s(lib, m["inputs"]),
                    "after_rest_s": untemplated_s(lib, m["inputs"]),
                    "after_dispatch": lib.dispatch_report(), "tasks_tuned": sched.summary()})
    write_summary(summary_path(job.log, spec.name), summary)
    return {"model": spec.name, "tasks": len(m["tasks"]), "trials": sched.total_trials,
            "wall_s": sched.wall_s, "before_ms": summary["before_s"] * 1e3,
            "estimate_ms": est * 1e3 if est is not None else None,
            "after_ms": summary["after_s"] * 1e3, "summary": str(summary_path(job.log, spec.name))}


def _tune_task_specs(job: Job, runner, log: Path, resume: bool, progress: bool) -> list[dict]:
    """The job's ``[[task]]`` tables, each with its own budget, round-robin over the slots."""
    tuners = [_tuner(spec) for spec in job.tasks]
    if resume and log.exists():
        for t in tuners:
            t.resume(log)
    bars = _Progress(job, tuners) if progress else None
    inflight = [0] * len(tuners)
    stopped = [False] * len(tuners)
    turn = 0
    t0 = time.perf_counter()
    try:
        runner.start()
        while True:
            while runner.slots:                            # fill every free slot
                for k in range(len(tuners)):
                    i = (turn + k) % len(tuners)
                    t, spec = tuners[i], job.tasks[i]
                    if stopped[i] or t.trials + inflight[i] >= spec.trials:
                        continue
                    t0s = time.perf_counter()
                    (c,) = t.propose(1) or (None,)
                    t.search_s += time.perf_counter() - t0s
                    if c is None:
                        stopped[i] = True
                        continue
                    t.visited.add(c.index)
                    runner.submit(t.task, c, handle=(i, c))
                    inflight[i] += 1
                    turn = i + 1
                    break
                else:
                    break                                  # no task wants more
            if not runner.busy:
                break
            for (i, c), res in runner.poll(0.5):
                t = tuners[i]
                inflight[i] -= 1
                record.append(log, record.make_record(t.task, c, res))
                t._record([c], [res])
                t0s = time.perf_counter()
                t.update([c], [res])
                t.search_s += time.perf_counter() - t0s
                es = job.tasks[i].early_stopping
                if es and t.best_trial >= 0 and t.trials - t.best_trial >= es:
                    stopped[i] = True
                if bars:
                    bars.update(i, runner.busy)
    finally:
        if bars:
            bars.close()
    wall = time.perf_counter() - t0
    return [{"workload": t.task.workload, "trials": t.trials, "errors": dict(t.errors),
             "best_gflops": t.best_gflops, "best_config": t.best_config.to_json() if t.best_config else None,
             "wall_s": wall} for t in tuners]


class _Progress:
    """One tqdm bar per task: trials, errors, best GFLOPS, ETA, and the busy slots."""

    def __init__(self, job, tuners):
        from tqdm import tqdm
        self.tuners = tuners
        self.bars = [tqdm(total=spec.trials, initial=t.trials, position=i, leave=True,
                          desc=f"{spec.template} {json.dumps(spec.args)}", unit="trial",
                          dynamic_ncols=True)
                     for i, (spec, t) in enumerate(zip(job.tasks, tuners))]

    def update(self, i, busy):
        t = self.tuners[i]
        self.bars[i].set_postfix_str(f"best {t.best_gflops:.1f} GFLOPS, "
                                     f"{sum(t.errors.values())} errors, {busy} busy")
        self.bars[i].update(t.trials - self.bars[i].n)

    def close(self):
        for b in self.bars:
            b.close()


def summary_table(rows) -> str:
    lines = []
    models = [r for r in rows if "model" in r]
    if models:
        lines.append(f"{'model':<16}{'tasks':>6}{'trials':>8}{'wall s':>9}{'before ms':>11}"
                     f"{'estimate ms':>13}{'after ms':>10}  summary")
        for r in models:
            est = f"{r['estimate_ms']:.2f}" if r["estimate_ms"] is not None else "-"
            lines.append(f"{r['model']:<16}{r['tasks']:>6}{r['trials']:>8}{r['wall_s']:>9.0f}"
                         f"{r['before_ms']:>11.2f}{est:>13}{r['after_ms']:>10.2f}  {r['summary']}")
    rows = [r for r in rows if "model" not in r]
    if not rows:
        return "\n".join(lines)
    lines.append(f"{'workload':<48}{'trials':>7}{'errors':>7}{'best GFLOPS':>13}  best config")
    for r in rows:
        lines.append(f"{json.dumps(r['workload']):<48}{r['trials']:>7}{sum(r['errors'].values()):>7}"
                     f"{r['best_gflops']:>13.1f}  {json.dumps(r['best_config'])}")
    return "\n".join(lines)
