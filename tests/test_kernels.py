"""Each compiled kernel against its NumPy / scikit-learn twin."""

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from doodle_engine.errors import NothingToInpaint
from doodle_engine.kernels.mlp import fit_mlp, forward_numpy, shuffled, split_indices


def _data(n_classes, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (n_classes, 6))
    y = rng.integers(1, n_classes + 1, n).astype(np.uint8)
    x = centres[y - 1] + rng.normal(0, 1.5, (n, 6))
    return x, y


@pytest.mark.parametrize("trainer", ["blas", "fused"])
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_compiled_trainer_follows_scikit_learn(n_classes, trainer):
    x, y = _data(n_classes)
    ref = make_pipeline(StandardScaler(), MLPClassifier(
        solver="adam", alpha=1, random_state=1, max_iter=2000, early_stopping=True,
        hidden_layer_sizes=[100, 60])).fit(x, y)
    ours = fit_mlp(x, y, trainer=trainer)
    mlp = ref[-1]
    assert ours.n_iter_ == mlp.n_iter_
    np.testing.assert_allclose(ours.validation_scores_, mlp.validation_scores_)
    for a, b in zip(ours.coefs, mlp.coefs_):
        np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
    np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-9)


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
    from sklearn.model_selection import train_test_split
    from sklearn.utils import shuffle as sk_shuffle
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
    from threadpoolctl import threadpool_info

    from doodle_engine.kernels import mlp
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


@pytest.mark.parametrize("loc_mode", ["blur-old", "blur-new", "raw"])
@pytest.mark.parametrize("sobel_border", [False, True])
@pytest.mark.parametrize("shape", [(37, 53), (5, 4), (64, 64)])
def test_compiled_features_are_bit_identical_to_the_reference(loc_mode, shape, sobel_border):
    from doodle_engine.example import scene
    from doodle_engine.features import feature_matrix
    from doodle_engine.kernels.features import feature_matrix as compiled
    from doodle_engine.standardize import standardize
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
    from scipy.ndimage import gaussian_filter1d
    from doodle_engine.kernels.features import gaussian_weights
    impulse = np.zeros(81)
    impulse[40] = 1
    for s in (1.0, 2.52, 4.0, 9.3):
        w = gaussian_weights(s)
        r = (w.size - 1) // 2
        np.testing.assert_allclose(gaussian_filter1d(impulse, s, mode="constant")[40 - r:41 + r], w,
                                   rtol=0, atol=1e-16)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_lut_matches_numpy_take(dtype):
    from doodle_engine.kernels.lut import apply_lut
    rng = np.random.default_rng(0)
    table = rng.integers(0, 255, 300).astype(np.uint8)
    labels = rng.integers(0, 256 if dtype == np.uint8 else 300, (3, 70, 90)).astype(dtype)
    np.testing.assert_array_equal(apply_lut(labels, table), np.take(table, labels))
    np.testing.assert_array_equal(apply_lut(labels[:0], table), np.take(table, labels[:0]))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_compiled_forest_predicts_as_scikit_learn(n_classes):
    from sklearn.ensemble import RandomForestClassifier
    from doodle_engine.kernels.forest import PackedForest
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
    from doodle_engine import cleanup
    from doodle_engine.kernels import cleanup as compiled
    rng = np.random.default_rng(0)
    for trial in range(150):
        labels = _random_labels(rng, trial)
        for distance in (1, 1.5, 2, 3):
            np.testing.assert_array_equal(compiled.filter_one_hot_spatial(labels, distance),
                                          cleanup.filter_one_hot_spatial(labels, distance))


def test_compiled_inpainting_equals_the_convolution_loop_bit_for_bit():
    from doodle_engine import cleanup
    from doodle_engine.kernels import cleanup as compiled
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(200):
        h, w = rng.integers(1, 30, 2)
        im = rng.random((h, w)) * rng.integers(1, 9)  # fractions: summation order shows
        im[rng.random((h, w)) < rng.random()] = np.nan
        if np.isnan(im).all():
            with pytest.raises(NothingToInpaint):
                compiled.inpaint_nans(im)
            continue
        np.testing.assert_array_equal(compiled.inpaint_nans(im), cleanup.inpaint_nans(im))
        checked += 1
    assert checked > 150
    labels = rng.integers(0, 4, (60, 80))
    np.testing.assert_array_equal(compiled.inpaint_zeros(labels), cleanup.inpaint_zeros(labels))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_fused_epoch_matches_its_numpy_twin(n_classes, dtype):
    """Two epochs of the fused trainer (padded weights, one compiled call per epoch) against
    the NumPy twin with scikit-learn's formulas: the same weights and Adam moments."""
    from doodle_engine.kernels import mlp
    x, y = _data(n_classes, n=1037)  # a short last minibatch
    x = np.hstack([x, x[:, :1] ** 2]).astype(dtype)  # 7 inputs: padded to 8
    y1h = (y[:, None] == np.unique(y)[None, :]).astype(dtype)
    if n_classes == 2:
        y1h = y1h[:, 1:2].copy()
    rs = np.random.RandomState(1)
    layers = [mlp._glorot(rs, a, b) for a, b in zip([7, 100, 60], [100, 60, y1h.shape[1]])]
    params = tuple(a.astype(dtype) for w, b in layers for a in (w, b))
    twin = tuple(p.copy() for p in params)
    ms = [np.zeros_like(p) for p in twin[0::2] + twin[1::2]]
    vs = [np.zeros_like(p) for p in twin[0::2] + twin[1::2]]
    run = mlp._fused_runner(params, x, y1h, 1.0, n_classes == 2)
    t = t_twin = 0
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(len(x))
        t = run(order, t)
        t_twin = mlp.fused_epoch_numpy(x, y1h, order, twin, ms, vs, t_twin, 1.0, n_classes == 2)
    assert t == t_twin == 2 * 6
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b in zip(params, twin):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_trainer_on_two_threads_gives_the_same_weights(dtype):
    """The two-thread step splits rows, not sums: bit-identical weights to one thread."""
    x, y = _data(3, n=1100)
    one = fit_mlp(x, y, dtype=dtype, max_iter=4, trainer="fused")
    two = fit_mlp(x, y, dtype=dtype, max_iter=4, trainer="fused", threads=2)
    blas = fit_mlp(x, y, dtype=dtype, max_iter=4, trainer="blas")
    assert one.n_iter_ == two.n_iter_ == 4
    for a, b, c in zip(one.coefs + one.intercepts, two.coefs + two.intercepts,
                       blas.coefs + blas.intercepts):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-5)
    with pytest.raises(ValueError):
        fit_mlp(x, y, trainer="gpu")
    with pytest.raises(ValueError):
        fit_mlp(x, y, threads=3)
    with pytest.raises(ValueError):
        fit_mlp(x, y, threads=2)  # the BLAS trainer: one thread
