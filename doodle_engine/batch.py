"""Run a per-file job over many files: local worker processes by default (no set-up), or a
Dask cluster.  Results stream to a CSV table as files finish, so a stopped run resumes."""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import wait as wait_any
from pathlib import Path

try:
    import fcntl
except ImportError:  # not a POSIX system: tables are not locked
    fcntl = None

import numpy as np

from .errors import DoodleError
from .io import normal_permissions
from .export import safe_stem
from .jobs import JOBS


def find_npz(inputs):
    """Files and folders (searched recursively) -> sorted list of .npz paths.

    A folder that holds no ``.npz`` file, or no inputs at all, is a DoodleError (a mistyped
    folder should not look like a successful run over nothing).  A folder named ``*.npz``
    given by name is listed as itself (so it is refused as "a folder")."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and p.suffix.lower() != ".npz":
            found = sorted(q for q in p.rglob("*.npz") if q.is_file())
            if not found:
                found = _png_sessions(p)  # a PNG-era results folder (or folders of them)
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise DoodleError("run_batch", "no input files given")
    return list(dict.fromkeys(str(f) for f in files))


def _png_sessions(folder):
    """The doodle PNGs of the PNG-era results folders at or under ``folder``, each folder's in
    time order; a DoodleError when there are none."""
    from .pngload import doodle_pngs, is_png_session
    folders = [folder] + sorted(q for q in folder.rglob("*") if q.is_dir())
    found = [Path(f) for d in folders if is_png_session(d) for f in doodle_pngs(d)]
    if not found:
        raise DoodleError(folder, "folder holds no .npz files and no Doodler doodle PNGs "
                                  "(*_annotations*.png)")
    return found


def largest_first(files):
    """Files by size on disk, largest first: with several workers the long jobs start early
    and the short ones fill the gaps at the end (files that cannot be read come last)."""
    def size(f):
        try:
            return os.path.getsize(f)
        except OSError:
            return -1
    return sorted(files, key=size, reverse=True)


#: jobs that rebuild labels: ordered by predicted cost (``cost.py``), the others by size
_REBUILDING = ("validate", "reconstruct", "eras")


def start_order(job, files, kwargs):
    """The order files are handed to workers: costliest first (predicted from headers and
    settings) for the jobs that rebuild labels, largest on disk first for the others."""
    if job in _REBUILDING:
        from .cost import costliest_first
        return costliest_first(files, kwargs.get("mode") or "exact")
    return largest_first(files)


def _run_one(job_name, path, kwargs):
    """Run one job, turning any failure into an error row (the batch goes on)."""
    t0 = time.perf_counter()
    try:
        rows = JOBS[job_name](path, **kwargs)
        for r in rows:
            r.setdefault("error", "")
    except DoodleError as exc:
        # a stage that does not know the file (a CRF parameter check, say) gets it named here
        text = str(exc) if exc.path != "<array>" else f"{path}: {exc.problem}"
        rows = [{"file": str(path), "error": text}]
    except MemoryError:
        rows = [{"file": str(path), "error": f"{path}: out of memory"}]
    except Exception as exc:  # a bug or a library failure: record it, keep going
        last = traceback.extract_tb(exc.__traceback__)[-1]
        rows = [{"file": str(path),
                 "error": f"{path}: {type(exc).__name__}: {exc} (at {Path(last.filename).name}:{last.lineno})"}]
    for r in rows:
        r["mtime"] = _mtime(path)
        r.setdefault("seconds", time.perf_counter() - t0)
    return rows


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("nan")


def _unchanged(path, recorded_mtime):
    try:
        return abs(float(recorded_mtime) - _mtime(path)) < 1e-6
    except (TypeError, ValueError):
        return False


class _Table:
    """Rows stream to ``<table>.stream.jsonl`` (one JSON object a line, so rows with different
    columns stay intact when a run is killed); the finished table is written as CSV.

    A failed write (a full or read-only disk) does not lose the rows: streaming stops, the
    rows are kept, and :meth:`finish` saves them elsewhere and says where."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.stream = self.path.with_name(self.path.name + ".stream.jsonl") if path else None
        self.rows = []
        self.write_error = None

    def _old_rows(self):
        rows = []
        if self.path.exists():
            try:
                import pandas as pd
                rows += pd.read_csv(self.path, keep_default_na=False).to_dict("records")
            except (ValueError, UnicodeDecodeError, OSError) as exc:
                raise DoodleError(self.path, f"cannot be read as an earlier table ({exc}); "
                                             "choose another --table") from None
        if self.stream.exists():
            with open(self.stream, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, RecursionError):
                        break  # a line cut short by a kill
                    if isinstance(row, dict):
                        rows.append(row)
        return rows

    def done_files(self):
        """(files already done without error and unchanged since, their rows)."""
        if not self.path:
            return set(), []
        rows = [r for r in self._old_rows() if "file" in r and not r.get("error")]
        done = {r["file"] for r in rows if _unchanged(r["file"], r.get("mtime"))}
        keep = list({str(r["file"]) + "|" + str(r.get("trial", "")): r
                     for r in rows if r["file"] in done}.values())
        return done, keep

    def clear(self):
        for p in (self.path, self.stream):
            if p is not None and p.exists():
                p.unlink()

    def add(self, rows):
        self.rows.extend(rows)
        if self.stream and self.write_error is None:
            try:
                with open(self.stream, "a", encoding="utf-8") as fh:
                    for r in rows:
                        fh.write(json.dumps(r, default=str) + "\n")
                    fh.flush()
            except OSError as exc:
                self.write_error = exc

    def finish(self, frame):
        if not self.path:
            return
        tmp = self.path.with_name("." + self.path.name + ".part")
        try:
            if self.write_error is not None:
                raise self.write_error
            frame.to_csv(tmp, index=False)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            reason = exc.strerror or str(exc)
            raise DoodleError(self.path, f"could not be written ({reason}); "
                                         f"{_save_elsewhere(frame, self.path.name)}") from None
        if self.stream.exists():
            self.stream.unlink()


