"""python -m benchmarks [--quick] [--only TEXT] [--threads N] [--rounds R] [--out DIR]
[--no-torch] [--compile/--no-compile]

Runs every workload of ``benchmarks/workloads.py`` with tensorlang next to numpy (always)
and PyTorch eager and ``torch.compile`` (when torch is installed: ``pip install -e
".[torch]"``), prints a table, and writes ``DIR/results.json`` and ``DIR/ratios.png``.
``--quick`` checks every system's output against numpy and times nothing (a smoke run for
the tests; it leaves torch.compile out unless ``--compile`` is given). The exit status is 1
when one of our kernels fails to build or gives a wrong answer.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import report, runner
from .workloads import WORKLOADS, shipped_keys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="correctness only, no timing")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="run the workloads whose name contains TEXT (repeatable)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="measure torch.compile (default: on, except with --quick)")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be at least 1")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: measuring numpy only "
                  "(pip install -e '.[torch]' adds PyTorch eager and torch.compile)")
    compile_torch = torch is not None and (args.compile if args.compile is not None
                                           else not args.quick)
    chosen = [w for w in WORKLOADS if not args.only or any(t in w.name for t in args.only)]
    if not chosen:
        ap.error(f"no workload matches {args.only}; names: {[w.name for w in WORKLOADS]}")

    runner.set_threads(args.threads, torch)
    info = report.machine(args.threads, torch)
    print(f"{info['cpu']} (LLVM {info['llvm_cpu']}), {args.threads} threads, "
          f"{'quick: correctness only' if args.quick else f'medians of {args.rounds} rounds'}",
          flush=True)
    print(report.HEADER, flush=True)
    results = []
    rng = np.random.default_rng(0)
    shipped = shipped_keys()
    with threadpool_limits(args.threads):
        for w in chosen:
            r = runner.run_workload(w, rng, torch, compile_torch, args.quick, args.rounds,
                                    shipped)
            results.append(r)
            print(report.row(r), flush=True)
        extras = {} if args.quick else runner.extras(torch, args.threads, args.rounds)
    print()
    print(report.table(results, extras))
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", results, extras, info)
    if not args.quick:
        report.write_chart(args.out / "ratios.png", results, info)
    print(f"wrote {args.out / 'results.json'}" + ("" if args.quick else
                                                   f" and {args.out / 'ratios.png'}"))
    return 1 if any(runner.OURS in r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
