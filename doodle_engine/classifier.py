"""Stage 3: the pixel classifier trained on doodled pixels, era by era."""

from __future__ import annotations

import numpy as np

from .eras import recipe as era_recipe
from .errors import DoodleError
from .kernels import forest as kforest
from .kernels import mlp as kmlp
from .modes import FAST, MODES, profile  # noqa: F401  (MODES: the names, kept here too)

#: Doodler's cap on training rows (MLP eras)
MLP_MAX_SAMPLES = 100_000
#: training rows kept in mode="fast" (evenly spaced, as Doodler's cap; see modes.FAST)
FAST_MAX_SAMPLES = FAST.max_rows


def row_cap(recipe, max_samples=MLP_MAX_SAMPLES):
    """(threshold, rows kept) of the era's cap on training rows, or None.  MLP eras keep
    ``max_samples`` (Doodler's 100,000, or fewer in fast mode)."""
    if recipe.classifier == "mlp":
        return (max_samples, max_samples)
    return recipe.row_cap


def training_rows(features, doodles, settings, max_samples=MLP_MAX_SAMPLES, recipe=None,
                  extra_rows=None):
    """(X, y, classes_seen): doodled rows in raster order, strided by the classifier
    downsample factor, then capped as the era did (above a threshold, that many evenly spaced
    indices: df7fccf kept 500,000 of more than 200,000, so rows repeat).  ``classes_seen`` is
    taken after the stride and before the cap, as Doodler took it.  ``extra_rows`` (X, y):
    rows of earlier images of a session, put before this image's rows and capped with them
    (b02840d .. df7fccf pooled a session's rows so)."""
    r = era_recipe(recipe if recipe is not None else settings.era)
    flat = doodles.ravel()
    idx = np.flatnonzero(flat)[:: settings.classifier_downsample]
    y = flat[idx]
    seen = np.unique(y)
    cap = row_cap(r, max_samples)
    if extra_rows is not None:
        x = np.concatenate([np.asarray(extra_rows[0], features.dtype), features[idx]])
        y = np.concatenate([np.asarray(extra_rows[1], flat.dtype), y])
        if cap is not None and len(y) > cap[0]:
            keep = np.round(np.linspace(0, len(y) - 1, cap[1])).astype(int)
            x, y = x[keep], y[keep]
        return x, y, seen
    if cap is not None and idx.size > cap[0]:
        idx = idx[np.round(np.linspace(0, idx.size - 1, cap[1])).astype(int)]
    return features[idx], flat[idx], seen


def n_trees(recipe, settings):
    """The forest size: a fixed number, the settings' n_estimators, or twice it (from
    b02840d Doodler added n_estimators to a fresh forest's own n_estimators before fitting)."""
    if recipe.trees == "settings":
        return int(settings.n_estimators)
    if recipe.trees == "2x settings":
        return 2 * int(settings.n_estimators)
    return int(recipe.trees)


def make_classifier(settings, seed=0, n_jobs=1, recipe=None, trees=None):
    """The era's scikit-learn classifier, as Doodler built it (scikit-learn is loaded here,
    on first use: the compiled MLP of exact and fast mode never needs it)."""
    from sklearn import ensemble, neural_network, pipeline, preprocessing  # noqa: PLC0415
    r = era_recipe(recipe if recipe is not None else settings.era)
    if r.classifier == "rf":
        return ensemble.RandomForestClassifier(
            n_estimators=trees or n_trees(r, settings), n_jobs=n_jobs,
            class_weight=r.class_weight, min_samples_split=r.min_samples_split,
            random_state=seed)
    mlp = neural_network.MLPClassifier(solver="adam", alpha=r.mlp_alpha, random_state=1,
                                       max_iter=r.mlp_max_iter, early_stopping=True,
                                       hidden_layer_sizes=list(r.mlp_hidden))
    return pipeline.make_pipeline(preprocessing.StandardScaler(), mlp)


def fit(features, doodles, settings, seed=0, n_jobs=1, path=None, mode="exact", recipe=None,
        extra_rows=None, trees=None):
    """Train the era's classifier on the doodled rows; returns (model, classes seen).

    Session replay (``doodle_engine.session``): ``extra_rows`` (X, y) are earlier images' rows
    pooled with this image's (see :func:`training_rows`); ``trees`` overrides the forest size
    (Doodler's saved forest grew by n_estimators per image)."""
    prof = profile(mode, path)
    r = era_recipe(recipe if recipe is not None else settings.era, path)
    x, y, seen = training_rows(features, doodles, settings, max_samples=int(prof.max_rows),
                               recipe=r, extra_rows=extra_rows)
    compiled_mlp = prof.compiled and r.classifier == "mlp"
    try:
        if compiled_mlp:
            if len(np.unique(y)) < 2:
                raise ValueError("only one class among the training rows")
            dtype = np.dtype(prof.dtype).type
            clf = kmlp.fit_mlp(x, y, dtype=dtype, hidden=tuple(r.mlp_hidden), alpha=r.mlp_alpha,
                               max_iter=r.mlp_max_iter)
        else:
            clf = make_classifier(settings, seed=seed, n_jobs=n_jobs, recipe=r, trees=trees)
            clf.fit(x, y)
            if prof.compiled and r.classifier == "rf":
                clf = kforest.PackedForest(clf)  # compiled inference over the same trees
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
