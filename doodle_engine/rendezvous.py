"""Where a warm ``doodle-engine serve`` process and a later command meet, and what they say.

They meet at a Unix socket in a folder only this user may enter.  The socket's name is a
digest of everything the server's warm state depends on, so a command only ever reaches a
server that would run it exactly as it would run itself: this Python, this copy of the
engine's source (every module's size and modification time), and the environment variables
that NumPy, Numba, the BLAS libraries and Python read once when a process starts.  Change
any of them and the command finds no server and runs in its own process.

Messages are JSON objects, each prefixed with its length (4 bytes, big-endian).  Only the
standard library is imported here: the command's client must start in milliseconds."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
import tempfile

#: set to anything but "" or "0", a command never uses a server
NO_SERVER_ENV = "DOODLE_ENGINE_NO_SERVER"

#: prefixes of the environment variables read once at start-up (the server's would apply)
STARTUP_VARS = ("PYTHON", "NUMBA_", "OMP_", "OPENBLAS_", "MKL_", "BLIS_", "GOTO_", "VECLIB_",
                "NUMEXPR_", "KMP_", "LD_")

#: the environment this process started with (the command's entry point imports this module
#: first): libraries set variables of their own when imported (scikit-learn sets ``KMP_*``)
START_ENVIRON = dict(os.environ)

_HEADER = struct.Struct("!I")
#: the largest message either side accepts (a command line and its environment)
MAX_MESSAGE = 1 << 20


class RendezvousError(OSError):
    """The server's folder is unsafe, or a message broke off or is malformed."""


def disabled(environ=None):
    """True when :data:`NO_SERVER_ENV` turns the server off."""
    value = (os.environ if environ is None else environ).get(NO_SERVER_ENV, "")
    return value not in ("", "0")


def folder():
    """The user's folder for servers' sockets (``$XDG_RUNTIME_DIR`` or the temporary folder)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"doodle-engine-{os.getuid()}")


def safe_folder(create=False):
    """:func:`folder`, checked to be a directory of this user that nobody else may enter
    (made so with ``create``); RendezvousError otherwise."""
    path = folder()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RendezvousError(f"{path}: not a private folder of this user; no server is used")
    return path


def _source_files():
    """(relative path, size, mtime in ns) of every module of the engine's package."""
    root = os.path.dirname(os.path.abspath(__file__))
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                info = os.stat(os.path.join(here, name))
                found.append((os.path.relpath(os.path.join(here, name), root), info.st_size,
                              info.st_mtime_ns))
    return root, found


def key(environ=None):
    """The digest naming the socket of a server for this Python, source and environment (by
    default the one this process started with)."""
    environ = START_ENVIRON if environ is None else environ
    root, files = _source_files()
    startup = sorted((k, v) for k, v in environ.items() if k.startswith(STARTUP_VARS))
    text = json.dumps([sys.executable, sys.version, root, files, startup])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def socket_path(create=False):
    """The socket of a server for this Python, source and start-up environment, in
    :func:`safe_folder` (made with ``create``); RendezvousError when the folder is unsafe."""
    return os.path.join(safe_folder(create), key() + ".sock")


def send(sock, message, fds=()):
    """Send one message (a JSON object), with open file descriptors passed along."""
    data = json.dumps(message).encode("utf-8", "surrogateescape")
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [payload], list(fds))
        payload = payload[sent:]
    if payload:
        sock.sendall(payload)


def _recv_exactly(sock, n, fds, maxfds):
    chunks, got = [], 0
    while got < n:
        if maxfds and not fds:
            data, new, _, _ = socket.recv_fds(sock, n - got, maxfds)
            fds.extend(new)
        else:
            data = sock.recv(n - got)
        if not data:
            if got:
                raise RendezvousError("a message broke off")
            return None
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def receive(sock, maxfds=0):
    """(message, file descriptors) of the next message; (None, []) when the other side has
    closed the connection."""
    fds = []
    header = _recv_exactly(sock, _HEADER.size, fds, maxfds)
    if header is None:
        return None, fds
    (n,) = _HEADER.unpack(header)
    if n > MAX_MESSAGE:
        raise RendezvousError(f"a message of {n:,} bytes (at most {MAX_MESSAGE:,})")
    data = _recv_exactly(sock, n, fds, maxfds)
    if data is None:
        raise RendezvousError("a message broke off")
    try:
        message = json.loads(data.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise RendezvousError(f"a malformed message: {exc}") from None
    if not isinstance(message, dict):
        raise RendezvousError("a message that is not an object")
    return message, fds
