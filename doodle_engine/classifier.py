"""Stage 3: the pixel classifier trained on doodled pixels, era by era."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .errors import DoodleError

#: Doodler's cap on training rows (MLP eras)
MLP_MAX_SAMPLES = 100_000
#: training rows kept in mode="fast" (evenly spaced, as Doodler's cap)
FAST_MAX_SAMPLES = 40_000
#: "reference": scikit-learn's trainer (the straightforward path); "exact": the compiled
#: reimplementation of the same algorithm (same labels); "fast": compiled, float32, fewer rows
MODES = ("exact", "fast", "reference")


def training_rows(features, doodles, settings, max_samples=MLP_MAX_SAMPLES):
    """(X, y, classes_seen): doodled rows in raster order, strided by the classifier
    downsample factor, then capped as the era did.  ``classes_seen`` is taken after the
    stride and before the cap, as Doodler took it."""
    flat = doodles.ravel()
    idx = np.flatnonzero(flat)[:: settings.classifier_downsample]
    y = flat[idx]
    seen = np.unique(y)
    if settings.era.startswith("rf"):
        # df7fccf: above 200,000 rows, 500,000 evenly spaced indices (so rows repeat)
        if idx.size > 200_000:
            idx = idx[np.round(np.linspace(0, idx.size - 1, 500_000)).astype(int)]
    elif idx.size > max_samples:
        idx = idx[np.round(np.linspace(0, idx.size - 1, max_samples)).astype(int)]
    return features[idx], flat[idx], seen


def make_classifier(settings, seed=0, n_jobs=1):
    if settings.era.startswith("rf"):
        # Doodler added n_estimators to a fresh forest's own n_estimators before fitting
        return RandomForestClassifier(n_estimators=2 * settings.n_estimators, n_jobs=n_jobs,
                                      class_weight="balanced_subsample", min_samples_split=5,
                                      random_state=seed)
    return make_pipeline(StandardScaler(),
                         MLPClassifier(solver="adam", alpha=1, random_state=1, max_iter=2000,
                                       early_stopping=True, hidden_layer_sizes=[100, 60]))


def fit(features, doodles, settings, seed=0, n_jobs=1, path=None, mode="exact"):
    """Train the era's classifier on the doodled rows; returns (model, classes seen)."""
    if mode not in MODES:
        raise DoodleError(path, f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    cap = FAST_MAX_SAMPLES if mode == "fast" else MLP_MAX_SAMPLES
    x, y, seen = training_rows(features, doodles, settings, max_samples=cap)
    compiled = mode != "reference" and not settings.era.startswith("rf")
    try:
        if compiled:
            from .kernels.mlp import fit_mlp
            if len(np.unique(y)) < 2:
                raise ValueError("only one class among the training rows")
            dtype = np.float32 if mode == "fast" else np.float64
            clf = fit_mlp(x, y, dtype=dtype)
        else:
            clf = make_classifier(settings, seed=seed, n_jobs=n_jobs)
            clf.fit(x, y)
            if mode != "reference" and isinstance(clf, RandomForestClassifier):
                from .kernels.forest import PackedForest
                clf = PackedForest(clf)  # compiled inference over the same trees
    except ValueError as exc:
        # e.g. MLP early stopping cannot hold out a validation pixel of every class
        raise DoodleError(path, f"too few doodled pixels to train the classifier "
                                f"({len(y)} samples after the x{settings.classifier_downsample} "
                                f"stride): {exc}") from None
    return clf, seen


def predict_undoodled(clf, features, doodles, chunk=262_144):
    """2021 eras: doodled pixels keep their doodle, the others get ``clf.predict``."""
    flat = doodles.ravel()
    out = flat.copy()
    idx = np.flatnonzero(flat == 0)
    if idx.size and getattr(clf, "gathers_rows", False):
        out[idx] = clf.predict(features, rows=idx)  # compiled MLP: gathers rows per chunk
        return out.reshape(doodles.shape)
    for start in range(0, idx.size, chunk):
        part = idx[start:start + chunk]
        out[part] = clf.predict(features[part])
    return out.reshape(doodles.shape)


def predict_proba_all(clf, features, chunk=262_144):
    """doodler_engine: class probabilities for every pixel (pixels x classes)."""
    parts = [clf.predict_proba(features[s:s + chunk]) for s in range(0, features.shape[0], chunk)]
    return np.concatenate(parts, axis=0)
