"""Run a per-file job over many files: local worker processes by default (no set-up), or a
Dask cluster.  Results stream to a CSV table as files finish, so a stopped run resumes."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DoodleError
from .export import safe_stem
from .jobs import JOBS


def find_npz(inputs):
    """Files and folders (searched recursively) -> sorted list of .npz paths.

    A folder that holds no ``.npz`` file, or no inputs at all, is a DoodleError (a mistyped
    folder should not look like a successful run over nothing)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.npz") if q.is_file())
            if not found:
                raise DoodleError(p, "folder holds no .npz files")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise DoodleError("run_batch", "no input files given")
    return list(dict.fromkeys(str(f) for f in files))


def largest_first(files):
    """Files by size on disk, largest first: with several workers the long jobs start early
    and the short ones fill the gaps at the end (files that cannot be read come last)."""
    def size(f):
        try:
            return os.path.getsize(f)
        except OSError:
            return -1
    return sorted(files, key=size, reverse=True)


def _run_one(job_name, path, kwargs):
    """Run one job, turning any failure into an error row (the batch goes on)."""
    t0 = time.perf_counter()
    try:
        rows = JOBS[job_name](path, **kwargs)
        for r in rows:
            r.setdefault("error", "")
    except DoodleError as exc:
        rows = [{"file": str(path), "error": str(exc)}]
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
    columns stay intact when a run is killed); the finished table is written as CSV."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.stream = self.path.with_name(self.path.name + ".stream.jsonl") if path else None
        self.rows = []

    def _old_rows(self):
        rows = []
        if self.path.exists():
            rows += pd.read_csv(self.path, keep_default_na=False).to_dict("records")
        if self.stream.exists():
            with open(self.stream) as fh:
                for line in fh:
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        break  # a line cut short by a kill
        return rows

    def done_files(self):
        """(files already done without error and unchanged since, their rows)."""
        if not self.path:
            return set(), []
        rows = [r for r in self._old_rows() if "file" in r and not r.get("error")]
        done = {r["file"] for r in rows if _unchanged(r["file"], r.get("mtime"))}
        keep = list({r["file"] + "|" + str(r.get("trial", "")): r
                     for r in rows if r["file"] in done}.values())
        return done, keep

    def clear(self):
        for p in (self.path, self.stream):
            if p is not None and p.exists():
                p.unlink()

    def add(self, rows):
        self.rows.extend(rows)
        if self.stream:
            self.stream.parent.mkdir(parents=True, exist_ok=True)
            with open(self.stream, "a") as fh:
                for r in rows:
                    fh.write(json.dumps(r, default=str) + "\n")
                fh.flush()

    def finish(self, frame):
        if self.path:
            tmp = self.path.with_name("." + self.path.name + ".part")
            frame.to_csv(tmp, index=False)
            os.replace(tmp, self.path)
            if self.stream.exists():
                self.stream.unlink()


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
              progress=True, labels_dir=None, **kwargs) -> pd.DataFrame:
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
    **kwargs
        Passed to the job: ``outdir``, ``era``, ``seed``, ``mode``, ``crf_backend``,
        ``classes``, ``trials``, ``mapping``, ``default``, ``label_ext``, ``force``.

    Returns
    -------
    pandas.DataFrame
        One row per result in input order; failed files have a non-empty ``error``.

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
    if kwargs.get("outdir") is not None:
        every = _outputs_apart(every, kwargs["outdir"])
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
    if scheduler is None and client is None:
        workers = _resolve_workers(workers, len(files))
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
    frame = _in_input_order(pd.DataFrame(kept + tab.rows), every)
    tab.finish(frame)
    return frame


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
        # spawn, not fork: Numba's thread pool in this process must not be forked; and one
        # thread per worker (Numba, BLAS), or N workers x N threads fight over N cores
        ctx = multiprocessing.get_context("spawn")
        with _single_threaded_children(), \
                ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_run_one, job, f, kwargs) for f in largest_first(files)]
            for fut in as_completed(futures):
                yield fut.result()


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


def _execute_dask(job, files, kwargs, scheduler, client):
    try:
        from dask.distributed import Client, as_completed as dask_completed
    except ImportError as exc:
        raise DoodleError(None, "Dask is not installed: pip install 'doodle-engine[dask]'") from exc
    own = client is None
    if own:
        client = Client(scheduler)
    try:
        futures = [client.submit(_run_one, job, f, kwargs, pure=False)
                   for f in largest_first(files)]
        for fut in dask_completed(futures):
            yield fut.result()
    finally:
        if own:
            client.close()
