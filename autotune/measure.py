"""Measuring candidates: build each in a worker process, run it in another, never in the
tuner's own process.

* ``LocalBuilder(timeout, n_parallel)``: instantiates the template with the candidate's
  config, lowers and compiles it, and exports a shared library, in parallel workers.
* ``LocalRunner(number, repeat, min_repeat_ms, timeout)``: loads a library in an isolated
  worker, runs it on seeded random inputs with its outputs pre-filled with a sentinel (NaN,
  or a fixed pattern for integers, so that skipped writes are caught), compares the outputs
  with the *untuned* schedule's (the template's compute under a default schedule, built
  once per worker), and only then times it with ``time_evaluator``.

Every result carries an ``ErrorClass`` and a message; a failed candidate costs infinity and
the run goes on. A runner is anything with ``run(task, build_results) -> [MeasureResult]``
(the Ray runner of the next issue plugs in there).
"""

from __future__ import annotations

import enum
import importlib
import math
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .pool import WorkerPool
from tensorlang.dispatch.record import host_info


class ErrorClass(enum.Enum):
    NONE = "none"
    INSTANTIATION = "instantiation_error"
    BUILD = "build_error"
    BUILD_TIMEOUT = "build_timeout"
    RUNTIME = "runtime_error"
    RUN_TIMEOUT = "run_timeout"
    WRONG_ANSWER = "wrong_answer"
    UNKNOWN = "unknown"


@dataclass
class BuildResult:
    path: str | None
    error: ErrorClass = ErrorClass.NONE
    message: str = ""
    build_s: float = 0.0
    knobs: dict | None = None          # the config built (its JSON form)


@dataclass
class MeasureResult:
    costs: list
    error: ErrorClass = ErrorClass.NONE
    message: str = ""
    build_s: float = 0.0
    run_s: float = 0.0
    timestamp: float = field(default_factory=time.time)
    host: dict | None = None

    @property
    def cost(self) -> float:
        return math.inf if self.error != ErrorClass.NONE or not self.costs else float(np.mean(self.costs))

    def error_text(self) -> str | None:
        return None if self.error == ErrorClass.NONE else f"{self.error.value}: {self.message}"


# ----------------------------------------------------------------------------- worker jobs

def _template(module: str, name: str):
    from tensorlang.dispatch import TEMPLATES
    if name not in TEMPLATES:
        importlib.import_module(module)           # registers the module's templates
    return TEMPLATES[name]


def _build_job(module, name, args, knobs, out_dir, target="llvm"):
    """In a builder worker: instantiate and build for ``target``, export. Returns (path,
    seconds) or raises tagged errors."""
    import tensorlang as tl
    tpl = _template(module, name)
    t = time.perf_counter()
    with tl.target.Target(target):
        try:
            space = tpl.space(*args)
            s, tensors = tpl.instantiate(space.from_json(knobs), *args)
        except Exception as e:
            raise _Tagged(ErrorClass.INSTANTIATION, f"{type(e).__name__}: {e}") from None
        f = tl.build(s, tensors, name="kernel")
    fd, path = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    f.export_library(path)
    return path, time.perf_counter() - t


class _Tagged(Exception):
    def __init__(self, cls: ErrorClass, msg: str):
        super().__init__(f"{cls.value}|{msg}")


_REFERENCE: dict = {}
REFERENCE_TIMEOUT = 300        # seconds allowed for building and running the untuned schedule


def _inputs(meta, seed=0):
    """Seeded random inputs for the params, and sentinel-filled outputs."""
    rng = np.random.default_rng(seed)
    arrays = []
    for p in meta["params"]:
        dtype = np.dtype(p["dtype"])
        shape = tuple(p["shape"])
        if p["name"] in meta["outputs"]:
            fill = np.nan if dtype.kind == "f" else (0x5A if dtype.kind in "iu" else True)
            arrays.append(np.full(shape, fill, dtype=dtype))
        elif dtype.kind == "f":
            arrays.append(rng.uniform(-1, 1, shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, 8, shape).astype(dtype))
    return arrays


def _reference(module, name, args, meta, knobs):
    """The outputs of the template's compute under a default schedule, once per worker and
    signature of the parameters' shapes: the compute is instantiated with the candidate's
    config, since some knobs choose data layouts (``conv2d_NCHWc``'s channel blocks), and a
    candidate is checked against the reference of its own layout."""
    import tensorlang as tl
    key = (module, name, repr(args), repr([p["shape"] for p in meta["params"]]))
    if key not in _REFERENCE:
        tpl = _template(module, name)
        space = tpl.space(*args)
        _, tensors = tpl.instantiate(space.from_json(knobs), *args)
        outs = [t for t in tensors if t.op.name in meta["outputs"]]
        f = tl.build(tl.create_schedule([t.op for t in outs]), tensors, name="reference")
        arrays = _inputs(meta)
        f(*arrays)
        _REFERENCE[key] = [arrays[i] for i, p in enumerate(meta["params"])
                           if p["name"] in meta["outputs"]]
    return _REFERENCE[key]


def _prepare_job(module, name, args, path, knobs):
    import tensorlang as tl
    _reference(module, name, args, tl.load_module(path).meta, knobs)


