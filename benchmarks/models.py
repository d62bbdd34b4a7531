"""End-to-end PyTorch models (``python -m benchmarks --models``): Hugging Face ``transformers``
networks built from their configs with random weights (nothing is downloaded), batch 1,
float32, every system on the same number of threads (2 by default).

    python -m benchmarks --models [resnet50,mobilenet_v2,bert,gpt2] [--rounds N]
                                  [--threads N] [--tiny] [--quick] [--no-profile]
                                  [--systems eager,inductor,ort,tl-compile,tl-export]

Systems: PyTorch eager; ``torch.compile`` (Inductor, default mode); ONNX Runtime (CPU
provider, ``intra_op_num_threads``) on a ``torch.onnx.export(..., dynamo=False)`` of the model;
tensorlang through ``torch.compile(backend="tensorlang")``; tensorlang through
``torch.export`` + ``frontend.from_exported_program`` + ``graph.build`` at opt level 3 (with
the tuned records shipped for this CPU, as a user gets it; ``tl-untuned``: the same under
``tl.dispatch.untuned()``, every template at its default config).

Every system's output (``last_hidden_state``) is checked against eager first; one that
differs by more than ``RTOL`` of the output's scale (max |diff| / max |eager|), or fails, is
reported and not timed. Times are medians (min–max) of interleaved rounds
(``tensorlang.runtime.interleaved``: each system runs after an idle pause, once untimed and
once timed per round). Compile times: the wall time of the first call for both
``torch.compile`` backends (Inductor's FX-graph cache is switched off, but its on-disk C++
kernel cache still serves a rerun: the first run on a machine is the cold figure), ``lib.compile_seconds`` for the export path (``graph.build``; the export and
import before it are given apart), and the ONNX export. At the end, a per-kernel profile
(``lib.profile``) of the export-path build of the model where tensorlang is slowest.

``--tiny`` runs the small configurations of ``tests/test_pytorch_models.py`` (the smoke test).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # configs only: never reach the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import collections  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

SETTLE = 0.2                    # idle seconds before each system's call
RTOL = 1e-3                     # max |diff| / max |eager| allowed before timing
NAMES = ("resnet50", "mobilenet_v2", "bert", "gpt2")
EAGER, INDUCTOR, ORT = "torch eager", "torch.compile (Inductor)", "ONNX Runtime"
TL_COMPILE, TL_EXPORT = "tensorlang torch.compile", "tensorlang export O3"
TL_UNTUNED = "tensorlang export O3, untuned"
SYSTEMS = (EAGER, INDUCTOR, ORT, TL_COMPILE, TL_EXPORT)
ORDER = (EAGER, INDUCTOR, ORT, TL_COMPILE, TL_UNTUNED, TL_EXPORT)      # rows of the tables
SHORT = {"eager": EAGER, "inductor": INDUCTOR, "ort": ORT, "tl-compile": TL_COMPILE,
         "tl-export": TL_EXPORT, "tl-untuned": TL_UNTUNED}                 # --systems names


# --------------------------------------------------------------------------- models

def configs(tiny: bool) -> dict:
    """name -> (title, model class name, config kwargs, input kind, input shape)."""
    if tiny:
        return {
            "resnet50": ("tiny ResNet (bottleneck), 64²", "ResNetModel",
                         dict(embedding_size=16, hidden_sizes=[16, 32, 64, 128],
                              depths=[1, 1, 1, 1], layer_type="bottleneck"),
                         "pixel_values", (1, 3, 64, 64)),
            "mobilenet_v2": ("tiny MobileNet-v2 (x0.35), 64²", "MobileNetV2Model",
                             dict(depth_multiplier=0.35, image_size=64),
                             "pixel_values", (1, 3, 64, 64)),
            "bert": ("tiny BERT, seq 16", "BertModel",
                     dict(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64,
                          max_position_embeddings=64),
                     "input_ids", (1, 16)),
            "gpt2": ("tiny GPT-2, seq 16", "GPT2Model",
                     dict(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                          bos_token_id=0, eos_token_id=0),
                     "input_ids", (1, 16)),
            "vit": ("tiny ViT, 32², patch 8", "ViTModel",
                    dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, image_size=32, patch_size=8),
                    "pixel_values", (1, 3, 32, 32)),
        }
    return {
        "resnet50": ("ResNet-50, 224² (ResNetModel default)", "ResNetModel", {},
                     "pixel_values", (1, 3, 224, 224)),
        "mobilenet_v2": ("MobileNet-v2, 224² (MobileNetV2Model default)", "MobileNetV2Model", {},
                         "pixel_values", (1, 3, 224, 224)),
        "bert": ("BERT-base, seq 128 (BertModel default)", "BertModel", {},
                 "input_ids", (1, 128)),
        "gpt2": ("GPT-2, seq 128 (GPT2Model default)", "GPT2Model", {}, "input_ids", (1, 128)),
        "vit": ("ViT-base/16, 224² (ViTModel default)", "ViTModel", {},
                "pixel_values", (1, 3, 224, 224)),
    }


def make(name: str, tiny: bool = False, seed: int = 0):
    """(title, wrapper, example input): ``wrapper(x)`` is the model in eval mode called with
    ``x`` by keyword, returning ``last_hidden_state`` (one tensor: what ``torch.export``,
    ``torch.onnx.export`` and the backends want)."""
    import torch
    import transformers
    table = configs(tiny)
    if name not in table:
        raise SystemExit(f"benchmarks --models: unknown model {name!r} (known: {', '.join(table)})")
    title, cls, kwargs, key, shape = table[name]
    config_cls = getattr(transformers, cls.replace("Model", "Config"))
    torch.manual_seed(seed)
    model = getattr(transformers, cls)(config_cls(**kwargs)).eval()
    extra = {}
    g = torch.Generator().manual_seed(seed + 1)
    if key == "input_ids":
        x = torch.randint(0, model.config.vocab_size, shape, generator=g)
    else:
        x = torch.randn(shape, generator=g)
    return title, Wrapper()(model, key, extra).eval(), x


def job_model(name: str, tiny: bool = False):
    """``(model, (input,))``: the entry ``autotune tune`` jobs use (``[[model]]`` tables)."""
    _, wrapper, x = make(name, tiny)
    return wrapper, (x,)


@functools.cache
def Wrapper():
    """The wrapper module class (made on first use, so that importing needs no torch)."""
    import torch

    class Wrapper(torch.nn.Module):
        """``forward(x)`` = ``model(**{key: x}, **extra).last_hidden_state``."""

        def __init__(self, model, key, extra=None):
            super().__init__()
            self.model, self.key, self.extra = model, key, dict(extra or {})

        def forward(self, x):
            return self.model(**{self.key: x}, **self.extra).last_hidden_state
    return Wrapper


def mismatch(got, expect, rtol: float = RTOL) -> str | None:
    got = np.asarray(got)
    if got.shape != expect.shape:
        return f"shape {got.shape}, expected {expect.shape}"
    if not np.isfinite(got).all():
        return "non-finite values"
    err = float(np.abs(got - expect).max() / max(float(np.abs(expect).max()), 1e-30))
    return None if err <= rtol else f"max error {err:.2e} of the output's scale"


def rel_error(got, expect) -> float:
    return float(np.abs(np.asarray(got) - expect).max() / max(float(np.abs(expect).max()), 1e-30))


# --------------------------------------------------------------------------- systems

def setup_systems(wrapper, x, threads: int, systems=SYSTEMS) -> tuple[dict, dict, dict]:
    """({system: zero-argument callable returning a numpy array}, {system: info}, {system:
    error}). Each system is made (compiled) here and run once; info holds its compile
    times."""
    import torch
    from tensorlang import graph as G
    from tensorlang.frontend import from_exported_program
    fns, info, errors = {}, {}, {}
    xn = x.numpy()

    def eager():
        with torch.no_grad():
            return wrapper(x).numpy()
    fns[EAGER] = eager

    def inductor():
        torch._dynamo.reset()
        c = torch.compile(wrapper)
        t = time.perf_counter()
        with torch.no_grad():
            c(x)
        info[INDUCTOR] = {"compile_s": time.perf_counter() - t}

        def run():
            with torch.no_grad():
                return c(x).numpy()
        return run

    def onnxruntime():
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            sess = ort_session(wrapper, x, threads, d)
            info[ORT] = {"compile_s": time.perf_counter() - t}
        feed = {"x": xn}
        return lambda: sess.run(None, feed)[0]

    def tl_compile():
        from tensorlang.frontend.torch_backend import TensorlangWarning
        torch._dynamo.reset()
        c = torch.compile(wrapper, backend="tensorlang", options={"opt_level": 3})
        t = time.perf_counter()
        with torch.no_grad(), warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always", TensorlangWarning)
            c(x)
        info[TL_COMPILE] = {"compile_s": time.perf_counter() - t,
                            "fallback": [str(w.message) for w in ws
                                         if issubclass(w.category, TensorlangWarning)]}

        def run():
            with torch.no_grad():
                return c(x).numpy()
        return run

    def tl_export(system=TL_EXPORT):
        import contextlib
        from tensorlang.dispatch import untuned
        t = time.perf_counter()
        with torch.no_grad():
            ep = torch.export.export(wrapper, (x,))
        mod = from_exported_program(ep)
        front = time.perf_counter() - t
        with untuned() if system == TL_UNTUNED else contextlib.nullcontext():
            lib = G.build(mod, opt_level=3, name="model")
        info[system] = {"compile_s": lib.compile_seconds, "export_import_s": front,
                        "lib": lib, "kernels": lib.kernel_count}
        return lambda: lib(xn)

    makers = {INDUCTOR: inductor, ORT: onnxruntime, TL_COMPILE: tl_compile, TL_EXPORT: tl_export,
              TL_UNTUNED: functools.partial(tl_export, TL_UNTUNED)}
    for name in systems:
        if name == EAGER:
            continue
        try:
            fns[name] = makers[name]()
        except Exception as e:               # one system's failure ends no run
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            traceback.print_exc(limit=4)
    return fns, info, errors


def check(fns: dict, errors: dict) -> tuple[np.ndarray, dict]:
    """Eager's output, and {system: relative error}; a system off by more than RTOL (or that
    raises) moves from ``fns`` to ``errors``."""
    expect = fns[EAGER]()
    errs = {}
    for name in list(fns):
        if name == EAGER:
            continue
        try:
            got = fns[name]()
            err = mismatch(got, expect)
            errs[name] = rel_error(got, expect) if got.shape == expect.shape else float("inf")
        except Exception as e:
            err = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        if err:
            errors[name] = err
            del fns[name]
    return expect, errs


def run_model(name: str, tiny: bool, rounds: int, threads: int, quick: bool = False,
              systems=SYSTEMS) -> dict:
    from tensorlang.runtime import interleaved
    title, wrapper, x = make(name, tiny)
    print(f"[{name}] building the systems ...", file=sys.stderr, flush=True)
    fns, info, errors = setup_systems(wrapper, x, threads, systems)
    _, errs = check(fns, errors)
    times = {}
    if not quick:
        print(f"[{name}] timing {len(fns)} systems x {rounds} rounds ...", file=sys.stderr,
              flush=True)
        times = interleaved(fns, rounds=rounds, number=1, settle=SETTLE)
    return {"name": name, "title": title, "times": times, "info": info, "errors": errors,
            "rel_error": errs, "checked": list(fns)}


# --------------------------------------------------------------------------- report

def table(r: dict) -> str:
    ref = r["times"].get(EAGER, (None,))[0]
    peer = r["times"].get(ORT, (None,))[0]
    lines = [f"### {r['title']}, batch 1", "",
             "| system | latency ms, median (min–max) | speed-up vs eager | vs ONNX Runtime | "
             "compile s | error vs eager |", "|---|---|---|---|---|---|"]
    for s in ORDER:
        inf = r["info"].get(s, {})
        comp = "—"
        if "compile_s" in inf:
            comp = f"{inf['compile_s']:.1f}"
            if "export_import_s" in inf:
                comp += f" (+{inf['export_import_s']:.1f} export+import)"
            if s == ORT:
                comp += " (export+session)"
            elif s not in (TL_EXPORT, TL_UNTUNED):
                comp += " (first call)"
        err = f"{r['rel_error'][s]:.1e}" if s in r["rel_error"] else ("ref" if s == EAGER else "—")
        if s in r["times"]:
            med, lo, hi = (1e3 * v for v in r["times"][s])
            lat = f"{med:.2f} ({lo:.2f}–{hi:.2f})"
            vs = f"{ref / r['times'][s][0]:.2f}x" if ref else "—"
            vp = f"{peer / r['times'][s][0]:.2f}x" if peer else "—"
        elif s in r["errors"]:
            lat, vs, vp = f"not timed: {r['errors'][s]}", "—", "—"
        elif s in r["checked"]:
            lat, vs, vp = "checked, not timed", "—", "—"
        else:
            continue
        lines.append(f"| {s} | {lat} | {vs} | {vp} | {comp} | {err} |")
    for w in r["info"].get(TL_COMPILE, {}).get("fallback", []):
        lines.append(f"\n{TL_COMPILE}: {w}")
    return "\n".join(lines)


def profile_top(lib, x: np.ndarray, k: int = 10, number: int = 5) -> str:
    """The ``k`` kernels with the most time in one run, summed over their calls."""
    prof = lib.profile(x, number=number)
    per = collections.OrderedDict()
    for kernel, ops, template, ms in prof.rows:
        e = per.setdefault(kernel, [0, 0.0, ops, template])
        e[0] += 1
        e[1] += ms
    total = prof.total_ms or 1.0
    rows = sorted(per.items(), key=lambda kv: -kv[1][1])[:k]
    lines = [f"per-kernel profile (lib.profile, medians of {number} runs per kernel): "
             f"{len(prof.rows)} kernel calls, {len(per)} distinct kernels, "
             f"{prof.total_ms:.2f} ms summed", "",
             "| kernel | calls | ms | % | ops |", "|---|---|---|---|---|"]
    for kernel, (calls, ms, ops, template) in rows:
        lines.append(f"| {kernel} | {calls} | {ms:.2f} | {100 * ms / total:.1f} | "
                     f"{'+'.join(ops)}{' [' + template + ']' if template else ''} |")
    return "\n".join(lines)


def profile_by_kind(lib, x: np.ndarray, number: int = 5) -> dict:
    """``{kind: ms per run}`` of ``lib``'s kernels: a templated kernel's kind is its
    template, another's its first op (``layout_transform``, ``pad``, ...)."""
    prof = lib.profile(x, number=number)
    out: dict = collections.Counter()
    for kernel, ops, template, ms in prof.rows:
        out[template or ops[0]] += ms
    return dict(out)


