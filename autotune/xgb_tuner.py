"""``XGBTuner``: a learned cost model steering the search (AutoTVM's model-based tuner).

Every ``plan_size`` measurements the tuner

1. fits an XGBoost model on the measured configs: features of each config's lowered loop
   IR (``feature_type="itervar"`` or ``"curve"``, see ``features.py``) or its knob values
   (``"knob"``: log2 of each numeric value, so that configs of different workloads of a
   template are comparable; a hundred times cheaper than lowering each config), labels its GFLOPS relative to the best so far (failures 0), with a ranking
   loss (``loss_type="rank"``: only the order of configs matters) or a regression loss
   (``"reg"``);
2. runs simulated annealing over the space with the model's predictions as energy: a
   population of points walks by changing one knob at a time, accepting worse points with
   a probability that falls as the temperature goes to 0, and the best-predicted unvisited
   points seen on the way become the next plan;
3. hands out the plan in batches, replacing a fraction ``epsilon`` by random configs
   (exploration, so a wrong model cannot trap the search).

Until the first ``plan_size`` results exist (or when the model cannot be fitted) it
proposes random configs. ``load_history(records)`` adds measurements of other workloads of
the same template to the training data (transfer learning).
"""

from __future__ import annotations

import heapq
import json
import math

import numpy as np
import xgboost as xgb

from tensorlang.tir.lower import lower_schedule

from tensorlang.dispatch import record
from .features import FEATURE_LEN, curve_features, itervar_features
from tensorlang.dispatch import Task
from .tuner import RandomTuner, result_of


def knob_features(config) -> np.ndarray:
    """A config as numbers: log2(1 + value) of every numeric knob value (split factors
    one by one), a choice's index otherwise; the same length for every workload of a
    template."""
    out = []
    for name, value in sorted(config.to_json().items()):
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(math.log2(1 + abs(v)))
            else:
                out.append(float(config.space.knobs[name].index_of(value)))
    return np.array(out, np.float32)


