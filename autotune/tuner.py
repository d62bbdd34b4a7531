"""Tuners: propose configs, have them measured, learn from the results.

``Tuner.tune(n_trial, measure_option, early_stopping, callbacks)`` repeats: ask the tuner
for a batch of unvisited configs (``next_batch``), build and run them (the measure
option's builder and runner), tell the tuner the results (``update``), call the callbacks.
The template's fallback (untuned) config is always measured first. Failed candidates
count as infinitely slow. ``n_trial`` is the total budget, including
trials taken over from a log with ``resume(path)`` (which also marks them visited, so a
resumed run measures nothing twice). Every tuner takes a ``seed`` and, given the same
measurements, proposes the same configs.

* ``GridSearchTuner``: configs in index order;
* ``RandomTuner``: uniformly random unvisited configs;
* ``GATuner``: a genetic algorithm over the knob choices (elitism, fitness-proportional
  selection, uniform crossover, per-knob mutation);
* ``XGBTuner`` (``xgb_tuner.py``): an XGBoost cost model and simulated annealing.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import measure as measure_mod
from tensorlang.dispatch import SpaceError, record


class Tuner:
    batch_size = 16

    def __init__(self, task, seed: int = 0):
        self.task = task
        self.space = task.config_space
        self.rng = np.random.default_rng(seed)
        self.visited: set[int] = set()
        self.trials = 0
        self.errors: dict[str, int] = {}
        self.best_config, self.best_cost = None, math.inf
        self.best_trial = -1
        self.history: list = []            # (trial number, config, MeasureResult)
        self._fallback_tried = False
        self.search_s = 0.0                # the tuner's own time: proposing and learning
        self.measure_s = 0.0               # building and running candidates

    # ------------------------------------------------------------------ to override
    def next_batch(self, n: int) -> list:
        raise NotImplementedError

    def update(self, configs, results) -> None:
        pass

    # ------------------------------------------------------------------ the loop
    def propose(self, n: int) -> list:
        """The next ``n`` configs to measure: the template's fallback (untuned) config first
        (unless already measured, by a resumed log), so a tuned record is never slower than
        the default, then ``next_batch``."""
        first = []
        if not self._fallback_tried:
            self._fallback_tried = True
            fb = self.space.fallback()
            if fb.index not in self.visited:
                self.visited.add(fb.index)
                first = [fb]
        return first + (self.next_batch(n - len(first)) if n > len(first) else [])

    @property
    def best_gflops(self) -> float:
        return self.task.flop / self.best_cost / 1e9 if self.best_cost < math.inf else 0.0

    def has_next(self) -> bool:
        return len(self.visited) < len(self.space)

    def _record(self, configs, results) -> None:
        for c, r in zip(configs, results):
            self.visited.add(c.index)
            self.trials += 1
            self.history.append((self.trials, c, r))
            if r.error != measure_mod.ErrorClass.NONE:
                self.errors[r.error.value] = self.errors.get(r.error.value, 0) + 1
            elif r.cost < self.best_cost:
                self.best_config, self.best_cost, self.best_trial = c, r.cost, self.trials

    def tune(self, n_trial: int, measure_option=None, early_stopping: int | None = None,
             callbacks=()) -> None:
        opt = measure_option or measure_mod.measure_option()
        builder, runner = opt["builder"], opt["runner"]
        while self.trials < n_trial and self.has_next():
            t = time.perf_counter()
            configs = self.propose(min(self.batch_size, n_trial - self.trials))
            self.search_s += time.perf_counter() - t
            if not configs:
                break
            t = time.perf_counter()
            if hasattr(runner, "measure"):      # runners that build too (RayRunner)
                results = runner.measure(self.task, configs)
            else:
                results = runner.run(self.task, builder.build(self.task, configs))
            self.measure_s += time.perf_counter() - t
            self._record(configs, results)
            t = time.perf_counter()
            self.update(configs, results)
            self.search_s += time.perf_counter() - t
            for cb in callbacks:
                cb(self, configs, results)
            if early_stopping and self.best_trial >= 0 and self.trials - self.best_trial >= early_stopping:
                break

    def resume(self, path) -> int:
        """Take over this task's measured records from the log at ``path``: they count as
        trials, are never proposed again, and teach the tuner. Returns how many."""
        configs, results = [], []
        for rec in record.load_from_file(path):
            if rec["workload"] != self.task.workload or rec["target"] != self.task.target:
                continue
            try:
                c = self.space.from_json(rec["config"])
            except SpaceError:
                continue
            if c.index in self.visited or c in configs:
                continue
            configs.append(c)
            results.append(result_of(rec))
        self._record(configs, results)
        self.update(configs, results)
        return len(configs)


def result_of(rec: dict) -> "measure_mod.MeasureResult":
    """A MeasureResult back from a log record."""
    res = rec["result"]
    err, msg = measure_mod.ErrorClass.NONE, ""
    if res.get("error"):
        cls, _, msg = res["error"].partition(": ")
        try:
            err = measure_mod.ErrorClass(cls)
        except ValueError:
            err = measure_mod.ErrorClass.UNKNOWN
    return measure_mod.MeasureResult(list(res["costs"]), err, msg, res.get("build_s") or 0.0,
                                     res.get("run_s") or 0.0, rec.get("timestamp", 0.0),
                                     rec.get("host"))


class GridSearchTuner(Tuner):
    """Configs in index order."""

    def __init__(self, task, seed: int = 0):
        super().__init__(task, seed)
        self._next = 0

    def next_batch(self, n):
        out = []
        while len(out) < n and self._next < len(self.space):
            if self._next not in self.visited:
                out.append(self.space.get(self._next))
            self._next += 1
        return out


class RandomTuner(Tuner):
    """Uniformly random unvisited configs."""

    def next_batch(self, n):
        return [self.space.get(i) for i in self._random_unvisited(n)]

    def _random_unvisited(self, n) -> list[int]:
        size, out = len(self.space), []
        left = size - len(self.visited)
        if left <= 4 * n:                       # few left: draw from what remains
            rest = [i for i in range(size) if i not in self.visited]
            return [int(i) for i in self.rng.permutation(rest)[:n]]
        while len(out) < n:
            i = int(self.rng.integers(size))
            if i not in self.visited and i not in out:
                out.append(i)
        return out


class GATuner(RandomTuner):
    """Genetic search: genes are the knobs' choice indices; a generation of ``pop_size`` is
    measured, then the next is bred from the ``pop_size`` best configs measured so far
    (so the ``elite_num`` best always stay parents; AutoTVM's argument), parents drawn with
    probability proportional to GFLOPS, uniform crossover, each gene mutated with
    ``mutation_prob``. Children already measured are redrawn."""

    def __init__(self, task, pop_size: int = 32, elite_num: int = 3, mutation_prob: float = 0.1,
                 seed: int = 0):
        super().__init__(task, seed)
        self.pop_size, self.elite_num, self.mutation_prob = pop_size, elite_num, mutation_prob
        self.radix = self.space.radix
        self.scored: dict[int, float] = {}       # index -> GFLOPS (0 for failures)
        self.queue: list[int] = []

    def _breed(self):
        ranked = sorted(self.scored.items(), key=lambda kv: -kv[1])
        parents = [i for i, _ in ranked[:self.pop_size]]
        fit = np.array([self.scored[i] for i in parents], dtype=float) + 1e-9
        prob = fit / fit.sum()
        children, tries = [], 0
        while len(children) < self.pop_size and tries < 50 * self.pop_size:
            tries += 1
            a, b = (self.space.choices(parents[int(k)]) for k in self.rng.choice(len(parents), 2, p=prob))
            child = [x if self.rng.random() < 0.5 else y for x, y in zip(a, b)]
            for j, r in enumerate(self.radix):
                if self.rng.random() < self.mutation_prob:
                    child[j] = int(self.rng.integers(r))
            i = self.space.index_of(child)
            if i not in self.visited and i not in children:
                children.append(i)
        if len(children) < self.pop_size:         # converged: top up at random
            children += [i for i in self._random_unvisited(self.pop_size - len(children))
                         if i not in children]
        return children

    def next_batch(self, n):
        if not self.queue:
            self.queue = (self._breed() if len(self.scored) >= self.pop_size
                          else self._random_unvisited(self.pop_size))
        batch = [i for i in self.queue if i not in self.visited][:n]
        self.queue = [i for i in self.queue if i not in batch and i not in self.visited]
        return [self.space.get(i) for i in batch]

    def update(self, configs, results):
        for c, r in zip(configs, results):
            self.scored[c.index] = self.task.flop / r.cost / 1e9 if r.cost < math.inf else 0.0
