"""The task scheduler: one trial budget spread over the tasks of a model (Ansor's
gradient-based task scheduler; Zheng et al., OSDI 2020, section 6).

What it minimises is the model's latency as the tuning sees it,

    estimate = rest_s + sum over tasks of weight_i * best_i

``best_i`` the best time measured for task ``i``'s kernel, ``weight_i`` its calls per run
and ``rest_s`` the time of the kernels no template covers (``untemplated_s``).

1. **Warm-up.** Every task gets one round of ``round_trials`` trials in turn; its first are
   the config the build would use now (a record shipped for this CPU, when there is one)
   and the template's default config, so every ``best_i`` is known after the warm-up and a
   tuned result is never slower than what the build had.
2. **Gradient rounds.** Each next round goes to the task whose gradient of the estimate is
   most negative (with probability ``eps`` a random task, so no task starves):

       g_i = weight_i * (alpha * backward_i + (1 - alpha) * forward_i)
       backward_i = (best_i(t_i) - best_i(t_i - window)) / window      its recent slope
       forward_i  = min(-best_i / t_i,                                 room left, optimistic
                        beta * flop_i / V_i - best_i)                  what similar tasks reach

   ``t_i`` is the task's trial count and ``V_i`` the best GFLOPS reached by any task of
   the same template.
3. **Leaving.** A task stops when its space is exhausted, its tuner proposes nothing, or
   ``early_stopping`` of its trials in a row found nothing faster.

**Layouts stay as planned** (``fixed_layout``, the default). A template's ``layout_knobs``
(``conv2d_NCHWc``'s channel blocks) decide how the graph lays out the tensors between
kernels; a block tuned per kernel in isolation would add layout transforms between
neighbours that no task measures (on MobileNet-v2, blocks tuned freely made the estimate
10% faster and the measured model 23% slower). So those knobs keep the values of the
task's default config, the layout the graph was planned with, and only the other knobs
are searched (the tuners' other proposals are skipped unmeasured).

Around that: **transfer** (when a task's first gradient round starts, its ``XGBTuner``
learns from every measurement of the other tasks of its template so far: the warm-up's
and the log's; once, since each transfer refits the model and replans),
**resume** (the log's records count as trials, teach the tuners and are never measured
again; ``n_trial`` is the total, resumed trials included), **streaming** (a runner with
free slots, ``RayRunner``, gets its next candidate from the current round as soon as a slot
frees; ``LocalRunner`` measures a round as one batch), and **progress** (one bar per task
and an overall bar with the estimate and the ETA).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from tensorlang.dispatch import SpaceError, applicable_records, record

from . import measure as measure_mod
from .tuner import GATuner, GridSearchTuner, RandomTuner

TUNERS = ("auto", "xgb", "ga", "random", "grid")
GRID_UP_TO = 64          # "auto" measures spaces this small exhaustively


def make_tuner(task, kind: str = "auto", seed: int = 0, features: str = "knob"):
    """A tuner of the kind named (``auto | xgb | ga | random | grid``; ``auto``: grid for
    spaces of at most ``GRID_UP_TO`` configs, else xgb). The scheduler's XGBoost reads knob
    ``features``: lowering every config the annealing visits (``"itervar"``) cost about
    10 ms each, more than measuring, on a model's many small kernels."""
    if kind == "auto":
        kind = "grid" if len(task.config_space) <= GRID_UP_TO else "xgb"
    if kind == "xgb":
        from .xgb_tuner import XGBTuner
        return XGBTuner(task, feature_type=features, seed=seed)
    if kind not in TUNERS:
        raise ValueError(f"tuner must be one of {list(TUNERS)}, got {kind!r}")
    return {"ga": GATuner, "random": RandomTuner, "grid": GridSearchTuner}[kind](task, seed=seed)


def fixed_knobs(task) -> dict:
    """The layout knobs of ``task``'s template at its default config's values."""
    knobs = task.template.layout_knobs
    return {k: v for k, v in task.config_space.fallback().to_json().items() if k in knobs}


def shipped_configs(tasks) -> list[list]:
    """Per task, the config of the record shipped for its workload on its target ([] if
    none); each target's shipped logs are read once."""
    shipped: dict = {}
    out = []
    for task in tasks:
        if task.target not in shipped:
            shipped[task.target] = {json.dumps(r["workload"]): r["config"]
                                    for r in applicable_records(task.target)}
        knobs = shipped[task.target].get(json.dumps(task.workload))
        try:
            out.append([task.config_space.from_json(knobs)] if knobs is not None else [])
        except SpaceError:
            out.append([])
    return out