class XGBTuner(RandomTuner):
    def __init__(self, task, loss_type: str = "rank", feature_type: str = "itervar",
                 plan_size: int = 64, epsilon: float = 0.05, sa_points: int = 64,
                 sa_iters: int = 40, seed: int = 0):
        super().__init__(task, seed)
        if loss_type not in ("rank", "reg"):
            raise ValueError(f"XGBTuner: loss_type must be 'rank' or 'reg', got {loss_type!r}")
        if feature_type not in ("itervar", "curve", "knob"):
            raise ValueError(f"XGBTuner: feature_type must be 'itervar', 'curve' or 'knob', "
                             f"got {feature_type!r}")
        self.loss_type, self.feature_type = loss_type, feature_type
        self.plan_size, self.epsilon = plan_size, epsilon
        self.sa_points, self.sa_iters = sa_points, sa_iters
        self.seed = seed
        self.radix = self.space.radix
        self.xs: list[int] = []                  # measured indices
        self.ys: list[float] = []                # their GFLOPS (0: failed)
        self.base_x: list[np.ndarray] = []       # transfer learning data
        self.base_y: list[float] = []
        self.model = None
        self.plan: list[int] = []
        self.trained_at = 0
        self._cache: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ features
    def _features(self, task, index) -> np.ndarray:
        config = task.config_space.get(index)
        if self.feature_type == "knob":
            return knob_features(config)
        try:
            s, tensors = task.instantiate(config)
            func = lower_schedule(s, list(tensors), "main")
            return (itervar_features if self.feature_type == "itervar" else curve_features)(func)
        except Exception:                        # a config that cannot even lower
            return np.zeros(FEATURE_LEN[self.feature_type], np.float32)

    def feature(self, index: int) -> np.ndarray:
        if index not in self._cache:
            self._cache[index] = self._features(self.task, index)
        return self._cache[index]

    # ------------------------------------------------------------------ model
    def _fit(self) -> None:
        best = max(self.ys, default=0.0)
        y = [v / best for v in self.ys] if best > 0 else []
        if max(y + self.base_y, default=0.0) <= 0:
            return                                 # nothing to learn from yet
        x = np.stack([self.feature(i) for i in self.xs[:len(y)]] + self.base_x)
        y = np.array(y + self.base_y, np.float32)
        params = {"max_depth": 6, "eta": 0.3, "min_child_weight": 1, "subsample": 1.0,
                  "objective": "rank:pairwise" if self.loss_type == "rank" else "reg:squarederror",
                  "seed": self.seed, "nthread": 1, "verbosity": 0}
        dtrain = xgb.DMatrix(x, label=y)
        if self.loss_type == "rank":
            dtrain.set_group([len(y)])
        self.model = xgb.train(params, dtrain, num_boost_round=60)

    def predict(self, indices) -> np.ndarray:
        x = np.stack([self.feature(i) for i in indices])
        return self.model.predict(xgb.DMatrix(x))

    # ------------------------------------------------------------------ search
    def _neighbour(self, index) -> int:
        genes = self.space.choices(index)
        j = int(self.rng.integers(len(genes)))
        if self.radix[j] > 1:
            genes[j] = int((genes[j] + self.rng.integers(1, self.radix[j])) % self.radix[j])
        return self.space.index_of(genes)

    def _anneal(self, n: int) -> list[int]:
        """The ``n`` best-predicted unvisited configs met by simulated annealing."""
        top = [i for _, i in sorted(zip(self.ys, self.xs), reverse=True)[: self.sa_points // 2]]
        points = np.array(top + self._random_unvisited(self.sa_points - len(top)), dtype=np.int64)
        scores = self.predict(points)
        best: list = []                          # min-heap of (score, index)
        seen = set()

        def offer(idx, sc):
            if idx in self.visited or idx in seen:
                return
            seen.add(idx)
            if len(best) < n:
                heapq.heappush(best, (float(sc), idx))
            elif sc > best[0][0]:
                heapq.heapreplace(best, (float(sc), idx))

        for i, sc in zip(points, scores):
            offer(int(i), sc)
        spread = float(np.ptp(scores)) or 1.0
        for it in range(self.sa_iters):
            temp = 1.0 - it / self.sa_iters
            new = np.array([self._neighbour(int(i)) for i in points], dtype=np.int64)
            new_scores = self.predict(new)
            gain = (new_scores - scores) / spread
            accept = (gain > 0) | (self.rng.random(len(points)) < np.exp(np.minimum(gain, 0) / max(temp, 1e-3)))
            points = np.where(accept, new, points)
            scores = np.where(accept, new_scores, scores)
            for i, sc in zip(new, new_scores):
                offer(int(i), sc)
        return [i for _, i in sorted(best, reverse=True)]

    def next_batch(self, n):
        if self.model is None:
            return super().next_batch(n)
        out = []
        while len(out) < n and self.has_next():
            if self.rng.random() < self.epsilon or not self.plan:
                cand = self._random_unvisited(1)[0]
            else:
                cand = self.plan.pop(0)
            if cand not in self.visited and cand not in out:
                out.append(cand)
            if not self.plan and self.rng.random() >= self.epsilon:
                self.plan = [i for i in self._anneal(self.plan_size) if i not in out]
        return [self.space.get(i) for i in out]

    def update(self, configs, results):
        for c, r in zip(configs, results):
            self.xs.append(c.index)
            self.ys.append(self.task.flop / r.cost / 1e9 if r.cost < math.inf else 0.0)
        if len(self.xs) >= self.trained_at + self.plan_size:
            self.trained_at = len(self.xs)
            self._fit()
            if self.model is not None:
                self.plan = self._anneal(self.plan_size)

    # ------------------------------------------------------------------ transfer learning
    def load_history(self, records) -> int:
        """Add the error-free records of *other* workloads of this template to the model's
        training data (labels: GFLOPS relative to each workload's best). Returns how many."""
        if isinstance(records, (str, bytes)) or hasattr(records, "__fspath__"):
            records = record.load_from_file(records)
        by_wl: dict = {}
        for rec in records:
            if (rec["workload"][0] == self.task.name and rec["workload"] != self.task.workload
                    and result_of(rec).cost < math.inf):
                by_wl.setdefault(json.dumps(rec["workload"]), []).append(rec)
        added = 0
        for key, recs in by_wl.items():
            task = Task(self.task.name, json.loads(key)[1], self.task.target)
            gflops = [task.flop / result_of(r).cost / 1e9 for r in recs]
            top = max(gflops)
            for rec, g in zip(recs, gflops):
                try:
                    idx = task.config_space.from_json(rec["config"]).index
                except Exception:
                    continue
                self.base_x.append(self._features(task, idx))
                self.base_y.append(g / top)
                added += 1
        if added:                                  # the first plan is already model-guided
            self._fit()
            if self.model is not None:
                self.plan = self._anneal(self.plan_size)
        return added
