"""Each compiled kernel against its NumPy / scikit-learn twin."""

import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle as sk_shuffle
from threadpoolctl import threadpool_info

from doodle_engine import cleanup
from doodle_engine.errors import NothingToInpaint
from doodle_engine.example import scene
from doodle_engine.features import feature_matrix
from doodle_engine.kernels import cleanup as compiled_cleanup
from doodle_engine.kernels import mlp
from doodle_engine.kernels.features import feature_matrix as compiled
from doodle_engine.kernels.features import gaussian_weights
from doodle_engine.kernels.forest import PackedForest
from doodle_engine.kernels.mlp import fit_mlp, forward_numpy, shuffled, split_indices
from doodle_engine.standardize import standardize


def _data(n_classes, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (n_classes, 6))
    y = rng.integers(1, n_classes + 1, n).astype(np.uint8)
    x = centres[y - 1] + rng.normal(0, 1.5, (n, 6))
    return x, y


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_compiled_trainer_follows_scikit_learn(n_classes):
    x, y = _data(n_classes)
    ref = make_pipeline(StandardScaler(), MLPClassifier(
        solver="adam", alpha=1, random_state=1, max_iter=2000, early_stopping=True,
        hidden_layer_sizes=[100, 60])).fit(x, y)
    ours = fit_mlp(x, y)
    mlp = ref[-1]
    assert ours.n_iter_ == mlp.n_iter_
    np.testing.assert_allclose(ours.validation_scores_, mlp.validation_scores_)
    for a, b in zip(ours.coefs, mlp.coefs_):
        np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
    np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-9)


@pytest.mark.parametrize("knobs", [
    {"batch": 500, "learning_rate": 2.5e-3},
    {"batch": 64, "learning_rate": 5e-4, "tol": 1e-2, "patience": 3},
    {"max_iter": 7},
])
def test_the_trainers_walk_follows_scikit_learns_parameters(knobs):
    """Minibatch rows, step size, tolerance, patience and the epoch cap (fast mode's trainer
    knobs) mean what scikit-learn's batch_size, learning_rate_init, tol, n_iter_no_change and
    max_iter mean: the same epochs, scores and weights."""
    x, y = _data(3)
    plan = mlp.Schedule(**knobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the epoch cap, on purpose
        ref = make_pipeline(StandardScaler(), MLPClassifier(
            solver="adam", alpha=1, random_state=1, early_stopping=True,
            hidden_layer_sizes=[100, 60], batch_size=plan.batch,
            learning_rate_init=plan.learning_rate, tol=plan.tol, n_iter_no_change=plan.patience,
            max_iter=plan.max_iter)).fit(x, y)
    ours = fit_mlp(x, y, schedule=plan)
    assert ours.n_iter_ == ref[-1].n_iter_
    np.testing.assert_allclose(ours.validation_scores_, ref[-1].validation_scores_)
    for a, b in zip(ours.coefs, ref[-1].coefs_):
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_compiled_forward_matches_its_numpy_twin():
    x, y = _data(4)
    model = fit_mlp(x, y)
    np.testing.assert_allclose(model.predict_proba(x), forward_numpy(model, x), rtol=1e-12, atol=1e-14)
    m32 = fit_mlp(x, y, dtype=np.float32)
    np.testing.assert_allclose(m32.predict_proba(x), forward_numpy(m32, x), atol=1e-5)
    assert (m32.predict(x) == model.predict(x)).mean() > 0.95
    rows = np.random.default_rng(2).permutation(len(x))[:700]
    np.testing.assert_array_equal(model.predict_proba(x, chunk=64, rows=rows),
                                  model.predict_proba(x[rows], chunk=64))  # gathered per chunk
    np.testing.assert_array_equal(m32.predict(x, rows=rows), m32.predict(x[rows]))


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_split_and_shuffle_draw_as_scikit_learn(n_classes):
    """The trainer's NumPy split and shuffle against ``train_test_split`` / ``utils.shuffle``
    from the same RandomState: same rows, same state afterwards (ties in the stratified
    counts included: small, odd and unbalanced class sizes)."""
    rng = np.random.default_rng(n_classes)
    for n in (11, 12, 23, 40, 101, 997, 2000):
        y = rng.integers(0, n_classes, n)
        y[:2 * n_classes] = np.repeat(np.arange(n_classes), 2)  # every class twice at least
        y1h = (y[:, None] == np.arange(n_classes)[None, :]).astype(np.float64)
        binary = n_classes == 2
        if binary:
            y1h = y1h[:, 1:2].copy()
        idx = np.arange(n)
        a, b = np.random.RandomState(1), np.random.RandomState(1)
        ref_tr, ref_te = train_test_split(idx, random_state=a, test_size=0.1,
                                          stratify=y1h if binary else None)
        tr, te = split_indices(y1h, b, stratify=binary)
        np.testing.assert_array_equal(tr, ref_tr)
        np.testing.assert_array_equal(te, ref_te)
        np.testing.assert_array_equal(shuffled(tr, b), sk_shuffle(ref_tr, random_state=a))
        assert a.randint(1 << 30) == b.randint(1 << 30)


def test_the_trainer_runs_blas_on_one_thread_with_the_same_results(monkeypatch):
    """The minibatch products run on one BLAS thread (issue 18: OpenBLAS threads on
    200-row products cost more than they give); the weights are the same either way."""

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 30))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.uint8) + 1
    seen = []
    train = mlp._train

    def spy(*args):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return train(*args)

    monkeypatch.setattr(mlp, "_train", spy)
    one = fit_mlp(x, y, max_iter=5)
    assert seen and set(seen) == {1}
    monkeypatch.setattr(mlp, "FIT_BLAS_THREADS", None)
    free = fit_mlp(x, y, max_iter=5)
    for a, b in zip(one.coefs, free.coefs):
        np.testing.assert_array_equal(a, b)


