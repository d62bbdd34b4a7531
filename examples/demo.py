"""make demo: the project in a few minutes on 2 cores.

1. A tuning job (examples/jobs/demo.toml: a matmul and a conv2d template, XGBoost tuner) runs
   on an embedded Ray cluster with a live progress bar per task; every measurement goes to
   tuning_logs/demo.jsonl (a second `make demo` resumes the log instead of re-measuring).
2. At deploy time the best record per workload is applied, and each kernel is timed next to
   the same computation untuned (no schedule) and in numpy, in one interleaved run.

Run: make demo   (or: .venv/bin/python -m examples.demo [--fresh])
"""

import argparse
from pathlib import Path

import numpy as np

import autotune
import tensorlang as tl
from autotune.job import load_job, run_job, summary_table
from benchmarks.workloads import conv2d_numpy
from examples import tuning_templates  # noqa: F401  (registers the templates)
from tensorlang.runtime import interleaved

JOB = Path(__file__).parent / "jobs" / "demo.toml"


def untuned(template, *args):
    """The template's computation with the default schedule (no primitives)."""
    space = template.space(*args)
    _, tensors = template.instantiate(space.get(0), *args)
    return tl.build(tl.create_schedule(tensors[-1].op), tensors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", action="store_true", help="start a new log instead of resuming")
    args = ap.parse_args()
    job = load_job(JOB)
    log = Path(job.log)
    if args.fresh and log.exists():
        log.unlink()
    print(f"tuning {len(job.tasks)} workloads on an embedded Ray cluster -> {log}")
    rows = run_job(job, resume=log.exists())
    print(summary_table(rows))

    rng = np.random.default_rng(0)
    cases = []
    for spec in job.tasks:
        tpl = autotune.TEMPLATES[spec.template]
        with autotune.apply_history_best(log):
            s, tensors = tpl(*spec.args)
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
        t = interleaved({"untuned": lambda f=slow, i=inputs, o=out2: f(*i, o),
                         "tuned": lambda f=tuned, i=inputs, o=out: f(*i, o),
                         "numpy": ref}, rounds=5, number=3)
        cases.append((spec, spec.task.flop, t))
    print(f"\n{'workload':<36}{'untuned ms':>12}{'tuned ms':>10}{'numpy ms':>10}"
          f"{'tuned GFLOPS':>14}{'vs untuned':>12}{'vs numpy':>10}")
    for spec, flop, t in cases:
        u, tu, n = t["untuned"][0], t["tuned"][0], t["numpy"][0]
        print(f"{spec.template + ' ' + str(spec.args):<36}{u * 1e3:12.3f}{tu * 1e3:10.3f}"
              f"{n * 1e3:10.3f}{flop / tu / 1e9:14.1f}{u / tu:11.1f}x{n / tu:9.2f}x")


if __name__ == "__main__":
    main()
