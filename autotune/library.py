"""``autotune tune-library``: tune the operator library for the CPU this runs on.

Runs the repository's operator job files (``examples/jobs/ops_*.toml``: GEMM and dense at
the benchmark's and BERT's shapes, every ResNet-50 convolution and MobileNet-v2 depthwise
layer, the row operators), one after the other on an embedded Ray cluster (or ``--address``),
each into its own log under ``tuning_logs/``, then keeps the best record per workload of all
of them in the log shipped for this CPU: ``tensorlang/tuning_logs/<cpu>.jsonl``, the CPU as
LLVM names it. With an editable install (``make``'s) the records apply from the next
process on; commit the file to ship it.
"""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

from tensorlang.dispatch import record, shipped_log

from .job import JobError, load_job, run_job, summary_table

JOBS = "examples/jobs/ops_*.toml"


def tune_library(jobs: str = JOBS, output: str | None = None, resume: bool = False,
                 fresh: bool = False, address: str | None = None, progress: bool = True) -> Path:
    """Run every job file matching ``jobs`` and write the best records of their logs to
    ``output`` (default: ``shipped_log()`` of the host). ``resume`` continues logs left by an
    interrupted run; ``fresh`` deletes them first. Returns the output path."""
    paths = sorted(glob.glob(jobs))
    if not paths:
        raise JobError(f"tune-library: no job file matches {jobs!r} (run it from the "
                       f"repository's root, or pass --jobs)")
    loaded = [load_job(p) for p in paths]
    logs = [Path(job.log) for job in loaded]
    for log in logs:
        if fresh and log.exists():
            log.unlink()
    for job, log in zip(loaded, logs):
        print(f"== {job.path}: {len(job.tasks)} tasks -> {log}", flush=True)
        rows = run_job(job, address=address, resume=resume and log.exists(), progress=progress)
        print(summary_table(rows), flush=True)
    out = Path(output) if output else Path(str(shipped_log()))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as tmp:
        for log in logs:
            text = log.read_text(encoding="utf-8") if log.exists() else ""
            tmp.write(text if text.endswith("\n") or not text else text + "\n")
    n = record.pick_best(tmp.name, out)
    Path(tmp.name).unlink()
    print(f"kept the best of {n} workloads in {out}")
    return out
