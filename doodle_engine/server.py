"""A warm engine process that runs later ``doodle-engine`` commands in forked copies of itself.

A command process pays about 0.8 s before and after its work: the interpreter, NumPy, Numba
and SciPy imports, and loading some twenty cached kernels (docs/measurements/speed.md).
``doodle-engine serve`` pays that once: it imports the engine, runs every era in every mode
on a small generated scene (so every kernel is loaded), and waits at its socket
(:mod:`doodle_engine.rendezvous`).  Each command that reaches it is run by a fork of this
warm process, in the command's own folder, environment and umask, with the command's own
standard streams; the exit status goes back to the command, and a command that goes away
(killed) takes its fork with it.  Nothing one command does reaches the next: every command
starts from the same warm copy.

Numba's parallel loops run on its ``workqueue`` threads here: GNU OpenMP's threads, its
default, cannot be forked.  The kernels split their work the same way on both, so the labels
are the same (the tests compare them)."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import selectors
import shlex
import signal
import socket
import sys
import tempfile
import time

import numba

from . import rendezvous
from .eras import RECIPES
from .errors import DoodleError
from .example import doodles_for, make_example, scene
from .files import printable
from .jobs import validate_file
from .reconstruct import reconstruct
from .settings import settings_for_era

#: the threading layer that survives a fork (see the module's docstring)
THREADING_LAYER = "workqueue"
#: the modes loaded before serving
WARM_MODES = ("exact", "fast", "fastest")
#: minutes without a command after which the server ends (0: never)
DEFAULT_IDLE_MINUTES = 60


def warm(modes=WARM_MODES):
    """Load every kernel the eras and ``modes`` use, by running each on a 48 x 64 scene, and
    validate a generated file once (the reading and table code).  Returns how many
    reconstructions ran."""
    numba.config.THREADING_LAYER = THREADING_LAYER
    image, truth = scene(48, 64)
    doodles = doodles_for(truth)
    runs = 0
    for name in RECIPES:
        settings = settings_for_era(name, n_estimators=3, n_sigmas=2)  # sliders some eras lack
        for mode in modes:
            reconstruct(image, doodles, settings=settings, era=name, mode=mode)
            runs += 1
    with tempfile.TemporaryDirectory(prefix="doodle-engine-warm-") as tmp:
        validate_file(make_example(os.path.join(tmp, "example.npz"), 48, 64))
    if numba.threading_layer() != THREADING_LAYER:
        raise DoodleError(None, f"Numba's parallel loops started on {numba.threading_layer()} "
                                f"threads before the server set {THREADING_LAYER}: forks would "
                                "abort; run 'doodle-engine serve' as a command of its own")
    return runs


def _running_at(path):
    """True when a server answers at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def address():
    """This installation's socket path (for the environment the server started with);
    DoodleError when a server already runs there."""
    try:
        path = rendezvous.socket_path(create=True)
    except OSError as exc:
        raise DoodleError(rendezvous.folder(), f"cannot hold a server's socket: {exc}") from None
    if _running_at(path):
        raise DoodleError(path, "a server for this installation and environment already runs "
                                "('doodle-engine serve --stop' ends it)")
    return path


def listen(path):
    """The listening socket at ``path`` (a stale socket file there is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError as exc:  # a path over the 107 bytes a socket's name may hold, a full disk
        sock.close()
        raise DoodleError(path, f"cannot listen here: {exc.strerror or exc}") from None
    return sock


def stop(path=None):
    """Ask the server at ``path`` (default: this installation's) to end; its pid, or None
    when none runs there."""
    try:
        path = path or rendezvous.socket_path()
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        try:
            sock.connect(path)
            rendezvous.send(sock, {"stop": True})
            reply, _ = rendezvous.receive(sock)
        except OSError:
            return None
    return None if reply is None else reply.get("stopping")


def others():
    """The sockets of the user's other servers (another copy of the engine, or other start-up
    variables) that answer, with :func:`stop` ending each."""
    try:
        mine, here = rendezvous.socket_path(), rendezvous.safe_folder()
    except OSError:
        return []
    found = sorted(os.path.join(here, n) for n in os.listdir(here) if n.endswith(".sock"))
    return [p for p in found if p != mine and _running_at(p)]


def _stream(fd, codec, write):
    mode = "wb" if write else "rb"
    raw = open(fd, mode, buffering=0 if write else -1, closefd=False)  # noqa: SIM115
    if write:
        raw = io.BufferedWriter(raw)
    line = write and (fd == 2 or os.isatty(fd))
    return io.TextIOWrapper(raw, encoding=codec[0], errors=codec[1], line_buffering=line)


def _become_command(request, fds):
    """In the fork: take the command's streams, folder, environment and umask."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    codecs = request["streams"]
    sys.stdin = _stream(0, codecs[0], write=False)
    sys.stdout = _stream(1, codecs[1], write=True)
    sys.stderr = _stream(2, codecs[2], write=True)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(int(request["umask"]))
    sys.argv = ["doodle-engine", *request["argv"]]


