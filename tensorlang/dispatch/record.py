"""Tuning logs: JSON lines, one record per measured candidate.

A record::

    {"version": 1, "workload": ["tutorial/matmul", [512, 512, 512, "float32"]],
     "target": "llvm -mcpu=znver5", "config": {"tile_y": [-1, 32], "vec": 1},
     "result": {"costs": [0.0021, ...], "error": null, "build_s": 0.09, "run_s": 0.31},
     "timestamp": 1764000000.0, "host": {"cpu": "AMD EPYC", "hostname": "..."},
     "flop": 268435456.0}

(``flop``, the task's operation count, lets ``autotune show`` and ``plot`` report GFLOPS
without importing the template.)

``error`` is null or ``"<class>: <message>"`` (classes in ``measure.ErrorClass``). Logs are
append-only: each record is written whole as one line and flushed to disk, so a killed run
loses at most the line being written. Reading never trusts a line: a line that does not
parse or does not validate is skipped with a warning naming its line number (a torn last
line included), never fatal; nothing is pickled or eval'd. Rewrites (``pick_best``) go
through a temporary file and an atomic rename.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import socket
import tempfile
import warnings
from pathlib import Path

from .task import DispatchContext

VERSION = 1


@functools.lru_cache(maxsize=1)
def host_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "hostname": socket.gethostname()}


def make_record(task, config, result) -> dict:
    """The log record of one measurement (``result``: a ``measure.MeasureResult``)."""
    return {"version": VERSION, "workload": task.workload, "target": task.target,
            "config": config.to_json(),
            "result": {"costs": list(result.costs), "error": result.error_text(),
                       "build_s": result.build_s, "run_s": result.run_s},
            "timestamp": result.timestamp, "host": result.host or host_info(), "flop": task.flop}


def _valid(rec) -> str | None:
    """None if ``rec`` is a well-formed record, else what is wrong."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if rec.get("version") != VERSION:
        return f"version {rec.get('version')!r}, expected {VERSION}"
    wl = rec.get("workload")
    if not (isinstance(wl, list) and len(wl) == 2 and isinstance(wl[0], str) and isinstance(wl[1], list)):
        return "workload must be [name, [args...]]"
    if not isinstance(rec.get("target"), str) or not isinstance(rec.get("config"), dict):
        return "target must be a string and config an object"
    res = rec.get("result")
    if not isinstance(res, dict) or not isinstance(res.get("costs"), list):
        return "result.costs must be a list"
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c >= 0
               for c in res["costs"]):
        return "result.costs must be non-negative numbers"
    if res.get("error") is not None and not isinstance(res.get("error"), str):
        return "result.error must be null or a string"
    if res.get("error") is None and not res["costs"]:
        return "a result without error needs costs"
    return None


def _conv2d_nchw_record(rec: dict) -> dict:
    """conv2d_nchw's key had ``dilation, groups`` only when they were not (1, 1)."""
    name, args = rec["workload"]
    return {**rec, "workload": [name, args + [1, 1]]} if len(args) == 10 else rec


def _nchwc_record(rec: dict) -> dict:
    """conv2d_NCHWc's key had the channel blocks [.., padding, ic_block, oc_block, dtype];
    they are now the knobs ``ic_bn`` / ``oc_bn`` of the logical convolution's workload."""
    name, args = rec["workload"]
    if len(args) != 12:
        return rec
    ic, oc = args[9], args[10]
    return {**rec, "workload": [name, args[:9] + args[11:]],
            "config": {**rec["config"], "ic_bn": ic, "oc_bn": oc}}


# Records of earlier versions, upgraded as they are read so that old logs keep applying:
# template name -> function of an old record giving the current one (key and config).
LEGACY = {"ops/conv2d_nchw": _conv2d_nchw_record, "ops/conv2d_NCHWc": _nchwc_record}


def upgrade(rec: dict) -> dict:
    """``rec`` in the current canonical form (see ``LEGACY``)."""
    fix = LEGACY.get(rec["workload"][0])
    return fix(rec) if fix else rec


