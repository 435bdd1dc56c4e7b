"""The compiled kernels' thread count follows the cores other processes leave free."""

import os
import subprocess
import sys
import time

import numba
import pytest

from doodle_engine import cores


def test_busy_elsewhere_counts_other_tasks_not_our_own(monkeypatch):
    monkeypatch.setattr(cores, "_running_tasks", lambda: 5)
    monkeypatch.setattr(cores, "_own_running_threads", lambda: 2)
    assert cores.busy_elsewhere() == 3
    assert cores.free_cores(total=4) == 1
    assert cores.free_cores(total=16) == 13
    monkeypatch.setattr(cores, "_own_running_threads", lambda: 6)
    assert cores.busy_elsewhere() == 0


def test_without_a_run_queue_the_load_average_is_used(monkeypatch):
    monkeypatch.setattr(cores, "_running_tasks", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.4, 1.0, 1.0))
    assert cores.busy_elsewhere() == 3
    assert cores.free_cores(total=2) == 1


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux /proc")
def test_busy_processes_take_cores_away():
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        total = os.cpu_count()
        assert cores.free_cores() <= max(1, total - 2)
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def test_the_thread_setting_is_restored(monkeypatch):

    before = numba.get_num_threads()
    monkeypatch.setattr(cores, "free_cores", lambda total=None: 1)
    with cores.free_core_threads() as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    monkeypatch.setattr(cores, "free_cores", lambda total=None: 10_000)
    with cores.free_core_threads() as n:
        assert n == numba.config.NUMBA_NUM_THREADS  # never more than Numba started with
    assert numba.get_num_threads() == before