class BatchStream:
    """The streaming interface (``slots``/``submit``/``poll``/``busy``) over a builder and
    a runner that measure batches (``LocalBuilder`` + ``LocalRunner``): up to ``size``
    candidates are queued, ``poll`` builds and runs them, one batch per task."""

    def __init__(self, builder, runner, size: int):
        self.builder, self.runner, self.size = builder, runner, size
        self.queue: list = []            # (task, config, handle)

    def start(self) -> None:
        pass

    @property
    def slots(self) -> int:
        return max(0, self.size - len(self.queue))

    @property
    def busy(self) -> int:
        return len(self.queue)

    def submit(self, task, config, handle=None) -> None:
        self.queue.append((task, config, handle))

    def close(self) -> None:
        self.builder.close()
        self.runner.close()

    def poll(self, timeout: float = 0.0) -> list:
        out, queue, self.queue = [], self.queue, []
        while queue:
            task = queue[0][0]
            batch = [q for q in queue if q[0] is task]
            queue = [q for q in queue if q[0] is not task]
            configs = [c for _, c, _ in batch]
            results = self.runner.run(task, self.builder.build(task, configs))
            out += [(h, r) for (_, _, h), r in zip(batch, results)]
        return out


class TaskScheduler:
    """Tunes ``tasks`` (each with ``.weight``, default 1) together; see the module
    docstring. ``run(n_trial)`` returns the final estimate in seconds."""

    def __init__(self, tasks, log, runner, tuner: str = "auto", rest_s: float = 0.0,
                 round_trials: int = 8, early_stopping: int | None = None, alpha: float = 0.2,
                 beta: float = 2.0, window: int = 3, eps: float = 0.05,
                 fixed_layout: bool = True, resume: bool = True, progress: bool = True,
                 seed: int = 0):
        if not tasks:
            raise ValueError("tune_tasks: no tasks to tune")
        self.tasks = list(tasks)
        self.weights = [float(getattr(t, "weight", 1)) for t in self.tasks]
        self.log = Path(log)
        self.runner = runner
        self.rest_s, self.round_trials = rest_s, round_trials
        self.early_stopping = early_stopping
        self.alpha, self.beta, self.window, self.eps = alpha, beta, window, eps
        self.rng = np.random.default_rng(seed)
        self.tuners = [make_tuner(t, tuner, seed) for t in self.tasks]
        self.fixed = [fixed_knobs(t) if fixed_layout else {} for t in self.tasks]
        self.seeds = shipped_configs(self.tasks)
        self.best_hist: list[list[float]] = [[] for _ in self.tasks]   # best cost after each trial
        self.inflight = [0] * len(self.tasks)
        self.dead = [False] * len(self.tasks)
        self.round: tuple[int, int] | None = None                     # (task, trials left)
        self.curve: list[tuple[int, float, float]] = []                # (trials, estimate, wall s)
        self.start_estimate: float | None = None
        self.wall_s = 0.0
        self.log.parent.mkdir(parents=True, exist_ok=True)
        records = record.load_from_file(self.log) if resume and self.log.exists() else []
        for i, t in enumerate(self.tuners):
            if records:
                t.resume(self.log)
            best = math.inf
            for _, _, r in t.history:
                best = min(best, r.cost)
                self.best_hist[i].append(best)
            self.dead[i] = not t.has_next() or self._stalled(t)
        self.resumed = self.total_trials
        self._pending_transfer: dict[str, list] = {}
        self._transferred = [False] * len(self.tasks)
        for rec in records:
            self._pending_transfer.setdefault(rec["workload"][0], []).append(rec)
        self.bars = _Progress(self) if progress else None

    def _stalled(self, t) -> bool:
        """``early_stopping`` trials of ``t`` in a row found nothing faster."""
        return bool(self.early_stopping and t.best_trial >= 0
                    and t.trials - t.best_trial >= self.early_stopping)

    # ------------------------------------------------------------------ the objective
    @property
    def total_trials(self) -> int:
        return sum(t.trials for t in self.tuners)

    def estimate(self) -> float | None:
        """``rest_s + sum(weight * best)``, once every task has a successful measurement."""
        if any(t.best_cost == math.inf for t in self.tuners):
            return None
        return self.rest_s + sum(w * t.best_cost for w, t in zip(self.weights, self.tuners))

    def gradient(self, i: int) -> float:
        t, hist = self.tuners[i], self.best_hist[i]
        best = t.best_cost
        if best == math.inf or not hist:
            return -math.inf                      # nothing works yet: try it first
        back = (hist[-1] - hist[max(0, len(hist) - 1 - self.window)]) / self.window
        similar = [u for u in self.tuners if u.task.name == t.task.name and u.best_cost < math.inf]
        v = max(u.task.flop / u.best_cost for u in similar)
        fwd = min(-best / len(hist), self.beta * t.task.flop / v - best)
        return self.weights[i] * (self.alpha * back + (1 - self.alpha) * fwd)

    def _live(self) -> list[int]:
        return [i for i in range(len(self.tasks)) if not self.dead[i]]

    def _pick(self) -> int | None:
        live = self._live()
        if not live:
            return None
        cold = [i for i in live if len(self.best_hist[i]) + self.inflight[i] < self.round_trials]
        if cold:                                   # the warm-up, round-robin
            return cold[0]
        if self.rng.random() < self.eps:
            return int(self.rng.choice(live))
        return min(live, key=lambda i: (self.gradient(i), i))

    # ------------------------------------------------------------------ proposing
    def _next(self, budget_left: int):
        """``(task index, config)`` for the next free slot, or None when nothing is left."""
        while budget_left > 0:
            if self.round is None or self.round[1] == 0 or self.dead[self.round[0]]:
                i = self._pick()
                if i is None:
                    return None
                self.round = (i, self.round_trials)
                self._transfer(i)
            i, left = self.round
            t = self.tuners[i]
            t0 = time.perf_counter()
            seeds = [c for c in self.seeds[i] if c.index not in t.visited]
            self.seeds[i] = seeds[1:]
            proposed = seeds[:1] or (t.propose(1) if t.has_next() else [])
            t.search_s += time.perf_counter() - t0
            c = proposed[0] if proposed else None
            if c is None:
                self.dead[i] = True
                continue
            t.visited.add(c.index)
            if self.fixed[i] and any(c.to_json()[k] != v for k, v in self.fixed[i].items()):
                continue                           # another layout: never measured
            self.round = (i, left - 1)
            self.inflight[i] += 1
            return i, c
        return None

    def _transfer(self, i: int) -> None:
        """At task ``i``'s first round after its warm-up: teach its XGBoost model the
        measurements of the other tasks of its template so far."""
        t = self.tuners[i]
        if self._transferred[i] or not hasattr(t, "load_history") or t.trials < self.round_trials:
            return
        self._transferred[i] = True
        t.load_history([r for r in self._pending_transfer.get(t.task.name, [])
                        if r["workload"] != t.task.workload])

    # ------------------------------------------------------------------ receiving
    def _receive(self, i: int, config, result) -> None:
        t = self.tuners[i]
        self.inflight[i] -= 1
        rec = record.make_record(t.task, config, result)
        record.append(self.log, rec)
        self._pending_transfer.setdefault(t.task.name, []).append(rec)
        t._record([config], [result])
        t0 = time.perf_counter()
        t.update([config], [result])
        t.search_s += time.perf_counter() - t0
        hist = self.best_hist[i]
        hist.append(min(hist[-1] if hist else math.inf, result.cost))
        if self._stalled(t):
            self.dead[i] = True
        if len(hist) >= self.round_trials and t.best_cost == math.inf:
            self.dead[i] = True                   # a whole round and nothing ran: give up on it
        est = self.estimate()
        if est is not None:
            if self.start_estimate is None:
                self.start_estimate = est
            self.curve.append((self.total_trials, est, time.perf_counter() - self._t0))
        if self.bars:
            self.bars.update(i, est)

    def run(self, n_trial: int) -> float | None:
        """Measure until ``n_trial`` trials in all (resumed ones included) or until every
        task has left; returns the final estimate (seconds; None if some task never ran)."""
        self._t0 = time.perf_counter()
        runner = self.runner
        if self.bars:
            self.bars.set_total(n_trial)
        try:
            runner.start()
            while True:
                while runner.slots:
                    nxt = self._next(n_trial - self.total_trials - sum(self.inflight))
                    if nxt is None:
                        break
                    i, c = nxt
                    runner.submit(self.tasks[i], c, handle=(i, c))
                if not runner.busy:
                    break
                for (i, c), res in runner.poll(0.5):
                    self._receive(i, c, res)
        finally:
            self.wall_s = time.perf_counter() - self._t0
            if self.bars:
                self.bars.close()
        return self.estimate()

    def summary(self) -> list[dict]:
        """One row per task: workload, weight, trials, errors, best ms and GFLOPS, config."""
        return [{"workload": t.task.workload, "weight": w, "trials": t.trials,
                 "errors": dict(t.errors), "best_ms": t.best_cost * 1e3 if t.best_cost < math.inf else None,
                 "best_gflops": t.best_gflops,
                 "best_config": t.best_config.to_json() if t.best_config else None}
                for w, t in zip(self.weights, self.tuners)]


