"""How many cores the compiled kernels may use: the free ones, not all of them.

The compiled kernels (Numba's parallel loops) split each step over their threads and wait at
its end for the slowest.  On a machine that other processes keep busy a thread often waits a
whole time slice for its core, and a kernel made of many short parallel steps (the CRF's
mean-field iterations) then runs many times slower than on one thread: measured on a 2-core
machine at load 3, the lattice CRF of a 229x408 file took 8.4 s on 2 threads and 0.31 s on one
(docs/speed.md).  So a reconstruction asks for no more threads than there are cores nobody
else is running on, counted from the kernel's run queue at that moment.  It never asks for
more than Numba was started with (``NUMBA_NUM_THREADS``, one in batch workers).
"""

from __future__ import annotations

import contextlib
import os

import numba

#: samples of the run queue taken to count busy cores (a fraction of a millisecond each)
SAMPLES = 5


def _running_tasks():
    """Tasks running or ready to run right now (Linux ``/proc/loadavg``), or None."""
    try:
        with open("/proc/loadavg") as fh:
            field = fh.read().split()[3]  # "running/total"
        return int(field.split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _own_running_threads():
    """This process's threads running or ready to run (its Numba and BLAS threads may still
    be spinning after a kernel); at least 1, the one asking."""
    n = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as fh:
                    n += fh.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        pass
    return max(1, n)


def busy_elsewhere():
    """Cores other processes keep busy: the median of a few run-queue samples, less this
    process's own running threads; where the run queue cannot be read, the 1-minute load
    average."""
    samples = []
    for _ in range(SAMPLES):
        total = _running_tasks()
        if total is not None:
            samples.append(max(0, total - _own_running_threads()))
    if samples:
        return sorted(samples)[len(samples) // 2]
    try:
        return int(os.getloadavg()[0])
    except OSError:
        return 0


def free_cores(total=None):
    """Cores not kept busy by other tasks (at least 1)."""
    total = total or os.cpu_count() or 1
    return max(1, total - busy_elsewhere())


@contextlib.contextmanager
def free_core_threads():
    """Within the block, the compiled kernels run on the free cores (this thread's Numba
    setting, no more than Numba was started with); the previous setting is restored after.
    Yields the number of threads set."""

    before = numba.get_num_threads()
    n = max(1, min(numba.config.NUMBA_NUM_THREADS, free_cores()))
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(before)
