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


def test_the_trainer_and_stride_knobs_reach_their_stages(synthetic, monkeypatch):
    """Minibatch, step size, epoch cap, tolerance and patience reach the trainer's schedule
    (capped by the era's own epochs); the stride reaches the prediction."""
    rec = load(synthetic("mlp-2021-10", h=64, w=80))
    fits, predictions = [], []
    _spy(monkeypatch, mlp, "fit_mlp", fits)
    _spy(monkeypatch, classifier, "predict_undoodled", predictions)
    point = PROFILES["fast"].with_(name="p", batch=800, learning_rate=4e-3, max_epochs=7,
                                   stop_tol=1e-3, stop_patience=4, predict_stride="crf")
    reconstruct(rec, mode=point)
    plan = fits[0][1]["schedule"]
    assert (plan.batch, plan.learning_rate, plan.max_iter, plan.tol, plan.patience) == (
        800, 4e-3, 7, 1e-3, 4)
    assert predictions[0][1]["stride"] == rec.settings.crf_downsample == 2
    fits.clear(), predictions.clear()
    reconstruct(rec, mode="exact")
    plan = fits[0][1]["schedule"]
    assert (plan.batch, plan.learning_rate, plan.max_iter, plan.tol, plan.patience) == (
        200, 1e-3, 2000, 1e-4, 10)  # scikit-learn's, as Doodler ran it
    assert predictions[0][1]["stride"] == 1


def test_reference_mode_gives_the_trainer_knobs_to_scikit_learn(synthetic):
    rec = load(synthetic("mlp-2022-05", h=48, w=64))
    plain = classifier.make_classifier(rec.settings, mode="reference")[-1]
    assert (plain.batch_size, plain.learning_rate_init, plain.tol, plain.n_iter_no_change,
            plain.max_iter) == ("auto", 1e-3, 1e-4, 10, 2000)
    turned = classifier.make_classifier(rec.settings, mode=REFERENCE.with_(
        name="r", batch=1000, learning_rate=5e-3, max_epochs=30, stop_tol=1e-3,
        stop_patience=5))[-1]
    assert (turned.batch_size, turned.learning_rate_init, turned.tol, turned.n_iter_no_change,
            turned.max_iter) == (1000, 5e-3, 1e-3, 5, 30)


@pytest.mark.parametrize("bad", [{"batch": 0}, {"learning_rate": 0.0}, {"max_epochs": 0},
                                 {"stop_patience": -1}, {"predict_stride": 0},
                                 {"predict_stride": "grid"}])
def test_bad_trainer_and_stride_knobs_are_refused(bad):
    with pytest.raises(ValueError):
        ModeProfile("bad", **bad)


class _Field:
    """A classifier whose probabilities are the first columns of the features (so a
    bilinear field is interpolated exactly): the stride's interpolation tested alone."""

    classes_ = np.array([1, 2])

    def predict_proba(self, x):
        return np.asarray(x)[:, :2]


@pytest.mark.parametrize("shape, k", [((13, 17), 2), ((13, 17), 4), ((8, 9), 3), ((1, 5), 2),
                                      ((6, 1), 4)])
def test_strided_prediction_interpolates_between_grid_pixels(shape, k):
    """Grid pixels (every k-th of every k-th row, and the last row and column) keep their own
    probabilities; the others get the bilinear interpolation of their grid neighbours (a
    field linear in row and column comes back exactly), in bands of any height."""
    h, w = shape
    r, c = np.mgrid[0:h, 0:w]
    field = np.stack([0.3 + 0.02 * r - 0.01 * c, 0.05 * c + 0.0 * r], -1).reshape(-1, 2)
    for block in (64, 1 << 20):
        got = np.concatenate([p for _, _, p in classifier.strided_bands(
            _Field(), field, shape, k, block_bytes=block)])
        np.testing.assert_allclose(got, field, atol=1e-12)
    bumpy = np.random.default_rng(0).random((h * w, 2))
    got = np.concatenate([p for _, _, p in classifier.strided_bands(_Field(), bumpy, shape, k)])
    rows, cols = classifier.stride_grid(h, k), classifier.stride_grid(w, k)
    on_grid = (rows[:, None] * w + cols[None, :]).ravel()
    np.testing.assert_array_equal(got[on_grid], bumpy[on_grid])
    # the twin: np.interp along the columns of each grid row, then along each column
    twin = np.empty((h, w, 2))
    for j in range(2):
        g = bumpy[:, j].reshape(h, w)[np.ix_(rows, cols)]
        across = np.array([np.interp(np.arange(w), cols, g[i]) for i in range(len(rows))])
        twin[..., j] = np.array([np.interp(np.arange(h), rows, across[:, q])
                                 for q in range(w)]).T
    np.testing.assert_allclose(got, twin.reshape(-1, 2), atol=1e-12)


def test_a_strided_prediction_keeps_the_grid_pixels_classes(synthetic):
    """With stride 2 the classifier's label on the grid pixels is the label of predicting
    every pixel; in between it may differ (interpolated probabilities), not by much."""
    rec = load(synthetic("mlp-2022-05", h=48, w=64))
    every = reconstruct(rec, mode=PROFILES["fast"].with_(name="k1", predict_stride=1))
    two = reconstruct(rec, mode=PROFILES["fast"].with_(name="k2", predict_stride=2))
    rows, cols = classifier.stride_grid(48, 2), classifier.stride_grid(64, 2)
    np.testing.assert_array_equal(two.classifier_label[np.ix_(rows, cols)],
                                  every.classifier_label[np.ix_(rows, cols)])
    assert (two.classifier_label == every.classifier_label).mean() > 0.9


@pytest.mark.parametrize("era", ["rf-2021-05", "rf-2021-06"])
@pytest.mark.parametrize("mode", ["fast", "fastest"])
def test_forest_eras_predict_every_pixel_in_every_mode(synthetic, monkeypatch, era, mode):
    """The stride is an MLP knob: a forest era's classifier label in fast mode is exact
    mode's (the same forest, every pixel predicted)."""
    rec = load(synthetic(era, h=48, w=64))
    predictions = []
    _spy(monkeypatch, classifier, "predict_undoodled", predictions)
    res = reconstruct(rec, mode=mode)
    assert predictions[0][1]["stride"] == 1
    np.testing.assert_array_equal(res.classifier_label,
                                  reconstruct(rec, mode="exact").classifier_label)
