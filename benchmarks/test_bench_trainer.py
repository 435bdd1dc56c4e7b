"""The MLP classifier fit (issue 18): scikit-learn's MLPClassifier ("reference"), the earlier
compiled trainer that calls one-thread BLAS for every minibatch product ("blas": exact mode in
float64, fast mode in float32), and the fused trainers
(one compiled kernel per epoch, no BLAS; opt-in) in float64 and float32, on 1 and 2 threads, on
one fixed problem: the training rows of the 768x768 LC08 file (100,000 x 30, 4 classes) when
../shared holds it, else a generated 100,000 x 30, 4-class problem.  The dgemm / sgemm peak
(2048^2 matmul, 1 thread and every thread) is measured in the same run.

GFLOP/s come from an explicit count over the real (unpadded) layer sizes n_0 .. n_L and the
epochs the fit ran (its n_iter_):
    per training row and epoch: 2 * S (forward) + 2 * S (weight gradients) + 2 * S' (errors
    sent back), S = sum_l n_l * n_(l+1) over every layer, S' the same without the first layer;
    per validation row and epoch: 2 * S (the score's forward pass).
For 30-100-60-4 that is 49,440 FLOP per training row-epoch.  Element-wise work (bias, ReLU,
softmax, Adam: about 1 %) is not counted."""

from __future__ import annotations

import time
from math import ceil

import numpy as np
import pytest
import scipy.linalg.cython_blas  # noqa: F401  (both BLAS libraries loaded: both limited)
from conftest import REAL
from fused_trainer import fit_fused, fused_epoch_numpy, fused_runner
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from doodle_engine import classifier, load
from doodle_engine.eras import recipe as era_recipe
from doodle_engine.features import era_features, sigma_schedule
from doodle_engine.kernels import mlp
from doodle_engine.standardize import standardize

HIDDEN = (100, 60)
#: the compiled trainers: (trainer, dtype, threads); "blas f64" is exact mode's, "blas f32"
#: fast mode's (which trains on at most 40,000 rows; here on the same rows as the others)
VARIANTS = {"blas f64": ("blas", np.float64, 1), "blas f32": ("blas", np.float32, 1),
            "fused f64": ("fused", np.float64, 1), "fused f32": ("fused", np.float32, 1),
            "fused f64 2 threads": ("fused", np.float64, 2),
            "fused f32 2 threads": ("fused", np.float32, 2)}
LC08 = "*2021-10-11-12-10*.npz"


def _real_rows():
    """The exact-mode training rows of the LC08 file, as ``classifier.fit`` takes them."""
    rec = load(next(REAL.glob(LC08)))
    r = era_recipe(rec.settings.era)
    n_classes = len(np.unique(rec.doodles)) - 1
    feats = era_features(standardize(rec.image, r.standardize),
                         sigma_schedule(rec.settings, n_classes, r), r, "exact")
    x, y, _ = classifier.training_rows(feats, rec.doodles, rec.settings, recipe=r)
    return "LC08 2021-10-11-12-10", x, y


def _generated_rows(n=100_000, f=30, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, f))
    y = rng.integers(1, k + 1, n).astype(np.uint8)
    return "generated", centres[y - 1] + rng.normal(0, 1.5, (n, f)), y


@pytest.fixture(scope="module")
def problem():
    return _real_rows() if REAL.is_dir() and any(REAL.glob(LC08)) else _generated_rows()


def fit_flops(n_features, n_classes, n_rows, epochs, hidden=HIDDEN):
    """The FLOP count above for a fit of ``n_rows`` rows (10 % held out) over ``epochs``."""
    sizes = [n_features, *hidden, 1 if n_classes == 2 else n_classes]
    s = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    s_back = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    n_val = ceil(0.1 * n_rows)
    return epochs * ((n_rows - n_val) * (4 * s + 2 * s_back) + n_val * 2 * s)


def _fit(variant, x, y):
    if variant == "reference":
        model = make_pipeline(StandardScaler(), MLPClassifier(
            solver="adam", alpha=1, random_state=1, max_iter=2000, early_stopping=True,
            hidden_layer_sizes=list(HIDDEN))).fit(x, y)
        return model, model[-1].n_iter_
    trainer, dtype, threads = VARIANTS[variant]
    if trainer == "fused":
        model = fit_fused(x, y, hidden=HIDDEN, dtype=dtype, threads=threads)
    else:
        model = mlp.fit_mlp(x, y, hidden=HIDDEN, dtype=dtype)
    return model, model.n_iter_


