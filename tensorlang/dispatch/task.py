"""Templates, tasks and the dispatch context that decides which config a template gets.

``@autotune.template("name")`` registers a function ``f(*args) -> (schedule, tensors)``
that calls ``autotune.get_config()`` and defines knobs on the result. Calling the template
runs it under the innermost dispatch context:

* ``ApplyConfig(config)``: that config (the builder instantiates candidates this way);
* ``apply_history_best(log)`` (see ``record.py``): the best record for this workload and
  target, if there is one (its knob values are checked against the template's space);
* otherwise a record from the log shipped for this CPU (``shipped_log()``) or one of
  ``EXTRA_LOGS``, for this workload and target;
* otherwise a fallback: the space's default config, with a one-time warning per workload
  (unless the template was registered with ``warn_fallback=False``).

A *workload* is ``[template name, [args...]]`` (JSON-serializable), the key that names a
task in logs, across processes and versions. Keyword arguments of a call are passed to the
function but are not part of the workload: they are for variations that reuse the
workload's tuned config, such as an operator's fused epilogue (bias, activation).
``create_task(name, args, target)`` collects the template's space by running it once in
collecting mode, and counts its flops.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import math
import threading
import warnings

from .. import target as tl_target
from ..te.expr import Binary, Call, Expr, Reduce, TensorLoad
from ..te.tensor import ComputeOp

from .space import ConfigSpace, SpaceError

TEMPLATES: dict = {}
_local = threading.local()


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def workload_key(name: str, args) -> list:
    """``[name, [args...]]``; args must be JSON values (ints, floats, strings, lists)."""
    key = [name, list(args)]
    try:
        if json.loads(json.dumps(key)) != key:
            raise TypeError
    except (TypeError, ValueError):
        raise SpaceError(f"template {name!r}: arguments {args!r} must be JSON values "
                         f"(ints, floats, strings, lists) to name a workload") from None
    return key


class DispatchContext:
    """Answers ``query(target, workload)`` with a config, or None to fall through."""

    def query(self, target: str, workload: list):
        return None

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().remove(self)


class ApplyConfig(DispatchContext):
    """Every template called inside gets ``config``."""

    def __init__(self, config):
        self.config = config

    def query(self, target, workload):
        return self.config


class Untuned(DispatchContext):
    """Every template called inside gets its default config (derived from the target),
    whatever the logs below it hold: ``{}`` is a record with every knob at its default."""

    def query(self, target, workload):
        return {}


def untuned() -> Untuned:
    """``with dispatch.untuned(): ...``: the default schedules, shipped logs ignored (what
    ``python -m benchmarks --untuned`` measures)."""
    return Untuned()


class Trace(DispatchContext):
    """Records every ``(template name, args)`` workload looked up inside it, in call order,
    and falls through to the contexts below (it changes no config). ``sources`` says, for
    each, where its config came from: ``"log"`` (an applied log), ``"shipped"`` (the log
    shipped for the CPU), ``"config"`` (a fixed config) or ``"default"``."""

    def __init__(self):
        self.workloads: list = []
        self.sources: list = []

    def query(self, target, workload):
        self.workloads.append(workload)
        return None


def _report(workload, source: str) -> None:
    """Tell the traces in the stack where ``workload``'s config came from."""
    for ctx in _stack():
        if isinstance(ctx, Trace):
            ctx.sources.append((workload, source))


def trace() -> Trace:
    """``with dispatch.trace() as t: ops.conv2d_nchw(...)``, then ``t.workloads``: the
    canonical workloads the calls looked up (the keys their tuned records must have)."""
    return Trace()


_warned: set = set()


def get_config():
    """The config of the template being called (inside a template only)."""
    current = getattr(_local, "current", None)
    if current is None:
        raise SpaceError("autotune.get_config() is called outside a template")
    return current


def _current_target() -> str:
    """The build target templates are instantiated for (``with tl.target.Target(...)``)."""
    return str(tl_target.Target.current())


