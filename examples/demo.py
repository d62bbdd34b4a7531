"""make demo: the project in a few minutes on 2 cores.

1. A tuning job (examples/jobs/demo.toml: a matmul and a conv2d template, XGBoost tuner) runs
   on an embedded Ray cluster with a live progress bar per task; every measurement goes to
   tuning_logs/demo.jsonl (a second `make demo` resumes the log instead of re-measuring).
   When the job returns, its Ray cluster is shut down and every process it started (GCS,
   raylet, workers and their build/run pools) has exited: the demo checks it (``/proc``)
   before timing anything.
2. At deploy time the best record per workload is applied, and each kernel is timed next to
   the same computation untuned (no schedule) and in numpy, in one interleaved run, at the
   thread count the log was measured with (the job's ``cpus_per_measurement``) and at all of
   this machine's threads. Next to the tuned time at the log's thread count the table shows
   the log's own best time and their ratio: the two measure the same kernel the same way
   and should agree (within 25% on a quiet machine).

How it is timed (``timed``): rounds interleave the systems; each system's part of a round is
an idle pause (so that the previous system's spinning threads have stopped), at least 5 ms of
warm-up calls, then at least 20 ms of timed calls. Our kernels are called through
``Kernel.prepare`` (arguments checked once), as the tuner's runner calls them. A warm-up of
one call and three timed calls (what this demo did before) times how fast an idle thread
team and an idle CPU wake up rather than the kernel: with 2 threads it read a 0.1 ms conv2d
as 0.3 to 1.5 ms. Other processes' CPU use during the timing is reported, since a busy
machine makes every figure here unreliable.

Run: make demo   (or: .venv/bin/python -m examples.demo [--fresh])
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import autotune
import tensorlang as tl
from autotune.job import load_job, make_runner, measurement_threads, run_job, summary_table
from autotune.ray_runner import descendants
from benchmarks.workloads import conv2d_numpy
from examples import tuning_templates  # noqa: F401  (registers the templates)
from tensorlang.dispatch import record
from tensorlang.runtime import interleaved

JOB = Path(__file__).parent / "jobs" / "demo.toml"
ROUNDS = 7
WARM_S = 0.005          # each system's warm-up per round (one batch of calls), and its batch
BATCHES = 4             # timed batches per round: >= 20 ms of calls
AGREE = 0.25            # deployed vs log, same thread count, quiet machine


def untuned(template, *args):
    """The template's computation with the default schedule (no primitives)."""
    space = template.space(*args)
    _, tensors = template.instantiate(space.get(0), *args)
    return tl.build(tl.create_schedule(tensors[-1].op), tensors)


def timed(fns: dict, rounds: int = ROUNDS) -> dict:
    """``{name: (median, min, max)}`` seconds per call of each zero-argument callable, in
    interleaved rounds (see the module's docstring): a system's batch is as many calls as
    last ``WARM_S``; each round runs one batch untimed after the idle pause, then
    ``BATCHES`` batches timed."""
    batches = {}
    for name, fn in fns.items():
        fn()
        t = time.perf_counter()
        fn()
        k = max(1, math.ceil(WARM_S / max(time.perf_counter() - t, 1e-7)))

        def batch(fn=fn, k=k):
            for _ in range(k):
                fn()
        batches[name] = (k, batch)
    out = interleaved({name: b for name, (_, b) in batches.items()}, rounds=rounds,
                      number=BATCHES)
    return {name: tuple(x / batches[name][0] for x in t) for name, t in out.items()}


class OtherCPU:
    """CPU seconds used by other processes while the ``with`` block runs (``/proc/stat``:
    the machine's busy time, less this process's)."""

    def __enter__(self):
        self.start = self._ticks()
        return self

    def __exit__(self, *exc):
        machine, mine = (b - a for a, b in zip(self.start, self._ticks()))
        self.seconds = max(0, machine - mine) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ticks():
        try:
            with open("/proc/stat") as fh:
                v = [int(x) for x in fh.readline().split()[1:]]
            with open("/proc/self/stat") as fh:
                own = fh.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            return 0, 0
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], int(own[11]) + int(own[12])


