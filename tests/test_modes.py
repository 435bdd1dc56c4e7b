"""The modes as data (``doodle_engine.modes``): exact keeps Doodler's knobs, fast and fastest
turn them, and each knob reaches the stage it sets."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from doodle_engine import DoodleError, classifier, crf, load, reconstruct
from doodle_engine.cost import predicted_cost
from doodle_engine.kernels import crf as kcrf
from doodle_engine.kernels import mlp
from doodle_engine.modes import EXACT, MODES, PROFILES, REFERENCE, ModeProfile, profile

ROOT = Path(__file__).resolve().parents[1]


def test_exact_is_doodlers_algorithm_and_every_mode_is_listed():
    assert MODES == ("exact", "fast", "fastest", "reference")
    assert (EXACT.compiled, EXACT.dtype, EXACT.max_rows, EXACT.mf_iterations,
            EXACT.stop_when_stable, EXACT.rolled_runs) == (True, "float64", 100_000, 10,
                                                           False, None)
    assert EXACT.max_rows == classifier.MLP_MAX_SAMPLES
    assert not REFERENCE.compiled and REFERENCE.with_(compiled=True).fit_key == EXACT.fit_key
    for name in ("fast", "fastest"):
        p = PROFILES[name]
        assert p.compiled and p.dtype == "float32" and p.max_rows < EXACT.max_rows
    assert profile("fastest") is PROFILES["fastest"] and profile(EXACT) is EXACT
    with pytest.raises(DoodleError, match="unknown mode 'quick'.*fastest"):
        profile("quick", "x.npz")
    with pytest.raises(ValueError):
        ModeProfile("bad", dtype="float16")
    with pytest.raises(ValueError):
        ModeProfile("bad", mf_iterations=0)


@pytest.mark.parametrize("era", ["mlp-2021-10", "mlp-2022-05"])
def test_fastest_runs_end_to_end(synthetic, era):
    rec = load(synthetic(era, h=64, w=80))
    res = reconstruct(rec, mode="fastest")
    assert res.label0.shape == rec.label.shape and res.era == era
    assert (res.label0 == rec.label).mean() >= 0.95
    exact = reconstruct(rec, mode="exact")
    assert (res.label0 == exact.label0).mean() >= 0.95


def _spy(monkeypatch, module, name, calls):
    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


def test_each_knob_reaches_its_stage(synthetic, monkeypatch):
    """Row cap and dtype reach the trainer, iterations and the early stop the mean field,
    rolled runs the number of CRF runs of a late-2021 file."""
    rec = load(synthetic("mlp-2021-10", h=64, w=80))
    fits, fields, runs = [], [], []
    _spy(monkeypatch, mlp, "fit_mlp", fits)
    _spy(monkeypatch, kcrf, "mean_field", fields)
    _spy(monkeypatch, crf, "crf_from_labels", runs)
    point = EXACT.with_(name="p", dtype="float32", max_rows=300, mf_iterations=4,
                        stop_when_stable=True, rolled_runs=2)
    reconstruct(rec, mode=point)
    (x, _y), kw = fits[0]
    assert x.shape[0] == 300 and x.dtype == np.float32 and kw["dtype"] is np.float32
    assert len(runs) == 2 and len(fields) == 2  # two of the era's five rolled runs
    assert all(a[2] == 4 and a[3] is True for a, _ in fields)
    fits.clear(), fields.clear(), runs.clear()
    reconstruct(rec, mode="exact")
    (x, _y), kw = fits[0]
    assert x.dtype == np.float64 and x.shape[0] == (rec.doodles > 0).sum()  # under the cap
    assert len(runs) == 5 and all(a[2] == 10 and a[3] is False for a, _ in fields)


def test_shared_features_and_fits_follow_the_knobs_they_depend_on(synthetic):
    """Points that agree on dtype share the feature matrix, on dtype and row cap the fit: the
    labels are those of separate runs."""
    rec = load(synthetic("mlp-2021-10", h=48, w=64))
    points = [EXACT, PROFILES["fast"], PROFILES["fastest"],
              PROFILES["fastest"].with_(name="q", rolled_runs=None)]
    shared = {}
    together = [reconstruct(rec, mode=p, shared=shared).label for p in points]
    assert sum(1 for k in shared if k[0] == "features") == 2
    assert sum(1 for k in shared if k[0] == "fit") == 3
    for p, label in zip(points, together):
        np.testing.assert_array_equal(reconstruct(rec, mode=p).label, label)


def test_predicted_cost_follows_the_mode(synthetic):
    path = synthetic("mlp-2021-10", h=64, w=80)
    exact, fast, fastest = (predicted_cost(path, m) for m in ("exact", "fast", "fastest"))
    assert fastest < fast <= exact


def test_cli_offers_fastest(synthetic, tmp_path):
    p = synthetic("mlp-2022-05", h=48, w=64)
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "validate", str(p), "--mode",
                        "fastest", "--workers", "1", "--quiet", "--report", str(tmp_path / "r.csv")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    row = pd.read_csv(tmp_path / "r.csv").iloc[0]
    assert row["mode"] == "fastest" and row["accuracy"] >= 0.95
    bad = subprocess.run([sys.executable, str(ROOT / "cli.py"), "validate", str(p), "--mode",
                          "quick"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "fastest" in bad.stderr
