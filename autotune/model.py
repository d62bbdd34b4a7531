"""Whole models in tuning jobs: a model from a job's ``entry``, the time of the kernels no
template covers, the measured latency before and after tuning, and the model's summary
file next to the log (what ``autotune plot`` draws the end-to-end curve from).

An entry is ``"module:function"``; ``function(*args)`` returns ``(model, example_inputs)``:
a PyTorch module with a tuple of tensors (captured with ``torch.export`` and imported by
the front end), or a ``G.Module`` with a list of numpy arrays.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from tensorlang import graph as G
from tensorlang.errors import TensorlangError


class ModelError(TensorlangError):
    """A model entry that cannot be loaded or does not return ``(model, inputs)``."""


def resolve(entry: str):
    """The function an entry ``"module:function"`` names (``ModelError`` if it has none)."""
    module, sep, name = entry.partition(":")
    if not sep or not module or not name:
        raise ModelError(f"entry {entry!r} must be 'module:function'")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        raise ModelError(f"entry {entry!r}: cannot import {module!r} ({e})") from None
    except AttributeError:
        raise ModelError(f"entry {entry!r}: module {module!r} has no {name!r}") from None
    if not callable(fn):
        raise ModelError(f"entry {entry!r}: {name!r} is not a function")
    return fn


def load_model(entry: str, args=()) -> tuple[G.Module, list]:
    """``(graph module, numpy inputs)`` of a model entry."""
    got = resolve(entry)(*args)
    if not (isinstance(got, tuple) and len(got) == 2):
        raise ModelError(f"entry {entry!r} must return (model, example_inputs), got {type(got).__name__}")
    model, inputs = got
    if isinstance(model, G.Module):
        return model, [np.asarray(x) for x in inputs]
    import torch
    from tensorlang.frontend import from_exported_program
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"entry {entry!r} returned a {type(model).__name__}; expected a "
                         f"torch.nn.Module or a tensorlang.graph.Module")
    inputs = tuple(inputs)
    mod = from_exported_program(torch.export.export(model.eval(), inputs))
    return mod, [x.detach().numpy() for x in inputs]


def untemplated_s(lib, inputs, number: int = 10) -> float:
    """Seconds per run spent in the kernels of ``lib`` that no tuned template covers
    (element-wise groups, layout transforms, pads ...: what tuning cannot change)."""
    prof = lib.profile(*inputs, number=number)
    return sum(row[3] for st, row in zip(lib.steps, prof.rows) if st.dispatch is None) / 1e3


def latency_s(lib, inputs, rounds: int = 20) -> float:
    """Median seconds of one call of ``lib`` (``runtime.interleaved``: per round one
    untimed call, then one timed)."""
    from tensorlang.runtime import interleaved
    return interleaved({"model": lambda: lib(*inputs)}, rounds=rounds, number=1,
                       settle=0.0)["model"][0]


def summary_path(log, name: str) -> Path:
    """Where a model's summary goes: ``<log stem>.<name>.json`` beside the log."""
    log = Path(log)
    return log.with_name(f"{log.stem}.{name}.json")


def write_summary(path, data: dict) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def read_summary(path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not a model summary ({e})") from None
    if not isinstance(data, dict) or "tasks" not in data or "log" not in data:
        raise ModelError(f"{path}: not a model summary (no 'tasks' and 'log')")
    return data