def ort_session(wrapper, x, threads: int, folder: str, profile: bool = False):
    """An ONNX Runtime session (CPU provider, ``threads`` intra-op threads, every graph
    optimisation) on a ``torch.onnx.export(..., dynamo=False)`` of ``wrapper`` written to
    ``folder`` (with ``profile``, its profile file goes there too)."""
    import onnxruntime as ort
    import torch
    path = os.path.join(folder, "model.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (x,), path, dynamo=False, input_names=["x"],
                          output_names=["y"], opset_version=17)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile:
        so.enable_profiling, so.profile_file_prefix = True, os.path.join(folder, "ort")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_profile(wrapper, x, threads: int, runs: int = 10) -> dict:
    """``{ONNX op type: ms per run}`` from ONNX Runtime's own profiler (the same export and
    session options as the timed system; the first, warm-up run is left out)."""
    import json
    with tempfile.TemporaryDirectory() as d:
        sess = ort_session(wrapper, x, threads, d, profile=True)
        feed = {"x": x.numpy()}
        for _ in range(runs + 1):
            sess.run(None, feed)
        with open(sess.end_profiling()) as fh:
            events = json.load(fh)
    runs_seen = [e for e in events if e.get("name") == "model_run"]
    first_end = runs_seen[0]["ts"] + runs_seen[0]["dur"] if runs_seen else 0
    out: dict = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first_end:
            out[e["args"].get("op_name", "?")] += e["dur"] / 1e3 / runs
    return dict(out)


