"""Run a per-file job over many inputs: order, progress, resume, and the choice of local
worker processes (the default, no set-up) or a Dask cluster.  Results stream to a table as
files finish, so a stopped run resumes."""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
from dataclasses import dataclass, field

from tqdm import tqdm

from .cost import costliest_first
from .errors import DoodleError, note
from .export import label_suffix
from .files import printable
from .inputs import find_inputs, largest_first
from .jobs import JOBS, options_text, run_one
from .outputs import check_outputs, keep_labels, outputs_apart
from .pool import execute_pool, resolve_workers
from .remapping import load_mapping
from .table import Table, TableLock, in_input_order, table_row

#: jobs that rebuild labels: ordered by predicted cost (``cost.py``), the others by size
_REBUILDING = ("validate", "reconstruct", "eras")


@dataclass
class Run:
    """The results of a run as row dicts, in input order (:func:`run_rows`), its columns in
    the order of the table, and ``not_read``: ``(path, why)`` of the entries in the input
    folders that were no regular file; ``kept``: how many rows ``--resume`` kept from an
    earlier run made with the same options."""

    rows: list
    columns: list
    not_read: list = field(default_factory=list)
    kept: int = 0  # rows kept from an earlier run of the same options (--resume)

    def frame(self):
        """The rows as the table :func:`run_batch` returns (a pandas DataFrame)."""
        import pandas as pd  # noqa: PLC0415  0.25 s to import; the terminal table needs none

        frame = pd.DataFrame(self.rows, columns=self.columns)
        frame.attrs["not_read"] = self.not_read
        return frame


def start_order(job, files, kwargs):
    """The order files are handed to workers: costliest first (predicted from headers and
    settings) for the jobs that rebuild labels, largest on disk first for the others."""
    if job in _REBUILDING:
        return costliest_first(files, kwargs.get("mode") or "exact")
    return largest_first(files)


