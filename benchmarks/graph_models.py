"""Whole networks end to end: ResNet-50 (224², batch 1) and a BERT-base encoder stack
(12 layers, sequence 128, batch 1) written with ``G`` (``tensorlang.graph.models``),
compiled at each opt level, next to PyTorch eager running the same network with the same
weights (written here with ``torch.nn.functional``; its output is checked against ours).

    python -m benchmarks.graph_models [--models resnet50,bert] [--levels 0,1,2,3]
                                      [--rounds N] [--layers 12] [--threads 2] [--no-torch]

``--models tiny`` runs two tiny networks (the smoke test). Times are medians of interleaved
rounds (each system's call after an idle pause, ``tensorlang.runtime.interleaved``); a level
whose single run takes over a second gets fewer rounds. Per level the table also gives
kernel calls per run, the memory plan (planned arena vs one buffer per intermediate) and
the compile time of ``G.build``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

import tensorlang as tl
from tensorlang import graph as G
from tensorlang.graph import models
from tensorlang.runtime import interleaved

SETTLE = 0.2
TORCH = "torch eager"
RTOL = 2e-3                       # ours vs torch, relative to the output's largest value


# --------------------------------------------------------------------------- PyTorch networks

def torch_resnet(torch, p: dict):
    """The ResNet of ``models.resnet50`` from its parameters (blocks found by name)."""
    F = torch.nn.functional
    t = {k: torch.from_numpy(np.array(v)) for k, v in p.items()}      # writable copies

    def conv_bn(x, conv, bn, stride=1):
        w = t[f"{conv}.weight"]
        x = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
        return F.batch_norm(x, t[f"{bn}.running_mean"], t[f"{bn}.running_var"],
                            t[f"{bn}.weight"], t[f"{bn}.bias"], False, 0.0, 1e-5)

    def forward(x):
        y = F.max_pool2d(F.relu(conv_bn(x, "conv1", "bn1", 2)), 3, 2, 1)
        stage = 1
        while f"layer{stage}.0.conv1.weight" in t:
            i = 0
            while (n := f"layer{stage}.{i}") + ".conv1.weight" in t:
                s = 2 if stage > 1 and i == 0 else 1
                o = F.relu(conv_bn(y, f"{n}.conv1", f"{n}.bn1"))
                o = F.relu(conv_bn(o, f"{n}.conv2", f"{n}.bn2", s))
                o = conv_bn(o, f"{n}.conv3", f"{n}.bn3")
                if f"{n}.downsample.0.weight" in t:
                    y = conv_bn(y, f"{n}.downsample.0", f"{n}.downsample.1", s)
                y = F.relu(o + y)
                i += 1
            stage += 1
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        return F.linear(y, t["fc.weight"], t["fc.bias"])
    return forward


def torch_bert(torch, p: dict, heads: int, eps: float = 1e-12):
    """The encoder stack of ``models.bert_encoder`` from its parameters."""
    F = torch.nn.functional
    t = {k: torch.from_numpy(np.array(v)) for k, v in p.items()}      # writable copies
    layers = sum(1 for k in t if k.endswith(".attention.self.query.weight"))

    def forward(h, mask):
        B, S, H = h.shape
        d = H // heads
        for i in range(layers):
            n = f"encoder.layer.{i}"

            def lin(x, name):
                return F.linear(x, t[f"{n}.{name}.weight"], t[f"{n}.{name}.bias"])

            def ln(x, name):
                return F.layer_norm(x, (H,), t[f"{n}.{name}.weight"], t[f"{n}.{name}.bias"], eps)

            q, k, v = (lin(h, f"attention.self.{w}").view(B, S, heads, d).transpose(1, 2)
                       for w in ("query", "key", "value"))
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask
            ctx = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(B, S, H)
            a = ln(lin(ctx, "attention.output.dense") + h, "attention.output.LayerNorm")
            f = F.gelu(lin(a, "intermediate.dense"))
            h = ln(lin(f, "output.dense") + a, "output.LayerNorm")
        return h
    return forward


# --------------------------------------------------------------------------- networks

def networks(names, bert_layers: int):
    """[(title, module, inputs, torch forward maker)] for the --models names."""
    out = []
    for name in names:
        if name == "resnet50":
            mod, inputs = models.resnet50()
            out.append(("ResNet-50, 224², batch 1", mod, inputs, torch_resnet))
        elif name == "bert":
            mod, inputs = models.bert_encoder(layers=bert_layers)
            out.append((f"BERT-base encoder, {bert_layers} layers, seq 128, batch 1", mod, inputs,
                        lambda torch, p: torch_bert(torch, p, 12)))
        elif name == "tiny":
            mod, inputs = models.resnet50(layers=(1, 1, 1, 1), image=32, width=0.25,
                                          num_classes=10)
            out.append(("tiny ResNet", mod, inputs, torch_resnet))
            mod, inputs = models.bert_encoder(layers=1, hidden=32, heads=2, intermediate=64,
                                              seq=8)
            out.append(("tiny BERT", mod, inputs, lambda torch, p: torch_bert(torch, p, 2)))
        else:
            raise SystemExit(f"graph_models: unknown model {name!r} "
                             "(resnet50, bert, tiny)")
    return out


def mismatch(got, expect) -> str | None:
    got = np.asarray(got)
    if got.shape != expect.shape:
        return f"shape {got.shape}, expected {expect.shape}"
    err = np.abs(got - expect).max() / max(np.abs(expect).max(), 1e-30)
    return None if err <= RTOL else f"max error {err:.2e} of the output's scale"


def timed_rounds(fns: dict, rounds: dict) -> dict:
    """{name: (median, min, max)}: round r runs (interleaved, one call each after a pause)
    the systems that still have rounds left."""
    times = {n: [] for n in fns}
    for r in range(max(rounds.values())):
        subset = {n: f for n, f in fns.items() if r < rounds[n]}
        for n, (t, _, _) in interleaved(subset, rounds=1, number=1, settle=SETTLE).items():
            times[n].append(t)
    return {n: (statistics.median(ts), min(ts), max(ts)) for n, ts in times.items()}


def run_network(title, mod, inputs, make_torch, levels, rounds, torch) -> list:
    """Rows of the table for one network."""
    rows, fns, nrounds, expect = {}, {}, {}, None
    if torch is not None:
        fwd = make_torch(torch, models.params(mod))
        tin = [torch.from_numpy(a) for a in inputs]

        def run_torch():
            with torch.inference_mode():
                return fwd(*tin)
        expect = run_torch().numpy()
        fns[TORCH], nrounds[TORCH] = run_torch, rounds
        rows[TORCH] = {"system": TORCH}
    for lvl in levels:
        name = f"tensorlang O{lvl}"
        lib = G.build(mod, opt_level=lvl)
        t = time.perf_counter()
        out = lib(*inputs)
        once = time.perf_counter() - t
        if expect is None:
            expect = out
        rows[name] = {"system": name, "kernels": lib.kernel_count,
                      "planned": lib.memory.planned_bytes, "naive": lib.memory.naive_bytes,
                      "compile": lib.compile_seconds}
        err = mismatch(out, expect)
        if err:
            rows[name]["error"] = err
            continue
        fns[name] = (lambda lib: lambda: lib(*inputs))(lib)
        nrounds[name] = rounds if once < 1.0 else max(1, min(rounds, 3))
    print(f"timing {title}: {', '.join(f'{n} x{nrounds[n]}' for n in fns)}", file=sys.stderr)
    for n, tm in timed_rounds(fns, nrounds).items():
        rows[n]["times"], rows[n]["rounds"] = tm, nrounds[n]
    return list(rows.values())


def cpu_names() -> tuple[str, str]:
    import llvmlite.binding as llvm
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), model)
    except OSError:
        pass
    return llvm.get_host_cpu_name(), model


def table(title, rows) -> str:
    ref = next((r["times"][0] for r in rows if r["system"] == TORCH and "times" in r), None)
    lines = [f"### {title}", "",
             "| system | latency ms, median (min–max) | vs torch | kernel calls | memory MiB, "
             "planned / naive | compile s |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "times" in r:
            med, lo, hi = (1e3 * v for v in r["times"])
            lat = f"{med:.2f} ({lo:.2f}–{hi:.2f}), n={r['rounds']}"
            vs = f"{ref / r['times'][0]:.2f}x" if ref else "—"
        else:
            lat, vs = f"not timed: {r.get('error', '')}", "—"
        if "kernels" in r:
            extra = (f"{r['kernels']} | {r['planned'] / 2**20:.2f} / {r['naive'] / 2**20:.2f} | "
                     f"{r['compile']:.1f}")
        else:
            extra = "— | — | —"
        lines.append(f"| {r['system']} | {lat} | {vs} | {extra} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.graph_models", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,bert", help="resnet50, bert, tiny")
    ap.add_argument("--levels", default="0,1,2,3")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--layers", type=int, default=12, help="BERT encoder layers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args(argv)
    levels = [int(v) for v in a.levels.split(",")]
    torch = None
    if not a.no_torch:
        try:
            import torch
            torch.set_num_threads(a.threads)
        except ImportError:
            print("PyTorch is not installed: no torch peer", file=sys.stderr)
    tl.runtime.set_num_threads(a.threads)
    llvm_cpu, model = cpu_names()
    print(f"CPU: {model} (LLVM `{llvm_cpu}`), {a.threads} threads"
          + (f", PyTorch {torch.__version__}" if torch else "") + "\n")
    failed = False
    for title, mod, inputs, make_torch in networks(a.models.split(","), a.layers):
        rows = run_network(title, mod, inputs, make_torch, levels, a.rounds, torch)
        failed |= any("error" in r for r in rows)
        print(table(title, rows) + "\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
