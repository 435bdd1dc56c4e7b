
import os
import signal
import threading

import numpy as np
import pytest
from conftest import SETTINGS, doodles_for, needs_real, real_files, scene
from skimage.morphology import remove_small_holes
from sklearn import neural_network  # imported before the timer starts: see the Ctrl-C test

from doodle_engine import DoodleError, classifier, load, reconstruct
from doodle_engine.cleanup import (
    fill_small_holes,
    filter_one_hot,
    filter_one_hot_spatial,
    inpaint_nans,
    inpaint_zeros,
)
from doodle_engine.eras import RECIPES
from doodle_engine.features import feature_matrix, sigma_schedule
from doodle_engine.settings import decode_settings


@pytest.mark.parametrize("era", list(SETTINGS) + ["mlp-2022-05"])
def test_every_era_rebuilds_a_synthetic_scene(synthetic, era):
    rec = load(synthetic(era))
    res = reconstruct(rec, seed=0)
    assert res.label.shape == rec.shape and res.era == era
    acc = (res.label0 == rec.label).mean()
    assert acc > 0.9, acc
    assert set(np.unique(res.label)) <= {1, 2, 3}
    for stage in ("standardize", "features", "fit", "predict", "crf"):
        assert stage in res.timings


@pytest.mark.parametrize("era", ["mlp-2021-10", "mlp-2022-05", "rf-2021-06"])
def test_reconstruction_is_deterministic(synthetic, era):
    rec = load(synthetic(era))
    a, b = reconstruct(rec, seed=3), reconstruct(rec, seed=3)
    np.testing.assert_array_equal(a.label, b.label)


def test_doodled_pixels_keep_their_class_in_the_2021_classifier(synthetic):
    rec = load(synthetic("mlp-2021-10"))
    res = reconstruct(rec)
    on = rec.doodles > 0
    np.testing.assert_array_equal(res.classifier_label[on], rec.doodles[on])


def test_sigma_schedules_follow_the_eras():
    s = decode_settings([3, 2, 1, 1, 1, 0.9, 3])
    np.testing.assert_allclose(sigma_schedule(s, 2), [1, 4, 16])
    e = decode_settings([3, 2, 1, 1, 1, 1.0, 3])
    assert len(sigma_schedule(e, 4)) == 4  # doodler_engine passed the class count
    m = decode_settings([3, 2, 1, 1, 1, 0.9])
    np.testing.assert_allclose(sigma_schedule(m, 2), [1, 2, 4, 8, 16])
    r = decode_settings([3, 2, 1, 1, 1, 3, 0.9, 0.5, 16])
    assert len(sigma_schedule(r, 2)) == 6


def test_the_sobel_border_is_zeroed_in_the_eras_run_on_scikit_image_0_16():
    new = {name for name, r in RECIPES.items() if not r.sobel_border}
    assert new == {"mlp-2022-05", "engine-2022-06"}  # every earlier era ran on 0.16
    x = np.random.default_rng(0).random((20, 30, 3))
    plain = feature_matrix(x, [1.0], "blur-old").reshape(20, 30, 3, 5)
    zeroed = feature_matrix(x, [1.0], "blur-old", sobel_border=True).reshape(20, 30, 3, 5)
    sob_plain, sob_zero = plain[..., 2], zeroed[..., 2]
    assert (sob_zero[[0, -1]] == 0).all() and (sob_zero[:, [0, -1]] == 0).all()
    assert (sob_plain[[0, -1]] != 0).any()  # today's scikit-image keeps the border
    np.testing.assert_array_equal(sob_zero[1:-1, 1:-1], sob_plain[1:-1, 1:-1])
    np.testing.assert_array_equal(np.delete(zeroed, 2, axis=-1), np.delete(plain, 2, axis=-1))


def test_one_class_doodled_codes_every_pixel():
    image, truth = scene()
    d = np.zeros(truth.shape, np.uint8)
    d[5:10, 5:10] = 2
    res = reconstruct(image, d, [3, 2, 1, 1, 1, 0.9, 2])
    assert (res.label == 2).all() and res.classifier_label is None and "one class" in res.notes[0]


