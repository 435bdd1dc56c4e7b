"""The terminal table of a run, from its row dicts: the columns shown, their order and their
text, as pandas' ``to_string`` laid them out (but blank where a row has no number), without
importing pandas (0.25 s of CPU a process that writes no table file, report or figure)."""

from __future__ import annotations

import math
import numbers

from .files import short_names
from .reasons import explained, legend
from .table import missing

TABLE_COLUMNS = ("file", "trial", "era", "era_source", "mode", "height", "width", "differ",
                 "accuracy", "accuracy_min", "accuracy_median", "accuracy_max", "reason",
                 "runner_up", "runner_up_extra_px", "mean_iou", "kappa", "seconds", "skipped",
                 "error")

#: text columns: a row without a value shows nothing, and the text is aligned left
_TEXTS = ("file", "trial", "era", "era_source", "reason", "runner_up", "mode", "skipped", "error")
#: whole numbers, also beside failed rows (blank where a row has none)
_WHOLE = ("height", "width", "differ")


def columns_of(rows):
    """Every column of ``rows`` in order of first appearance (as ``pandas.DataFrame(rows)``
    orders them)."""
    return list(dict.fromkeys(c for r in rows for c in r))


def _whole(value):
    """A whole-number cell: rounded half to even (as pandas rounds), ``<NA>`` for none."""
    if isinstance(value, bool) or missing(value):
        return "<NA>"
    try:
        return f"{round(float(value)):d}"
    except (TypeError, ValueError, OverflowError):
        return "<NA>"


def _numbers(values):
    """The cells of a column pandas would hold as numbers (int64 or float64), else None."""
    present = [v for v in values if not missing(v)]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in present):
        return None
    if not present and any(v is None for v in values):
        return None  # no number, a None: pandas holds objects
    if len(present) == len(values) and all(isinstance(v, numbers.Integral) for v in present):
        return [f"{v:d}" for v in present]
    return ["NaN" if missing(v) else f"{float(v):.5f}" for v in values]


def _cells(column, values):
    """One column's cells as pandas formats them, before the column's alignment, and whether
    pandas holds the column as numbers (its header then starts with a space)."""
    if column in _TEXTS:
        texts = ["" if missing(v) else str(v) for v in values]
        if column == "file":
            texts = short_names(texts)
        width = max([len(column)] + [len(t) for t in texts])
        return [f"{t:<{width}}" for t in texts], False
    if column == "runner_up_extra_px":  # pixels, blank where no runner-up was rebuilt
        return ["" if missing(v) else f"{int(v)}" for v in values], False
    if column in _WHOLE:
        return [_whole(v) for v in values], True
    texts = _numbers(values)
    if texts is not None:
        return texts, True
    return ["None" if v is None else "NaN" if missing(v) else f"{v:.5f}" if isinstance(v, float)
            else str(v) for v in values], False


def table_lines(rows, columns=TABLE_COLUMNS):
    """The lines of the table of ``rows`` (dicts; a missing key is no value) over those of
    ``columns`` that some row has, laid out as pandas' ``to_string(index=False,
    justify="left")``: each column's cells right-aligned among themselves (the text
    columns padded left-aligned first), the block and its header (a space before the name of
    a column of numbers) left-aligned to the wider of the two, columns one space apart; a
    number a row does not have is blank where pandas writes ``<NA>`` or ``NaN``."""
    if not rows:
        return ["(no results)"]
    present = set(columns_of(rows))
    blocks = []
    for c in (c for c in columns if c in present):
        values = [r.get(c, math.nan) for r in rows]
        cells, numeric = _cells(c, values)
        header = " " + c if numeric else c
        inner = max(len(t) for t in cells)
        width = max(inner, len(header))
        blank = c not in _TEXTS  # a number a row lacks (a failed file's) shows nothing
        blocks.append([header.ljust(width)] + [
            " " * width if blank and missing(v) else t.rjust(inner).ljust(width)
            for t, v in zip(cells, values)])
    return [" ".join(cells) for cells in zip(*blocks)]


def print_table(rows, columns=TABLE_COLUMNS):
    """Print a batch table: the file's name in full (not its path, never cut), the era used
    and where it came from (``era_source``), and the measurements."""
    for line in table_lines(rows, columns):
        print(line)


def print_reasons(rows):
    """Under the table, once per cause of a result below 100 %: what its short word means."""
    lines = [f"why: {explained(s, sentence)}" for s, sentence in legend(rows).items()]
    for line in lines:
        print(line)
    return lines
