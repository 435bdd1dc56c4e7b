"""Stage 3: the pixel classifier trained on doodled pixels, era by era."""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

from .eras import recipe as era_recipe
from .errors import DoodleError
from .kernels import forest as kforest
from .kernels import mlp as kmlp
from .modes import profile

#: Doodler's cap on training rows (MLP eras)
MLP_MAX_SAMPLES = 100_000


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


def schedule(recipe, mode="exact"):
    """The MLP trainer's walk (minibatch, step size, epochs, early stop) for an era's recipe
    under a mode: Doodler's (scikit-learn's defaults) in exact and reference mode."""
    prof = profile(mode)
    epochs = recipe.mlp_max_iter
    if prof.max_epochs is not None:
        epochs = min(epochs, int(prof.max_epochs))
    return kmlp.Schedule(batch=int(prof.batch), learning_rate=float(prof.learning_rate),
                         max_iter=int(epochs), tol=float(prof.stop_tol),
                         patience=int(prof.stop_patience))


def make_classifier(settings, seed=0, threads=1, recipe=None, trees=None, mode="exact"):
    """The era's scikit-learn classifier, as Doodler built it (scikit-learn is loaded here,
    on first use: the compiled MLP of exact and fast mode never needs it); the MLP walks as
    the mode's :func:`schedule` says (scikit-learn's defaults unless the mode turns them)."""
    from sklearn import ensemble, neural_network, pipeline, preprocessing  # noqa: PLC0415
    r = era_recipe(recipe if recipe is not None else settings.era)
    if r.classifier == "rf":
        return ensemble.RandomForestClassifier(
            n_estimators=trees or n_trees(r, settings), n_jobs=threads,
            class_weight=r.class_weight, min_samples_split=r.min_samples_split,
            random_state=seed)
    plan = schedule(r, mode)
    mlp = neural_network.MLPClassifier(solver="adam", alpha=r.mlp_alpha, random_state=1,
                                       max_iter=plan.max_iter, early_stopping=True,
                                       hidden_layer_sizes=list(r.mlp_hidden),
                                       # "auto" is min(200, rows): Doodler's, and no warning
                                       batch_size="auto" if plan.batch == kmlp.BATCH else plan.batch,
                                       learning_rate_init=plan.learning_rate,
                                       tol=plan.tol, n_iter_no_change=plan.patience)
    return pipeline.make_pipeline(preprocessing.StandardScaler(), mlp)


@contextlib.contextmanager
def ctrl_c_kept():
    """A KeyboardInterrupt raised by Ctrl-C during the block is raised again when the block
    ends, if something inside swallowed it: scikit-learn's MLP catches it, warns "Training
    interrupted by user" and returns the part-trained model, whose label would pass for a
    rebuilt one."""
    before = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(before):
        yield  # Ctrl-C reaches only the main thread, and SIG_IGN / SIG_DFL never swallow it
        return
    hit = []

    def held(signum, frame):
        try:
            before(signum, frame)
        except KeyboardInterrupt:  # a handler of the caller's own that does not raise stays so
            hit.append(signum)
            raise

    signal.signal(signal.SIGINT, held)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if hit:
        raise KeyboardInterrupt


def fit(features, doodles, settings, seed=0, threads=1, path=None, mode="exact", recipe=None,
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
                               schedule=schedule(r, prof))
        else:
            clf = make_classifier(settings, seed=seed, threads=threads, recipe=r, trees=trees,
                                  mode=prof)
            with ctrl_c_kept():
                clf.fit(x, y)
            if prof.compiled and r.classifier == "rf":
                clf = kforest.PackedForest(clf)  # compiled inference over the same trees
    except ValueError as exc:
        # e.g. MLP early stopping cannot hold out a validation pixel of every class
        raise DoodleError(path, f"too few doodled pixels to train the classifier "
                                f"({len(y)} samples after the x{settings.classifier_downsample} "
                                f"stride): {exc}") from None
    return clf, seen


