"""benchmarks/doodler_speed.py: the summary's ratios (Doodler's median seconds over each mode's,
per result, then median and range over the results) for the warm call, the cold call and the
whole process, built from small CSVs written here (always run); CSVs of the earlier layout
still read; the README quotes the whole-process ratios of the measured CSV; and one timing
process plus one whole process on a real file (skipped without the real data)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import doodler_speed as ds  # benchmarks/ (pytest puts a test file's folder on sys.path)
import pytest

import doodle_engine as de
from doodle_engine.example import make_example

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "doodler"


#: (file, runner) -> [(warm, cold, whole, served) per round]
TIMES = {
    ("a.npz", "doodler"): [(4.0, 5.0, 8.0, ""), (6.0, 5.0, 8.0, "")],   # medians 5, 5, 8
    ("a.npz", "exact"): [(1.0, 2.0, 4.0, 2.0), (1.0, 2.0, 4.0, 2.0)],   # x5, x2.5, x2, x4, x2.5
    ("a.npz", "fast"): [(0.5, 1.0, 2.0, 1.0), (0.5, 1.0, 2.0, 1.0)],    # x10, x5, x4, x8, x5
    ("b.npz", "doodler"): [(2.0, 3.0, 6.0, ""), (2.0, 3.0, 6.0, "")],
    ("b.npz", "exact"): [(1.0, 1.0, 3.0, 1.0), (1.0, 1.0, 3.0, 1.0)],   # x2, x3, x2, x6, x2
    ("b.npz", "fast"): [(0.25, 0.5, 1.5, 0.5), (0.25, 0.5, 1.5, 0.5)],  # x8, x6, x4, x12, x4
    ("c.npz", "doodler"): [(9.0, 9.0, 9.0, ""), (9.0, 9.0, 9.0, "")],
    ("c.npz", "exact"): [(3.0, 3.0, 3.0, ""), (1.0, 1.0, 1.0, "")],     # medians 2: x4.5 each
    ("c.npz", "fast"): [(1.0, 1.0, 1.0, ""), (1.0, 1.0, 1.0, "")],      # x9 each; not served
}


def _write(path, times=TIMES, warm_diff=None):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=ds.FIELDS)
        w.writeheader()
        for (name, runner), per_round in times.items():
            for rnd, (warm, cold, whole, served) in enumerate(per_round):
                w.writerow({"date": "2026-12-05", "round": rnd, "file": name, "trial": "",
                            "era": "mlp-2022-05", "runner": runner, "cold_s": cold,
                            "warm_s": warm, "warm_n": 2, "process_s": whole,
                            "served_s": served, "epochs": 20,
                            "fit_s": 0.1, "peak_mb": 200, "diff_px": 0 if runner != "doodler" else 7,
                            "warm_diff_px": (warm_diff or {}).get((name, runner), 0),
                            "pixels": 100, "load1": 1.5})


def test_ratios_per_result_and_over_results(tmp_path):
    _write(tmp_path / "s.csv")
    rows = ds.read_rows(tmp_path / "s.csv")
    ups = ds.speedups(rows)
    a, b, c = ("a.npz", ""), ("b.npz", ""), ("c.npz", "")
    assert ups[("exact", "warm_s")] == pytest.approx({a: 5.0, b: 2.0, c: 4.5})
    assert ups[("exact", "cold_s")] == pytest.approx({a: 2.5, b: 3.0, c: 4.5})
    assert ups[("exact", "process_s")] == pytest.approx({a: 2.0, b: 2.0, c: 4.5})
    assert ups[("fast", "warm_s")] == pytest.approx({a: 10.0, b: 8.0, c: 9.0})
    assert ups[("fast", "process_s")] == pytest.approx({a: 4.0, b: 4.0, c: 9.0})
    assert ups[("exact", "served_s")] == pytest.approx({a: 4.0, b: 6.0})  # Doodler's whole process
    assert ups[("exact", "served_warm")] == pytest.approx({a: 2.5, b: 2.0})  # Doodler's warm call
    assert ups[("fast", "served_s")] == pytest.approx({a: 8.0, b: 12.0})
    assert ds.spread(ups[("exact", "warm_s")]) == pytest.approx((4.5, 2.0, 5.0))
    assert ds.spread(ups[("fast", "cold_s")]) == pytest.approx((6.0, 5.0, 9.0))
    assert ds.spread({}) is None


def test_summary_shows_the_three_measures_side_by_side(tmp_path):
    _write(tmp_path / "s.csv", warm_diff={("b.npz", "fast"): 3})
    text = ds.summary(tmp_path / "s.csv")
    lines = text.splitlines()
    assert lines[0] == ("| Doodler's time / the engine's | warm call | cold call | whole process "
                        "| served command / Doodler's whole process "
                        "| served command / Doodler's warm call |")
    assert ("| exact | ×4.50 (×2.00–5.00) | ×3.00 (×2.50–4.50) | ×2.00 (×2.00–4.50) "
            "| ×5.00 (×4.00–6.00) | ×2.25 (×2.00–2.50) |") in lines
    assert ("| fast | ×9.00 (×8.00–10.00) | ×6.00 (×5.00–9.00) | ×4.00 (×4.00–9.00) "
            "| ×10.00 (×8.00–12.00) | ×4.50 (×4.00–5.00) |") in lines
    row_a = next(ln for ln in lines if ln.startswith("| a.npz"))
    assert "| 5.00 / 5.00 / 8.00 / — | 1.00 / 2.00 / 4.00 / 2.00 |" in row_a
    assert "| ×5.00 / ×2.50 / ×2.00 / ×4.00 / ×2.50 | ×10.00 / ×5.00 / ×4.00 / ×8.00 / ×5.00 |" in row_a
    row_c = next(ln for ln in lines if ln.startswith("| c.npz"))
    assert "| ×4.50 / ×4.50 / ×4.50 / — / — |" in row_c  # no served command: no ratio
    assert row_a.endswith("| 7 / 0 / 0 |")  # px differ from the stored label
    assert "warm calls changed the label in: b.npz fast (3 px)" in text
    assert "18 runs (3 results)" in text and "2026-12-05" in text
    assert ("is ×2.00 faster than Doodler's in exact mode, ×4.00 in fast mode"
            not in text)  # no fastest runner: no README sentence
    assert ds.readme_sentence(ds.read_rows(tmp_path / "s.csv")) is None


def test_readme_sentence_needs_the_three_modes(tmp_path):
    times = dict(TIMES)
    times.update({(n, "fastest"): [(0.1, 0.2, w / 5, "") for _, _, w, _ in TIMES[(n, "doodler")]]
                  for n in ("a.npz", "b.npz", "c.npz")})
    _write(tmp_path / "s.csv", times)
    sentence = ds.readme_sentence(ds.read_rows(tmp_path / "s.csv"))
    assert sentence.endswith("is ×2.00 faster than Doodler's in exact mode, ×4.00 in fast mode "
                             "and ×5.00 in fastest mode")  # fastest not served: no served part
    times.update({(n, "fastest"): [(0.1, 0.2, w / 5, w / 16) for _, _, w, _ in TIMES[(n, "doodler")]]
                  for n in ("a.npz", "b.npz")})
    _write(tmp_path / "s.csv", times)
    sentence = ds.readme_sentence(ds.read_rows(tmp_path / "s.csv"))
    assert sentence.endswith("; a `doodle-engine validate FILE` served by a warm `doodle-engine "
                             "serve` is ×5.00, ×10.00 and ×16.00 faster than Doodler's whole "
                             "process (the 2 files' own results)")


def test_the_earlier_layout_reads_as_cold_calls_and_whole_processes(tmp_path):
    path = tmp_path / "old.csv"
    fields = ["round", "file", "trial", "era", "runner", "call_s", "process_s", "epochs", "fit_s",
              "peak_mb", "diff_px", "pixels", "load1"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for runner, call, proc in (("doodler", 3.0, 5.0), ("exact", 1.5, 2.0)):
            w.writerow({"round": 0, "file": "x.npz", "trial": "0", "era": "mlp-2022-05",
                        "runner": runner, "call_s": call, "process_s": proc, "epochs": 9,
                        "fit_s": 0.2, "peak_mb": 100, "diff_px": 0, "pixels": 10, "load1": 1.0})
    text = ds.summary(path)
    assert "| exact | — | ×2.00 (×2.00–2.00) | ×2.50 (×2.50–2.50) | — | — |" in text
    assert "no warm calls in this CSV" in text


def test_the_readme_quotes_the_measured_whole_process():
    measured = ROOT / "docs" / "measurements" / "doodler-speed.csv"
    sentence = ds.readme_sentence(ds.read_rows(measured))
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert sentence and re.search(r"×[\d.]+ faster than Doodler's", sentence)
    assert sentence in readme, f"README should say: {sentence}"


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real Doodler files not found at {REAL}")
def test_a_timing_process_and_a_whole_process_on_a_real_file():
    todo = ds.jobs(REAL, trials=True, only=["14-34__2017-12-21-19-00-36_S2_rgb_03_db.npz 000"])
    assert [t for _, t in todo] == ["000", "0000", "00000"]
    path, trial = todo[0]
    got = ds._spawn(path, trial, "fastest", warm=1)
    assert got["era"] == "mlp-2022-05" and got["warm_n"] == 1 and got["epochs"] > 0
    assert 0 < got["warm_s"] and 0 < got["cold_s"]
    rec = next(t for t in de.load(path, trials=True).trials if t.trial_prefix == trial)
    here = int((de.reconstruct(rec, mode="fastest").label0 != rec.label).sum())
    assert got["diff_px"] == here and got["warm_diff_px"] == 0  # the same label as in this process
    wall, peak = ds._spawn_whole(path, trial, "fastest")
    assert wall > got["warm_s"] and peak > 50


def test_a_served_command_is_timed_only_when_the_server_ran_it(tmp_path):
    example = make_example(tmp_path / "ex.npz", 48, 64)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    server = ds.Served()
    try:
        assert server.run(str(example), "fast") > 0
        assert "validate" in server.log.read_text() and ": exit 0" in server.log.read_text()
        with pytest.raises(RuntimeError, match="not served"):
            server.run(str(bad), "fast")  # exit 2: no time is recorded for it
    finally:
        server.stop()
    assert server.proc.returncode == 0