def load_from_file(path) -> list[dict]:
    """The valid records of a log, in file order; bad lines are skipped with a warning."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    last = len(lines) - (1 if lines and lines[-1] == "" else 0)
    for n, line in enumerate(lines[:last], start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            why = _valid(rec)
        except ValueError as e:
            why = f"not JSON ({e.msg})"
        if why:
            torn = " (a torn last line: the run writing it was interrupted)" if n == last else ""
            warnings.warn(f"{path}:{n}: skipping a bad record: {why}{torn}", stacklevel=2)
            continue
        out.append(upgrade(rec))
    return out


def append(path, record: dict) -> None:
    """Append one record as one line, flushed and synced to disk."""
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def gflops(rec: dict) -> float:
    """GFLOPS of a record (0 for a failed one, 1/seconds when it has no flop count)."""
    c = cost(rec)
    flop = rec.get("flop")
    if c == math.inf:
        return 0.0
    return flop / c / 1e9 if isinstance(flop, (int, float)) and flop > 0 else 1.0 / c


def cost(rec: dict) -> float:
    """Mean measured seconds of a record; infinity for a failed one."""
    res = rec["result"]
    return math.inf if res.get("error") or not res["costs"] else sum(res["costs"]) / len(res["costs"])


def wkey(rec: dict) -> str:
    return json.dumps(rec["workload"])


def best_by_workload(records, target: str | None = None) -> dict:
    """``{workload key: fastest record without error}`` (only ``target``'s when given)."""
    best = {}
    for rec in records:
        if (target is not None and rec["target"] != target) or cost(rec) == math.inf:
            continue
        k = wkey(rec)
        if k not in best or cost(rec) < cost(best[k]):
            best[k] = rec
    return best


def pick_best(in_path, out_path, beyond=None) -> int:
    """Keep the best record per (workload, target) of ``in_path`` (a log, or a list of
    logs: ``out_path`` may be one of them) in ``out_path``, written through a temporary file
    and an atomic rename; returns the number kept. With ``beyond`` (a log), only the records
    that it lacks or has slower are kept (what a log consulted before it should add)."""
    paths = [in_path] if isinstance(in_path, (str, os.PathLike)) else list(in_path)
    records = [rec for p in paths for rec in load_from_file(p)]
    keep = {}
    for rec in records:
        k = (wkey(rec), rec["target"])
        if cost(rec) < math.inf and (k not in keep or cost(rec) < cost(keep[k])):
            keep[k] = rec
    if beyond is not None:
        base = {(wkey(r), r["target"]): cost(r) for r in load_from_file(beyond)}
        keep = {k: r for k, r in keep.items() if cost(r) < base.get(k, math.inf)}
    out_path = Path(out_path)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent or ".", prefix=out_path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for rec in keep.values():
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out_path)
    return len(keep)


def _target_cpu(target: str) -> str | None:
    for word in target.split():
        if word.startswith("-mcpu="):
            return word[6:]
    return None


class ApplyHistoryBest(DispatchContext):
    """Templates called inside get the fastest error-free record of their workload whose
    target is the deploy target; among equal targets, records measured on this host's CPU
    model are preferred. A record whose target names another CPU is never applied."""

    def __init__(self, records):
        if isinstance(records, (str, os.PathLike)):
            records = load_from_file(records)
        else:
            records = [upgrade(r) for r in records if _valid(r) is None]
        self.records = records
        self.cpu = host_info()["cpu"]
        self._best = {}

    def query(self, target, workload):
        key = (json.dumps(workload), target)
        if key not in self._best:
            cands = [r for r in self.records if r["target"] == target
                     and json.dumps(r["workload"]) == key[0] and cost(r) < math.inf]
            same_cpu = [r for r in cands if r.get("host", {}).get("cpu") == self.cpu]
            pool = same_cpu or cands
            self._best[key] = min(pool, key=cost)["config"] if pool else None
        return self._best[key]


def apply_history_best(records) -> ApplyHistoryBest:
    """Context manager: ``with apply_history_best("log.jsonl"): s, args = template(...)``;
    ``records`` is a path or a list of records. Nested contexts: the innermost wins."""
    return ApplyHistoryBest(records)
