"""The result table of a run: rows stream to disk as files finish, a stopped run resumes,
and one run at a time writes a table (its lock)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

try:
    import fcntl
except ImportError:  # not a POSIX system: tables are not locked
    fcntl = None

from .errors import DoodleError
from .files import normal_permissions
from .inputs import source_mtime


def _unchanged(path, recorded_mtime):
    try:
        return abs(float(recorded_mtime) - source_mtime(path)) < 1e-6
    except (TypeError, ValueError):
        return False


class Table:
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


class TableLock:
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


def in_input_order(frame, files):
    """Rows in the order of the inputs (workers finish in any order), the error column last."""
    if frame.empty or "file" not in frame:
        return frame
    if "error" in frame:
        frame["error"] = frame["error"].fillna("")
        frame = frame[[c for c in frame.columns if c != "error"] + ["error"]]
    rank = {f: i for i, f in enumerate(files)}
    order = frame["file"].map(lambda f: rank.get(f, len(rank)))
    return frame.iloc[order.argsort(kind="stable")].reset_index(drop=True)
