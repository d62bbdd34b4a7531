"""The peer "numpy (OpenBLAS Haswell)": numpy whose OpenBLAS is forced to its Haswell (AVX2)
kernels, in a subprocess of its own.

OpenBLAS picks its kernels once, when the library loads, from ``OPENBLAS_CORETYPE``; this
process's numpy already chose the host's (AVX-512 on a Zen 4 or Skylake-X). A target without
AVX-512 (``llvm -mcpu=haswell``) is fairly compared with the BLAS restricted to the same
ISA, so the suite starts one child interpreter with ``OPENBLAS_CORETYPE=Haswell`` (and
``OPENBLAS_NUM_THREADS`` = the run's thread count) set in its environment before anything
is imported. At start-up the child asks threadpoolctl what OpenBLAS loaded and answers
with it; ``HaswellPeer`` raises ``PeerError`` (and the suite stops) unless the architecture
is Haswell and the thread count is the run's.

Protocol: one JSON line per request on the child's stdin, one JSON line per answer on its
stdout. Inputs travel as ``.npy`` files in a temporary folder (``load`` names the suite
workload, whose numpy function the child looks up by name in ``benchmarks.workloads``, and
the input files); the child computes once and writes its output to a ``.npy`` file that
the parent checks against its own numpy result like every other peer's.

Timing (``round``): the child sleeps ``settle`` seconds (the machine idle, as
``tensorlang.runtime.interleaved`` does before each system), runs the computation once
untimed, then ``number`` times under ``time.perf_counter`` and answers the mean per call.
The parent cannot interleave it call-by-call with its in-process systems, so it
interleaves rounds: parent round (every in-process system, each after its pause), child
round, parent round, ... (see ``runner.run_workload``); the median, min and max are taken
over the child's rounds, as over the parent's. The parent blocks on the pipe (sleeping)
while the child runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "numpy (OpenBLAS Haswell)"
CORETYPE = "Haswell"


class PeerError(RuntimeError):
    """The Haswell peer could not be started as asked (wrong OpenBLAS, died, ...)."""


def wanted(target_info) -> bool:
    """Whether a target gets the Haswell peer: one without AVX-512."""
    return target_info.vector_bits < 512


class HaswellPeer:
    """The child process; ``with HaswellPeer(threads) as p:`` starts it and checks it."""

    def __init__(self, threads: int):
        self.threads = threads
        self.dir = tempfile.TemporaryDirectory(prefix="bench-ob-hsw-")
        env = {**os.environ, "OPENBLAS_CORETYPE": CORETYPE, "OPENBLAS_NUM_THREADS": str(threads),
               "OMP_NUM_THREADS": str(threads)}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.openblas_peer",
                                      str(threads)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True, cwd=root)
        hello = self._read()
        self.info = hello.get("openblas")
        if not self.info or self.info.get("architecture") != CORETYPE:
            self.close()
            raise PeerError(f"{NAME}: with OPENBLAS_CORETYPE={CORETYPE} the child's threadpoolctl "
                            f"reports {self.info or hello.get('error') or 'no OpenBLAS'}; "
                            f"expected architecture {CORETYPE!r}")
        if self.info.get("num_threads") != threads:
            self.close()
            raise PeerError(f"{NAME}: the child's OpenBLAS runs {self.info.get('num_threads')} "
                            f"threads, expected {threads}")

    def _send(self, **msg) -> dict:
        if self.proc.poll() is not None:
            raise PeerError(f"{NAME}: the child process exited ({self.proc.returncode})")
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(10)
            raise PeerError(f"{NAME}: the child process died (exit status {code}); its error "
                            "is printed above")
        return json.loads(line)

    def load(self, workload: str, inputs) -> np.ndarray:
        """Send ``inputs`` of suite workload ``workload``; returns the child's output."""
        paths = []
        for k, x in enumerate(inputs):
            p = os.path.join(self.dir.name, f"in{k}.npy")
            np.save(p, x)
            paths.append(p)
        out = os.path.join(self.dir.name, "out.npy")
        ans = self._send(op="load", workload=workload, inputs=paths, out=out)
        if "error" in ans:
            raise PeerError(ans["error"])
        return np.load(out)

    def round(self, number: int, settle: float) -> float:
        """One timed round (see the module's docstring): seconds per call."""
        ans = self._send(op="round", number=number, settle=settle)
        if "error" in ans:
            raise PeerError(ans["error"])
        return ans["seconds"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _child(threads: int) -> None:
    """The child's loop (stdout carries the protocol; everything else goes to stderr)."""
    out = sys.stdout
    sys.stdout = sys.stderr
    import numpy  # noqa: F401  (loads OpenBLAS with the environment's core type)
    from threadpoolctl import threadpool_info, threadpool_limits

    def answer(**msg):
        out.write(json.dumps(msg) + "\n")
        out.flush()

    blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    if not blas:
        answer(error=f"numpy does not use OpenBLAS here: {threadpool_info()}")
        return
    info = {k: blas[0].get(k) for k in ("architecture", "num_threads", "version", "filepath")}
    answer(openblas=info)
    fn = None
    with threadpool_limits(threads):
        for line in sys.stdin:
            msg = json.loads(line)
            try:
                if msg["op"] == "quit":
                    return
                if msg["op"] == "load":
                    from .workloads import WORKLOADS
                    by_name = {w.name: w for w in WORKLOADS}
                    if msg["workload"] not in by_name:
                        answer(error=f"{NAME}: no suite workload named {msg['workload']!r}")
                        continue
                    w = by_name[msg["workload"]]
                    args = [np.load(p) for p in msg["inputs"]]
                    fn = (lambda w=w, args=args: w.numpy(*args))
                    np.save(msg["out"], np.asarray(fn()))
                    answer(ok=True)
                elif msg["op"] == "round":
                    time.sleep(msg["settle"])
                    fn()
                    t = time.perf_counter()
                    for _ in range(msg["number"]):
                        fn()
                    answer(seconds=(time.perf_counter() - t) / msg["number"])
                else:
                    answer(error=f"unknown request {msg!r}")
            except Exception as e:                   # noqa: BLE001 - reported to the parent
                answer(error=f"{NAME}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    _child(int(sys.argv[1]))