def test_too_few_samples_for_a_validation_split():
    with pytest.raises(ValueError):
        fit_mlp(np.zeros((5, 3)), np.array([1, 1, 2, 2, 2], np.uint8))


@pytest.mark.parametrize("hidden", [(100,), (100, 60, 30)])
def test_the_compiled_mlp_refuses_other_than_two_hidden_layers(hidden):
    x, y = _data(3)
    with pytest.raises(ValueError, match="exactly two hidden layers"):
        fit_mlp(x, y, hidden=hidden)


@pytest.mark.parametrize("loc_mode", ["blur-old", "blur-new", "raw"])
@pytest.mark.parametrize("sobel_border", [False, True])
@pytest.mark.parametrize("shape", [(37, 53), (5, 4), (64, 64)])
def test_compiled_features_are_bit_identical_to_the_reference(loc_mode, shape, sobel_border):
    image, _ = scene(*shape, seed=2)
    x = standardize(image)
    sigmas = np.logspace(0, 4, 3, base=2)
    reference = feature_matrix(x, sigmas, loc_mode, sobel_border)
    np.testing.assert_array_equal(compiled(x, sigmas, loc_mode, sobel_border=sobel_border),
                                  reference)
    # fast mode's float32 matrix: the same features, rounded to float32
    half = compiled(x, sigmas, loc_mode, np.float32, sobel_border)
    assert half.dtype == np.float32
    np.testing.assert_array_equal(half, reference.astype(np.float32))


def test_gaussian_weights_are_scipys():

    impulse = np.zeros(81)
    impulse[40] = 1
    for s in (1.0, 2.52, 4.0, 9.3):
        w = gaussian_weights(s)
        r = (w.size - 1) // 2
        np.testing.assert_allclose(gaussian_filter1d(impulse, s, mode="constant")[40 - r:41 + r], w,
                                   rtol=0, atol=1e-16)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_compiled_forest_predicts_as_scikit_learn(n_classes):

    x, y = _data(n_classes, n=3000, seed=3)
    rf = RandomForestClassifier(n_estimators=6, class_weight="balanced_subsample",
                                min_samples_split=5, random_state=0).fit(x, y)
    probe = np.random.default_rng(9).normal(0, 3, (20000, x.shape[1]))
    np.testing.assert_array_equal(PackedForest(rf).predict(probe), rf.predict(probe))


def _random_labels(rng, trial):
    h, w = rng.integers(1, 30, 2)
    labels = rng.integers(0 if trial % 3 == 0 else 1, rng.integers(2, 6), (h, w))
    if trial % 7 == 0:  # one label everywhere: SciPy's distance transform has a quirk there
        labels[:] = rng.integers(1, 4)
    return labels


def test_compiled_spatial_filter_equals_the_distance_transform_path():
    rng = np.random.default_rng(0)
    for trial in range(150):
        labels = _random_labels(rng, trial)
        for distance in (1, 1.5, 2, 3):
            np.testing.assert_array_equal(compiled_cleanup.filter_one_hot_spatial(labels, distance),
                                          cleanup.filter_one_hot_spatial(labels, distance))


def test_compiled_inpainting_equals_the_convolution_loop_bit_for_bit():
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(200):
        h, w = rng.integers(1, 30, 2)
        im = rng.random((h, w)) * rng.integers(1, 9)  # fractions: summation order shows
        im[rng.random((h, w)) < rng.random()] = np.nan
        if np.isnan(im).all():
            with pytest.raises(NothingToInpaint):
                compiled_cleanup.inpaint_nans(im)
            continue
        np.testing.assert_array_equal(compiled_cleanup.inpaint_nans(im), cleanup.inpaint_nans(im))
        checked += 1
    assert checked > 150
    labels = rng.integers(0, 4, (60, 80))
    np.testing.assert_array_equal(compiled_cleanup.inpaint_zeros(labels), cleanup.inpaint_zeros(labels))