def _save_elsewhere(frame, name):
    """Rows whose table could not be written: into the temporary folder, else printed."""
    try:
        fd, where = tempfile.mkstemp(prefix=Path(name).stem + ".", suffix=".csv")
        normal_permissions(fd)
        with os.fdopen(fd, "w") as fh:
            frame.to_csv(fh, index=False)
        return f"its {len(frame)} rows were saved to {where}"
    except OSError:
        sys.stdout.write(frame.to_csv(index=False))
        sys.stdout.flush()
        return f"its {len(frame)} rows were printed to standard output"


class _TableLock:
    """An exclusive lock on ``<table>.lock`` for the whole run: a second run writing the
    same table is refused (one line) instead of both losing rows.  Creating the lock file is
    also the first write into the table's folder, so a read-only folder is found before any
    work."""

    def __init__(self, table):
        self.table = Path(table)
        self.path = self.table.with_name(self.table.name + ".lock")
        self.fd = None

    def __enter__(self):
        try:
            self.table.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DoodleError(self.table, f"cannot create its folder: {exc.strerror}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise DoodleError(self.table, f"cannot be written: {exc.strerror} "
                                              f"(creating {self.path.name})") from None
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise DoodleError(self.table, "is being written by another run (it holds "
                                              f"{self.path.name}); wait for it to end or "
                                              "choose another --table") from None
            try:  # the holder before us may have removed the file between open and lock
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self.fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        return False


#: what one local worker may need at its peak: the largest Coast Train images (about 6 Mpx) in
#: exact mode, with room to spare (5 Mpx measured 1.9 GB)
WORKER_MEMORY = 2.5 * 2**30


def _free_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that reports it
        return None


