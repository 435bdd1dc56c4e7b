"""Say when Numba compiles the engine's kernels: once per command, on stderr, with a count.

The first command after installing (or upgrading, or the first time a mode runs) compiles
the kernels it needs, 20-60 s on an idle machine, and would otherwise be silent; later runs
load them from Numba's cache.  Numba announces each compilation as a ``numba:compile`` event (its
event API); :func:`install` listens for them.  Spawned worker processes announce
too, but one notice per command is enough: the first process to compile claims it by
creating a marker file (``O_EXCL``) whose path the command passes on in :data:`NOTICE_ENV`
(the installed command sets it; the Python API stays silent)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

#: environment variable holding the marker file's path; set, it turns the notice on
NOTICE_ENV = "DOODLE_ENGINE_COMPILE_NOTICE"

NOTICE = ("compiling the engine's kernels: the first run after installing compiles them "
          "(20-60 s), and the first run of another mode, era or command its own; later runs "
          "load them from Numba's cache")


def _claim(marker):
    """True for the first process of a command to claim the notice."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:  # the marker's folder is gone: say it rather than stay silent
        return True
    return True


class CompileNotice:
    """A Numba event listener (``on_start`` / ``on_end``, as ``numba.core.event.Listener``
    has them; ``notify`` calls them).  At the first compilation, when this process claims the
    notice, it prints :data:`NOTICE`; then, with ``progress`` on a terminal, a status line
    while each kernel compiles (cleared when it is done, so output is never mixed into it);
    :meth:`close` says how many kernels were compiled in how long."""

    def __init__(self, marker, progress=True, stream=None):
        self.marker, self.progress, self.stream = marker, progress, stream
        self.depth = 0
        self.compiled = 0
        self.announced = None  # None: not decided yet; then True / False
        self.started = None
        self.status = ""

    def notify(self, ev):
        if ev.is_start:
            self.on_start(ev)
        elif ev.is_end:
            self.on_end(ev)

    def _out(self):
        return self.stream or sys.stderr

    def on_start(self, ev):
        self.depth += 1
        if self.announced is None:
            self.announced = _claim(self.marker)
            if self.announced:
                self.started = time.perf_counter()
                print(NOTICE, file=self._out(), flush=True)
        if self.depth == 1 and self.announced and self.progress and self._out().isatty():
            self.status = (f"compiling kernel {self.compiled + 1} "
                           f"({time.perf_counter() - self.started:.0f} s)")
            self._out().write("\r" + self.status)
            self._out().flush()

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:  # a kernel and the functions it inlines
            self.compiled += 1
            if self.status:
                self._out().write("\r" + " " * len(self.status) + "\r")
                self._out().flush()
                self.status = ""

    def close(self):
        """One line: the kernels compiled in this process and how long it took."""
        if self.announced and self.compiled:
            print(f"compiled {self.compiled} kernel(s) in {time.perf_counter() - self.started:.0f} "
                  "s; later runs load them from the cache", file=self._out(), flush=True)
            self.compiled = 0


#: the listener of this process, once :func:`install` has run with the notice turned on
_LISTENER = None


def install(event):
    """Listen for compilations in this process when the command turned the notice on
    (:data:`NOTICE_ENV`); the kernels' package calls this with Numba's ``numba.core.event``
    before any kernel can compile (so this module, which the command line reads at its
    start, loads no Numba).  A worker process announces without a status line (its command
    shows one per file)."""
    global _LISTENER
    marker = os.environ.get(NOTICE_ENV)
    if marker and _LISTENER is None:
        _LISTENER = CompileNotice(marker, progress=multiprocessing.parent_process() is None)
        event.Listener.register(CompileNotice)  # a listener by the ABC's own registration
        event.register("numba:compile", _LISTENER)
    return _LISTENER


def finish():
    """Say how many kernels this process compiled, if it announced compiling them."""
    if _LISTENER is not None:
        _LISTENER.close()