class Template:
    """A registered template; calling it instantiates the schedule for the current context."""

    def __init__(self, name, fn, warn_fallback=True, layout_knobs=()):
        self.name, self.fn, self.warn_fallback = name, fn, warn_fallback
        self.layout_knobs = tuple(layout_knobs)
        self.__doc__, self.__wrapped__ = fn.__doc__, fn

    def instantiate(self, config, *args, **fused):
        prev = getattr(_local, "current", None)
        _local.current = config
        try:
            return self.fn(*args, **fused)
        finally:
            _local.current = prev

    def __call__(self, *args, **fused):
        workload = workload_key(self.name, args)
        target = _current_target()
        space = None
        shipped = shipped_contexts()
        for ctx in [*reversed(_stack()), *shipped]:
            cfg = ctx.query(target, workload)
            if isinstance(cfg, dict):            # knob values from a log: check them
                space = space or self.space(*args)
                try:
                    cfg = space.from_json(cfg)
                except SpaceError as e:
                    warnings.warn(f"autotune: skipping a record for {json.dumps(workload)}: {e}",
                                  stacklevel=2)
                    cfg = None
            if cfg is not None:
                _report(workload, "shipped" if ctx in shipped else
                        "config" if isinstance(ctx, ApplyConfig) else
                        "default" if isinstance(ctx, Untuned) else "log")
                return self.instantiate(cfg, *args, **fused)
        _report(workload, "default")
        key = json.dumps(workload)
        if self.warn_fallback and key not in _warned:
            _warned.add(key)
            warnings.warn(f"autotune: no tuned config for workload {key} on {target}; using "
                          f"the template's fallback config (tune it, or apply a log with "
                          f"autotune.apply_history_best)", stacklevel=2)
        # collecting the space answers every knob with its default: that run is the fallback
        return self.instantiate(ConfigSpace(), *args, **fused)

    def space(self, *args) -> ConfigSpace:
        """Collect the knobs by running the template once."""
        space = ConfigSpace()
        self.instantiate(space, *args)
        return space


def template(name: str, warn_fallback: bool = True, layout_knobs=()):
    """Register a template under ``name`` (the decorated function keeps working as one).
    ``warn_fallback=False`` for templates whose fallback config is a good schedule on its
    own (the operator library's). ``layout_knobs``: the knobs that choose the layout of the
    kernel's inputs and outputs (a graph lays its tensors out by them: whole-model tuning
    keeps them as the graph was planned, ``autotune.scheduler``)."""
    if not isinstance(name, str) or not name:
        raise SpaceError(f"a template's name must be a non-empty string, got {name!r}")

    def register(fn):
        TEMPLATES[name] = Template(name, fn, warn_fallback, layout_knobs)
        return TEMPLATES[name]
    return register


# Logs consulted when no dispatch context has a record: the logs shipped for the target's
# CPU (package data; records of another target never apply): the benchmark models' records,
# ``tensorlang/tuning_logs/<cpu>.models.jsonl``, then the operator library's,
# ``<cpu>.jsonl``; then any a user adds to EXTRA_LOGS.
EXTRA_LOGS: list = []
_SHIPPED: dict = {}


def shipped_log(cpu: str | None = None, models: bool = False):
    """The log of tuned records shipped for ``cpu`` as LLVM names it (default: the current
    target's), ``tensorlang/tuning_logs/<cpu>.jsonl`` (the operator library's jobs), or with
    ``models=True`` ``<cpu>.models.jsonl`` (the benchmark models' jobs: the workloads of their
    tasks that the operator log lacks or has slower). Found through ``importlib.resources``
    so that a non-editable install finds it too; the path need not exist."""
    return _shipped_log(cpu or tl_target.Target.current().cpu, models)


@functools.lru_cache(maxsize=None)
def _shipped_log(cpu: str, models: bool):
    from importlib.resources import files            # looked up once per CPU: every
    name = f"{cpu}.models.jsonl" if models else f"{cpu}.jsonl"   # template call consults it
    return files("tensorlang") / "tuning_logs" / name


