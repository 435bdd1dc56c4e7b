"""The jobs of a run on an existing Dask cluster (``--scheduler`` / ``client=``)."""

from __future__ import annotations

from dask.distributed import Client
from dask.distributed import as_completed as dask_completed

from .errors import DoodleError
from .jobs import run_one

#: seconds to wait for a Dask scheduler before giving up (a wrong or unreachable address)
DASK_CONNECT_TIMEOUT = 10


def execute_dask(job, files, kwargs, scheduler, client):
    own = client is None
    if own:
        client = _connect(scheduler)
    try:
        futures = {client.submit(run_one, job, f, kwargs, pure=False): f
                   for f in files}
        for fut in dask_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # the task killed its workers (KilledWorker) or was lost
                path = futures[fut]
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                yield [{"file": str(path), "error": f"{path}: the Dask task failed "
                                                    f"({type(exc).__name__}: {first})"}]
    finally:
        if own:
            client.close()


def _connect(scheduler):
    """A Client for ``scheduler``, or one DoodleError line within DASK_CONNECT_TIMEOUT."""
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise DoodleError(scheduler, "is not a Dask scheduler address (tcp://host:port)")
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
    except Exception as exc:  # OSError, TimeoutError, ValueError: Dask's errors vary by cause
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DoodleError(scheduler, f"cannot connect to the Dask scheduler within "
                                     f"{DASK_CONNECT_TIMEOUT} s ({first})") from None