def tune_tasks(tasks, n_trial: int, log, measure_option=None, tuner: str = "auto",
               rest_s: float = 0.0, early_stopping: int | None = None, round_trials: int = 8,
               fixed_layout: bool = True, resume: bool = True, progress: bool = True,
               seed: int = 0) -> TaskScheduler:
    """Tune ``tasks`` (``extract_tasks``) with ``n_trial`` trials in all, appending every
    measurement to ``log`` and continuing from what it already holds (``resume``). The
    runner of ``measure_option`` (default ``LocalBuilder`` + ``LocalRunner``) is not closed
    unless made here. Returns the scheduler: ``.estimate()``, ``.curve``, ``.summary()``."""
    own = measure_option is None
    opt = measure_option or measure_mod.measure_option()
    runner = opt["runner"]
    stream = runner if hasattr(runner, "submit") else BatchStream(opt["builder"], runner, round_trials)
    sched = TaskScheduler(tasks, log, stream, tuner=tuner, rest_s=rest_s, round_trials=round_trials,
                          early_stopping=early_stopping, fixed_layout=fixed_layout,
                          resume=resume, progress=progress, seed=seed)
    try:
        sched.run(n_trial)
    finally:
        if own:
            stream.close()
    return sched


def model_curve(log, tasks: list[dict], rest_s: float = 0.0) -> list[tuple[int, float]]:
    """The estimate after each trial of the log's records for ``tasks`` (``[{"workload",
    "weight"}]``), in file order: ``[(trials, seconds)]`` from the first trial at which every
    task had a successful measurement (what ``autotune plot`` draws for a model)."""
    weight = {json.dumps(t["workload"]): float(t["weight"]) for t in tasks}
    best: dict = {}
    out, n = [], 0
    for rec in record.load_from_file(log):
        key = json.dumps(rec["workload"])
        if key not in weight:
            continue
        n += 1
        c = record.cost(rec)
        if c < best.get(key, math.inf):
            best[key] = c
        if len(best) == len(weight) and all(v < math.inf for v in best.values()):
            out.append((n, rest_s + sum(weight[k] * v for k, v in best.items())))
    return out


