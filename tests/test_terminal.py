"""The terminal table without pandas: the same text as pandas' ``to_string`` (the layout the
command line printed before, kept here as the twin, with missing numbers blanked), and
``validate FILE`` without a table file, report or figure imports no pandas."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from doodle_engine.example import make_example
from doodle_engine.files import short_name, short_names
from doodle_engine.table import grouped
from doodle_engine.terminal import TABLE_COLUMNS, columns_of, table_lines


def pandas_table(rows, columns=TABLE_COLUMNS):
    """The terminal table as the command line printed it with pandas (the twin)."""
    frame = pd.DataFrame(rows)
    cols = [c for c in columns if c in frame]
    if not len(frame):
        return "(no results)"
    view = frame[cols].copy()
    if "file" in view:
        view["file"] = view["file"].map(short_name)
    for c in ("era", "era_source", "runner_up", "trial", "skipped", "mode", "reason", "error"):
        if c in view:
            view[c] = view[c].fillna("")
    if "runner_up_extra_px" in view:
        view["runner_up_extra_px"] = view["runner_up_extra_px"].map(
            lambda v: "" if pd.isna(v) else f"{int(v)}")
    for c in ("height", "width", "differ"):
        if c in view:
            view[c] = pd.to_numeric(view[c], errors="coerce").round().astype("Int64")
    texts = [c for c in ("file", "trial", "era", "era_source", "reason", "runner_up", "mode",
                         "skipped", "error") if c in view]
    formatters = {}
    for c in texts:
        width = max([len(c)] + [len(str(v)) for v in view[c]])
        formatters[c] = lambda v, width=width: f"{str(v):<{width}}"
    with pd.option_context("display.max_rows", None, "display.width", 10_000,
                           "display.max_colwidth", None):
        text = view.to_string(index=False, float_format=lambda v: f"{v:.5f}",
                              formatters=formatters, justify="left")
    # the terminal blanks a number a row lacks (to_string's na_rep leaves Int64's <NA>)
    return re.sub(r"(?<= )(<NA>|NaN)(?= |$)", lambda m: " " * len(m.group()), text,
                  flags=re.M)


def _value(rng, column):
    """A random cell of ``column`` as the jobs (or a resumed table) give it."""
    pick = rng.random()
    if column in ("file", "runner_up"):
        return f"/some/dir/{'x' * int(rng.integers(1, 40))}.npz"
    if column in ("trial", "era", "era_source", "mode", "reason", "skipped", "error"):
        return "" if pick < 0.3 else "word " * int(rng.integers(1, 6))
    if column in ("height", "width", "differ", "runner_up_extra_px"):
        return int(rng.integers(0, 10 ** int(rng.integers(1, 8)))) if pick < 0.7 else \
            np.int64(rng.integers(0, 5000))
    if pick < 0.05:
        return 10.0 ** -int(rng.integers(7, 12))  # pandas turns the column scientific
    if pick < 0.1:
        return float(rng.integers(10 ** 6, 10 ** 9))
    if pick < 0.15:
        return 1
    return float(rng.random())


@pytest.mark.parametrize("seed", range(300))
def test_table_lines_match_pandas(seed):
    rng = np.random.default_rng(seed)
    present = ["file"] + [c for c in TABLE_COLUMNS[1:] if rng.random() < 0.7] + ["px_a"]
    rows = []
    for _ in range(int(rng.integers(1, 6))):
        row = {c: _value(rng, c) for c in present if c == "file" or rng.random() < 0.85}
        if rng.random() < 0.2:  # a failed file: an error and few columns
            row = {"file": row.get("file", "/f.npz"), "error": "it failed"}
        rows.append(row)
    assert "\n".join(table_lines(rows)) == pandas_table(rows)


def test_a_failed_row_shows_no_na_marks():
    rows = [{"file": "/d/a.npz", "height": 306, "width": 172, "differ": 36, "accuracy": 0.99932,
             "seconds": 0.9, "error": ""},
            {"file": "/d/bad.npz", "seconds": 0.0002, "error": "bad.npz: not a zip file"}]
    lines = table_lines(rows)
    assert "<NA>" not in "\n".join(lines) and "NaN" not in "\n".join(lines)
    assert lines[2].startswith("bad.npz ") and lines[2].split() == [
        "bad.npz", "0.00020", "bad.npz:", "not", "a", "zip", "file"]
    assert [len(line) for line in lines[1:]] == [len(lines[1])] * 2  # the columns still line up


def test_no_rows():
    assert table_lines([]) == ["(no results)"] == [pandas_table([])]


def test_column_order_as_pandas():
    rows = [{"file": "a", "iou_x": 1.0, "seconds": 2.0, "error": ""},
            {"file": "b", "px_y": 3, "iou_y": 0.5, "error": "e", "t_a": 1}]
    assert columns_of(rows) == list(pd.DataFrame(rows).columns)
    assert grouped(columns_of(rows)) == ["file", "iou_x", "iou_y", "seconds", "px_y", "t_a",
                                         "error"]


def test_validate_file_imports_no_pandas(tmp_path):
    """A plain ``validate FILE`` builds its table and summary from the rows: no pandas in the
    process; --report still writes its table through pandas."""
    path = make_example(tmp_path / "ex.npz", 48, 64)
    probe = ("import sys; from doodle_engine.cli import main; code = main(sys.argv[1:]); "
             "print('PANDAS', 'pandas' in sys.modules)")
    for extra, loaded in (([], False), (["--report", str(tmp_path / "r.csv")], True)):
        out = subprocess.run([sys.executable, "-c", probe, "validate", str(path), "--quiet",
                              "--mode", "fast", *extra], capture_output=True, text=True,
                             cwd=tmp_path, check=True).stdout
        assert out.splitlines()[-1] == f"PANDAS {loaded}", out
        assert "median accuracy" in out


def test_files_of_one_name_in_two_folders_are_told_apart():
    """A folder and the outputs reconstructed inside it listed every name twice, identical
    in every column shown."""
    rows = [{"file": "/d/s/x.npz", "accuracy": 1.0}, {"file": "/d/s/rebuilt/x.npz", "accuracy": 1.0},
            {"file": "/d/s/y.npz", "accuracy": 1.0}]
    names = [ln.split()[0] for ln in table_lines(rows)[1:]]
    assert names == ["s/x.npz", "rebuilt/x.npz", "y.npz"]
    assert short_names(["/r/A.zip::A/npz/x.npz", "/r/B.zip::B/npz/x.npz"]) == [
        "A.zip::x.npz", "B.zip::x.npz"]