def _run_job(module, name, args, path, knobs, number, repeat, min_repeat_ms, rtol, atol,
             threads=None):
    """In a runner worker: check the candidate against the reference, then time it (with
    ``threads`` threads for parallel loops when given)."""
    import tensorlang as tl
    if threads:
        tl.runtime.set_num_threads(threads)
    f = tl.load_module(path)
    meta = f.meta
    expect = _reference(module, name, args, meta, knobs)
    arrays = _inputs(meta)
    t = time.perf_counter()
    try:
        f(*arrays)
    except Exception as e:
        raise _Tagged(ErrorClass.RUNTIME, f"{type(e).__name__}: {e}") from None
    got = [arrays[i] for i, p in enumerate(meta["params"]) if p["name"] in meta["outputs"]]
    for g, e, p in zip(got, expect, [p for p in meta["params"] if p["name"] in meta["outputs"]]):
        bad = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=False)
        if bad.any():
            i = np.unravel_index(np.argmax(bad), bad.shape)
            raise _Tagged(ErrorClass.WRONG_ANSWER,
                          f"{int(bad.sum())} of {bad.size} values of {p['name']} differ from the "
                          f"untuned schedule's; first at {tuple(int(x) for x in i)}: {g[i]!r} vs {e[i]!r}")
    res = f.time_evaluator(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)(*arrays)
    return list(res.results), time.perf_counter() - t


def _classify(outcome, timeout_class: ErrorClass, default_class: ErrorClass):
    """(value, ErrorClass, message) of a pool outcome."""
    kind, value = outcome
    if kind == "ok":
        return value, ErrorClass.NONE, ""
    if kind == "timeout":
        return None, timeout_class, value
    if kind == "crash":
        return None, default_class, value
    text = str(value)
    if text.startswith("_Tagged: "):
        cls, _, msg = text[len("_Tagged: "):].partition("|")
        return None, ErrorClass(cls), msg.rsplit(" (at ", 1)[0]
    return None, default_class, text


# ----------------------------------------------------------------------------- builder/runner

class LocalBuilder:
    """Builds candidates in ``n_parallel`` worker processes, each within ``timeout`` s."""

    def __init__(self, timeout: float = 10, n_parallel: int | None = None):
        self.timeout = timeout
        self.pool = WorkerPool(n_parallel or os.cpu_count() or 1)
        self.dir = tempfile.TemporaryDirectory(prefix="autotune-build-")

    def build(self, task, configs) -> list[BuildResult]:
        tpl = task.template
        jobs = [(_build_job, (tpl.fn.__module__, tpl.name, task.args, c.to_json(), self.dir.name,
                              task.target)) for c in configs]
        out = []
        for c, oc in zip(configs, self.pool.run(jobs, self.timeout)):
            value, cls, msg = _classify(oc, ErrorClass.BUILD_TIMEOUT, ErrorClass.BUILD)
            out.append(BuildResult(value[0], build_s=value[1], knobs=c.to_json()) if value
                       else BuildResult(None, cls, msg, knobs=c.to_json()))
        return out

    def close(self):
        self.pool.close()
        self.dir.cleanup()


class LocalRunner:
    """Runs built candidates one at a time in an isolated worker process: a correctness
    check against the untuned schedule, then ``repeat`` rounds of ``number`` calls (more
    when a round would last under ``min_repeat_ms``). A run past ``timeout`` s is killed.
    ``threads``: threads of the candidates' parallel loops (default: all cores)."""

    def __init__(self, number: int = 5, repeat: int = 3, min_repeat_ms: float = 0,
                 timeout: float = 10, rtol: float = 1e-4, atol: float = 1e-4,
                 threads: int | None = None):
        self.number, self.repeat, self.min_repeat_ms = number, repeat, min_repeat_ms
        self.timeout, self.rtol, self.atol, self.threads = timeout, rtol, atol, threads
        self.pool = WorkerPool(1)

    def run(self, task, builds: list[BuildResult]) -> list[MeasureResult]:
        tpl = task.template
        out = [None] * len(builds)
        jobs, where = [], []
        for i, b in enumerate(builds):
            if b.error != ErrorClass.NONE:
                out[i] = MeasureResult([], b.error, b.message, b.build_s, host=host_info())
            else:
                jobs.append((_run_job, (tpl.fn.__module__, tpl.name, task.args, b.path, b.knobs, self.number,
                                        self.repeat, self.min_repeat_ms, self.rtol, self.atol,
                                        self.threads)))
                where.append(i)
        for job, i in zip(jobs, where):
            self._prepare(task, job[1][3], job[1][4])
            (oc,) = self.pool.run([job], self.timeout)
            value, cls, msg = _classify(oc, ErrorClass.RUN_TIMEOUT, ErrorClass.RUNTIME)
            b = builds[i]
            if value:
                out[i] = MeasureResult(value[0], ErrorClass.NONE, "", b.build_s, value[1], host=host_info())
            else:
                out[i] = MeasureResult([], cls, msg, b.build_s, host=host_info())
            if b.path:
                try:
                    os.unlink(b.path)
                except OSError:
                    pass
        return out

    def _prepare(self, task, path, knobs):
        """Build the untuned reference in the current worker (the worker keeps one per
        workload and parameter shapes), outside the candidates' timeout."""
        tpl = task.template
        self.pool.run([(_prepare_job, (tpl.fn.__module__, tpl.name, task.args, path, knobs))],
                      self.timeout + REFERENCE_TIMEOUT)

    def close(self):
        self.pool.close()


def measure_option(builder=None, runner=None) -> dict:
    """``{"builder": ..., "runner": ...}`` (defaults: LocalBuilder(), LocalRunner()). A
    runner that builds its candidates itself (``RayRunner``) needs no builder."""
    runner = runner or LocalRunner()
    if builder is None and not hasattr(runner, "measure"):
        builder = LocalBuilder()
    return {"builder": builder, "runner": runner}
