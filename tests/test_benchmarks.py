"""The benchmark suite's smoke run (``python -m benchmarks --quick``): every workload builds
and matches numpy, and so does every peer; and the report's table and chart."""

import json

import numpy as np
import pytest

from benchmarks import __main__ as bench
from benchmarks import report
from benchmarks.runner import COMPILE, NUMPY, OURS, TORCH, Result, run_workload
from benchmarks.workloads import WORKLOADS, Workload


def test_quick_run_checks_every_workload_against_numpy(tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert [w["name"] for w in data["workloads"]] == [w.name for w in WORKLOADS]
    for w in data["workloads"]:
        assert w["errors"] == {}, w
        assert {OURS, NUMPY, TORCH} <= set(w["checked"]), w
        assert w["times"] == {}                      # --quick times nothing
    assert data["machine"]["threads"] >= 1
    assert "gemm 1024x1024x1024" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_run_with_torch_compile(tmp_path):
    assert bench.main(["--quick", "--compile", "--only", "relu(a*b+c)", "--out", str(tmp_path)]) == 0
    (w,) = json.loads((tmp_path / "results.json").read_text())["workloads"]
    assert COMPILE in w["checked"]


def test_without_torch_only_numpy_is_the_peer(tmp_path, capsys):
    assert bench.main(["--quick", "--no-torch", "--only", "gemm 256", "--out", str(tmp_path)]) == 0
    (w,) = json.loads((tmp_path / "results.json").read_text())["workloads"]
    assert w["checked"] == [OURS, NUMPY]
    assert json.loads((tmp_path / "results.json").read_text())["machine"]["torch"] is None


def test_a_wrong_kernel_is_reported_and_not_timed():
    import tensorlang as tl

    def build():                                      # computes a + 1 instead of a + 2
        A = tl.placeholder((64,), name="A")
        B = tl.compute((64,), lambda i: A[i] + 1.0, name="B")
        return tl.create_schedule(B.op), [A, B]

    w = Workload("plus two", "test", build, lambda rng: [rng.random(64, dtype=np.float32)],
                 lambda a: a + 2)
    r = run_workload(w, np.random.default_rng(0), rounds=1)
    assert "64 of 64 values differ from numpy" in r.errors[OURS]
    assert OURS not in r.times and NUMPY in r.times


def test_unknown_workload_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--quick", "--only", "no such workload"])
    assert e.value.code == 2
    assert "no workload matches" in capsys.readouterr().err


def test_table_ratios_and_chart(tmp_path):
    r = Result("gemm 2x2x2", "gemm", flop=2e9, times={OURS: (0.5, 0.4, 0.6), NUMPY: (1.0, 1.0, 1.0)},
               checked=[OURS, NUMPY, TORCH])
    line = report.row(r)
    assert line.split()[:4] == ["gemm", "2x2x2", "500.000", "1000.000"]
    assert "ok" in line and "2.00" in line and "4.0" in line and "50%" in line
    report.write_chart(tmp_path / "c.png", [r], {"cpu": "test", "threads": 2})
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_shipped_record_has_a_benchmark_workload():
    """The issue's bar: the suite reports every shipped workload, tuned vs its peers."""
    from benchmarks.workloads import shipped_keys
    from tensorlang.dispatch import load_from_file
    from tensorlang import ops

    log = ops.shipped_log()
    if not log.is_file():
        pytest.skip(f"no log shipped for this CPU ({log.name})")
    shipped = {json.dumps(r["workload"]) for r in load_from_file(log)}
    keys = {json.dumps(w.key) for w in WORKLOADS if w.key is not None}
    assert shipped and shipped <= keys, sorted(shipped - keys)
    assert shipped_keys() <= shipped


def test_tuned_rows_are_marked():
    r = Result("gemm 2x2x2", "gemm", flop=None, tuned=True)
    assert report.row(r).startswith("gemm 2x2x2 *")
    assert "a tuned record shipped in tuning_logs/ applies" in report.table([r])
    assert "tuned record" not in report.table([Result("x", "g", flop=None)])


def test_target_haswell_builds_for_haswell_and_adds_the_openblas_haswell_peer(
        tmp_path, capsys, monkeypatch):
    """``--target "llvm -mcpu=haswell"``: our GEMM is compiled for Haswell (AVX2: ymm
    registers, no zmm), the table names the target, and the GEMM row gets the peer numpy
    with OpenBLAS forced to its Haswell kernels (a subprocess checked with threadpoolctl)."""
    import tensorlang as tl
    from benchmarks import runner
    from benchmarks.openblas_peer import NAME as OB_HSW

    built, tl_build = [], tl.build

    def build(*a, **kw):
        built.append(tl_build(*a, **kw))
        return built[-1]

    monkeypatch.setattr(runner.tl, "build", build)
    argv = ["--quick", "--no-torch", "--target", "llvm -mcpu=haswell", "--only", "gemm 256",
            "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert "target llvm -mcpu=haswell" in out and "x OB-hsw" in out
    assert "architecture Haswell" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["machine"]["target"] == "llvm -mcpu=haswell"
    assert data["machine"]["openblas_haswell"]["architecture"] == "Haswell"
    (w,) = data["workloads"]
    assert w["errors"] == {} and w["checked"] == [OURS, NUMPY, OB_HSW]
    assert w["target"] == "llvm -mcpu=haswell" and w["ratios"] == {}
    (f,) = built
    asm = f.get_source("asm")
    assert "ymm" in asm and "zmm" not in asm


def test_haswell_peer_is_timed_and_its_ratio_reported(tmp_path):
    """One timed round of a GEMM with the Haswell peer: it has a time and a ratio."""
    from benchmarks.openblas_peer import NAME as OB_HSW, HaswellPeer
    from benchmarks.workloads import WORKLOADS

    w = next(w for w in WORKLOADS if w.name == "gemm 256x256x256")
    with HaswellPeer(1) as peer:
        r = run_workload(w, np.random.default_rng(0), rounds=1, haswell=peer)
    assert r.errors == {} and {OURS, NUMPY, OB_HSW} <= set(r.times)
    assert OB_HSW in report.ratios(r)
    report.write_json(tmp_path / "r.json", [r], {}, {"cpu": "test", "threads": 1})
    (j,) = json.loads((tmp_path / "r.json").read_text())["workloads"]
    assert j["ratios"][OB_HSW] == pytest.approx(r.times[OB_HSW][0] / r.times[OURS][0])
    assert "x OB-hsw" in report.table([r]) and "OpenBLAS Haswell" in report.table([r])
