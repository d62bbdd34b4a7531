"""Callbacks of ``Tuner.tune``: ``callback(tuner, configs, results)`` after every batch.

* ``log_to_file(path)``: append each measurement to a JSON-lines log (see ``record.py``);
* ``progress_bar(total)``: a tqdm bar with trials, errors, best GFLOPS and ETA;
* ``plot_curve(logs, out)``: best GFLOPS against trials for one or several logs (PNG);
* ``plot_model(summaries, out)``: a model's estimated latency against trials (PNG).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tensorlang.dispatch import record


def log_to_file(path):
    """Append every measured candidate to ``path`` (created with its folder if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def callback(tuner, configs, results):
        for c, r in zip(configs, results):
            record.append(path, record.make_record(tuner.task, c, r))
    return callback


def progress_bar(total: int, prefix: str = ""):
    """A progress bar over ``total`` trials showing the best GFLOPS so far and the errors."""
    from tqdm import tqdm
    state = {}

    def callback(tuner, configs, results):
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=prefix or tuner.task.name, unit="trial",
                                initial=tuner.trials - len(configs), dynamic_ncols=True)
        bar = state["bar"]
        bar.set_postfix_str(f"best {tuner.best_gflops:.1f} GFLOPS, "
                            f"{sum(tuner.errors.values())} errors")
        bar.update(len(configs))
        if tuner.trials >= total:
            bar.close()
    return callback


def curves(path) -> dict:
    """``{workload key: [best GFLOPS after trial 1, 2, ...]}`` of a log, in file order."""
    out = {}
    for rec in record.load_from_file(path):
        seq = out.setdefault(record.wkey(rec), [])
        seq.append(max(record.gflops(rec), seq[-1] if seq else 0.0))
    return out


def plot_curve(logs, out) -> None:
    """Draw best GFLOPS against trials for every workload of every log into the PNG ``out``."""
    with _figure(out, "best GFLOPS so far", 6) as ax:
        for log in [logs] if isinstance(logs, (str, Path)) else logs:
            for key, seq in curves(log).items():
                ax.plot(range(1, len(seq) + 1), seq, label=f"{Path(log).name}: {key}")


def plot_model(summaries, out) -> None:
    """Draw the estimated end-to-end latency of each model summary (``autotune tune`` of a
    ``[[model]]`` job writes them beside the log) against its trials, replayed from its
    log (``scheduler.model_curve``), with the latency measured before and after tuning."""
    from .model import read_summary
    from .scheduler import model_curve
    with _figure(out, "end-to-end latency (ms)", 7) as ax:
        for path in [summaries] if isinstance(summaries, (str, Path)) else summaries:
            s = read_summary(path)
            curve = model_curve(s["log"], s["tasks"], s.get("rest_s", 0.0))
            if not curve:
                continue
            line, = ax.plot([n for n, _ in curve], [v * 1e3 for _, v in curve],
                            label=f"{s['model']}: estimate")
            for key, style in (("before_s", ":"), ("after_s", "--")):
                if s.get(key):
                    ax.axhline(s[key] * 1e3, color=line.get_color(), linestyle=style,
                               linewidth=0.8, label=f"{s['model']}: measured {key[:-2]} tuning")


@contextlib.contextmanager
def _figure(out, ylabel: str, fontsize: int):
    """Axes to draw on (x: trials), saved as the PNG ``out`` on leaving."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        yield ax
        ax.set_xlabel("trials")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=fontsize)
        fig.tight_layout()
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