class _Progress:
    """One tqdm line per task (weight x best, GFLOPS, trials) and an overall bar with the
    estimated end-to-end latency and the ETA."""

    def __init__(self, sched: TaskScheduler):
        from tqdm import tqdm
        self.sched = sched
        self.total = tqdm(total=None, initial=sched.total_trials, position=0, desc="model",
                          unit="trial", dynamic_ncols=True, leave=True)
        self.bars = []
        for k, t in enumerate(sched.tasks):
            name, args = t.workload
            self.bars.append(tqdm(total=None, initial=sched.tuners[k].trials, position=k + 1,
                                  leave=True, dynamic_ncols=True, unit="trial",
                                  desc=f"{name.split('/')[-1]} {json.dumps(args)} x{sched.weights[k]:g}"))

    def set_total(self, n_trial: int) -> None:
        self.total.total = n_trial
        self.total.refresh()

    def update(self, i: int, est) -> None:
        s, t = self.sched, self.sched.tuners[i]
        self.bars[i].set_postfix_str(
            f"{s.weights[i] * t.best_cost * 1e3:.3f} ms, {t.best_gflops:.1f} GFLOPS"
            + (", done" if s.dead[i] else ""), refresh=False)
        self.bars[i].update(t.trials - self.bars[i].n)
        if est is not None:
            self.total.set_postfix_str(f"estimate {est * 1e3:.2f} ms (from "
                                       f"{s.start_estimate * 1e3:.2f})", refresh=False)
        self.total.update(s.total_trials - self.total.n)

    def close(self) -> None:
        for b in [self.total, *self.bars]:
            b.close()
