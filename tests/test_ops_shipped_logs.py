"""The tuned logs shipped in tensorlang/tuning_logs/ (package data): every record is valid for its template's space,
and the operators apply the shipped record of this CPU without any context."""

import json
import re
import warnings
from pathlib import Path

import pytest

import autotune
import tensorlang as tl
from tensorlang.dispatch import record
from tensorlang import ops

# shipped logs are named after the CPU (``znver5.jsonl``, the models' ``znver4.models.jsonl``);
# other logs there are local runs
SHIPPED = [p for p in sorted(Path(str(ops.shipped_log())).parent.glob("*.jsonl"))
           if re.fullmatch(r"[a-z0-9-]+(\.models)?", p.stem)]


@pytest.mark.parametrize("log", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_records_are_valid_best_records(log):
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no bad line in a shipped log
        recs = record.load_from_file(log)
    assert recs
    keys = [(record.wkey(r), r["target"]) for r in recs]
    assert len(keys) == len(set(keys))                 # one best record per workload
    for r in recs:
        assert r["result"]["error"] is None
        assert r["target"] == f"llvm -mcpu={log.stem.split('.')[0]}"
        name, args = r["workload"]
        task = autotune.create_task(name, args, r["target"])
        task.config_space.from_json(r["config"])       # raises if not in the space


def test_the_shipped_log_of_this_cpu_applies_without_a_context():
    log = ops.shipped_log()
    if not log.is_file():
        pytest.skip(f"no log shipped for this CPU ({log.name})")
    rec = next(r for r in record.load_from_file(log) if r["workload"][0] == "ops/matmul")
    M, N, K, dtype = rec["workload"][1]
    task = autotune.create_task("ops/matmul", [M, N, K, dtype])
    with autotune.ApplyConfig(task.config_space.from_json(rec["config"])):
        s, args = task.template(M, N, K, dtype)
    assert str(tl.lower(*ops.matmul(M, N, K, dtype))) == str(tl.lower(s, args))
    assert json.dumps(rec["workload"])
