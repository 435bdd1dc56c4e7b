"""The PNG-era bar, recomputed from dash_doodler's history when its mirror is here.

Builds the October 2020 session of 101f9a3 (the fastest era to rebuild) from the mirror into
a temporary folder, rebuilds one case with the engine (seed 0) and checks the figure that
docs/measurements/fidelity-png-era.md records for it.  The whole table:
``python benchmarks/fidelity_png_era.py --cases DIR --doodler docs/measurements/doodler-yardstick.csv``.
Skipped when the mirror is absent.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path("/work/.mirror/Doodleverse+dash_doodler/repo")
DOC = ROOT / "docs" / "measurements" / "fidelity-png-era.md"

pytestmark = pytest.mark.skipif(not MIRROR.is_dir(), reason="dash_doodler mirror not present")


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _recorded(case, commit):
    """The engine's seed-0 accuracy (%) recorded per seed in the doc's table, or None."""
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 5 and cells[0] == case and cells[1] == commit:
            m = re.search(r"seed 0: ([\d.]+)", line)
            return float(m.group(1)) if m else None
    return None


def test_engine_figure_of_a_101f9a3_case(tmp_path):
    cases = _module("doodler_cases")
    fid = _module("fidelity_png_era")
    cases.build(tmp_path, sessions=["2020-10-22_101f9a3_results"], mirror=MIRROR)
    rows = list(fid.engine_runs(tmp_path, seeds=(0,), cases=["cropped2_12"]))
    assert len(rows) == 1 and rows[0]["era"] == "rf-2020-10f"
    got = float(rows[0]["accuracy"]) * 100
    want = _recorded("cropped2_12", "101f9a3")
    assert want is not None, "docs/measurements/fidelity-png-era.md lacks the case"
    assert abs(got - want) < 0.01
    # the table from these rows and a Doodler CSV of the same case
    doodler = tmp_path / "d.csv"
    with open(doodler, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session", "case", "code_commit", "history", "seed", "accuracy"])
        w.writerow(["2020-10-22_101f9a3_results", "cropped2_12", "101f9a3", "none", 0,
                    rows[0]["accuracy"]])
    table = fid.table(rows, fid.doodler_medians(doodler))
    assert table[0]["diff"] == 0 and table[0]["left_out"] is not None  # below 99 %