def _log_paths(cpu: str | None = None) -> list:
    """The logs shipped for ``cpu`` (default: the current target's) that exist, models'
    first, then EXTRA_LOGS: the logs consulted below every dispatch context, in that order."""
    shipped = [str(shipped_log(cpu, models)) for models in (True, False)]
    return [p for p in shipped if _is_file(p)] + [str(p) for p in EXTRA_LOGS]


def shipped_contexts() -> list:
    """The dispatch contexts of the shipped logs (those that exist) and of EXTRA_LOGS."""
    out = []
    for path in _log_paths():
        if path not in _SHIPPED:
            from .record import ApplyHistoryBest
            _SHIPPED[path] = ApplyHistoryBest(path)
        out.append(_SHIPPED[path])
    return out


def applicable_records(target=None) -> list[dict]:
    """The tuned records that apply with no dispatch context when building for ``target``
    (default: the current target): per workload, the best record for this target in the log
    shipped for its CPU, then in EXTRA_LOGS (the first log with one wins, as in dispatch).
    Each record gains ``"log"``, the file it came from. ``autotune records`` prints them."""
    from .record import best_by_workload, load_from_file
    tgt = tl_target.Target(target) if target is not None else tl_target.Target.current()
    found: dict = {}
    for path in _log_paths(tgt.cpu):
        for key, rec in best_by_workload(load_from_file(path), str(tgt)).items():
            found.setdefault(key, {**rec, "log": path})
    return list(found.values())


@functools.lru_cache(maxsize=None)
def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def flop_count(outputs) -> float:
    """Arithmetic of the compute ops reachable from outputs: per output element, the body's
    binary ops and calls (index arithmetic excluded), and for a reduction one combine per
    reduced point. A pure copy (packing, padding) counts 0."""
    seen, total, todo = set(), 0, list(outputs)
    while todo:
        op = todo.pop()
        if id(op) in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(id(op))
        todo.extend(t.op for t in op.input_tensors)
        size = math.prod(int(getattr(d, "value", d)) for d in op.shape)
        body = op.body
        if isinstance(body, Reduce):
            size *= math.prod(int(getattr(ax.dom.extent, "value", ax.dom.extent)) for ax in body.axis)
            body = body.source
            total += size                          # the combine (e.g. the add of a sum)
        total += size * _arith(body)
    return float(total)


def _arith(e) -> int:
    """Binary ops and calls of an expression, not counting index arithmetic (the indices of
    tensor reads)."""
    if isinstance(e, TensorLoad):
        return 0
    own = isinstance(e, (Binary, Call))
    return own + sum(_arith(c) for c in _children(e))


def _children(e):
    for fld in dataclasses.fields(e):
        v = getattr(e, fld.name)
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, Expr):
                yield x


class Task:
    """A template applied to fixed arguments: its workload key, space and flop count."""

    def __init__(self, name: str, args, target=None):
        if name not in TEMPLATES:
            raise SpaceError(f"no template named {name!r}; registered: {sorted(TEMPLATES)}")
        self.name, self.args = name, list(args)
        self.template = TEMPLATES[name]
        self.workload = workload_key(name, self.args)
        self.target = str(tl_target.Target(target) if target is not None
                          else tl_target.Target.current())
        with tl_target.Target(target):
            self.config_space = self.template.space(*self.args)
        s, tensors = self.instantiate(self.config_space.get(0))
        self.flop = flop_count([t.op for t in tensors if isinstance(t.op, ComputeOp)])

    def instantiate(self, config):
        """``(schedule, tensors)`` of this task under ``config``, for the task's target."""
        with tl_target.Target(self.target):
            return self.template.instantiate(config, *self.args)

    def __repr__(self):
        return f"Task({json.dumps(self.workload)}, {len(self.config_space)} configs)"


def create_task(name: str, args, target=None) -> Task:
    """A Task for ``target`` (default: the current target, ``tl.target.Target.current()``)."""
    return Task(name, args, target)
