"""``RayRunner``: measure candidates on a Ray cluster, embedded or existing.

Each Ray worker slot is a ``MeasureActor`` holding ``cpus_per_measurement`` CPUs (so two
timings never share a core unless asked to: the candidate's parallel loops get that many
threads), which builds and runs candidates with the
local builder and runner of ``measure.py``, that is, in a subprocess of its own. This draws
the line between the two kinds of failure:

* **candidate failures** (the candidate raises, segfaults, hangs, or computes a wrong
  answer) happen in the actor's subprocess, are recorded with their error class and are
  never retried: a deterministic crash retried three times would waste the budget;
* **infrastructure failures** (the actor or its node dies: ``RayActorError``) are retried
  on another actor, up to ``max_retries`` times, then recorded as ``unknown``.

With no ``address`` a local Ray instance is started on demand and shut down by
``close()``, which returns only once every process that instance started (GCS, raylet,
workers and their builder/runner pools) has exited: it notes them (from ``/proc``: the
processes ``ray.init`` started and their descendants) before ``ray.shutdown``, waits up to
``shutdown_timeout`` s for them, kills what is left and reports it in ``shutdown_report``
(so that timings taken after a tuning job do not share the CPUs with a Ray that is still
going away). With an address (``"auto"``, ``"ray://..."``, ``host:port``) the runner
connects to that cluster and leaves it running. ``submit``/``poll`` stream results back as
they finish; ``measure(task, configs)`` is the batch form the ``Tuner`` loop uses.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings

from .measure import ErrorClass, LocalBuilder, LocalRunner, MeasureResult, _template
from tensorlang.dispatch.record import host_info


class MeasureActor:
    """One measurement slot on some node of the cluster."""

    def __init__(self, sys_path, number, repeat, min_repeat_ms, timeout, build_timeout, threads):
        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        self.builder = LocalBuilder(timeout=build_timeout, n_parallel=1)
        self.runner = LocalRunner(number, repeat, min_repeat_ms, timeout, threads=threads)
        self.tasks = {}

    def host(self) -> dict:
        return host_info()

    def measure(self, module, name, args, target, knobs) -> MeasureResult:
        from tensorlang.dispatch import Task
        key = json.dumps([name, args, target])
        if key not in self.tasks:
            _template(module, name)
            self.tasks[key] = Task(name, args, target)
        task = self.tasks[key]
        (res,) = self.runner.run(task, self.builder.build(task, [task.config_space.from_json(knobs)]))
        return res

    def close(self) -> None:
        """End the builder's and the runner's worker processes (before the actor is killed,
        which would leave them to notice it on their own)."""
        self.builder.close()
        self.runner.close()


def descendants(pid: int | None = None) -> dict:
    """``{pid: start time}`` of every living process descended from ``pid`` (default: this
    process), from ``/proc`` (empty where there is no ``/proc``)."""
    children: dict = {}
    try:
        entries = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return {}
    for p in entries:
        st = _stat(p)
        if st and st[0] != "Z":
            children.setdefault(int(st[1]), []).append((p, st[19]))
    out, todo = {}, [pid or os.getpid()]
    while todo:
        for child, start in children.get(todo.pop(), []):
            out[child] = start
            todo.append(child)
    return out


def _stat(pid: int):
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(procs: dict) -> dict:
    """The processes of ``procs`` (``{pid: start time}``) that still run (a zombie or a
    reused pid does not count)."""
    out = {}
    for p, start in procs.items():
        st = _stat(p)
        if st and st[0] != "Z" and st[19] == start:
            out[p] = start
    return out


def wait_exited(procs: dict, timeout: float) -> dict:
    """Wait up to ``timeout`` s for ``procs`` to exit; returns those still running."""
    deadline = time.monotonic() + timeout
    left = alive(procs)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = alive(left)
    return left


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


class RayRunner:
    def __init__(self, address: str | None = None, number: int = 5, repeat: int = 3,
                 min_repeat_ms: float = 0, timeout: float = 10, build_timeout: float | None = None,
                 cpus_per_measurement: float = 1, num_workers: int | None = None,
                 resources: dict | None = None, cpu_model: str | None = None, max_retries: int = 3,
                 shutdown_timeout: float = 30):
        self.address, self.num_workers = address, num_workers
        # a candidate's parallel loops use the CPUs its actor holds, no more
        self.actor_args = (number, repeat, min_repeat_ms, timeout, build_timeout or timeout,
                           max(1, int(cpus_per_measurement)))
        self.cpus, self.resources, self.cpu_model = cpus_per_measurement, resources or {}, cpu_model
        self.max_retries = max_retries
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_report: dict | None = None   # what close() waited for (embedded Ray)
        self.actors: list = []
        self.idle: list = []             # placed actors with nothing to do
        self.starting: dict = {}         # readiness ref -> actor not yet placed/answering
        self.pending: dict = {}          # object ref -> (actor, handle, job, tries)
        self.retry: list = []            # (job, handle, tries) waiting for an idle actor
        self.rejected: set = set()
        self._owns_ray = False
        self._ray_roots: dict = {}
        self._next = 0
        self.started_s = 0.0

    # ------------------------------------------------------------------ cluster
    def start(self) -> None:
        import ray
        if self.actors:
            return
        t = time.perf_counter()
        if not ray.is_initialized():
            before = descendants()
            ray.init(address=self.address, include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False, configure_logging=True)
            self._owns_ray = self.address is None
            # the processes this ray.init started (GCS, raylet, ...): at shutdown, they and
            # whatever they started since (workers, their pools) must end
            self._ray_roots = {p: st for p, st in descendants().items() if p not in before}
        n = self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus))
        for _ in range(n):
            self._spawn()
        ready, _ = ray.wait(list(self.starting), num_returns=len(self.starting), timeout=120)
        self._admit(ready)
        if not self.idle:
            raise RuntimeError("no measurement actor could be placed on the cluster (check "
                               "cpus_per_measurement and resources against the nodes)")
        self.started_s = time.perf_counter() - t

    def _spawn(self) -> None:
        """Ask for one more actor; it takes work once it is placed and has answered."""
        import ray
        cls = ray.remote(MeasureActor).options(num_cpus=self.cpus, resources=self.resources,
                                               max_restarts=0, max_task_retries=0)
        actor = cls.remote(list(sys.path), *self.actor_args)
        self.actors.append(actor)
        self.starting[actor.host.remote()] = actor

    def _admit(self, ready_refs) -> None:
        import ray
        for ref in ready_refs:
            actor = self.starting.pop(ref)
            try:
                host = ray.get(ref)
            except Exception:                        # noqa: BLE001 - died while starting
                self.actors.remove(actor)
                continue
            if self.cpu_model and host["cpu"] != self.cpu_model:
                ray.kill(actor)
                self.actors.remove(actor)
                self.rejected.add(host["cpu"])
                continue
            self.idle.append(actor)
        if self.cpu_model and not self.idle and not self.starting and not self.pending:
            raise RuntimeError(f"no node of the cluster has CPU model {self.cpu_model!r} "
                               f"(seen: {sorted(self.rejected)})")

    def close(self) -> None:
        """Close the actors' worker pools and kill the actors; an embedded Ray is shut down
        and waited for (see the module's docstring)."""
        import ray
        if self.actors and ray.is_initialized():
            closing = []
            for a in self.actors:
                try:
                    closing.append(a.close.remote())
                except Exception:                # noqa: BLE001 - already gone
                    pass
            if closing:                          # busy or dead actors are killed regardless
                ray.wait(closing, num_returns=len(closing), timeout=10)
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:                    # noqa: BLE001 - already gone
                pass
        self.actors, self.idle, self.pending, self.starting, self.retry = [], [], {}, {}, []
        if self._owns_ray and ray.is_initialized():
            self._shutdown(ray)
        self._owns_ray = False

    def _shutdown(self, ray) -> None:
        """``ray.shutdown()``, then wait until every process the embedded Ray started has
        exited (up to ``shutdown_timeout`` s; then they are killed)."""
        t = time.perf_counter()
        procs = dict(alive(self._ray_roots))     # GCS, raylet, workers, their pools
        for p in list(procs):
            procs.update(descendants(p))
        try:
            ray.shutdown(wait_for_processes=True)
        except TypeError:                        # a Ray without that argument
            ray.shutdown()
        left = wait_exited(procs, self.shutdown_timeout)
        killed = {}
        for p in left:
            killed[p] = _cmdline(p)
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        left = wait_exited(left, 5)
        self.shutdown_report = {"processes": len(procs), "killed": sorted(killed.values()),
                                "left": sorted(_cmdline(p) for p in left),
                                "seconds": time.perf_counter() - t}
        if killed:
            warnings.warn(f"Ray shutdown: {len(killed)} of its {len(procs)} processes were still "
                          f"running after {self.shutdown_timeout:g} s and were killed: "
                          f"{sorted(killed.values())}", RuntimeWarning, stacklevel=3)
        if left:
            warnings.warn(f"Ray shutdown: {len(left)} processes could not be ended: "
                          f"{self.shutdown_report['left']}", RuntimeWarning, stacklevel=3)

    @property
    def busy(self) -> int:
        """Candidates started or waiting to be retried."""
        return len(self.pending) + len(self.retry)

    @property
    def slots(self) -> int:
        """Idle actors not claimed by a retry: how many new candidates can start now."""
        return max(0, len(self.idle) - len(self.retry))

    # ------------------------------------------------------------------ streaming
    def submit(self, task, config, handle=None, tries: int = 0) -> None:
        """Start measuring ``config`` on an idle actor; ``poll`` returns it with ``handle``."""
        self.start()
        if not self.slots:
            raise RuntimeError("RayRunner.submit: no idle measurement slot (poll first)")
        actor = self.idle.pop(0)
        tpl = task.template
        job = (tpl.fn.__module__, tpl.name, task.args, task.target, config.to_json())
        ref = actor.measure.remote(*job)
        self.pending[ref] = (actor, handle if handle is not None else config, job, tries)

    def poll(self, timeout: float = 1.0) -> list:
        """``[(handle, MeasureResult)]`` of the measurements that finished (waiting up to
        ``timeout`` s for the first). Infrastructure failures are retried on another actor."""
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError
        self._dispatch_retries()
        waiting = list(self.pending) + list(self.starting)
        if not waiting:
            return []
        done, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
        if done:                                  # and whatever else is ready by now
            done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
        self._admit([r for r in done if r in self.starting])
        out = []
        for ref in [r for r in done if r in self.pending]:
            actor, handle, job, tries = self.pending.pop(ref)
            try:
                out.append((handle, ray.get(ref)))
                self.idle.append(actor)
            except (RayActorError, WorkerCrashedError) as e:
                self._replace(actor)
                if tries < self.max_retries:
                    self.retry.append((job, handle, tries + 1))
                else:
                    out.append((handle, MeasureResult([], ErrorClass.UNKNOWN,
                                                      f"infrastructure failure after {tries + 1} "
                                                      f"tries: {type(e).__name__}")))
        self._dispatch_retries()
        return out

    def _replace(self, dead) -> None:
        import ray
        try:
            ray.kill(dead)
        except Exception:                        # noqa: BLE001 - already gone
            pass
        self.actors.remove(dead)
        self._spawn()

    def _dispatch_retries(self) -> None:
        while self.retry and self.idle:
            job, handle, tries = self.retry.pop(0)
            actor = self.idle.pop(0)
            self.pending[actor.measure.remote(*job)] = (actor, handle, job, tries)

    # ------------------------------------------------------------------ batch form
    def measure(self, task, configs) -> list[MeasureResult]:
        self.start()
        results, todo = {}, list(enumerate(configs))
        while todo or self.pending or self.retry:
            while todo and self.slots:
                i, c = todo.pop(0)
                self.submit(task, c, handle=i)
            for i, res in self.poll(1.0):
                results[i] = res
        return [results[i] for i in range(len(configs))]