def auto_workers(n_files, cores=None, free=None):
    """Local workers for ``workers="auto"``: one per core, no more than there are files, and
    no more than the free memory holds at :data:`WORKER_MEMORY` each; at least 1 (1 runs in
    the calling process)."""
    cores = cores or os.cpu_count() or 1
    free = _free_memory() if free is None else free
    by_memory = cores if free is None else max(1, int(free // WORKER_MEMORY))
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


def _resolve_workers(workers, n_files):
    workers = parse_workers(workers)
    return auto_workers(n_files) if workers == "auto" else workers


def run_batch(job, inputs, workers=1, scheduler=None, client=None, table=None, resume=False,
              progress=True, labels_dir=None, also_writes=None, also_reads=(),
              **kwargs) -> pd.DataFrame:
    """Run a per-file job over files and folders; one table row per result.

    Parameters
    ----------
    job : {"validate", "reconstruct", "remap", "export", "stats"}
    inputs : list of paths
        ``.npz`` files and folders (searched recursively).  A folder with no ``.npz`` is a
        DoodleError.
    workers : int or "auto"
        Local processes (1 = in this process; "auto": one per core, bounded by the number
        of files and the free memory, see :func:`auto_workers`).  Several workers spawn
        processes: call it under ``if __name__ == "__main__":`` in a script.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) to run on instead.
    client : dask.distributed.Client, optional
        A Dask client to run on instead.
    table : path, optional
        CSV that receives rows as files finish (a stopped run can resume from it).
    resume : bool
        Skip files already in ``table``, unchanged and without error.
    progress : bool
        Show a progress bar.
    labels_dir : path, optional
        For ``"validate"``: keep the rebuilt label of each result that differs from its
        stored one in this folder (for :func:`doodle_engine.report.write_plots`).
    also_writes : dict, optional
        Other outputs of the run (``{"report": file, "plots": folder}``) and ``also_reads``
        (mapping, metadata files): checked with ``table`` and ``outdir`` by
        :func:`check_outputs` before any work, so no output replaces an input or a file
        that is not of its own kind.
    **kwargs
        Passed to the job: ``outdir``, ``era``, ``seed``, ``mode``, ``crf_backend``,
        ``classes``, ``trials``, ``mapping``, ``default``, ``label_ext``, ``force``.

    Returns
    -------
    pandas.DataFrame
        One row per result in input order; failed files have a non-empty ``error`` (a
        worker process that dies gives its file an error row).

    Examples
    --------
    >>> from doodle_engine.batch import run_batch
    >>> from doodle_engine.example import make_example
    >>> path = make_example("example.npz", 48, 64, overwrite=True)
    >>> table = run_batch("validate", [path], mode="fast", progress=False)
    >>> list(table[["era", "error"]].iloc[0])
    ['mlp-2021-10', '']
    """
    if job not in JOBS:
        raise DoodleError(None, f"unknown job {job!r}")
    every = find_npz(inputs)
    check_outputs(inputs, every, table=table, outdir=kwargs.get("outdir"),
                  also_reads=also_reads, **(also_writes or {}))
    if kwargs.get("outdir") is not None:
        every = _outputs_apart(every, kwargs["outdir"])
    if scheduler is None and client is None:
        workers = _resolve_workers(workers, len(every))
    lock = _TableLock(table) if table else contextlib.nullcontext()
    with lock:
        return _run_locked(job, every, workers, scheduler, client, table, resume, progress,
                           labels_dir, kwargs)


def _run_locked(job, every, workers, scheduler, client, table, resume, progress, labels_dir,
                kwargs):
    files = every
    tab = _Table(table)
    kept = []
    if resume:
        done, kept = tab.done_files()
        files = [f for f in files if f not in done]
    if tab.path:
        # a fresh stream that starts with the rows kept from the earlier run
        tab.clear()
        for r in kept:
            tab.add([r])
        tab.rows = []
    if labels_dir is not None:
        kwargs["keep_label"] = True
    bar = _progress(len(files), progress)
    try:
        for rows in _execute(job, files, kwargs, workers, scheduler, client):
            _keep_labels(rows, labels_dir)
            tab.add(rows)
            if bar is not None:
                bar.update(1)
                mpx = sum(r.get("mpx", 0) or 0 for r in tab.rows)
                el = bar.format_dict.get("elapsed", 0) or 1e-9
                bar.set_postfix_str(f"{mpx / el:.2f} Mpx/s")
    finally:
        if bar is not None:
            bar.close()
    import pandas as pd  # here, not at start-up
    frame = _in_input_order(pd.DataFrame(kept + tab.rows), every)
    tab.finish(frame)
    return frame


# ----------------------------------------------------------------------------- output checks
#: the header column that marks a CSV (or Parquet) as one of the engine's own tables
_OWN_COLUMNS = {"table": "file", "report": "file", "summary": "record"}


def _resolved(path):
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def check_outputs(inputs, files, table=None, report=None, plots=None, outdir=None,
                  also_reads=()):
    """Refuse, before any work, an output that would replace an input (an .npz, a mapping or
    metadata file), a Doodler / zip file, a folder, or any existing file that is not a table
    of the engine's own kind; and an output folder that is an input folder (or holds the
    input files directly).  One DoodleError line naming the output and the problem."""
    named = [i for i in inputs if not Path(i).is_dir()]
    folders = {_resolved(i) for i in inputs if Path(i).is_dir()}
    folders |= {_resolved(f).parent for f in named}
    if outdir is not None:
        files = _inputs_outside(files, named, outdir)
    read = {_resolved(f) for f in files} | {_resolved(f) for f in also_reads if f}
    targets = []
    if table:
        targets += [("table", table), ("table", Path(str(table) + ".stream.jsonl"))]
    if report:
        rp = Path(report)
        targets += [("report", rp), ("summary", rp.with_name(rp.stem + "_summary.csv"))]
    seen = {}
    for kind, path in targets:
        res = _resolved(path)
        if res in seen and seen[res] != kind:
            raise DoodleError(path, f"is given as both the {seen[res]} and the {kind} output")
        seen[res] = kind
        _check_file_output(kind, path, res, read)
    for option, folder in (("-o/--output", outdir), ("--plots", plots)):
        if folder:
            _check_folder_output(option, folder, folders, read)


def _inputs_outside(files, named, outdir):
    """The files not inside ``outdir``.  A file found inside it must be an earlier output
    (named like an input outside it); a file named on the command line, or any other file
    there, is an input the run would skip or replace: refused."""
    out = _resolved(outdir)
    inside = [f for f in files if out in _resolved(f).parents]
    outside = [f for f in files if f not in inside]
    stems = {safe_stem(f) for f in outside}
    named = {_resolved(f) for f in named}
    for f in inside:
        if _resolved(f) in named or safe_stem(f) not in stems:
            raise DoodleError(outdir, f"holds the input {f}; the output folder must not hold "
                                      "inputs (choose another -o/--output)")
    return outside


def _check_file_output(kind, path, res, read):
    if res in read or any(_same_file(res, r) for r in read if r.name == res.name):
        raise DoodleError(path, f"is an input of this run; refusing to write the {kind} over it")
    try:
        st = os.stat(res)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DoodleError(path, f"cannot be checked before writing the {kind}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DoodleError(path, f"is a folder; the {kind} must be a file name")
    if not stat.S_ISREG(st.st_mode):
        raise DoodleError(path, f"is not a regular file; refusing to write the {kind} over it")
    if res.name.endswith(".stream.jsonl"):
        return  # the table's own stream: replaced or resumed by design
    if _is_zip(res):
        raise DoodleError(path, f"is a zip / Doodler .npz file; refusing to overwrite it with "
                                f"the {kind}")
    if not _is_own_table(res, _OWN_COLUMNS[kind]):
        raise DoodleError(path, f"exists and is not a table this command wrote (no "
                                f"'{_OWN_COLUMNS[kind]}' column); refusing to overwrite it "
                                f"with the {kind} - choose another name or remove it")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_zip(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
    except OSError:
        return False


def _is_own_table(path, column):
    """True for a CSV whose header names ``column`` or a Parquet file (checked by its magic
    and schema); anything else (a Doodler npz, a text, a zip) is not the engine's table."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    if not head:
        return True  # an empty file: nothing to lose
    if head[:4] == b"PAR1":
        try:
            import pyarrow.parquet as pq
            return column in pq.read_schema(path).names
        except Exception:  # no pyarrow, or not a readable Parquet file
            return False
    if head[:2] == b"PK" or b"\0" in head:
        return False
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip().strip("\r")
    return column in [c.strip().strip('"') for c in first.split(",")]


def _check_folder_output(option, folder, input_folders, read):
    res = _resolved(folder)
    if res.exists() and not res.is_dir():
        raise DoodleError(folder, f"exists and is not a folder ({option} takes a folder)")
    if res in input_folders:
        raise DoodleError(folder, f"is an input folder; {option} must be another folder (its "
                                  "outputs would mix with, or replace, the inputs)")
    if res in read:
        raise DoodleError(folder, f"is an input file; {option} takes a folder")


def kept_label_path(labels_dir, file, trial=""):
    """Where :func:`run_batch` (``labels_dir=``) keeps the rebuilt label of one result."""
    import hashlib
    digest = hashlib.sha1(str(file).encode("utf-8")).hexdigest()[:10]
    return Path(labels_dir) / f"{safe_stem(file)}-{digest}-{trial or 'final'}.npz"


def _keep_labels(rows, labels_dir):
    """Take the rebuilt labels a job returned (``_rebuilt``) out of its rows; store them in
    ``labels_dir`` when given.  Runs in this process, so it works with local workers and Dask."""
    for r in rows:
        label = r.pop("_rebuilt", None)
        if label is not None and labels_dir is not None:
            from .io import atomic_write
            atomic_write(kept_label_path(labels_dir, r["file"], r.get("trial", "")),
                         lambda fh, label=label: np.savez_compressed(fh, label=label))


def _outputs_apart(files, outdir):
    """Inputs for a job that writes into ``outdir``: files already inside ``outdir`` (outputs
    of an earlier run, when it lies within an input folder) are not inputs; two inputs that
    would write the same output name are an error, before anything runs."""
    out = Path(outdir).resolve()
    files = [f for f in files if out not in Path(f).resolve().parents]
    seen = {}
    for f in files:
        stem = safe_stem(f)
        if stem in seen:
            raise DoodleError(f, f"writes the same output name ({stem}) as {seen[stem]} in "
                                 f"{outdir}; run those folders to separate output folders")
        seen[stem] = f
    return files


def _in_input_order(frame, files):
    """Rows in the order of the inputs (workers finish in any order), the error column last."""
    if frame.empty or "file" not in frame:
        return frame
    if "error" in frame:
        frame["error"] = frame["error"].fillna("")
        frame = frame[[c for c in frame.columns if c != "error"] + ["error"]]
    rank = {f: i for i, f in enumerate(files)}
    order = frame["file"].map(lambda f: rank.get(f, len(rank)))
    return frame.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def _progress(total, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="file", dynamic_ncols=True)


def _execute(job, files, kwargs, workers, scheduler, client):
    if client is not None or scheduler is not None:
        yield from _execute_dask(job, files, kwargs, scheduler, client)
    elif workers is None or workers <= 1:
        for f in files:
            yield _run_one(job, f, kwargs)
    else:
        yield from _execute_pool(job, files, kwargs, min(workers, max(len(files), 1)))


# ----------------------------------------------------------------------------- local workers
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


def _execute_pool(job, files, kwargs, n):
    """Files over ``n`` spawned worker processes, one file at a time each.  A worker that
    dies (a crash in a C library, a kill, the OOM killer) is noticed by its process sentinel:
    its file gets an error row naming the signal or exit code, and a fresh worker takes the
    remaining files.  Workers exit by themselves when this process dies."""
    # spawn, not fork: Numba's thread pool in this process must not be forked; and one
    # thread per worker (Numba, BLAS), or N workers x N threads fight over N cores
    ctx = multiprocessing.get_context("spawn")
    todo = deque(start_order(job, files, kwargs))
    workers = []
    with _single_threaded_children():
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
        conn.send(_run_one(*task))


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
def _single_threaded_children():
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


#: seconds to wait for a Dask scheduler before giving up (a wrong or unreachable address)
DASK_CONNECT_TIMEOUT = 10


def _execute_dask(job, files, kwargs, scheduler, client):
    try:
        from dask.distributed import Client, as_completed as dask_completed
    except ImportError as exc:
        raise DoodleError(None, "Dask is not installed: pip install 'doodle-engine[dask]'") from exc
    own = client is None
    if own:
        client = _connect(Client, scheduler)
    try:
        futures = {client.submit(_run_one, job, f, kwargs, pure=False): f
                   for f in start_order(job, files, kwargs)}
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


def _connect(Client, scheduler):
    """A Client for ``scheduler``, or one DoodleError line within DASK_CONNECT_TIMEOUT."""
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise DoodleError(scheduler, "is not a Dask scheduler address (tcp://host:port)")
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
    except Exception as exc:  # OSError, TimeoutError, ValueError: Dask's errors vary by cause
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DoodleError(scheduler, f"cannot connect to the Dask scheduler within "
                                     f"{DASK_CONNECT_TIMEOUT} s ({first})") from None
