"""Tuning efficiency on a GEMM 512^3 template with a space of thousands of configs: best
GFLOPS after 50/100/200 trials for XGBTuner, GATuner and RandomTuner (median of 3 seeds),
the trials each needs to reach 90% of the best config any of them found, and each tuner's
own time per batch (model fit + search) next to the measurement time.

Run: .venv/bin/python examples/tuning_study.py [--trials 200] [--seeds 0 1 2] [--size 512]
Logs go to tuning_logs/study/<tuner>-<seed>.jsonl (--out; a rerun resumes them, and then
reports no search or measurement time for the trials it took over).
"""

import argparse
import math
import statistics
import time
from pathlib import Path

import autotune
import tensorlang as tl


@autotune.template("study/gemm")
def gemm(N, dtype="float32"):
    A = tl.placeholder((N, N), name="A", dtype=dtype)
    B = tl.placeholder((N, N), name="B", dtype=dtype)
    k = tl.reduce_axis((0, N), name="k")
    C = tl.compute((N, N), lambda i, j: tl.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tl.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotune.get_config()
    cfg.define_split("tile_y", y, num_outputs=2)
    cfg.define_split("tile_x", x, num_outputs=2)
    cfg.define_split("tile_k", k, num_outputs=2)
    yo, yi = cfg["tile_y"].apply(s, C, y)
    xo, xi = cfg["tile_x"].apply(s, C, x)
    ko, ki = cfg["tile_k"].apply(s, C, k)
    cfg.define_reorder("order", [yi, ki, xi], policy="all")
    s[C].reorder(yo, xo, ko, *[[yi, ki, xi][i] for i in cfg["order"].perm])
    cfg.define_knob("vec", [0, 1])
    cfg.define_knob("par", [0, 1])
    if cfg["vec"].val and cfg["order"].perm[-1] == 2:
        s[C].vectorize(xi)
    if cfg["par"].val:
        s[C].parallel(yo)
    return s, [A, B, C]


TUNERS = {"xgb": lambda t, seed: autotune.XGBTuner(t, seed=seed),
          "ga": lambda t, seed: autotune.GATuner(t, seed=seed),
          "random": lambda t, seed: autotune.RandomTuner(t, seed=seed)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--tuners", nargs="+", default=list(TUNERS))
    ap.add_argument("--out", default="tuning_logs/study", help="folder of the logs")
    args = ap.parse_args()
    task = autotune.create_task("study/gemm", args=(args.size,))
    print(task.config_space)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opt = autotune.measure_option(
        builder=autotune.LocalBuilder(timeout=20),
        runner=autotune.LocalRunner(number=1, repeat=2, timeout=20))
    curves, overhead = {}, {}
    for name in args.tuners:
        for seed in args.seeds:
            log = out / f"{name}-{seed}.jsonl"
            tuner = TUNERS[name](task, seed)
            if log.exists():
                tuner.resume(log)
            t = time.perf_counter()
            tuner.tune(args.trials, opt, callbacks=[autotune.callback.log_to_file(log)])
            batches = max(1, math.ceil(args.trials / tuner.batch_size))
            overhead[name, seed] = (tuner.search_s / batches, tuner.measure_s / batches)
            curves[name, seed] = autotune.callback.curves(log)[next(iter(autotune.callback.curves(log)))]
            print(f"{name} seed {seed}: best {tuner.best_gflops:.1f} GFLOPS after {tuner.trials} trials "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    best = max(max(c) for c in curves.values())
    print(f"\nbest config found by any tuner: {best:.1f} GFLOPS")
    print(f"{'tuner':<8}{'@50':>8}{'@100':>8}{'@200':>8}{'trials to 90%':>16}{'search s/batch':>16}"
          f"{'measure s/batch':>17}")
    for name in args.tuners:
        seeds = [s for s in args.seeds if (name, s) in curves]
        at = [statistics.median(curves[name, s][min(n, len(curves[name, s])) - 1] for s in seeds)
              for n in (50, 100, 200)]
        reach = [next((i + 1 for i, g in enumerate(curves[name, s]) if g >= 0.9 * best), None)
                 for s in seeds]
        reach_txt = "/".join(str(r) if r else f">{len(curves[name, s])}" for r, s in zip(reach, seeds))
        srch = statistics.median(overhead[name, s][0] for s in seeds)
        meas = statistics.median(overhead[name, s][1] for s in seeds)
        print(f"{name:<8}{at[0]:8.1f}{at[1]:8.1f}{at[2]:8.1f}{reach_txt:>16}{srch:16.2f}{meas:17.2f}")


if __name__ == "__main__":
    main()
