"""The one timing helper the benchmark scripts share (run them as ``python3 benchmarks/<script>.py``)."""
from __future__ import annotations

import time


def timed(fn, repeats: int) -> tuple[float, float]:
    """Fastest (wall seconds, CPU seconds of this process) of ``repeats`` calls after a warm-up.

    CPU time sums all threads of this process and barely moves when other processes compete for
    the cores, so its ratios stay meaningful on a busy machine; wall time is what a user waits.
    """
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)