def run_batch(job, inputs, workers=1, scheduler=None, client=None, table=None, resume=False,
              progress=True, labels_dir=None, also_writes=None, also_reads=(),
              **kwargs):
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
        stored one in this folder (for :func:`doodle_engine.plots.write_plots`).
    also_writes : dict, optional
        Other outputs of the run (``{"report": file, "plots": folder}``) and ``also_reads``
        (mapping, metadata files): checked with ``table`` and ``outdir`` by
        :func:`check_outputs` before any work, so no output replaces an input or a file
        that is not of its own kind.
    **kwargs
        Passed to the job: ``outdir``, ``era``, ``seed``, ``mode``, ``crf_backend``,
        ``classes``, ``trials``, ``mapping``, ``default``, ``label_ext``, ``force``,
        ``prefix_record`` (jobs writing into ``outdir``: name outputs ``RECORD__NAME``, see
        :func:`doodle_engine.outputs.output_stem`).

    Returns
    -------
    pandas.DataFrame
        One row per result in input order; failed files have a non-empty ``error`` (a
        worker process that dies gives its file an error row).  ``file`` holds each name as
        :func:`doodle_engine.files.printable` shows it (a name that is not UTF-8 or holds a
        newline escaped; :func:`doodle_engine.files.from_printable` reverses it).
        ``frame.attrs["not_read"]``: ``(path, why)`` of the entries in the input folders
        that were no regular file (dangling links, symlink loops, FIFOs).

    Examples
    --------
    >>> from doodle_engine.batch import run_batch
    >>> from doodle_engine.example import make_example
    >>> path = make_example("example.npz", 48, 64, overwrite=True)
    >>> table = run_batch("validate", [path], mode="fast", progress=False)
    >>> list(table[["era", "error"]].iloc[0])
    ['mlp-2021-10', '']
    """
    return run_rows(job, inputs, workers=workers, scheduler=scheduler, client=client,
                    table=table, resume=resume, progress=progress, labels_dir=labels_dir,
                    also_writes=also_writes, also_reads=also_reads, **kwargs).frame()


def run_rows(job, inputs, workers=1, scheduler=None, client=None, table=None, resume=False,
             progress=True, labels_dir=None, also_writes=None, also_reads=(), **kwargs) -> Run:
    """:func:`run_batch` with its results as row dicts (a :class:`Run`), without pandas
    unless a ``table`` file is read or written."""
    if job not in JOBS:
        raise DoodleError(None, f"unknown job {job!r}")
    _check_options(job, kwargs)
    if job == "remap":
        kwargs["mapping"] = _checked_mapping(kwargs.get("mapping"), kwargs.get("default"))
    if job == "export" and "label_ext" in kwargs:
        kwargs["label_ext"] = label_suffix(kwargs["label_ext"])  # "png" is ".png"; ".tif" no
    not_read = []
    every = find_inputs(inputs, not_read)
    prefix = kwargs.get("prefix_record", False)
    check_outputs(inputs, every, table=table, outdir=kwargs.get("outdir"),
                  also_reads=also_reads, prefix_record=prefix, **(also_writes or {}))
    if kwargs.get("outdir") is not None:
        every = outputs_apart(every, kwargs["outdir"], prefix)
    if scheduler is None and client is None:
        workers = resolve_workers(workers, len(every))
    elif workers not in (None, 1, "auto"):
        note(f"workers={workers} (--workers) sets local processes: on a Dask cluster its own "
             "workers run the files, so it is not used")
    lock = TableLock(table) if table else contextlib.nullcontext()
    with lock:
        rows, columns, kept = _run_locked(job, every, workers, scheduler, client, table,
                                          resume, progress, labels_dir, kwargs)
    return Run(rows, columns, not_read, kept)


def _resume_text(tab, every, files, again, dropped, options):
    """What --resume keeps of the table ``tab`` and what it runs (``again``: the options of
    the files done with others; ``dropped``: files of the table not in this run)."""
    if tab.path is None:
        return f"--resume without --table (table=): nothing to resume from, all {len(every)} file(s) run"
    name = printable(tab.path, backslash=False)
    if not (tab.path.exists() or tab.stream.exists()):
        return f"--resume: {name} does not exist yet: a new table, all {len(every)} file(s) to run"
    return (f"--resume: {len(every) - len(files)} of {len(every)} file(s) done in {name} "
            f"(unchanged, without error, same options) are kept; {len(files)} to run"
            + (f" ({len(again)} of them done there with other options, run again: "
               f"{'; '.join(dict.fromkeys(again))}; this run: {options})" if again else "")
            + (f"; the rows of {len(dropped)} other file(s), made with other options, are not "
               "kept: the table holds this run's options only" if dropped else ""))


def _run_locked(job, every, workers, scheduler, client, table, resume, progress, labels_dir,
                kwargs):
    files = every
    tab = Table(table)
    kept, suspects = [], []
    options = run_options(job, kwargs)
    if resume:
        done, kept, running, other = tab.done_files(options)
        files = [f for f in files if printable(f) not in done]
        again = [other[name] for name in (printable(f) for f in files) if name in other]
        names = {printable(f) for f in every}
        dropped = [name for name in other if name not in names]
        note(_resume_text(tab, every, files, again, dropped, options))
        suspects = [f for f in files if printable(f) in set(running)]
        for f in suspects:
            note(f"{printable(f, backslash=False)}: the earlier run's process died while on this "
                 "file (a crash or a kill); it runs in a separate process this time")
    tab.start(kept)
    if labels_dir is not None:
        kwargs["keep_label"] = True
    bar = _progress(len(files), progress)
    try:
        for rows in _execute(job, files, kwargs, workers, scheduler, client, suspects, tab):
            rows = [table_row({**r, "options": options}) for r in rows]
            keep_labels(rows, labels_dir)
            tab.add(rows)
            if bar is not None:
                bar.update(1)
                mpx = sum(r.get("mpx", 0) or 0 for r in tab.rows)
                el = bar.format_dict.get("elapsed", 0) or 1e-9
                bar.set_postfix_str(f"{mpx / el:.2f} Mpx/s")
    finally:
        if bar is not None:
            bar.close()
    rows, columns = in_input_order(kept + tab.rows, [printable(f) for f in every])
    tab.finish(rows, columns)
    return rows, columns, len(kept)


#: options every job takes (each ignores those that do not apply to it): the reading options
#: and ``force``
COMMON_OPTIONS = ("classes", "force", "allow_pickle", "max_pixels", "settings", "images")


def _check_options(job, kwargs):
    """A DoodleError, before any work, for an option the job does not know (a misspelt
    ``mdoe=`` would otherwise run the default silently)."""
    known = set(COMMON_OPTIONS) | {
        name for name, p in inspect.signature(JOBS[job]).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in ("path", "keep_label")}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DoodleError(None, f"run_batch({job!r}): unknown option {unknown[0]!r}{hint}; "
                                f"it takes {', '.join(sorted(known))}")


def _checked_mapping(mapping, default):
    """The mapping read once, before any work: a bad mapping file or ``default`` is one
    error, not one per file."""
    m = load_mapping(mapping)
    m.check_default(default, mapping if isinstance(mapping, (str, os.PathLike)) else None)
    return m


#: job options that do not change a result: a row made without them stands for one made with
_NOT_RESULTS = ("force", "keep_label", "allow_pickle", "max_pixels")


def run_options(job, kwargs):
    """The job and the options that shape its results (a row's ``options``): ``--resume``
    keeps only rows made with the same."""
    left_out = _NOT_RESULTS + (("outdir",) if job == "gym" else ())  # a gym run's staging folder
    return options_text(job, **{k: v for k, v in kwargs.items() if k not in left_out})


def _progress(total, enabled):
    if not enabled:
        return None
    return tqdm(total=total, unit="file", dynamic_ncols=True)


def _execute(job, files, kwargs, workers, scheduler, client, suspects=(), table=None):
    """Rows of each file as it finishes.  In this process (one worker) each file is first
    named to the ``table``'s stream as running (and as stopped when an interrupt stops it);
    ``suspects`` (files an earlier run died on) run in a worker process of their own, so a
    second crash costs an error row, not the run."""
    if client is not None or scheduler is not None:
        yield from _execute_dask(job, start_order(job, files, kwargs), kwargs, scheduler, client)
    elif workers is None or workers <= 1:
        if suspects:
            yield from execute_pool(job, suspects, kwargs, 1)
        for f in files:
            if f in suspects:
                continue
            if table is not None:
                table.running(printable(f))
            try:
                rows = run_one(job, f, kwargs)
            except BaseException:  # Ctrl-C or a SIGTERM (run_one makes errors into rows)
                if table is not None:
                    table.stopped(printable(f))
                raise
            yield rows
    else:
        yield from execute_pool(job, start_order(job, files, kwargs), kwargs,
                                min(workers, max(len(files), 1)))


def _execute_dask(job, files, kwargs, scheduler, client):
    """Dask is an optional dependency: imported when a run asks for a cluster."""
    try:
        from .cluster import execute_dask  # noqa: PLC0415  Dask is optional and slow to import
    except ImportError as exc:
        raise DoodleError(None, "Dask is not installed: pip install 'doodle-engine[dask]'") from exc
    yield from execute_dask(job, files, kwargs, scheduler, client)
