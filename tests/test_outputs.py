"""What the engine writes: permissions, the files each command leaves, and what they hold."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from doodle_engine import load, save
from doodle_engine.export import write_image
from doodle_engine.report import write_plots, write_report


@pytest.fixture
def umask():
    """Run a test under a given umask, restoring the old one afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_every_output_gets_the_permissions_of_a_normal_write(synthetic, tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    rec = load(synthetic())
    out = tmp_path / "out"
    frame = pd.DataFrame({"file": [str(rec.path)], "accuracy": [1.0], "differ": [0],
                          "iou_water": [1.0], "error": [""]})
    written = [save(rec, out / "x.npz"),
               write_image(out / "x.png", np.zeros((4, 4), np.uint8)),
               write_image(out / "x.jpg", np.zeros((4, 4, 3), np.uint8)),
               write_report(frame, out / "rows.csv"), out / "rows_summary.csv",
               write_report(frame, out / "rows.parquet"), out / "rows_summary.csv"]
    written += write_plots(frame, out / "plots")
    plain = out / "plain.txt"
    plain.write_text("x")  # what a normal write gives, for comparison
    assert _mode(plain) == expected
    for path in written:
        assert _mode(path) == expected, (path, oct(_mode(path)))
