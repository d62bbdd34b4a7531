"""autotune: schedule templates with knobs, tuners that search their spaces, measurement in
isolated worker processes, JSON-lines tuning logs, and deploy-time dispatch of the best
record. The names follow AutoTVM's.

    @autotune.template("tutorial/matmul")
    def matmul(N, L, M, dtype): ...cfg = autotune.get_config(); cfg.define_split(...)...
    task = autotune.create_task("tutorial/matmul", args=(512, 512, 512, "float32"))
    autotune.XGBTuner(task).tune(n_trial=200, measure_option=autotune.measure_option(),
                                 callbacks=[autotune.callback.log_to_file("tuning_logs/mm.jsonl")])
    with autotune.apply_history_best("tuning_logs/mm.jsonl"):
        s, args = matmul(512, 512, 512, "float32")

Whole models: ``tasks = autotune.extract_tasks(graph_module)`` (weights: kernel calls per
run), then ``autotune.tune_tasks(tasks, n_trial, log)`` (one budget over all the tasks, the
task scheduler of ``scheduler.py``), or a job file with ``[[model]]`` tables.
"""

from tensorlang.dispatch import record, space, task  # noqa: F401  (the dispatch core)
from . import callback  # noqa: F401
from .measure import (BuildResult, ErrorClass, LocalBuilder, LocalRunner, MeasureResult,
                      measure_option)
from tensorlang.dispatch import (TEMPLATES, ApplyConfig, ConfigEntity, ConfigSpace, SpaceError,
                                 Task, applicable_records, apply_history_best, create_task,
                                 get_config, template)
from .tuner import GATuner, GridSearchTuner, RandomTuner, Tuner
from .extract import extract_tasks
from .scheduler import TaskScheduler, tune_tasks

__all__ = ["ApplyConfig", "BuildResult", "ConfigEntity", "ConfigSpace", "ErrorClass",
           "GATuner", "GridSearchTuner", "LocalBuilder", "LocalRunner", "MeasureResult",
           "RandomTuner", "RayRunner", "SpaceError", "TEMPLATES", "Task", "Tuner", "XGBTuner",
           "applicable_records", "apply_history_best",
           "callback", "create_task", "extract_tasks", "get_config", "load_job", "measure_option", "record", "run_job",
           "TaskScheduler", "template", "tune_tasks"]


def __getattr__(name):              # xgboost and ray are imported only when asked for
    if name == "XGBTuner":
        from .xgb_tuner import XGBTuner
        return XGBTuner
    if name == "RayRunner":
        from .ray_runner import RayRunner
        return RayRunner
    if name in ("run_job", "load_job"):
        from . import job
        return getattr(job, name)
    raise AttributeError(f"module 'autotune' has no attribute {name!r}")
