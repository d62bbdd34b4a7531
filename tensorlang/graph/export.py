"""One file per compiled graph: the kernels' shared library (loadable with ``dlopen`` as it
is) followed by a payload: the executor's plan and the graph as JSON, and the constants
(folded and packed) as an ``.npz``. The last 24 bytes say where the payload is:
``<npz length: 8 bytes> <json length: 8 bytes> TLGRAPH1``."""

from __future__ import annotations

import io
import json
import os
import struct

import numpy as np

from ..errors import TensorlangIOError
from ..runtime import load_module as load_code
from .executor import CompiledModule, InputSpec, OutputSpec, Step
from .transform.plan_memory import MemoryPlan

MAGIC = b"TLGRAPH1"


def write_payload(path: str, lib: CompiledModule) -> None:
    plan = {
        "steps": [[s.kernel, [list(r) for r in s.args], s.group, s.ops, s.template] for s in lib.steps],
        "inputs": [[i.name, list(i.shape), i.dtype] for i in lib.inputs],
        "outputs": [[list(o.shape), o.dtype, list(o.ref)] for o in lib.outputs],
        "structure": lib.structure,
        "arena_bytes": lib.arena_bytes,
        "memory": [lib.memory.arena_bytes, lib.memory.naive_bytes, len(lib.memory.offsets),
                   len(lib.memory.inplace)],
        "graph": lib.graph_json,
    }
    buf = io.BytesIO()
    np.savez(buf, *lib.constants)
    npz = buf.getvalue()
    text = json.dumps(plan).encode()
    with open(path, "ab") as f:
        f.write(npz)
        f.write(text)
        f.write(struct.pack("<QQ", len(npz), len(text)) + MAGIC)


def load_module(path: str) -> CompiledModule:
    """Load a file written by ``CompiledModule.export_library``."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise TensorlangIOError(f"load_module: no such file {path!r}")
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size < 24:
            raise TensorlangIOError(f"load_module: {path!r} is not a compiled graph")
        f.seek(size - 24)
        n_npz, n_json = struct.unpack("<QQ", f.read(16))
        if f.read(8) != MAGIC or n_npz + n_json + 24 > size:
            raise TensorlangIOError(f"load_module: {path!r} is not a compiled graph (no "
                                    "payload; a single kernel library loads with tl.load_module)")
        f.seek(size - 24 - n_json - n_npz)
        npz = f.read(n_npz)
        plan = json.loads(f.read(n_json))
    with np.load(io.BytesIO(npz)) as z:
        constants = [np.ascontiguousarray(z[f"arr_{i}"]) for i in range(len(z.files))]
    code = load_code(path)
    mem = plan["memory"]
    memory = MemoryPlan({}, mem[0], mem[1], ())
    lib = CompiledModule(
        code, [Step(k, [tuple(r) for r in a], g, o, t) for k, a, g, o, t in plan["steps"]],
        [InputSpec(n, tuple(s), d) for n, s, d in plan["inputs"]],
        [OutputSpec(tuple(s), d, r) for s, d, r in plan["outputs"]],
        constants, plan["arena_bytes"], memory, graph_json=plan["graph"],
        structure=plan["structure"])
    return lib
