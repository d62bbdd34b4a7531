"""python -m benchmarks [--quick] [--only TEXT] [--target TARGET] [--untuned] [--threads N]
[--rounds R] [--out DIR] [--no-torch] [--compile/--no-compile]
python -m benchmarks --models [resnet50,mobilenet_v2,bert,gpt2] [--rounds R] [--tiny]

``--models`` runs the end-to-end PyTorch models of ``benchmarks/models.py`` (Hugging Face
networks with random weights: eager, torch.compile, ONNX Runtime and tensorlang's two front
ends) instead of the operator suite; see that module for its options.

Runs every workload of ``benchmarks/workloads.py`` with tensorlang next to numpy (always)
and PyTorch eager and ``torch.compile`` (when torch is installed: ``pip install -e
".[torch]"``), prints a table, and writes ``DIR/results.json`` and ``DIR/ratios.png``.
``--quick`` checks every system's output against numpy and times nothing (a smoke run for
the tests; it leaves torch.compile out unless ``--compile`` is given). The exit status is 1
when one of our kernels fails to build or gives a wrong answer.

``--target`` (default ``llvm``, the host) is the target our kernels are built for (``with
tl.target.Target(TARGET)``: the operators' schedules, the tuned records looked up and the
code generated all follow it), e.g. ``--target "llvm -mcpu=haswell"``. A target without
AVX-512 adds, for the GEMM-like workloads, the peer ``numpy (OpenBLAS Haswell)``: numpy in a
subprocess with ``OPENBLAS_CORETYPE=Haswell`` (OpenBLAS on its AVX2 kernels, checked with
threadpoolctl; the run stops if OpenBLAS did not take it), timed in rounds that alternate
with this process's rounds (see ``runner.py`` and ``openblas_peer.py``).

``--untuned`` measures the default schedules (``tl.dispatch.untuned()``) even where the log
shipped for the target's CPU has a tuned record; the table's ``tuned`` mark then stays off.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import tensorlang as tl
from tensorlang.errors import TensorlangError

from . import openblas_peer, report, runner
from .workloads import WORKLOADS, shipped_keys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--models" or a.startswith("--models=") for a in argv):
        return _models(argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="correctness only, no timing")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="run the workloads whose name contains TEXT (repeatable)")
    ap.add_argument("--target", default="llvm",
                    help='the target our kernels are built for (default "llvm": the host), '
                         'e.g. "llvm -mcpu=haswell"')
    ap.add_argument("--untuned", action="store_true",
                    help="the default schedules, ignoring the log shipped for this CPU")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="measure torch.compile (default: on, except with --quick)")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be at least 1")
    try:
        target = tl.target.Target(args.target)
        has_avx512 = not openblas_peer.wanted(target.info)
    except TensorlangError as e:
        ap.error(f"--target: {e}")
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
    info = report.machine(args.threads, torch, args.target)
    info["schedules"] = "default (--untuned)" if args.untuned else "tuned where a shipped record applies"
    print(report.title(info, args.quick, args.rounds), flush=True)
    haswell = None
    if not has_avx512 and any(w.group == "gemm" for w in chosen):
        haswell = openblas_peer.HaswellPeer(args.threads)     # raises PeerError if not Haswell
        info["openblas_haswell"] = haswell.info
        print(f"{openblas_peer.NAME}: OpenBLAS {haswell.info['version']}, architecture "
              f"{haswell.info['architecture']}, {haswell.info['num_threads']} threads "
              f"(threadpoolctl, in the subprocess)", flush=True)
    print(report.HEADER, flush=True)
    results = []
    rng = np.random.default_rng(0)
    try:
        with target, threadpool_limits(args.threads), \
                (tl.dispatch.untuned() if args.untuned else contextlib.nullcontext()):
            shipped = set() if args.untuned else shipped_keys()
            for w in chosen:
                r = runner.run_workload(w, rng, torch, compile_torch, args.quick, args.rounds,
                                        shipped, haswell=haswell)
                results.append(r)
                print(report.row(r), flush=True)
            extras = {} if args.quick else runner.extras(torch, args.threads, args.rounds)
    finally:
        if haswell is not None:
            haswell.close()
    print()
    print(report.table(results, extras))
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", results, extras, info)
    if not args.quick:
        report.write_chart(args.out / "ratios.png", results, info)
    print(f"wrote {args.out / 'results.json'}" + ("" if args.quick else
                                                   f" and {args.out / 'ratios.png'}"))
    return 1 if any(runner.OURS in r.errors for r in results) else 0


def _models(argv) -> int:
    """``--models [NAMES]``: the end-to-end PyTorch models (``benchmarks/models.py``) instead
    of the operator suite; a bare ``--models`` means all of them."""
    from . import models
    argv = list(argv)
    i = argv.index("--models") if "--models" in argv else None
    if i is not None and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
        del argv[i]                                  # bare flag: the default list
    return models.main(argv)


if __name__ == "__main__":
    sys.exit(main())
