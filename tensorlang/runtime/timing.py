"""Timing for comparisons between systems: callables measured in interleaved rounds (so that every
system sees the same machine state), reported as medians with their spread.

Before each system's calls the machine is left idle for ``settle`` seconds. Multi-threaded
runtimes keep their worker threads spinning for a while after a call (OpenBLAS's and
OpenMP's do; ours polls for 300 us, yielding); without the pause, the next system runs while the previous one's
threads still occupy the cores, and on this 2-core machine each looks up to 3x slower
than it is.
"""

import statistics
import time


def interleaved(fns: dict, rounds: int = 7, number: int = 3, settle: float = 0.2) -> dict:
    """``{name: (median, min, max)}`` seconds per call of each zero-argument callable; each
    round runs every callable once untimed (warm-up) and then ``number`` times timed."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(settle)
            fn()
            t = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - t) / number)
    return {name: (statistics.median(ts), min(ts), max(ts)) for name, ts in times.items()}
