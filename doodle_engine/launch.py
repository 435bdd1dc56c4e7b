"""The installed ``doodle-engine`` command: a warm server's client when one runs, else the
command line in this process.

When ``doodle-engine serve`` runs for this Python, source and environment
(:mod:`doodle_engine.rendezvous`), a command hands it its arguments, working folder,
environment, umask and its standard input, output and error themselves (passed over the
socket), so a forked copy of the warm server writes straight to this terminal or pipe; this
process forwards the signals it gets (Ctrl-C, ``kill``) to that copy and ends with its exit
status.  With no server (or ``DOODLE_ENGINE_NO_SERVER=1``, or the ``serve`` command itself)
the command runs here, as it always has.  Only the standard library is imported before
that choice."""

from __future__ import annotations

import os
import signal
import socket
import sys

from . import rendezvous

#: signals passed on to the served command (a terminal's Ctrl-C, Ctrl-\\, hang-up; ``kill``)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _connect():
    """A connection to this installation's server, or None (none runs, or it is unusable)."""
    try:
        path = rendezvous.socket_path()
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _streams():
    """The standard streams' descriptors and what Python chose for them in this process."""
    streams = (sys.stdin, sys.stdout, sys.stderr)
    fds = []
    for s in streams:
        fd = s.fileno()
        os.fstat(fd)  # a closed descriptor is refused here (OSError), not in the server
        fds.append(fd)
    return fds, [[s.encoding, s.errors] for s in streams]


def _request(argv):
    fds, codecs = _streams()
    umask = os.umask(0)
    os.umask(umask)
    return {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
            "streams": codecs}, fds


class _Forwarder:
    """Signals this process gets go to the served command's process; those that come before
    its pid is known are held and sent then.  A signal this process ignores (``nohup``'s
    SIGHUP) is not forwarded: the command ignores it as it would on its own."""

    def __init__(self):
        self.pid, self.held = None, []
        self.before = {sig: signal.signal(sig, self) for sig in FORWARDED
                       if signal.getsignal(sig) != signal.SIG_IGN}

    def __call__(self, signum, frame):
        if self.pid is None:
            self.held.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def release(self):
        """No served command after all: the handlers this process had back, a held signal
        raised."""
        for sig, handler in self.before.items():
            signal.signal(sig, handler)
        for signum in self.held:
            signal.raise_signal(signum)

    def started(self, pid):
        self.pid = pid
        for signum in self.held:
            self(signum, None)


def _served(sock, argv):
    """Run ``argv`` in the server; its exit status, or None when it could not start there."""
    forwarder = _Forwarder()
    try:
        request, fds = _request(argv)
        request["ignored"] = [int(sig) for sig in FORWARDED if sig not in forwarder.before]
        rendezvous.send(sock, request, fds)
        started, _ = rendezvous.receive(sock)
    except (OSError, ValueError):
        forwarder.release()
        return None
    if not started or "pid" not in started:
        forwarder.release()
        return None
    forwarder.started(int(started["pid"]))
    try:
        done, _ = rendezvous.receive(sock)  # a signal's handler runs, then recv goes on (PEP 475)
    except OSError:
        done = None
    return _status(done, started["pid"])


def _status(done, pid):
    """The command's exit status from the server's last message, with a line on stderr when
    it did not end by itself."""
    if done is None:
        print(f"doodle-engine: the server went away before its process {pid} ran this command "
              "to the end; its outcome is unknown", file=sys.stderr)
        return 1
    if "signal" in done:
        sig = int(done["signal"])
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        print(f"doodle-engine: the command's process was killed by {name}", file=sys.stderr)
        return 128 + sig
    return int(done.get("exit", 1))


def run():
    """The ``doodle-engine`` console script."""
    argv = sys.argv[1:]
    if argv and argv[0] != "serve" and not rendezvous.disabled():
        sock = _connect()
        if sock is not None:
            with sock:
                code = _served(sock, argv)
            if code is not None:
                sys.stdout.flush()
                os._exit(code)
    from .cli import run as run_here  # noqa: PLC0415  only without a server: NumPy, Numba...

    run_here()
