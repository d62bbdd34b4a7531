"""Report a benchmark run: a table on the terminal, a JSON file, a PNG chart of ratios."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

from .runner import COMPILE, NUMPY, OB_HSW, OURS, TORCH

PEERS = (NUMPY, TORCH, COMPILE, OB_HSW)


def machine(threads: int, torch=None, target: str = "llvm") -> dict:
    """The host (CPU model, LLVM's name for it), the target our kernels are built for (as
    ``tl.target.Target`` spells it) and the versions of everything measured."""
    import llvmlite
    import llvmlite.binding as llvm
    import numpy as np

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                if line.startswith("model name")), platform.processor())
    import tensorlang as tl
    return {"cpu": cpu, "llvm_cpu": llvm.get_host_cpu_name(),
            "target": str(tl.target.Target(target)), "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "llvmlite": llvmlite.__version__, "torch": torch.__version__ if torch else None}


def _cpuinfo():
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


HEADER = (f"{'workload':<38}{'ours ms':>9}{'numpy':>9}{'torch':>9}{'compile':>9}{'OB-hsw':>9}"
          f"{'x numpy':>9}{'x torch':>9}{'x comp.':>9}{'x OB-hsw':>9}{'GFLOPS':>8}{'np GF':>7}"
          f"{'spread':>8}")
HSW_NOTE = (f"OB-hsw: {OB_HSW}, numpy in a subprocess whose OpenBLAS is forced to its AVX2 "
            f"kernels (OPENBLAS_CORETYPE=Haswell), timed in rounds alternating with ours")


def title(info: dict, quick: bool, rounds: int) -> str:
    """The line above the table: the CPU, the target our kernels are built for, threads."""
    return (f"{info['cpu']} (LLVM {info['llvm_cpu']}), target {info['target']}, "
            f"{info['threads']} threads, schedules {info.get('schedules', '?')}, "
            f"{'quick: correctness only' if quick else f'medians of {rounds} rounds'}")


def ratios(r) -> dict:
    """Our speed relative to each timed peer: peer median / our median (> 1: we are faster)."""
    ours = r.times.get(OURS)
    return {p: r.times[p][0] / ours[0] for p in PEERS if ours and p in r.times}


def table(results, extras: dict | None = None) -> str:
    """Medians in ms, our speed relative to each peer (peer time / our time: > 1 means we
    are faster), GFLOPS where the workload has a flop count, and our spread (max/min - 1).
    A system checked against numpy but not timed (``--quick``) shows ``ok``."""
    note = ("* a tuned record shipped in tuning_logs/ applies; other rows run the operator's "
            "default schedule")
    hsw = any(OB_HSW in r.checked or OB_HSW in r.errors for r in results)
    return "\n".join([HEADER, "-" * len(HEADER), *(row(r) for r in results),
                      *([note] if any(r.tuned for r in results) else []),
                      *([HSW_NOTE] if hsw else []), *_extras(extras or {})])


def row(r) -> str:
    """One workload's line of the table, and a line per system that failed."""
    def ms(system):
        t = r.times.get(system)
        return f"{t[0] * 1e3:9.3f}" if t else f"{'ok' if system in r.checked else '-':>9}"

    ours = r.times.get(OURS)
    rs = ratios(r)
    cols = [f"{rs[p]:9.2f}" if p in rs else f"{'-':>9}" for p in PEERS]
    gf = [f"{r.flop / r.times[s][0] / 1e9:{w}.1f}" if r.flop and s in r.times else f"{'-':>{w}}"
          for s, w in ((OURS, 8), (NUMPY, 7))]
    spread = f"{(ours[2] / ours[1] - 1) * 100:7.0f}%" if ours else f"{'-':>8}"
    name = r.name + (" *" if r.tuned else "")
    lines = [f"{name:<38}{ms(OURS)}{''.join(ms(p) for p in PEERS)}"
             f"{''.join(cols)}{''.join(gf)}{spread}"]
    lines += [f"    ! {system}: {err}" for system, err in r.errors.items()]
    return "\n".join(lines)


def _extras(extras: dict) -> list[str]:
    lines = []
    for key, value in extras.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.2f}x" for k, v in value.items())
        elif key.endswith("(s)"):
            key, value = key[:-4], f"{value * 1e3:.3f} ms"
        lines.append(f"{key}: {value}")
    return lines


def write_json(path: Path, results, extras, info: dict) -> None:
    data = {"machine": info, "workloads": [{**asdict(r), "ratios": ratios(r)} for r in results],
            "extras": extras}
    path.write_text(json.dumps(data, indent=1))


def write_chart(path: Path, results, info: dict) -> None:
    """Horizontal bars: for each workload, our speed relative to each peer (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if OURS in r.times]
    peers = [p for p in PEERS if any(p in r.times for r in rows)]
    fig, ax = plt.subplots(figsize=(9, 0.2 * len(rows) * len(peers) + 1.2))
    height = 0.8 / max(1, len(peers))
    for j, p in enumerate(peers):
        ys = [i + j * height for i, r in enumerate(rows) if p in r.times]
        xs = [r.times[p][0] / r.times[OURS][0] for r in rows if p in r.times]
        ax.barh(ys, xs, height=height, label=f"{p} time / our time")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [r.name for r in rows],
                  fontsize=7)
    ax.set_ylim(len(rows) - 0.1, -0.3)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speed relative to peer (> 1: tensorlang faster)")
    ax.set_title(f"tensorlang vs peers, {info['cpu']}, target {info.get('target', 'llvm')}, "
                 f"{info['threads']} threads", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
