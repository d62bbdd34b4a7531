"""Dispatch: which schedule an operator call gets (AutoTVM's deploy-time half).

A *template* (``@template("name")``) is a function that builds a schedule and defines tuning
knobs on ``get_config()``; a call to it runs under the innermost *dispatch context*: a fixed
config (``ApplyConfig``), the best record of a tuning log (``apply_history_best``), the log
shipped for the target's CPU (``shipped_log()``; ``applicable_records()`` lists what applies),
else the template's default config, derived from the target. The target is the current one
(``with tl.target.Target("llvm -mcpu=haswell"):``, else the host). Every call is
named by its *workload*, ``[template name, [args...]]``, the key of logs and tasks;
``trace()`` records the workloads a piece of code dispatches to.

The tuners, measurement, Ray runner, jobs and CLI live in the ``autotune`` package, which
depends on this one (never the other way round).
"""

from .record import ApplyHistoryBest, apply_history_best, load_from_file  # noqa: F401
from .space import ConfigEntity, ConfigSpace, SpaceError  # noqa: F401
from .task import (EXTRA_LOGS, TEMPLATES, ApplyConfig, DispatchContext, Task,  # noqa: F401
                   Template, applicable_records, create_task, get_config, shipped_log,
                   template, trace, untuned, workload_key)

__all__ = ["ApplyConfig", "ApplyHistoryBest", "ConfigEntity", "ConfigSpace", "DispatchContext",
           "EXTRA_LOGS", "SpaceError", "TEMPLATES", "Task", "Template", "applicable_records",
           "apply_history_best",
           "create_task", "get_config", "load_from_file", "shipped_log", "template", "trace",
           "untuned", "workload_key"]
