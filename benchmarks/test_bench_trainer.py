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

from conftest import REAL

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
    from doodle_engine import classifier, load
    from doodle_engine.eras import recipe as era_recipe
    from doodle_engine.features import era_features, sigma_schedule
    from doodle_engine.standardize import standardize
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
    from doodle_engine.kernels.mlp import fit_mlp
    if variant == "reference":
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        model = make_pipeline(StandardScaler(), MLPClassifier(
            solver="adam", alpha=1, random_state=1, max_iter=2000, early_stopping=True,
            hidden_layer_sizes=list(HIDDEN))).fit(x, y)
        return model, model[-1].n_iter_
    trainer, dtype, threads = VARIANTS[variant]
    model = fit_mlp(x, y, hidden=HIDDEN, dtype=dtype, trainer=trainer, threads=threads)
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
    import scipy.linalg.cython_blas  # noqa: F401  (both BLAS libraries loaded: both limited)
    from threadpoolctl import threadpool_limits
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