@pytest.mark.parametrize("variant", ["reference", *VARIANTS])
def test_fit(benchmark, problem, variant):
    name, x, y = problem
    _fit(variant, x[:2000], y[:2000])  # warm-up: compile or load the Numba cache
    benchmark.group = f"mlp fit {name} {x.shape[0]}x{x.shape[1]}"
    benchmark.extra_info["variant"] = variant
    epochs = []

    def run():
        model, n_iter = _fit(variant, x, y)
        epochs.append(n_iter)
        return model

    model = benchmark.pedantic(run, rounds=1, iterations=1)
    flops = fit_flops(x.shape[1], len(np.unique(y)), x.shape[0], epochs[-1])
    benchmark.extra_info["epochs"] = epochs[-1]
    benchmark.extra_info["gflop_s"] = flops / benchmark.stats.stats.median / 1e9
    benchmark.extra_info["dtype"] = "float32" if "f32" in variant else "float64"
    assert set(np.unique(model.predict(x[:1000]))) <= set(np.unique(y))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("threads", [1, None])
def test_gemm_peak(benchmark, dtype, threads):
    """The BLAS matmul peak (2048^2, best of 5) on 1 thread and on every thread."""
    n = 2048
    a, b = (np.random.default_rng(i).random((n, n)).astype(dtype) for i in (0, 1))
    label = "1 thread" if threads == 1 else "all threads"
    benchmark.group = "gemm peak 2048^2"
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(5))
        benchmark.pedantic(lambda: a @ b, rounds=1, iterations=1)
    benchmark.extra_info["variant"] = f"{dtype} {label}"
    benchmark.extra_info["dtype"] = dtype
    benchmark.extra_info["peak_gflop_s"] = 2 * n ** 3 / best / 1e9
    benchmark.extra_info["gflop_s"] = 2 * n ** 3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _data(n_classes, n=1500, seed=0):  # as tests/test_kernels.py
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (n_classes, 6))
    y = rng.integers(1, n_classes + 1, n).astype(np.uint8)
    x = centres[y - 1] + rng.normal(0, 1.5, (n, 6))
    return x, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_fused_epoch_matches_its_numpy_twin(n_classes, dtype):
    """Two epochs of the fused trainer (padded weights, one compiled call per epoch) against
    the NumPy twin with scikit-learn's formulas: the same weights and Adam moments."""
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
    run = fused_runner(params, x, y1h, 1.0, n_classes == 2)
    t = t_twin = 0
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(len(x))
        t = run(order, t)
        t_twin = fused_epoch_numpy(x, y1h, order, twin, ms, vs, t_twin, 1.0, n_classes == 2)
    assert t == t_twin == 2 * 6
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b in zip(params, twin):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_trainer_on_two_threads_gives_the_same_weights(dtype):
    """The two-thread step splits rows, not sums: bit-identical weights to one thread, and
    within 1e-12 (float64) of the package's BLAS trainer."""
    x, y = _data(3, n=1100)
    one = fit_fused(x, y, dtype=dtype, max_iter=4)
    two = fit_fused(x, y, dtype=dtype, max_iter=4, threads=2)
    blas = mlp.fit_mlp(x, y, dtype=dtype, max_iter=4)
    assert one.n_iter_ == two.n_iter_ == 4
    for a, b, c in zip(one.coefs + one.intercepts, two.coefs + two.intercepts,
                       blas.coefs + blas.intercepts):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-5)
    with pytest.raises(ValueError):
        fit_fused(x, y, threads=3)


def test_fused_trainer_follows_scikit_learn():
    x, y = _data(3)
    ref = make_pipeline(StandardScaler(), MLPClassifier(
        solver="adam", alpha=1, random_state=1, max_iter=2000, early_stopping=True,
        hidden_layer_sizes=[100, 60])).fit(x, y)
    ours = fit_fused(x, y)
    assert ours.n_iter_ == ref[-1].n_iter_
    for a, b in zip(ours.coefs, ref[-1].coefs_):
        np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