def predict_undoodled(clf, features, doodles, chunk=262_144, stride=1):
    """2021 eras: doodled pixels keep their doodle, the others get ``clf.predict``
    (``stride`` k > 1: the classes of the probabilities predicted on every k-th pixel of every
    k-th row and interpolated in between, :func:`strided_bands`)."""
    flat = doodles.ravel()
    out = flat.copy()
    idx = np.flatnonzero(flat == 0)
    if idx.size and stride > 1:
        best = np.empty(flat.size, np.intp)
        for s, e, proba in strided_bands(clf, features, doodles.shape, stride):
            best[s:e] = np.argmax(proba, axis=1)
        out[idx] = clf.classes_[best[idx]]
        return out.reshape(doodles.shape)
    if idx.size and getattr(clf, "gathers_rows", False):
        out[idx] = clf.predict(features, rows=idx)  # compiled MLP: gathers rows per chunk
        return out.reshape(doodles.shape)
    for start in range(0, idx.size, chunk):
        part = idx[start:start + chunk]
        out[part] = clf.predict(features[part])
    return out.reshape(doodles.shape)


def predict_proba_all(clf, features, chunk=262_144, shape=None, stride=1):
    """doodler_engine: class probabilities for every pixel (pixels x classes); ``stride`` k > 1
    (with the image's ``shape``): predicted on every k-th pixel and row, interpolated."""
    if stride > 1:
        parts = [proba for _, _, proba in strided_bands(clf, features, shape, stride)]
        return np.concatenate(parts, axis=0)
    parts = [clf.predict_proba(features[s:s + chunk]) for s in range(0, features.shape[0], chunk)]
    return np.concatenate(parts, axis=0)


def _proba_rows(clf, features, rows, chunk=262_144):
    """Class probabilities of the rows ``rows`` of ``features``, in chunks."""
    if getattr(clf, "gathers_rows", False):
        return clf.predict_proba(features, rows=rows)
    parts = [clf.predict_proba(features[rows[s:s + chunk]]) for s in range(0, rows.size, chunk)]
    return np.concatenate(parts, axis=0)


def stride_grid(n, k):
    """Every k-th index of ``range(n)``, and the last index (so nothing is extrapolated)."""
    grid = np.arange(0, n, k)
    return grid if grid[-1] == n - 1 else np.append(grid, n - 1)


def _interpolation(grid, n):
    """For each index of ``range(n)``: the grid points at or below and above it, and the
    weight of the upper one (linear in the distance)."""
    pos = np.arange(n)
    lo = np.clip(np.searchsorted(grid, pos, side="right") - 1, 0, len(grid) - 1)
    hi = np.minimum(lo + 1, len(grid) - 1)
    span = (grid[hi] - grid[lo]).astype(np.float64)
    weight = np.divide(pos - grid[lo], span, out=np.zeros(n), where=span > 0)
    return lo, hi, weight


def strided_bands(clf, features, shape, k, block_bytes=32 << 20):
    """(first pixel, end pixel, probabilities) of bands of rows of an image of ``shape``: the
    classifier predicts on the grid :func:`stride_grid` of rows and columns and the
    probabilities are interpolated bilinearly in between (grid pixels keep their own)."""
    h, w = shape
    rows_g, cols_g = stride_grid(h, k), stride_grid(w, k)
    rows = (rows_g[:, None] * w + cols_g[None, :]).ravel()
    grid = _proba_rows(clf, features, rows).reshape(len(rows_g), len(cols_g), -1)
    r_lo, r_hi, r_wt = _interpolation(rows_g, h)
    c_lo, c_hi, c_wt = _interpolation(cols_g, w)
    k_cls = grid.shape[-1]
    step = max(1, block_bytes // (w * k_cls * 8))
    wc = c_wt[None, :, None]
    for s in range(0, h, step):
        e = min(s + step, h)
        wr = r_wt[s:e, None, None]
        band = grid[r_lo[s:e]] * (1 - wr) + grid[r_hi[s:e]] * wr
        yield s * w, e * w, (band[:, c_lo] * (1 - wc) + band[:, c_hi] * wc).reshape(-1, k_cls)