def kinds_table(ours: dict, peer: dict) -> str:
    """The two profiles by kind, largest first (ms per run)."""
    lines = ["| tensorlang kernel kind | ms | | ONNX Runtime op type | ms |", "|---|---|---|---|---|"]
    a = sorted(ours.items(), key=lambda kv: -kv[1])
    b = sorted(peer.items(), key=lambda kv: -kv[1])
    for i in range(max(len(a), len(b))):
        left = f"{a[i][0]} | {a[i][1]:.2f}" if i < len(a) else " | "
        right = f"{b[i][0]} | {b[i][1]:.2f}" if i < len(b) else " | "
        lines.append(f"| {left} | | {right} |")
    lines.append(f"| **total** | **{sum(ours.values()):.2f}** | | **total** | **{sum(peer.values()):.2f}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m benchmarks --models",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(NAMES),
                    help=f"comma-separated, of {', '.join(NAMES)}, vit")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="the small configs of the tests")
    ap.add_argument("--quick", action="store_true", help="build and check only, no timing")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-kernel profile")
    ap.add_argument("--systems", default=",".join(SHORT),
                    help=f"comma-separated, of {', '.join(SHORT)} (eager is always run)")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.threads < 1:
        ap.error("--rounds and --threads must be at least 1")
    unknown = sorted(set(a.systems.split(",")) - set(SHORT))
    if unknown:
        ap.error(f"--systems: unknown {unknown}; known: {', '.join(SHORT)}")
    systems = [SHORT[k] for k in SHORT if k in a.systems.split(",") or k == "eager"]
    import torch
    import torch._inductor.config

    import tensorlang as tl
    import tensorlang.frontend  # noqa: F401  (registers the backend)
    from .graph_models import cpu_names
    torch._inductor.config.fx_graph_cache = False        # a cold Inductor compile
    torch.set_num_threads(a.threads)
    tl.runtime.set_num_threads(a.threads)
    import onnxruntime
    import transformers
    llvm_cpu, model = cpu_names()
    print(f"CPU: {model} (LLVM host `{llvm_cpu}`), {a.threads} threads; PyTorch "
          f"{torch.__version__}, transformers {transformers.__version__}, ONNX Runtime "
          f"{onnxruntime.__version__}; float32, batch 1; {a.rounds} interleaved rounds, "
          f"{SETTLE}s pause before each system\n", flush=True)
    results, failed = [], False
    for name in [m.strip() for m in a.models.split(",") if m.strip()]:
        r = run_model(name, a.tiny, a.rounds, a.threads, quick=a.quick, systems=systems)
        results.append(r)
        failed |= any(s in r["errors"] for s in (TL_COMPILE, TL_EXPORT))
        print(table(r) + "\n", flush=True)
    timed = [r for r in results if TL_EXPORT in r["times"]]
    if timed and not a.no_profile:
        slow = max(timed, key=lambda r: r["times"][TL_EXPORT][0])
        _, _, x = make(slow["name"], a.tiny)
        lib = slow["info"][TL_EXPORT]["lib"]
        print(f"### Where the time goes: {slow['title']}, {TL_EXPORT} "
              f"({1e3 * slow['times'][TL_EXPORT][0]:.1f} ms end to end)\n")
        print(profile_top(lib, x.numpy()) + "\n", flush=True)
    behind = [r for r in timed if ORT in r["times"] and r["times"][TL_EXPORT][0] > r["times"][ORT][0]]
    for r in behind if not a.no_profile else []:
        _, wrapper, x = make(r["name"], a.tiny)
        print(f"### {r['title']}: behind ONNX Runtime; both profiles by kind (ms per run, "
              f"summed over kernels timed one by one)\n")
        print(kinds_table(profile_by_kind(r["info"][TL_EXPORT]["lib"], x.numpy()),
                          ort_profile(wrapper, x, a.threads)) + "\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
