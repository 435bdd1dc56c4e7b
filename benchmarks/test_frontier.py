"""benchmarks/frontier.py's bookkeeping on rows built here: the grid's dimensions, the
re-timing that decides between close points, the rule, and the CSV round trip of every knob."""

from __future__ import annotations

from pathlib import Path

import frontier as fr  # benchmarks/ (pytest puts a test file's folder on sys.path)
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_grid_holds_exact_once_and_every_new_dimension():
    points = fr.grid()
    assert sum(fr.same_knobs(p, fr.EXACT) for p in points) == 1
    assert len({p.name for p in points}) == len(points)
    assert {fr.trainer_name(p) for p in points} == set(fr.TRAINERS)
    assert {p.predict_stride for p in points} == set(fr.STRIDES)
    b1000 = fr.ModeProfile("x", **fr.TRAINERS["b1000"])
    assert b1000.learning_rate / 1e-3 == pytest.approx(b1000.batch / 200)  # scaled with it


def _rows(points, cases, agreement, seconds):
    return [{"point": p.name, "file": c, "trial": "", "case": c, "agreement": agreement[p.name][i],
             "seconds": seconds[p.name][i], "differ": 0, "load1": 1.0}
            for p in points for i, c in enumerate(cases)]


def test_the_rule_chooses_on_the_re_timed_seconds():
    """The sweep says b is faster than a (a noisy moment); the re-timing says a is: the rule
    takes a. A point failing the thresholds is never chosen however fast."""
    exact = fr.EXACT.with_(name="exact")
    a = fr.PROFILES["fast"].with_(name="a")
    b = a.with_(name="b", predict_stride=2)
    c = a.with_(name="c", max_rows=10_000)
    points = [exact, a, b, c]
    agreement = {"exact": [1, 1], "a": [1, 0.9995], "b": [1, 0.9995], "c": [0.98, 0.97]}
    seconds = {"exact": [4, 4], "a": [3, 3], "b": [1, 1], "c": [0.1, 0.1]}
    summary, ex = fr.summarise(_rows(points, ["f1", "f2"], agreement, seconds), points)
    assert fr.choose(summary)[0]["point"].name == "b"  # on the sweep's seconds
    retimed = [{"point": n, "case": f, "round": r, "seconds": s}
               for r in range(3) for f in ("f1", "f2")
               for n, s in (("exact", 4.0), ("a", 1.0 + r), ("b", 2.5), ("c", 0.1))]
    fr.apply_retime(summary, ex, retimed)
    by = {x["point"].name: x for x in summary}
    assert by["a"]["retimed_s"] == pytest.approx(4.0)  # median 2 s a file, two files
    assert by["a"]["retimed_speedup"] == pytest.approx(2.0)
    fast, fastest = fr.choose(summary)
    assert fast["point"].name == "a" and fastest["point"].name == "a"
    assert "exact" in {p.name for p in fr.candidates(summary, ex)}


def test_every_knob_survives_the_csv(tmp_path):
    point = fr._point("float32", 30_000, (10, True, 1), "tol1e-3", "crf")
    other = fr._point("float32", 20_000, (7, True, None), "b1000", 2)
    rows = [{"point": p.name, "dtype": p.dtype, "max_rows": p.max_rows,
             "mf_iterations": p.mf_iterations, "stop_when_stable": int(p.stop_when_stable),
             "rolled_runs": "all" if p.rolled_runs is None else p.rolled_runs,
             **{k: "" if getattr(p, k) is None else getattr(p, k) for k in fr.TRAINER_KNOBS},
             "trainer": fr.trainer_name(p), "predict_stride": p.predict_stride, "file": "f",
             "trial": "", "pixels": 4, "agreement": 1.0, "differ": 0, "seconds": 1.0,
             "own_seconds": 0.5, "shared_seconds": 0.5, "wall_seconds_this_call": 1.0,
             "crf_seconds": 0.1, "load1": 1.0, "utc": "2026-12-05T00:00:00Z"}
            for p in (point, other)]
    fr.write_csv(tmp_path / "frontier.csv", rows)
    _, back = fr.read_csv(tmp_path / "frontier.csv")
    assert back == [point, other]
