"""Tables and summaries of folder-wide runs: the terminal table, CSV/Parquet reports, class
statistics (figures are :mod:`doodle_engine.plots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DoodleError
from .files import atomic_write, short_name
from .metadata import metadata_sources, read_metadata_inputs
from .reasons import explained, legend

TABLE_COLUMNS = ("file", "trial", "era", "era_source", "mode", "height", "width", "differ",
                 "accuracy", "accuracy_min", "accuracy_median", "accuracy_max", "reason",
                 "runner_up", "runner_up_extra_px", "mean_iou", "kappa", "seconds", "skipped",
                 "error")

#: columns kept together, in this order, wherever the first of a group stands
GROUPS = ("px_", "frac_", "iou_", "t_")


def print_table(frame, columns=TABLE_COLUMNS):
    """Print a batch table: the file's name in full (not its path, never cut), the era used
    and where it came from (``era_source``), and the measurements."""
    cols = [c for c in columns if c in frame]
    if not len(frame):
        print("(no results)")
        return
    view = frame[cols].copy()
    if "file" in view:
        view["file"] = view["file"].map(short_name)
    for c in ("era", "era_source", "runner_up", "trial", "skipped", "mode", "reason", "error"):
        if c in view:  # a row that made no such choice shows nothing, not NaN
            view[c] = view[c].fillna("")
    if "runner_up_extra_px" in view:  # pixels, blank where no runner-up was rebuilt
        view["runner_up_extra_px"] = view["runner_up_extra_px"].map(
            lambda v: "" if pd.isna(v) else f"{int(v)}")
    for c in ("height", "width", "differ"):  # whole numbers, also beside failed rows
        if c in view:
            view[c] = pd.to_numeric(view[c], errors="coerce").round().astype("Int64")
    texts = [c for c in ("file", "trial", "era", "era_source", "reason", "runner_up", "mode",
                         "skipped", "error")
             if c in view]
    formatters = {}
    for c in texts:  # text columns aligned left
        width = max([len(c)] + [len(str(v)) for v in view[c]])
        formatters[c] = lambda v, width=width: f"{str(v):<{width}}"
    with pd.option_context("display.max_rows", None, "display.width", 10_000,
                           "display.max_colwidth", None):
        print(view.to_string(index=False, float_format=lambda v: f"{v:.5f}",
                             formatters=formatters, justify="left"))


def print_reasons(frame):
    """Under the table, once per cause of a result below 100 %: what its short word means."""
    lines = [f"why: {explained(s, sentence)}" for s, sentence in legend(frame).items()]
    for line in lines:
        print(line)
    return lines


def grouped_columns(frame):
    """``frame`` with the columns of each group (:data:`GROUPS`: class pixels, class
    fractions, per-class IoU, stage timings) side by side where the group's first column
    stands (files with other classes add their columns at the end of a batch table), and
    ``error`` last."""
    cols = list(frame.columns)
    out, placed = [], set()
    for c in cols:
        if c in placed or c == "error":
            continue
        group = next((g for g in GROUPS if c.startswith(g)), None)
        members = [m for m in cols if m.startswith(group)] if group else [c]
        out += members
        placed.update(members)
    return frame[out + (["error"] if "error" in frame else [])]


def summarize(frame):
    """Per record and overall: files, Mpx, median / worst accuracy, slowest file."""
    ok = frame[frame.get("error", pd.Series([""] * len(frame))) == ""]
    groups = [("ALL", ok)] + ([(r, g) for r, g in ok.groupby("record")] if "record" in ok else [])
    rows = []
    for name, g in groups:
        row = {"record": name, "files": len(g), "mpx": g["mpx"].sum() if "mpx" in g else np.nan}
        if "accuracy" in g and len(g):
            row.update({"median_accuracy": g["accuracy"].median(),
                        "worst_accuracy": g["accuracy"].min(),
                        "worst_file": g.loc[g["accuracy"].idxmin(), "file"]})
        if "seconds" in g and len(g):
            row.update({"seconds": g["seconds"].sum(),
                        "slowest_file": g.loc[g["seconds"].idxmax(), "file"]})
        rows.append(row)
    return pd.DataFrame(rows)


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


def write_report(frame, path):
    """Write a table as .csv or .parquet, atomically, and ``<stem>_summary.csv`` beside it
    (:func:`summarize`).  Returns the table's path."""
    path = Path(path)
    _write_frame(frame, path)
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
