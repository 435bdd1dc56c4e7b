"""The jobs of a run on an existing Dask cluster (``--scheduler`` / ``client=``)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import re
import socket
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from dask.distributed import Client
from dask.distributed import as_completed as dask_completed
from distributed.versions import VersionMismatchWarning

from .errors import DoodleError, described, first_line, note
from .jobs import run_one

#: seconds to wait for a Dask scheduler before giving up (a wrong or unreachable address)
DASK_CONNECT_TIMEOUT = 10
#: Dask's loggers, quiet during a run: a lost scheduler printed two tracebacks before the
#: rows that say so
_DASK_LOGGERS = ("distributed", "tornado")


def execute_dask(job, files, kwargs, scheduler, client):
    own = client is None
    mismatched = []
    if own:
        client, mismatched = _connect(scheduler)
    with _quiet_dask():  # to the end: a lost scheduler also logs from close()
        try:
            check_engine(client)
            if mismatched:
                note(f"Dask finds other versions of {', '.join(mismatched)} on the cluster "
                     "than here (its VersionMismatchWarning); the engine itself is the same "
                     "version")
            yield from _results(client, job, files, kwargs)
        finally:
            if own:
                client.close()


def _results(client, job, files, kwargs):
    """Each file's rows as its task finishes; when the run stops early (an interrupt, an
    error in the caller) the tasks not yet finished are cancelled, so the cluster does not go
    on with a run nobody is waiting for (a task already running finishes its file)."""
    futures = {client.submit(run_one, job, f, kwargs, pure=False): f for f in files}
    finished = False
    try:
        for fut in dask_completed(futures):
            yield _rows(fut, futures[fut])
        finished = True
    finally:
        if not finished:
            client.cancel(list(futures), force=True)


def _rows(fut, path):
    try:
        return fut.result()
    except Exception as exc:  # the task killed its workers (KilledWorker), or was lost
        if "scheduler-connection-lost" in str(exc) or type(exc).__name__ == "CommClosedError":
            why = ("the connection to the Dask scheduler was lost; a worker may still finish "
                   "the file and write its outputs")
        else:
            why = f"the Dask task failed ({described(exc)})"
        return [{"file": str(path), "error": f"{path}: {why}"}]


@contextlib.contextmanager
def _quiet_dask():
    """Dask's own log lines off while the run's rows speak for it: each of its loggers has
    a handler of its own (not propagating), so each is switched off, then back."""
    loggers = [lg for name, lg in list(logging.root.manager.loggerDict.items())
               if isinstance(lg, logging.Logger) and name.split(".")[0] in _DASK_LOGGERS
               and not lg.disabled]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg in loggers:
            lg.disabled = False


def check_engine(client):
    """The scheduler and every worker must run this very engine (the scheduler unpacks each
    task, a worker runs it, and a rebuild is only exact with the same code): one DoodleError
    naming the first that cannot, or whose version or source differs; a note on stderr when
    the cluster has no worker yet."""
    want = engine_identity()
    try:
        found = {"the scheduler": client.run_on_scheduler(engine_identity)}
    except Exception as exc:  # the scheduler's own Python cannot import the engine
        found = {"the scheduler": exc}
    found.update({f"worker {address}": identity for address, identity
                  in client.run(engine_identity, on_error="return").items()})
    for where, identity in found.items():
        if identity != want:
            raise DoodleError(client.scheduler.address, f"{where} {_runs(identity)}; this "
                                                        f"engine is {want}: install the same "
                                                        "on the scheduler and every worker")
    if len(found) == 1:
        note("the Dask cluster has no worker yet: the run waits for one")


def _runs(identity):
    if isinstance(identity, Exception):
        return f"cannot run this engine ({described(identity, 160)})"
    return f"runs doodle_engine {identity}"


def engine_identity():
    """The doodle_engine where this runs (the client, the scheduler or a worker): its version
    and a digest of its source files, so that the same version number with other code (an
    edited checkout) is told apart."""
    source = source_digest(Path(__file__).resolve().parent)
    return f"{importlib.metadata.version('doodle_engine')} (source {source})"


def source_digest(root):
    """12 hex digits of SHA-256 over the package's Python files under ``root`` (names and
    contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _connect(scheduler):
    """A Client for ``scheduler`` and the packages whose versions Dask found to differ on
    the cluster (its multi-line warning table, kept for one note once the engine itself is
    checked), or one DoodleError line within DASK_CONNECT_TIMEOUT."""
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise DoodleError(None, "--scheduler is empty: give a Dask scheduler address "
                                "(tcp://host:port)")
    _probe(scheduler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VersionMismatchWarning)
            client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
        for w in caught:  # others (not Dask's version table) as they were
            if not issubclass(w.category, VersionMismatchWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return client, _mismatched(caught)
    except (ValueError, TypeError) as exc:  # the address itself: no scheme, no port
        first = first_line(exc) or type(exc).__name__
        raise DoodleError(scheduler, f"is not a Dask scheduler address ({first})") from None
    except Exception as exc:  # OSError, TimeoutError: Dask's errors vary by cause
        first = first_line(exc) or type(exc).__name__
        raise DoodleError(scheduler, f"cannot connect to the Dask scheduler within "
                                     f"{DASK_CONNECT_TIMEOUT} s ({first})") from None


def _mismatched(caught):
    """The package names in Dask's VersionMismatchWarning tables."""
    names = []
    for w in caught:
        if issubclass(w.category, VersionMismatchWarning):
            names += re.findall(r"^\| (\S+) +\|", str(w.message), flags=re.M)
    return [n for n in dict.fromkeys(names) if n != "Package"]


def _probe(scheduler):
    """A tcp:// address must answer as a Dask server does, by speaking first: Dask's
    client waits without end on a server that does not (the scheduler's dashboard, any HTTP
    port).  Other schemes (tls://, inproc://) are left to Dask."""
    parts = urlsplit(scheduler)
    try:
        port = parts.port
    except ValueError:  # a port that is no number: Dask says so
        return
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        return
    try:
        sock = socket.create_connection((parts.hostname, port),
                                        timeout=DASK_CONNECT_TIMEOUT)
    except OSError as exc:  # refused, unreachable, no such host, timed out
        raise DoodleError(scheduler, "cannot connect to the Dask scheduler "
                                     f"({exc.strerror or exc})") from None
    with sock:
        sock.settimeout(_FIRST_WORD)
        try:
            said = sock.recv(1)
        except OSError:  # timed out, or reset
            said = b""
    if not said:
        raise DoodleError(scheduler, f"answers, but not as a Dask scheduler (it said nothing in "
                                     f"{_FIRST_WORD} s: the dashboard's HTTP port?)")


#: seconds a Dask scheduler has to send its first bytes after a connection
_FIRST_WORD = 5
