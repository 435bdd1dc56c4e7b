"""Local worker processes for a run: a dead worker costs its file one error row, not the run.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: when one of its processes dies (a
crash in a C library, a kill, the out-of-memory killer) the executor is broken and every
pending future fails.  Here each worker is watched through its process sentinel, its file gets
an error row naming the signal or exit code, and a fresh worker takes the remaining files.
Workers exit by themselves when the parent dies.  Also: how many workers a machine holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import wait as wait_any

from . import compiling
from .errors import DoodleError, note
from .jobs import run_one

#: what one local worker may need at its peak, with room to spare: exact mode on a synthetic
#: release peaked at 3.2 GB in one worker (2048 x 2048 images, docs/measurements/release-scale.md)
WORKER_MEMORY = 3.5 * 2**30


def _free_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that reports it
        return None


def _memory_holds(free=None):
    """How many workers the free memory holds at :data:`WORKER_MEMORY` each (None: not known)."""
    free = _free_memory() if free is None else free
    return None if free is None else max(1, int(free // WORKER_MEMORY))


def auto_workers(n_files, cores=None, free=None):
    """Local workers for ``workers="auto"``: one per core, no more than there are files, and
    no more than the free memory holds at :data:`WORKER_MEMORY` each; at least 1 (1 runs in
    the calling process)."""
    cores = cores or os.cpu_count() or 1
    by_memory = _memory_holds(free) or cores
    return max(1, min(cores, n_files, by_memory))


def parse_workers(workers):
    """``"auto"`` or a whole number >= 1 (given as a number or text); DoodleError otherwise."""
    if workers == "auto":
        return workers
    try:
        n = int(workers)
    except (TypeError, ValueError):
        raise DoodleError(None, f"workers must be a number or 'auto', not {workers!r}") from None
    if n < 1:
        raise DoodleError(None, f"workers must be at least 1, not {n}")
    return n


def resolve_workers(workers, n_files, free=None):
    """The local workers a run starts: ``"auto"`` (:func:`auto_workers`), or the number asked
    for capped at the number of files and at what the free memory holds (the per-worker budget
    ``auto`` uses), with a note saying so."""
    workers = parse_workers(workers)
    if workers == "auto":
        return _spawnable(auto_workers(n_files, free=free))
    holds = _memory_holds(free)
    cap = max(1, min(n_files, holds if holds is not None else workers))
    if workers > cap:
        why = [f"{n_files} file(s)"]
        if holds is not None:
            why.append(f"free memory holds {holds} worker(s) at "
                       f"{WORKER_MEMORY / 2**30:.1f} GiB each")
        note(f"--workers {workers} capped at {cap}: {'; '.join(why)}")
        return _spawnable(cap)
    return _spawnable(workers)


def _spawnable(workers):
    """``workers``, or 1 with a note where worker processes cannot start: a spawned worker
    imports the calling program's main file again, and a program read from standard input
    (``python - < script.py``) has none (every worker would die at its start)."""
    if workers > 1 and getattr(multiprocessing.current_process(), "_inheriting", False):
        # this is a worker importing the caller's script, whose run_batch is not under
        # `if __name__ == "__main__":` (multiprocessing would raise a long RuntimeError)
        script = getattr(sys.modules.get("__mp_main__"), "__file__", "the calling script")
        print(f"error: {script}: calls run_batch with {workers} workers "
              "at import: put the script's work under `if __name__ == \"__main__\":` (each "
              "worker imports the script again)", file=sys.stderr)
        raise SystemExit(1)
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if workers > 1 and isinstance(main, str) and not os.path.isfile(main):
        note(f"workers: 1 instead of {workers}: this program was read from {main}, which "
             "worker processes cannot read again; save it as a file to run workers")
        return 1
    return workers


def _died(path, exitcode):
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exit code {exitcode}"
    return [{"file": str(path), "error": f"{path}: the worker process died on this file ({how}); "
                                         "the other files went on", "seconds": float("nan")}]


class _Worker:
    """One spawned worker process and its pipe; ``path`` is the file it is working on."""

    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        self.proc.start()
        child.close()
        self.path = None

    def give(self, job, path, kwargs):
        """Send one file; a worker already gone is noticed by its sentinel in the loop."""
        self.path = path
        with contextlib.suppress(OSError):
            self.conn.send((job, path, kwargs))

    def stop(self, wait=2.0):
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.proc.join(wait)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(wait)
        self.conn.close()


def execute_pool(job, files, kwargs, n):
    """Files over ``n`` spawned worker processes, one file at a time each.  A worker that
    dies (a crash in a C library, a kill, the OOM killer) is noticed by its process sentinel:
    its file gets an error row naming the signal or exit code, and a fresh worker takes the
    remaining files.  Workers exit by themselves when this process dies."""
    # spawn, not fork: Numba's thread pool in this process must not be forked; and one
    # thread per worker (Numba, BLAS), or N workers x N threads fight over N cores
    ctx = multiprocessing.get_context("spawn")
    todo = deque(files)
    workers = []
    with single_threaded_children():
        try:
            for _ in range(n):
                workers.append(_Worker(ctx))
            for w in workers:
                if todo:
                    w.give(job, todo.popleft(), kwargs)
            while any(w.path is not None for w in workers):
                busy = [w for w in workers if w.path is not None]
                ready = set(wait_any([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
                for w in busy:
                    rows = None
                    if w.conn in ready or w.proc.sentinel in ready:
                        try:
                            if w.conn.poll():
                                rows = w.conn.recv()
                        except (EOFError, OSError):
                            rows = None
                        if rows is None and w.proc.is_alive() and w.proc.sentinel not in ready:
                            continue
                        if rows is None:
                            w.proc.join()
                            rows = _died(w.path, w.proc.exitcode)
                        w.path = None
                        if todo:
                            if not w.proc.is_alive():  # died, or sent its rows and then died
                                w.stop()
                                workers[workers.index(w)] = w = _Worker(ctx)
                            w.give(job, todo.popleft(), kwargs)
                        yield rows
        finally:
            for w in workers:
                w.stop()


def _worker_main(conn, parent_pid):
    """A worker: run the jobs it is sent until told to stop or its parent is gone."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        rows = run_one(*task)
        compiling.finish()  # the worker that announced compiling says how many, before the rows
        conn.send(rows)


#: Linux prctl option: the signal a process gets when its parent dies
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid, interval=1.0):
    """Exit when the parent process dies, even by SIGKILL: Linux's parent-death signal, and
    a thread that watches the parent's pid (other systems, and a parent that died before the
    signal was set up)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_children():
    """Environment for spawned workers: one compute thread each (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
