"""Report a benchmark run: a table on the terminal, a JSON file, a PNG chart of ratios."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

from .runner import COMPILE, NUMPY, OURS, TORCH

PEERS = (NUMPY, TORCH, COMPILE)


def machine(threads: int, torch=None) -> dict:
    import llvmlite
    import llvmlite.binding as llvm
    import numpy as np

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "llvm_cpu": llvm.get_host_cpu_name(), "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "llvmlite": llvmlite.__version__, "torch": torch.__version__ if torch else None}


def _cpuinfo():
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


HEADER = (f"{'workload':<38}{'ours ms':>9}{'numpy':>9}{'torch':>9}{'compile':>9}"
          f"{'x numpy':>9}{'x torch':>9}{'x comp.':>9}{'GFLOPS':>8}{'np GF':>7}{'spread':>8}")


def table(results, extras: dict | None = None) -> str:
    """Medians in ms, our speed relative to each peer (peer time / our time: > 1 means we
    are faster), GFLOPS where the workload has a flop count, and our spread (max/min - 1).
    A system checked against numpy but not timed (``--quick``) shows ``ok``."""
    note = ("* a tuned record shipped in tuning_logs/ applies; other rows run the operator's "
            "default schedule")
    return "\n".join([HEADER, "-" * len(HEADER), *(row(r) for r in results),
                      *([note] if any(r.tuned for r in results) else []),
                      *_extras(extras or {})])


def row(r) -> str:
    """One workload's line of the table, and a line per system that failed."""
    def ms(system):
        t = r.times.get(system)
        return f"{t[0] * 1e3:9.3f}" if t else f"{'ok' if system in r.checked else '-':>9}"

    ours = r.times.get(OURS)
    ratios = [f"{r.times[p][0] / ours[0]:9.2f}" if ours and p in r.times else f"{'-':>9}"
              for p in PEERS]
    gf = [f"{r.flop / r.times[s][0] / 1e9:{w}.1f}" if r.flop and s in r.times else f"{'-':>{w}}"
          for s, w in ((OURS, 8), (NUMPY, 7))]
    spread = f"{(ours[2] / ours[1] - 1) * 100:7.0f}%" if ours else f"{'-':>8}"
    name = r.name + (" *" if r.tuned else "")
    lines = [f"{name:<38}{ms(OURS)}{''.join(ms(p) for p in PEERS)}"
             f"{''.join(ratios)}{''.join(gf)}{spread}"]
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
    data = {"machine": info, "workloads": [asdict(r) for r in results], "extras": extras}
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
    ax.set_title(f"tensorlang vs peers, {info['cpu']}, {info['threads']} threads", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
