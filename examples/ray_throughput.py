"""Throughput of measurement: candidates per minute for one tuning run of the same task with
(a) the local builder + runner, (b) the RayRunner on an embedded cluster (batch form, from
Tuner.tune), (c) a streamed job (run_job); and Ray's own per-call overhead (a no-op actor
call's round trip).

Run: .venv/bin/python -m examples.ray_throughput [--trials 64] [--workers N]
"""

import argparse
import statistics
import time

import autotune
from autotune.job import Job, TaskSpec, run_job
from examples import tuning_templates  # noqa: F401  (registers the templates)

ARGS = [256, 256, 256]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--workers", type=int, default=None, help="measurement actors (default: one per CPU)")
    args = ap.parse_args()
    task = autotune.create_task("demo/matmul", ARGS)
    rows = []

    builder, runner = autotune.LocalBuilder(timeout=20), autotune.LocalRunner(number=3, repeat=2, timeout=20)
    t = time.perf_counter()
    autotune.RandomTuner(task, seed=0).tune(args.trials, {"builder": builder, "runner": runner})
    rows.append(("local builder + runner", time.perf_counter() - t))
    builder.close()
    runner.close()

    ray_runner = autotune.RayRunner(number=3, repeat=2, timeout=20, num_workers=args.workers)
    t = time.perf_counter()
    autotune.RandomTuner(task, seed=1).tune(args.trials, autotune.measure_option(runner=ray_runner))
    wall = time.perf_counter() - t
    rows.append((f"RayRunner, batches (incl. {ray_runner.started_s:.1f} s Ray start)", wall))

    import ray
    actor = ray_runner.idle[0]
    ray.get(actor.host.remote())
    rtt = []
    for _ in range(200):
        t = time.perf_counter()
        ray.get(actor.host.remote())
        rtt.append(time.perf_counter() - t)
    ray_runner.close()

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        job = Job("inline", [], f"{tmp}/log.jsonl",
                  [TaskSpec("demo/matmul", ARGS, args.trials, tuner="random", seed=2,
                            task=task)], {"number": 3, "repeat": 2, "timeout": 20},
                  {"num_workers": args.workers} if args.workers else {})
        t = time.perf_counter()
        run_job(job, progress=False)
        rows.append(("run_job, streamed (incl. Ray start)", time.perf_counter() - t))

    print(f"{args.trials} candidates of demo/matmul {ARGS}, RandomTuner")
    for name, wall in rows:
        print(f"  {name:<48} {wall:7.1f} s  {args.trials / wall * 60:7.1f} candidates/min")
    print(f"  Ray round trip of a no-op actor call: median {statistics.median(rtt) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
