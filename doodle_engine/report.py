"""Tables and summaries of folder-wide runs: CSV/Parquet reports, class statistics (the
terminal table is :mod:`doodle_engine.terminal`, figures :mod:`doodle_engine.plots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DoodleError
from .files import atomic_write, result_name, short_name
from .metadata import metadata_sources, read_metadata_inputs
from .table import cell_text, grouped, with_whole_numbers


def grouped_columns(frame):
    """``frame`` with the columns of each group (:data:`doodle_engine.table.GROUPS`: class pixels, class
    fractions, per-class IoU, stage timings) side by side where the group's first column
    stands (files with other classes add their columns at the end of a batch table), and
    ``error`` last (:func:`doodle_engine.table.grouped`)."""
    return frame[grouped(list(frame.columns))]


def summarize(frame):
    """Per record and overall: files (and results, where earlier trials were rebuilt too),
    Mpx of the files, median / worst accuracy over the results (the worst named with its
    trial), seconds and the slowest result."""
    ok = frame[frame.get("error", pd.Series([""] * len(frame))) == ""]
    groups = [("ALL", ok)] + ([(r, g) for r, g in ok.groupby("record")] if "record" in ok else [])
    trials = "trial" in ok and ok["trial"].map(cell_text).ne("").any()
    rows = []
    for name, g in groups:
        files = g.drop_duplicates("file") if "file" in g else g
        row = {"record": name, "files": len(files)}
        if trials:
            row["results"] = len(g)
        row["mpx"] = files["mpx"].sum() if "mpx" in g else np.nan
        if "accuracy" in g and len(g):
            worst = g.loc[g["accuracy"].idxmin()]
            row.update({"median_accuracy": g["accuracy"].median(),
                        "worst_accuracy": worst["accuracy"],
                        "worst_file": _result_name(worst) if worst["accuracy"] < 1
                        else "none below 100 %"})
        if "seconds" in g and len(g):
            row.update({"seconds": g["seconds"].sum(),
                        "slowest_file": _result_name(g.loc[g["seconds"].idxmax()])})
        rows.append(row)
    return pd.DataFrame(rows)


def _result_name(row):
    """A result's file in full, with its earlier trial where it is one."""
    return result_name(row["file"], cell_text(row.get("trial")), short=False)


def _write_frame(frame, path):
    """One table as .csv or .parquet, atomically, with the permissions of a normal write."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401, PLC0415  optional: only a Parquet table needs it
        except ImportError:
            raise DoodleError(path, "writing Parquet needs pyarrow (pip install pyarrow)") from None
        return atomic_write(path, lambda fh: frame.to_parquet(fh, index=False))
    return atomic_write(path, lambda fh: fh.write(frame.to_csv(index=False).encode("utf-8")))


def write_report(frame, path, ints=()):
    """Write a table as .csv or .parquet, atomically, and ``<stem>_summary.csv`` beside it
    (:func:`summarize`); the columns in ``ints`` as whole numbers (as ``--table`` writes
    them).  Returns the table's path."""
    path = Path(path)
    _write_frame(with_whole_numbers(frame, ints), path)
    _write_frame(summarize(frame), path.with_name(path.stem + "_summary.csv"))
    return path


def stats_metadata(paths):
    """The metadata CSVs (files, folders of them, release zips' CSVs) as one table to join on
    ``file_name`` (the npz file's name), via :mod:`doodle_engine.metadata`; a stem listed in
    two records joins its first row.  None when no path is given."""
    if not paths:
        return None
    if not metadata_sources(paths):
        raise DoodleError(", ".join(map(str, paths)), "holds no metadata CSV")
    meta = read_metadata_inputs(paths).table.copy()
    for c in ("classes", "present"):
        meta[c] = meta[c].map(lambda v: "; ".join(v) if isinstance(v, (list, tuple)) else v)
    meta = meta.rename(columns={"classes": "meta_classes", "present": "meta_classes_present",
                                "record": "meta_record"})
    meta["file_name"] = meta["stem"] + ".npz"
    meta["metadata_csv"] = meta["source"].map(short_name)
    return meta.drop_duplicates("file_name", keep="first")


def stats_table(frame):
    """The ``stats`` job's rows with one type per column: class pixels (``px_*``) and
    ``unlabelled_px`` whole numbers, 0 where a file does not list the class, empty only for a
    file that failed; the class columns side by side (:func:`grouped_columns`)."""
    out = frame.copy()
    ok = out["error"] == "" if "error" in out else pd.Series(True, index=out.index)
    for c in [c for c in out.columns if c.startswith("px_")] + ["unlabelled_px"]:
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("Int64")
            out.loc[ok, c] = out.loc[ok, c].fillna(0)
    return grouped_columns(out)


def stats_summary(table):
    """A short view of the ``stats`` job's rows (before any metadata join, whose columns may
    start with ``px_`` too): per class, the pixels over all files, their share, and in how
    many files the class occurs (pixels left without a class: :func:`unlabelled_line`)."""
    px = [c for c in table.columns if c.startswith("px_")]
    ok = table[table["error"] == ""] if "error" in table else table
    rows = []
    total = ok[px].fillna(0).to_numpy().sum() if px else 0
    for c in px:
        n = ok[c].fillna(0)
        rows.append({"class": c[3:], "pixels": int(n.sum()),
                     "fraction": n.sum() / total if total else float("nan"),
                     "files": int((n > 0).sum())})
    return pd.DataFrame(rows, columns=["class", "pixels", "fraction", "files"])


def unlabelled_line(table):
    """One line on the pixels the stored labels leave without a class, '' when there are
    none (most files: Doodler gives every pixel a class)."""
    ok = table[table["error"] == ""] if "error" in table else table
    if "unlabelled_px" not in ok or not ok["unlabelled_px"].fillna(0).sum():
        return ""
    none = ok["unlabelled_px"].fillna(0)
    return (f"unlabelled: {int(none.sum()):,} px without a class in {int((none > 0).sum())} "
            "file(s) (not in the shares above)")


def class_stats(frame, metadata=None):
    """Per-file class-pixel counts and fractions, joined to Coast Train metadata on the npz
    file name when given (column order differs between records: columns are matched by
    name; ``prob_of_unary_potential`` is kept but flagged where it is not a probability)."""
    px = [c for c in frame.columns if c.startswith("px_")]
    out = frame.copy()
    if px:
        total = out[px].fillna(0).sum(axis=1).replace(0, np.nan)
        for c in px:
            out["frac_" + c[3:]] = out[c] / total
        out = grouped_columns(out)
    meta = metadata if isinstance(metadata, pd.DataFrame) else stats_metadata(metadata)
    if meta is not None and "file_name" in out:
        out = out.merge(meta, on="file_name", how="left", suffixes=("", "_meta"))
        if "prob_of_unary_potential" in out:
            p = pd.to_numeric(out["prob_of_unary_potential"], errors="coerce")
            out["prob_of_unary_potential_suspect"] = ~((p > 0) & (p <= 1))
    return out
