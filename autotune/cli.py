"""The ``autotune`` command (also ``python -m autotune``).

    autotune tune JOB.toml [--address ADDR] [--resume]
                                       run a tuning job (embedded Ray cluster by default)
    autotune show LOG                  a table per workload: trials, errors by class, best
                                       GFLOPS and config (works on a log still being written)
    autotune best LOG... -o OUT [--beyond BASE]
                                       keep the best record per workload of the logs (atomic
                                       rewrite; OUT may be one of them: a merge); --beyond:
                                       only those BASE lacks or has slower
    autotune plot LOG... -o curve.png  best GFLOPS against trials; for a model's summary
                                       (X.<model>.json) its end-to-end latency estimate
    autotune validate LOG -m MODULE    rebuild each workload's best record (templates from
                                       MODULE) and check it against the untuned schedule
    autotune records [--target T]      the tuned records that apply on this host (or T)
                                       without any apply_history_best: the shipped log's
    autotune tune-library [--resume | --fresh]
                                       tune the operator library for this CPU (the
                                       examples/jobs/ops_*.toml jobs) and write the log
                                       shipped for it, tensorlang/tuning_logs/<cpu>.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections import Counter

from tensorlang.errors import TensorlangError

from tensorlang.dispatch import record

from . import callback


def show(path) -> str:
    lines = []
    by_wl: dict = {}
    for rec in record.load_from_file(path):
        by_wl.setdefault(record.wkey(rec), []).append(rec)
    for key, recs in by_wl.items():
        errors = Counter(r["result"]["error"].split(":", 1)[0] for r in recs if r["result"]["error"])
        best = max(recs, key=record.gflops)
        lines.append(f"{key}  [{recs[0]['target']}]")
        lines.append(f"  trials {len(recs)}, errors {sum(errors.values())}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in sorted(errors.items()))})" if errors else ""))
        if record.gflops(best) > 0:
            lines.append(f"  best {record.gflops(best):.2f} GFLOPS ({record.cost(best) * 1e3:.4f} ms): "
                         f"{json.dumps(best['config'])}")
        else:
            lines.append("  no successful trial")
    return "\n".join(lines) if lines else f"{path}: no valid records"


def validate(path, modules) -> bool:
    from .measure import LocalBuilder, LocalRunner
    from tensorlang.dispatch import Task
    for m in modules:
        importlib.import_module(m)
    builder, runner = LocalBuilder(n_parallel=1), LocalRunner(number=1, repeat=1)
    ok = True
    try:
        for key, rec in record.best_by_workload(record.load_from_file(path)).items():
            name, args = rec["workload"]
            task = Task(name, args, rec["target"])
            config = task.config_space.from_json(rec["config"])
            (res,) = runner.run(task, builder.build(task, [config]))
            good = res.error_text() is None
            ok &= good
            print(f"{'ok  ' if good else 'FAIL'} {key} {json.dumps(rec['config'])}"
                  + ("" if good else f": {res.error_text()}"))
    finally:
        builder.close()
        runner.close()
    return ok


def records(target=None) -> str:
    """The table ``autotune records`` prints (``applicable_records``)."""
    import tensorlang as tl
    from tensorlang.dispatch import applicable_records, shipped_log
    tgt = tl.target.Target(target) if target else tl.target.Target.current()
    tgt.info                                   # an unknown CPU raises here, clearly
    recs = applicable_records(tgt)
    head = (f"target {tgt}: {len(recs)} tuned record(s) apply" if recs else
            f"target {tgt}: no tuned record applies (no {shipped_log(tgt.cpu)}); the operators "
            f"use their default schedules, derived from the target")
    lines = [head]
    for rec in sorted(recs, key=record.wkey):
        lines.append(f"  {record.wkey(rec)}  {record.gflops(rec):8.1f} GFLOPS  "
                     f"{json.dumps(rec['config'])}  ({rec['log']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autotune", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tune", help="run a tuning job file (TOML)")
    p.add_argument("job")
    p.add_argument("--address", help="an existing Ray cluster ('auto', host:port, ray://...)")
    p.add_argument("--resume", action="store_true", help="continue from the job's log")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("show", help="summarise a log")
    p.add_argument("log")
    p = sub.add_parser("best", help="keep the best record per workload")
    p.add_argument("logs", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--beyond", help="keep only records this log lacks or has slower")
    p = sub.add_parser("plot", help="best GFLOPS against trials (PNG)")
    p.add_argument("logs", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("validate", help="rebuild and check the best records")
    p.add_argument("log")
    p.add_argument("-m", "--module", action="append", default=[],
                   help="a module that defines the log's templates (repeatable)")
    p = sub.add_parser("records", help="the tuned records that apply on this host")
    p.add_argument("--target", help="a target string, e.g. 'llvm -mcpu=haswell' (default: the host)")
    p = sub.add_parser("tune-library", help="tune the operator library for this CPU")
    p.add_argument("--jobs", default="examples/jobs/ops_*.toml", help="job files (a glob)")
    p.add_argument("-o", "--output", help="default: tensorlang/tuning_logs/<cpu>.jsonl")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the jobs' logs")
    g.add_argument("--fresh", action="store_true", help="delete the jobs' logs first")
    p.add_argument("--address", help="an existing Ray cluster")
    p.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("always")
    try:
        if args.cmd == "tune":
            from .job import load_job, run_job, summary_table
            job = load_job(args.job)
            rows = run_job(job, address=args.address, resume=args.resume,
                           progress=not args.no_progress)
            print(summary_table(rows))
            print(f"log: {job.log}")
        elif args.cmd == "show":
            print(show(args.log))
        elif args.cmd == "best":
            n = record.pick_best(args.logs, args.output, beyond=args.beyond)
            print(f"kept {n} record(s) in {args.output}")
        elif args.cmd == "records":
            print(records(args.target))
        elif args.cmd == "tune-library":
            from .library import tune_library
            tune_library(args.jobs, args.output, resume=args.resume, fresh=args.fresh,
                         address=args.address, progress=not args.no_progress)
        elif args.cmd == "plot":
            models = [p for p in args.logs if p.endswith(".json")]
            if models and len(models) < len(args.logs):
                raise TensorlangError("autotune plot: give either logs (.jsonl) or model "
                                      "summaries (.json), not both")
            (callback.plot_model if models else callback.plot_curve)(args.logs, args.output)
            print(f"wrote {args.output}")
        else:
            return 0 if validate(args.log, args.module) else 1
    except (OSError, ModuleNotFoundError, TensorlangError) as e:
        print(f"autotune {args.cmd}: {e}", file=sys.stderr)
        return 2
    return 0
