"""Whole reconstruction and its stages: straightforward path vs compiled."""

from __future__ import annotations

import pytest

from doodle_engine import load, reconstruct
from doodle_engine import classifier
from doodle_engine.example import doodles_for, scene
from doodle_engine.features import feature_matrix, location_mode, sigma_schedule
from doodle_engine.record import DoodleRecord
from doodle_engine.settings import decode_settings
from doodle_engine.standardize import standardize
from conftest import REAL

SETTINGS = decode_settings([3, 2, 2, 1, 1, 0.9, 2], era="mlp-2022-05")
SIZES = {"0.1Mpx": (250, 400), "1Mpx": (800, 1250), "4Mpx": (1600, 2500)}
MODES = ["reference", "exact", "fast", "fastest"]


def _generated(name):
    h, w = SIZES[name]
    image, truth = scene(h, w, seed=1)
    return DoodleRecord(path=None, image=image, doodles=doodles_for(truth),
                        classes=["water", "surf", "sand"], settings=SETTINGS)


def _cases():
    cases = [(name, lambda n=name: _generated(n)) for name in SIZES]
    if REAL.is_dir():
        for p in sorted(REAL.glob("*.npz")):
            cases.append((p.name[:48], lambda p=p: load(p)))
    return cases


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_reconstruct(benchmark, case, mode):
    name, make = case
    rec = make()
    reconstruct(rec, mode=mode)  # warm-up: compile or load the Numba cache
    benchmark.group = f"reconstruct {name}"
    benchmark.extra_info["variant"] = mode
    rounds = 1 if name == "4Mpx" else 3  # the first run in a process pays for fresh memory
    res = benchmark.pedantic(reconstruct, args=(rec,), kwargs={"mode": mode},
                             rounds=rounds, iterations=1)
    assert res.label.shape == rec.shape


@pytest.fixture(scope="module")
def training():
    rec = _generated("1Mpx")
    feats = feature_matrix(standardize(rec.image), sigma_schedule(SETTINGS, 3),
                           location_mode(SETTINGS.era))
    return feats, rec.doodles


@pytest.mark.parametrize("mode", MODES)
def test_stage_fit(benchmark, training, mode):
    feats, doodles = training
    classifier.fit(feats, doodles, SETTINGS, mode=mode)
    benchmark.group = "stage fit 1Mpx"
    benchmark.extra_info["variant"] = mode
    benchmark.pedantic(classifier.fit, args=(feats, doodles, SETTINGS), kwargs={"mode": mode},
                       rounds=2, iterations=1)


@pytest.mark.parametrize("mode", ["reference", "exact"])
def test_stage_predict(benchmark, training, mode):
    feats, doodles = training
    clf, _ = classifier.fit(feats, doodles, SETTINGS, mode=mode)
    classifier.predict_undoodled(clf, feats[:1000], doodles[:1, :1000] * 0)
    benchmark.group = "stage predict 1Mpx"
    benchmark.extra_info["variant"] = mode
    out = benchmark.pedantic(classifier.predict_undoodled, args=(clf, feats, doodles),
                             rounds=2, iterations=1)
    assert out.shape == doodles.shape


@pytest.mark.parametrize("variant", ["reference", "compiled"])
def test_stage_features(benchmark, variant):
    from doodle_engine.kernels.features import feature_matrix as compiled
    rec = _generated("1Mpx")
    img = standardize(rec.image)
    sigmas = sigma_schedule(SETTINGS, 3)
    fn = feature_matrix if variant == "reference" else compiled
    fn(img[:50, :50], sigmas, "blur-old")
    benchmark.group = "stage features 1Mpx"
    benchmark.extra_info["variant"] = variant
    benchmark.pedantic(fn, args=(img, sigmas, "blur-old"), rounds=3, iterations=1)


@pytest.mark.parametrize("variant", ["reference", "compiled"])
def test_stage_forest_predict(benchmark, training, variant):
    from doodle_engine.kernels.forest import PackedForest
    feats, doodles = training
    rf_settings = decode_settings([3, 2, 2, 1, 1, 3, 0.9])
    clf, _ = classifier.fit(feats, doodles, rf_settings, mode="reference")
    model = clf if variant == "reference" else PackedForest(clf)
    model.predict(feats[:100])
    benchmark.group = "stage forest predict 1Mpx"
    benchmark.extra_info["variant"] = variant
    benchmark.pedantic(model.predict, args=(feats,), rounds=2, iterations=1)


@pytest.mark.parametrize("size", ["1Mpx", "4Mpx"])
@pytest.mark.parametrize("variant", ["reference", "compiled"])
def test_stage_crf(benchmark, size, variant):
    """One Doodler CRF run (crf_downsample 2) with pydensecrf ("reference") and with the
    compiled permutohedral lattice; the label agreement goes into extra_info."""
    from doodle_engine import crf
    h, w = {"1Mpx": (800, 1250), "4Mpx": (1600, 2500)}[size]
    image, truth = scene(h, w, seed=2)
    img = standardize(image)
    label = (truth + 1).astype("uint8")
    backend = "pydensecrf" if variant == "reference" else "numba"
    args = (label, img, 1.0, 1.0, 2, 0.9, backend)
    crf.crf_from_labels(label[:64, :64], img[:64, :64], 1.0, 1.0, 2, 0.9, backend)  # warm-up
    benchmark.group = f"stage crf {size}"
    benchmark.extra_info["variant"] = variant
    out, _ = benchmark.pedantic(crf.crf_from_labels, args=args, rounds=2, iterations=1)
    ref, _ = crf.crf_from_labels(*args[:-1], "pydensecrf")
    benchmark.extra_info["label_agreement"] = float((out == ref).mean())


@pytest.mark.parametrize("variant", ["reference", "compiled"])
def test_stage_cleanup(benchmark, variant):
    """The 2021 clean-up of a 1 Mpx classifier label with 2 % speckle: spatial filter near
    class edges (images taller than 512 rows) and in-painting of the pixels it zeroes."""
    import numpy as np
    from doodle_engine import cleanup
    from doodle_engine.kernels import cleanup as compiled
    _, truth = scene(800, 1250, seed=3)
    rng = np.random.default_rng(0)
    label = (truth + 1).astype(np.int64)
    speckle = rng.random(label.shape) < 0.02
    label[speckle] = rng.integers(1, 4, int(speckle.sum()))
    label = cleanup.filter_one_hot(label, 2 * label.shape[0])
    mod = cleanup if variant == "reference" else compiled

    def run():
        return mod.inpaint_zeros(mod.filter_one_hot_spatial(label, 2))

    run()
    benchmark.group = "stage cleanup 1Mpx"
    benchmark.extra_info["variant"] = variant
    out = benchmark.pedantic(run, rounds=3, iterations=1)
    np.testing.assert_array_equal(out, cleanup.inpaint_zeros(
        cleanup.filter_one_hot_spatial(label, 2)))