def tune(job, log: Path):
    """Run the job; return once its Ray cluster and all its processes are gone."""
    runner = make_runner(job)
    rows = run_job(job, resume=log.exists(), runner=runner)
    print(summary_table(rows))
    import ray
    rep = runner.shutdown_report or {}
    left = descendants()                  # whatever this process started and still runs
    if ray.is_initialized() or rep.get("left") or left:
        sys.exit(f"the tuning phase is still running (Ray initialized: {ray.is_initialized()}; "
                 f"processes: {rep.get('left') or sorted(left)}): timings now would be wrong")
    print(f"Ray shut down: its {rep.get('processes', 0)} processes exited in "
          f"{rep.get('seconds', 0):.1f} s" + (f" ({len(rep['killed'])} had to be killed)"
                                              if rep.get("killed") else "")
          + "; none of this process's children remains")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", action="store_true", help="start a new log instead of resuming")
    args = ap.parse_args()
    job = load_job(JOB)
    log = Path(job.log)
    if args.fresh and log.exists():
        log.unlink()
    print(f"tuning {len(job.tasks)} workloads on an embedded Ray cluster -> {log}")
    tune(job, log)

    log_threads = measurement_threads(job)
    all_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = sorted({log_threads, all_threads})
    target = str(tl.target.Target.current())
    records = record.load_from_file(log)
    rng = np.random.default_rng(0)
    cases = []
    for spec in job.tasks:
        tpl = autotune.TEMPLATES[spec.template]
        with autotune.apply_history_best(records) as ctx:
            applied = ctx.query(target, spec.task.workload)
            s, tensors = tpl(*spec.args)
        # the log's time of the config applied (the fastest of its records for this target)
        rec = min((r for r in records if r["target"] == target and r["config"] == applied
                   and record.wkey(r) == json.dumps(spec.task.workload)), key=record.cost,
                  default=None)
        if rec is None or record.cost(rec) == math.inf:
            sys.exit(f"{spec.template} {spec.args}: the log {log} has no record for {target}")
        tuned = tl.build(s, tensors)
        inputs = [rng.standard_normal(tuple(int(getattr(d, "value", d)) for d in t.shape), dtype=np.float32)
                  for t in tensors[:-1]]
        if spec.template == "demo/matmul":
            ref = lambda a=inputs: a[0] @ a[1]                                 # noqa: E731
        else:
            ref = lambda a=inputs, k=spec.args[3]: conv2d_numpy(a[0], a[1], 1, k // 2)  # noqa: E731
        expect = ref()
        out = np.full(expect.shape, np.nan, np.float32)
        tuned(*inputs, out)
        np.testing.assert_allclose(out, expect, rtol=1e-3, atol=1e-3)
        slow = untuned(tpl, *spec.args)
        out2 = np.empty_like(out)
        fns = {"untuned": slow.entry_func.prepare(*inputs, out2),
               "tuned": tuned.entry_func.prepare(*inputs, out), "numpy": ref}
        cases.append((spec, spec.task.flop, record.cost(rec), fns))

    results, other = {}, {}
    for n in threads:
        tl.runtime.set_num_threads(n)
        with threadpool_limits(n), OtherCPU() as busy:
            t0 = time.perf_counter()
            for spec, _, _, fns in cases:
                results[spec.template, n] = timed(fns)
            wall = time.perf_counter() - t0
        other[n] = (busy.seconds, busy.seconds / (wall * all_threads))
    tl.runtime.set_num_threads(all_threads)

    print(f"\ndeployed on {target}: median of {ROUNDS} interleaved rounds (each: idle pause, "
          f">= {WARM_S * 1e3:.0f} ms warm-up, >= {WARM_S * BATCHES * 1e3:.0f} ms timed); "
          f"log ms: the log's best, measured with {log_threads} thread"
          f"{'s' if log_threads > 1 else ''} (cpus_per_measurement)")
    print(f"{'workload':<30}{'threads':>8}{'log ms':>9}{'tuned ms':>10}{'tuned/log':>11}"
          f"{'untuned ms':>12}{'numpy ms':>10}{'tuned GFLOPS':>14}{'vs untuned':>12}{'vs numpy':>10}")
    disagree = []
    for spec, flop, log_s, _ in cases:
        for k, n in enumerate(threads):
            t = results[spec.template, n]
            u, tu, nu = t["untuned"][0], t["tuned"][0], t["numpy"][0]
            name = spec.template + " " + str(spec.args) if k == 0 else ""
            at_log = n == log_threads
            ratio = tu / log_s
            if at_log and abs(ratio - 1) > AGREE:
                disagree.append((spec, ratio))
            print(f"{name:<30}{str(n) + (' (log)' if at_log else ''):>8}"
                  f"{f'{log_s * 1e3:.3f}' if at_log else '-':>9}{tu * 1e3:10.3f}"
                  f"{f'{ratio:.2f}x' if at_log else '-':>11}{u * 1e3:12.3f}{nu * 1e3:10.3f}"
                  f"{flop / tu / 1e9:14.1f}{u / tu:11.1f}x{nu / tu:9.2f}x")
    for n in threads:
        secs, share = other[n]
        quiet = "quiet" if share < 0.05 else "NOT quiet: these figures are unreliable"
        print(f"while timing with {n} thread{'s' if n > 1 else ''}: other processes used "
              f"{secs:.1f} CPU-s ({share:.0%} of the machine): {quiet}")
    for spec, ratio in disagree:
        print(f"! {spec.template} {spec.args}: deployed at {log_threads} thread"
              f"{'s' if log_threads > 1 else ''} it takes {ratio:.2f}x the log's time "
              f"(more than {AGREE:.0%} apart)")


if __name__ == "__main__":
    main()