def test_a_class_doodled_with_a_single_pixel(synthetic):
    image, truth = scene()
    d = doodles_for(truth, classes=(0, 2))
    ys, xs = np.nonzero(truth == 1)
    d[ys[len(ys) // 2], xs[len(xs) // 2]] = 2
    res = reconstruct(image, d, [3, 1, 1, 1, 1, 0.9, 2], era="mlp-2022-05")
    assert res.label.shape == d.shape and set(np.unique(res.label)) <= {0, 1, 2, 3}


def test_no_doodles_is_a_clear_error():
    image, truth = scene()
    with pytest.raises(DoodleError, match="no doodles"):
        reconstruct(image, np.zeros(truth.shape, np.uint8), [3, 2, 1, 1, 1, 0.9, 2], path="x.npz")


def test_nan_image_is_a_clear_error():
    image, truth = scene()
    bad = image.astype(float)
    bad[0, 0, 0] = np.nan
    with pytest.raises(DoodleError, match="NaN"):
        reconstruct(bad, doodles_for(truth), [3, 2, 1, 1, 1, 0.9, 2])


def test_constant_image_still_gives_a_label():
    _, truth = scene()
    image = np.full(truth.shape + (3,), 128, np.uint8)
    res = reconstruct(image, doodles_for(truth), [3, 2, 1, 1, 1, 0.9, 2], era="mlp-2022-05")
    assert res.label.shape == truth.shape


def test_image_smaller_than_the_crf_downsample():
    image, truth = scene(6, 8)
    d = np.zeros(truth.shape, np.uint8)
    d[0:2, 0:4], d[3:6, 4:8] = 1, 3
    res = reconstruct(image, d, [3, 16, 1, 1, 1, 0.9, 2], era="mlp-2021-10")
    assert res.label.shape == (6, 8)


def test_too_few_doodled_pixels_for_the_mlp_is_a_clear_error():
    image, _ = scene(6, 8)
    d = np.zeros((6, 8), np.uint8)
    d[1, 1], d[4, 6] = 1, 3
    with pytest.raises(DoodleError, match="too few doodled pixels"):
        reconstruct(image, d, [3, 2, 1, 1, 1, 0.9, 2], path="few.npz")


def _fit_with_ctrl_c_at(seconds, handler):
    """Reference mode's scikit-learn fit (about 5 s on 60,000 random rows) with SIGINT sent
    ``seconds`` in, under ``handler``; the handler found after the fit."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(120_000, 30)).astype(np.float32)
    doodles = rng.integers(1, 4, size=(300, 400)).astype(np.uint8)
    settings = decode_settings([3, 2, 1, 1, 1, 0.9, 2])
    assert neural_network.MLPClassifier  # loaded: the signal lands in the fit's epochs
    before = signal.signal(signal.SIGINT, handler)  # (`pytest &` starts with it ignored)
    try:
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            classifier.fit(features, doodles, settings, mode="reference")
        finally:
            timer.join()
        return signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.filterwarnings("ignore:Training interrupted by user")
def test_ctrl_c_in_scikit_learn_s_mlp_stops_the_fit():
    """scikit-learn's MLP catches KeyboardInterrupt and returns a part-trained model (reference
    mode fits with it): the fit raises KeyboardInterrupt all the same."""
    with pytest.raises(KeyboardInterrupt):
        _fit_with_ctrl_c_at(1.5, signal.default_int_handler)


def test_a_callers_own_sigint_handler_is_left_to_do_its_job():
    """A program of the caller's that handles SIGINT without raising gets its handler called
    and the fit finishes."""
    calls = []
    handler = lambda signum, frame: calls.append(signum)  # noqa: E731
    assert _fit_with_ctrl_c_at(1.5, handler) is handler
    assert calls == [signal.SIGINT]


def test_tiny_image_is_refused():
    with pytest.raises(DoodleError, match="too small"):
        reconstruct(np.zeros((1, 5, 3), np.uint8), np.array([[1, 2, 0, 0, 0]], np.uint8),
                    [3, 2, 1, 1, 1, 0.9, 2])


# ----------------------------------------------------------------- clean-up against scikit-image
def test_fill_small_holes_matches_scikit_image():
    rng = np.random.default_rng(1)
    for _ in range(5):
        mask = rng.random((40, 50)) > 0.35
        for size in (3, 10, 80):
            ours = fill_small_holes(mask, size)
            # scikit-image >= 0.26 fills holes of size <= max_size; Doodler's (old) rule is < size
            theirs = remove_small_holes(mask, max_size=size - 1)
            np.testing.assert_array_equal(ours, theirs)


def test_filter_one_hot_and_spatial_shapes():
    lab = np.ones((20, 20), int)
    lab[5:15, 5:15] = 2
    lab[9, 9] = 1  # a one-pixel hole in class 2
    out = filter_one_hot(lab, 40)
    assert out[9, 9] == 1  # class 1 wins ties (it is the first plane) ... and stays
    sp = filter_one_hot_spatial(out, 2)
    assert sp.shape == lab.shape and (sp == 0).any()


def test_inpaint_fills_every_nan_and_keeps_known_values():
    im = np.array([[1, np.nan, 3], [np.nan, np.nan, np.nan], [7, 8, 9]], float)
    out = inpaint_nans(im)
    assert np.isfinite(out).all() and out[0, 0] == 1 and out[2, 2] == 9
    assert inpaint_zeros(np.array([[0, 2], [2, 2]], np.uint8)).tolist() == [[2, 2], [2, 2]]
    with pytest.raises(ValueError):
        inpaint_nans(np.full((2, 2), np.nan))


# ----------------------------------------------------------------- fidelity on Doodler's own files
def _real_results():
    rows = []
    for path in real_files():
        rec = load(path)
        for r in [rec] + rec.trials:
            rows.append((path.name, r))
    return rows


_EXACT = {}


def _exact_label0(name, r):
    """The default (exact, seed 0) reconstruction of a real record, made once per test run:
    the 768x768 file takes ~10 s and three tests below look at it."""
    key = (name, r.trial_prefix)
    if key not in _EXACT:
        _EXACT[key] = reconstruct(r).label0
    return _EXACT[key]


@needs_real
def test_2022_era_files_and_trials_are_rebuilt_with_zero_differing_pixels():
    n = 0
    for name, r in _real_results():
        if "results2022-05-04" not in name:
            continue
        assert int((_exact_label0(name, r) != r.label).sum()) == 0, (name, r.trial_prefix)
        n += 1
    assert n >= 10  # the five 2022-05-04 files plus the five trials inside one of them


@needs_real
def test_late_2021_files_are_rebuilt_on_doodlers_2021_environment():
    """Sobel border zeroed as scikit-image 0.16.2 did: the 2021-10-16 file exactly, the
    768x768 2021-10-11 file within 0.01 % (its MLP training is sensitive to arithmetic order:
    scikit-learn's own trainer lands elsewhere, see README, Fidelity)."""
    seen = 0
    for name, r in _real_results():
        if "results2021-10" not in name:
            continue
        label0 = _exact_label0(name, r)
        differ = int((label0 != r.label).sum())
        if "results2021-10-16" in name:
            assert differ == 0, name
        else:
            assert (label0 == r.label).mean() >= 0.9999, (name, differ)
        seen += 1
    assert seen == 2


@needs_real
def test_other_real_files_reach_the_bar_and_repeat():
    """Every file outside the 2022 era: >= 99 % except the random-forest file, which depends on
    an unseeded forest and on the session's earlier doodles (see README, Fidelity); the same
    label on every run."""
    accs = {}
    for name, r in _real_results():
        if "results2022-05-04" in name:
            continue
        first = _exact_label0(name, r)  # seed 0, as every run below
        again = reconstruct(r, seed=0)  # a fresh run must give the same label
        np.testing.assert_array_equal(first, again.label0)
        accs[name] = (first == r.label).mean()
        floor = 0.96 if r.settings.era.startswith("rf") else 0.99
        assert accs[name] >= floor, (name, accs[name])
    assert np.median(list(accs.values())) >= 0.997


@needs_real
def test_fast_and_fastest_meet_their_agreement_thresholds():
    """mode="fast" and "fastest" trade agreement for time (docs/measurements/frontier.md), so they are
    measured, not held to 0 px, on every MLP-era file and trial (the forest file is the same
    in every mode; the one-class file has no classifier): fast median >= 99.9 % and worst
    >= 99.5 %, fastest worst >= 99 %.  Both train in float32, so they share the features
    (and the fit, where their row caps agree)."""
    accs = {"fast": {}, "fastest": {}}
    for name, r in _real_results():
        if r.settings.era.startswith("rf") or len(np.unique(r.doodles)[1:]) < 2:
            continue
        shared = {}
        for mode in accs:
            a = reconstruct(r, mode=mode, shared=shared)
            accs[mode][(name, r.trial_prefix)] = (a.label0 == r.label).mean()
    assert len(accs["fast"]) >= 12
    fast, fastest = accs["fast"], accs["fastest"]
    assert min(fast.values()) >= 0.995, min(fast.items(), key=lambda kv: kv[1])
    assert np.median(list(fast.values())) >= 0.999
    assert min(fastest.values()) >= 0.99, min(fastest.items(), key=lambda kv: kv[1])
