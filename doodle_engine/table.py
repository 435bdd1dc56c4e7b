"""The result table of a run: rows stream to disk as files finish, a stopped run resumes
(rows read back with the types they were written with), and one run at a time writes a table
(its lock)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # not a POSIX system: tables are not locked
    fcntl = None

from .errors import DoodleError, note
from .files import from_printable, normal_permissions, printable
from .inputs import source_mtime

#: columns whose values are text whatever they look like (a trial prefix "00", a record "2025")
TEXT_COLUMNS = frozenset({"file", "trial", "record", "classes", "era", "era_source", "mode",
                          "crf_backend", "runner_up", "candidates", "history", "notes", "output",
                          "skipped", "error", "file_name"})
#: columns holding a path, shown so that :func:`doodle_engine.files.from_printable` reverses it
PATH_COLUMNS = ("file", "output")
#: a stream line saying a file started in this process (a crash leaves it without a row)
RUNNING = "_running"
#: ... and a stream line saying this process stopped it (an interrupt, not a crash)
STOPPED = "_stopped"

_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)")


def table_row(row):
    """A job's row as the table holds it: a path as printable text (a name that is not UTF-8,
    or holds a newline, escaped: :func:`doodle_engine.files.printable`) and every other text
    on one line."""
    out = {}
    for key, value in row.items():
        if isinstance(value, str) and not key.startswith("_"):
            value = printable(value, backslash=key in PATH_COLUMNS)
        out[key] = value
    return out


def _unchanged(name, recorded_mtime):
    try:
        return abs(float(recorded_mtime) - source_mtime(from_printable(name))) < 1e-6
    except (TypeError, ValueError):
        return False


def missing(value):
    """No value: absent, None or NaN (a table cell pandas would show as NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_text(value):
    """A table cell as text: '' for no value (None, NaN)."""
    return "" if missing(value) else str(value)


def int_columns(rows):
    """Columns whose every value is a whole number of an integer type (written as such, so
    a column with gaps reads back as integers, not ``40.0``)."""
    kinds = {}
    for r in rows:
        for k, v in r.items():
            if missing(v):
                continue
            whole = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            kinds[k] = kinds.get(k, True) and whole
    return [k for k, whole in kinds.items() if whole]


def _number(text):
    if _INT_RE.fullmatch(text):
        return int(text)
    value = float(text)  # ValueError for text
    return value


def _typed(name, texts):
    """One column of a CSV read as text -> its values with their types (None: no value)."""
    if name in TEXT_COLUMNS:
        return list(texts)
    present = [t for t in texts if t != ""]
    if present and set(present) <= {"True", "False"}:
        return [None if t == "" else t == "True" for t in texts]
    try:
        return [None if t == "" else _number(t) for t in texts]
    except ValueError:
        return list(texts)


def read_table(path):
    """The rows of a CSV table this engine wrote, each value of the type it was written with
    (integers, floats, booleans, text; a blank number is no value)."""
    import pandas as pd  # noqa: PLC0415  0.25 s to import; only a table file needs it

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = {c: _typed(c, frame[c].tolist()) for c in frame.columns}
    return [{c: columns[c][i] for c in frame.columns if columns[c][i] is not None}
            for i in range(len(frame))]


def with_whole_numbers(frame, ints=()):
    """A copy of ``frame`` whose columns in ``ints`` (:func:`int_columns`) that pandas holds
    as floats (a gap made them so) are whole numbers again, blank where missing."""
    out = frame.copy()
    for c in ints:
        if c in out and out[c].dtype.kind == "f":
            with contextlib.suppress(TypeError, ValueError):
                out[c] = out[c].astype("Int64")
    return out


def write_csv(frame, target, ints=()):
    """``frame`` as CSV, the columns in ``ints`` as whole numbers (blank where missing)."""
    with_whole_numbers(frame, ints).to_csv(target, index=False)


class Table:
    """Rows stream to ``<table>.stream.jsonl`` (one JSON object a line, so rows with different
    columns stay intact when a run is killed); the finished table is written as CSV.

    The stream always holds every finished row of the run, those resumed from an earlier run
    included, so a crash of the process (a segfault, the OOM killer) loses no finished row:
    ``--resume`` completes the table.  Before a file runs in this process, a line names it:
    if the process dies there, the next ``--resume`` knows which file it was on.

    A failed write (a full or read-only disk) does not lose the rows: streaming stops, the
    rows are kept, and :meth:`finish` saves them elsewhere and says where."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.stream = self.path.with_name(self.path.name + ".stream.jsonl") if path else None
        self.rows = []
        self.kept = []
        self.streamed = 0
        self.write_error = None

    def _old_rows(self):
        """(rows of the table and its stream, files a crashed run was on)."""
        rows = []
        if self.path.exists():
            try:
                rows += read_table(self.path)
            except (ValueError, UnicodeDecodeError, OSError) as exc:
                raise DoodleError(self.path, f"cannot be read as an earlier table ({exc}); "
                                             "choose another --table") from None
        streamed, running = self._streamed()
        return rows + streamed, running

    def _streamed(self):
        """(rows in the stream, files a crashed run was on)."""
        rows, running = [], {}
        if self.stream.exists():
            with open(self.stream, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, RecursionError):
                        break  # a line cut short by a kill
                    if isinstance(row, dict) and RUNNING in row:
                        running[str(row[RUNNING])] = True
                    elif isinstance(row, dict) and STOPPED in row:
                        running.pop(str(row[STOPPED]), None)
                    elif isinstance(row, dict):
                        running.pop(str(row.get("file")), None)
                        rows.append(row)
        return rows, list(running)

    def left_for_resume(self):
        """What a stopped run left for ``--resume``: (finished rows in the stream, its path);
        (0, None) when there is no stream."""
        if not self.path:
            return 0, None
        with contextlib.suppress(OSError):
            rows, _ = self._streamed()
            if rows:
                return len(rows), self.stream
        return 0, None

    def done_files(self, options=None):
        """(names of the files done without error, unchanged since and, with ``options``,
        with the same options (the row's ``options``), their rows, names of the files an
        earlier run was working on when its process died, and ``{name: options}`` of the
        files done with other options)."""
        if not self.path:
            return set(), [], [], {}
        rows, running = self._old_rows()
        rows = [r for r in rows if "file" in r and not r.get("error")]
        other = {r["file"]: str(r.get("options") or "none recorded") for r in rows
                 if options is not None and r.get("options") != options}
        done = {r["file"] for r in rows if _unchanged(r["file"], r.get("mtime"))} - set(other)
        keep = list({str(r["file"]) + "|" + str(r.get("trial", "")): r
                     for r in rows if r["file"] in done}.values())
        return done, keep, [f for f in running if f not in done], other

    def start(self, kept=()):
        """A fresh stream holding the rows kept from an earlier run (written whole, then put
        in place of the old stream), then the earlier table removed: at no moment is a
        finished row only in memory."""
        self.kept = list(kept)
        if not self.path:
            return
        if not self.kept:  # nothing to keep: no stream until a row comes
            with contextlib.suppress(FileNotFoundError):
                self.stream.unlink()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        tmp = self.stream.with_name("." + self.stream.name + ".part")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(_json_line(r) for r in self.kept)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.stream)
        except OSError as exc:
            self.write_error = exc
            for p in (tmp, self.stream):
                with contextlib.suppress(OSError):
                    p.unlink()
        if self.path.exists():
            self.path.unlink()

    def running(self, name):
        """Say in the stream that ``name`` starts in this process."""
        self._append([{RUNNING: name}])

    def stopped(self, name):
        """Say in the stream that this process stopped ``name`` (an interrupt): a --resume
        runs it again as any other file, not as the file a crash died on."""
        self._append([{STOPPED: name}])

    def add(self, rows):
        self.rows.extend(rows)
        self._append(rows)

    def _append(self, rows):
        if not self.stream or self.write_error is not None:
            return
        good = 0  # the stream's size before this write: a failed write is cut back to it
        try:
            with contextlib.suppress(FileNotFoundError):
                good = self.stream.stat().st_size
            with open(self.stream, "a", encoding="utf-8") as fh:
                fh.writelines(_json_line(r) for r in rows)
                fh.flush()
            self.streamed += sum(RUNNING not in r and STOPPED not in r for r in rows)
        except OSError as exc:
            self.write_error = exc
            with contextlib.suppress(OSError):
                if self.streamed or self.kept:
                    os.truncate(self.stream, good)
                else:
                    self.stream.unlink()  # no row in it: not left behind

    def finish(self, rows, columns):
        """Write the table of ``rows`` (its ``columns`` in this order), as CSV."""
        if not self.path:
            return
        import pandas as pd  # noqa: PLC0415  0.25 s to import; only a table file needs it

        frame = pd.DataFrame(rows, columns=columns)
        tmp = self.path.with_name("." + self.path.name + ".part")
        ints = int_columns(self.kept + self.rows)
        try:
            if self.write_error is not None:
                raise self.write_error
            write_csv(frame, tmp, ints)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            reason = exc.strerror or str(exc)
            raise DoodleError(self.path, f"could not be written ({reason}); "
                                         f"{_save_elsewhere(frame, self.path.name, ints)}") from None
        if self.stream.exists():
            self.stream.unlink()


def _json_line(row):
    kept = {k: v for k, v in row.items() if not k.startswith("_") or k in (RUNNING, STOPPED)}
    return json.dumps(kept, default=str) + "\n"


def _save_elsewhere(frame, name, ints=()):
    """Rows whose table could not be written: into the temporary folder, else printed."""
    try:
        fd, where = tempfile.mkstemp(prefix=Path(name).stem + ".", suffix=".csv")
        normal_permissions(fd)
        with os.fdopen(fd, "w") as fh:
            write_csv(frame, fh, ints)
        return f"its {len(frame)} rows were saved to {where}"
    except OSError:
        sys.stdout.write(frame.to_csv(index=False))
        sys.stdout.flush()
        return f"its {len(frame)} rows were printed to standard output"


class TableLock:
    """An exclusive lock on ``<table>.lock`` for the whole run: a second run writing the
    same table is refused (one line) instead of both losing rows.  Creating the lock file is
    also the first write into the table's folder, so a read-only folder is found before any
    work.  A lock left by a process that died is taken over (:meth:`_take_over`)."""

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
        self._take_over(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return self

    def _take_over(self, fd):
        """A lock file that names a process but that no process holds was left by a run
        that died (a segfault, the OOM killer, kill -9): it is taken over, with a note."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
            if pid != os.getpid():
                note(f"{printable(self.table, backslash=False)}: took over the lock left by "
                     f"process {pid}, which ended without releasing it (a crash or a kill); "
                     f"--resume keeps the rows it finished")

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        return False


#: columns kept together, in this order, wherever the first of a group stands
GROUPS = ("px_", "frac_", "iou_", "t_")


def grouped(columns):
    """``columns`` with the columns of each group (:data:`GROUPS`: class pixels, class
    fractions, per-class IoU, stage timings) side by side where the group's first column
    stands (files with other classes add their columns at the end of a batch table), and
    ``error`` last."""
    out, placed = [], set()
    for c in columns:
        if c in placed or c == "error":
            continue
        group = next((g for g in GROUPS if c.startswith(g)), None)
        members = [m for m in columns if m.startswith(group)] if group else [c]
        out += members
        placed.update(members)
    return out + (["error"] if "error" in columns else [])


def in_input_order(rows, files):
    """(rows in the order of the inputs (workers finish in any order), the columns in order
    of first appearance, each group together (:func:`grouped`: a class first met in a later
    file joins its family), with ``options`` and ``error`` last); a row without an error gets
    an empty one when some row has one."""
    columns = grouped(list(dict.fromkeys(c for r in rows for c in r)))
    if "file" not in columns:
        return rows, columns
    if "options" in columns:
        columns = [c for c in columns if c != "options"] + ["options"]
    if "error" in columns:
        rows = [{**r, "error": "" if missing(r.get("error")) else r["error"]} for r in rows]
        columns = [c for c in columns if c != "error"] + ["error"]
    rank = {f: i for i, f in enumerate(files)}
    return sorted(rows, key=lambda r: rank.get(r.get("file"), len(rank))), columns
