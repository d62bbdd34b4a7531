"""Worker processes that run jobs in isolation: a job that raises, crashes its process
(a segfault) or runs past its timeout costs that job only; the worker is replaced.

Workers are started with ``spawn`` (a fresh interpreter: no inherited OpenMP or XGBoost
threads) and live across jobs, so the start-up cost (imports) is paid once per worker. A
job is a picklable module-level function and its arguments; its outcome is
``("ok", value)``, ``("error", "Type: message")``, ``("timeout", message)`` or
``("crash", message)``.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from multiprocessing.connection import wait

_CTX = mp.get_context("spawn")


def _worker_main(conn) -> None:
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fn, args = job
        try:
            out = ("ok", fn(*args))
        except BaseException as e:                # noqa: BLE001 - the job's failure, reported
            tb = traceback.extract_tb(e.__traceback__)
            where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
            out = ("error", f"{type(e).__name__}: {e}{where}")
        conn.send(out)


class _Worker:
    def __init__(self):
        self.conn, child = _CTX.Pipe()
        self.proc = _CTX.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class WorkerPool:
    """``n`` isolated workers; ``run(jobs, timeout)`` runs ``[(fn, args), ...]`` on them and
    returns their outcomes in order."""

    def __init__(self, n: int = 1):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {n!r}")
        self.n = n
        self.workers: list[_Worker] = []

    def _fill(self):
        while len(self.workers) < self.n:
            self.workers.append(_Worker())

    def run(self, jobs, timeout: float) -> list:
        self._fill()
        outcomes = [None] * len(jobs)
        pending = list(enumerate(jobs))
        busy = {}                                 # worker -> (job index, deadline)
        idle = list(self.workers)
        while pending or busy:
            while pending and idle:
                w = idle.pop()
                i, (fn, args) = pending.pop(0)
                try:
                    w.conn.send((fn, args))
                except (BrokenPipeError, OSError):
                    self._replace(w)
                    pending.insert(0, (i, (fn, args)))
                    idle = [x for x in self.workers if x not in busy]
                    continue
                busy[w] = (i, time.monotonic() + timeout)
            if not busy:
                continue
            now = time.monotonic()
            ready = wait([w.conn for w in busy], timeout=max(0.0, min(d for _, d in busy.values()) - now))
            for w in list(busy):
                i, deadline = busy[w]
                if w.conn in ready:
                    try:
                        outcomes[i] = w.conn.recv()
                        idle.append(w)
                    except (EOFError, OSError):
                        w.proc.join(1)
                        code = w.proc.exitcode
                        hint = ("; a worker that exits with 1 at once usually means the script "
                                "that started the tuning lacks `if __name__ == \"__main__\":`"
                                if code == 1 else "")
                        outcomes[i] = ("crash", f"the worker process died (exit code {code}){hint}")
                        idle.append(self._replace(w))
                    del busy[w]
                elif time.monotonic() >= deadline:
                    outcomes[i] = ("timeout", f"no result after {timeout:g} s; the worker was killed")
                    idle.append(self._replace(w))
                    del busy[w]
        return outcomes

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        new = _Worker()
        self.workers[self.workers.index(w)] = new
        return new

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            w.kill()
        self.workers = []

    def __del__(self):
        try:
            self.close()
        except Exception:                          # noqa: BLE001 - interpreter shutdown
            pass
