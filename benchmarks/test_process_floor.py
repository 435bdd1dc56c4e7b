"""benchmarks/process_floor.py: every step runs and is timed, each including the one before,
and the whole validate process comes last."""

from __future__ import annotations

import process_floor as pf  # benchmarks/ (pytest puts a test file's folder on sys.path)

from doodle_engine.example import make_example


def test_the_floor_table(tmp_path, capsys):
    path = make_example(tmp_path / "ex.npz", 48, 64)
    pf.main([str(path), "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == [name for name, _ in pf.STEPS] + [
        "whole `validate FILE --mode fast` process"]
    walls = [float(r.split(" | ")[1]) for r in rows[1:]]
    assert all(w > 0 for w in walls)
    # each step imports what the one before did: Numba's costs more than Python alone
    assert walls[2] > walls[0]