def _child(run_command, request, fds, listener, conns):
    """The fork that runs one command; never returns."""
    code = 1
    try:
        atexit._clear()  # the server's own exit handlers are not the command's
        os.setsid()  # a Ctrl-C in the server's terminal is not the command's (its client forwards its own)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in request.get("ignored", []):  # what the command's own process ignores
            signal.signal(sig, signal.SIG_IGN)
        listener.close()
        for c in conns:
            c.close()
        _become_command(request, fds)
        code = run_command(request["argv"])  # the command line's run: it ends the process
    except SystemExit as exc:  # the command line's parser: --help, --version, a bad option
        code = 0 if exc.code is None else exc.code
    except BaseException as exc:  # noqa: BLE001  whatever it was, the command gets a line
        with contextlib.suppress(Exception):
            print(f"doodle-engine: the server could not run the command: {exc}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a reader that has gone
                stream.flush()
        os._exit(code if isinstance(code, int) else 1)


class Server:
    """The accept loop: one fork per command, their exit statuses sent back."""

    def __init__(self, listener, run_command, idle_minutes, log):
        self.listener = listener
        self.run_command = run_command
        self.idle = idle_minutes * 60 if idle_minutes else None
        self.log = log
        self.running = {}  # pid -> (the command's connection, its arguments)
        self.served = 0
        self.stopping = False
        self.last = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def serve(self):
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._stop_accepting)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        while not (self.stopping and not self.running):
            for key, _ in self.selector.select(self._timeout()):
                self._event(key)
            self._reap()
            if self.idle and not self.running and time.monotonic() - self.last > self.idle:
                self.log(f"no command for {self.idle / 60:g} min: ending")
                break

    def _timeout(self):
        if not self.idle or self.running:
            return None
        return max(0.0, self.idle - (time.monotonic() - self.last)) + 0.01

    def _event(self, key):
        if key.data == "accept":
            conn, _ = self.listener.accept()
            self._request(conn)
        elif key.data == "wake":
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 512)
        else:  # the command's side closed or spoke: it has gone, take its fork with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(key.data, signal.SIGTERM)
            self.selector.unregister(key.fileobj)

    def _request(self, conn):
        conn.settimeout(5)
        try:
            request, fds = rendezvous.receive(conn, maxfds=3)
        except (OSError, ValueError) as exc:
            self.log(f"a request that could not be read: {exc}")
            conn.close()
            return
        if request is None:
            conn.close()
            return
        if request.get("stop"):
            self._stop_accepting()
            with contextlib.suppress(OSError):
                rendezvous.send(conn, {"stopping": os.getpid()})
            conn.close()
            return
        if len(fds) != 3 or not isinstance(request.get("argv"), list):
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        self._fork(conn, request, fds)

    def _stop_accepting(self, *_):
        """End once the running commands have ended (``--stop``, SIGTERM, hang-up)."""
        if not self.stopping:
            self.stopping = True
            self.selector.unregister(self.listener)

    def _fork(self, conn, request, fds):
        pid = os.fork()
        if pid == 0:
            _child(self.run_command, request, fds, self.listener,
                   [conn] + [c for c, _ in self.running.values()])
        for fd in fds:
            os.close(fd)
        self.served += 1
        self.last = time.monotonic()
        self.running[pid] = (conn, request["argv"])
        try:
            rendezvous.send(conn, {"pid": pid})
        except OSError:
            pass
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _reap(self):
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn, argv = self.running.pop(pid, (None, None))
            if conn is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            if os.WIFSIGNALED(status):
                message = {"signal": os.WTERMSIG(status)}
                ended = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
            else:
                message = {"exit": os.waitstatus_to_exitcode(status)}
                ended = f"exit {message['exit']}"
            line = printable(shlex.join(["doodle-engine", *argv]), backslash=False)
            self.log(f"pid {pid}: {line}: {ended}")
            with contextlib.suppress(OSError):
                rendezvous.send(conn, message)
            conn.close()
            self.last = time.monotonic()


def serve(run_command, idle_minutes=DEFAULT_IDLE_MINUTES, log=None):
    """Warm up, then serve commands until stopped, idle ``idle_minutes``, or SIGTERM/Ctrl-C.

    ``run_command(argv)`` runs one command line in the fork and ends it (the command line's
    ``run``).  Returns the number of commands served."""
    log = log or (lambda text: print(f"doodle-engine serve: {text}", file=sys.stderr,
                                     flush=True))
    start = time.perf_counter()
    path = address()
    runs = warm()
    if _running_at(path):  # another one started while this one warmed up
        raise DoodleError(path, "a server for this installation and environment already runs")
    listener = listen(path)
    inode = os.stat(path).st_ino
    log(f"warm in {time.perf_counter() - start:.1f} s ({runs} reconstructions: every era in "
        f"{', '.join(WARM_MODES)}); pid {os.getpid()}, socket {path}; "
        + (f"ends after {idle_minutes:g} min without a command" if idle_minutes
           else "runs until stopped"))
    server = Server(listener, run_command, idle_minutes, log)
    try:
        server.serve()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:  # still ours
                os.unlink(path)
    log(f"served {server.served} command{'s' if server.served != 1 else ''}; stopped")
    return server.served
