"""Where a run may write: never over an input, an npz or a file that is not its own, and
never into an input folder; where the rebuilt labels of a validate run are kept."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np

from .errors import DoodleError
from .export import safe_stem
from .files import atomic_write, on_disk
from .releasezip import record_of

#: the header column that marks a CSV (or Parquet) as one of the engine's own tables
_OWN_COLUMNS = {"table": "file", "report": "file", "summary": "record"}
#: the generator named in the HTML report's head: marks a page as one the engine wrote
HTML_GENERATOR = "doodle-engine validate --html"


#: the files ``plots.write_plots`` writes into the --plots folder
PLOT_FILES = re.compile(r"(accuracy_hist|class_iou|disagreement_.*)\.png")


def check_report_name(report):
    """``report`` as a path; a DoodleError unless it ends in .csv or .parquet (a report named
    like an input, ``x.npz``, would be taken for one by the next run)."""
    path = Path(report)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise DoodleError(report, "--report takes a file name ending in .csv or .parquet")
    return path


def _resolved(path):
    """The real path of the file on disk behind ``path`` (a release zip for a member): every
    link followed, so a link to a folder or file is the folder or file itself."""
    return Path(os.path.realpath(os.path.expanduser(on_disk(path))))


def _folder_of(path):
    """The real folder an input file lies in, as named (a link's own folder)."""
    return _resolved(os.path.dirname(os.path.abspath(os.path.expanduser(on_disk(path)))))


def check_outputs(inputs, files, table=None, report=None, plots=None, outdir=None,
                  also_reads=(), html=None, prefix_record=False):
    """Refuse, before any work, an output that would replace an input (an .npz, a mapping or
    metadata file), a Doodler / zip file, a folder, a figure the run draws, or any existing
    file that is not a table of the engine's own kind; an output folder that is an input
    folder (or holds the input files directly), through links or not; and an output folder
    this run cannot write into.  One DoodleError line naming the output and the problem.
    ``prefix_record``: the run names its outputs by :func:`output_stem` with the record."""
    named = [i for i in inputs if not Path(i).is_dir()]
    folders = {_resolved(i) for i in inputs if Path(i).is_dir()}
    folders |= {_resolved(f).parent for f in named} | {_folder_of(f) for f in named}
    if outdir is not None:
        files = _inputs_outside(files, named, outdir, prefix_record)
    read = {_resolved(f) for f in files} | {_resolved(f) for f in also_reads if f}
    targets = []
    if table:
        targets += [("table", table), ("table", Path(str(table) + ".stream.jsonl"))]
    if report:
        rp = check_report_name(report)
        targets += [("report", rp), ("summary", rp.with_name(rp.stem + "_summary.csv"))]
    if html:
        if Path(html).suffix.lower() not in (".html", ".htm"):
            raise DoodleError(html, "--html takes a file name ending in .html")
        targets.append(("HTML report", Path(html)))
    seen = {}
    for kind, path in targets:
        res = _resolved(path)
        if res in seen and seen[res] != kind:
            raise DoodleError(path, f"is given as both the {seen[res]} and the {kind} output")
        seen[res] = kind
        _check_file_output(kind, path, res, read)
        if plots and res.parent == _resolved(plots) and PLOT_FILES.fullmatch(res.name):
            raise DoodleError(path, f"is a figure --plots draws in {plots}; refusing to let it "
                                    f"replace the {kind} - choose another name")
    for option, folder in (("-o/--output", outdir), ("--plots", plots)):
        if folder:
            _check_folder_output(option, folder, folders, read)
    for option, folder in (("-o/--output", outdir), ("--plots", plots),
                           ("--report", report and Path(report).parent),
                           ("--html", html and Path(html).parent)):
        if folder:
            check_writable(folder, option)


def check_writable(folder, option):
    """DoodleError unless a file can be made in ``folder`` (or, when it does not exist yet,
    in the nearest folder above it that does): found before any work, not after it."""
    where = _resolved(folder)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".doodle-engine-probe-", dir=where)
    except OSError as exc:
        raise DoodleError(folder, f"cannot be written ({exc.strerror or exc}); {option} "
                                  "needs a folder this run may write into") from None
    os.close(fd)
    os.unlink(probe)


def _inputs_outside(files, named, outdir, prefix_record=False):
    """The files not inside ``outdir``.  A file found inside it must be an earlier output
    (named like an input outside it); a file named on the command line, or any other file
    there, is an input the run would skip or replace: refused."""
    out = _resolved(outdir)
    inside = [f for f in files if out in _resolved(f).parents]
    outside = [f for f in files if f not in inside]
    stems = {output_stem(f, prefix_record) for f in outside}
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
    if kind == "HTML report":
        if not _is_own_page(res):
            raise DoodleError(path, "exists and is not a page this command wrote; refusing to "
                                    "overwrite it - choose another name or remove it")
    elif not _is_own_table(res, _OWN_COLUMNS[kind]):
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


def _is_own_page(path):
    """True for an empty file or an HTML page whose head names the engine as its generator."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return not head or f'content="{HTML_GENERATOR}"'.encode() in head


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
            import pyarrow.parquet as pq  # noqa: PLC0415  optional: only a Parquet file needs it
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
    digest = hashlib.sha1(str(file).encode("utf-8")).hexdigest()[:10]
    return Path(labels_dir) / f"{safe_stem(file)}-{digest}-{trial or 'final'}.npz"


def keep_labels(rows, labels_dir):
    """Take the rebuilt labels a job returned (``_rebuilt``) out of its rows; store them in
    ``labels_dir`` when given.  Runs in this process, so it works with local workers and Dask."""
    for r in rows:
        label = r.pop("_rebuilt", None)
        if label is not None and labels_dir is not None:
            atomic_write(kept_label_path(labels_dir, r["file"], r.get("trial", "")),
                         lambda fh, label=label: np.savez_compressed(fh, label=label))


def output_stem(path, prefix_record=False):
    """The name stem of an input's outputs: its file name without ``.npz``; with
    ``prefix_record``, ``RECORD__NAME`` (RECORD: :func:`record_of`, the release zip's name
    for a member), so same-named files of two records can share one output folder."""
    stem = safe_stem(path)
    return f"{safe_stem(record_of(path))}__{stem}" if prefix_record else stem


def outputs_apart(files, outdir, prefix_record=False):
    """Inputs for a job that writes into ``outdir``: files already inside ``outdir`` (outputs
    of an earlier run, when it lies within an input folder) are not inputs; two inputs that
    would write the same output name are an error, before anything runs."""
    out = Path(outdir).resolve()
    files = [f for f in files if out not in Path(f).resolve().parents]
    seen = {}
    for f in files:
        stem = output_stem(f, prefix_record)
        if stem in seen:
            raise DoodleError(f, f"writes the same output name ({stem}) as {seen[stem]} in "
                                 f"{outdir}; {_apart_advice(f, seen[stem], prefix_record)}")
        seen[stem] = f
    return files


def _apart_advice(a, b, prefix_record):
    if not prefix_record and record_of(a) != record_of(b):
        return ("give --prefix-record to name outputs RECORD__NAME (prefix_record=True), or "
                "write those records to separate output folders")
    return "write those files to separate output folders"
