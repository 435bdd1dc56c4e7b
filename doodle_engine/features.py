"""Stage 2: per-channel, per-scale features (location, blur, Sobel, Hessian eigenvalues).

This is the reference path, written with scikit-image and SciPy exactly as Doodler called
them; ``doodle_engine.kernels.features`` is the compiled twin checked against it.

Per channel, per sigma, five features in this order: location, blur, sobel(blur), and the
two Hessian eigenvalues (largest first).  Channels are the outer loop, sigmas the inner.
The matrix is (pixels x features), float64, rows in raster order.
"""

from __future__ import annotations

import itertools

import numpy as np
from skimage import feature, filters

from .eras import recipe as era_recipe
from .feature_layout import FEATURES_PER_SCALE, location_axes
from .kernels import features as kfeatures
from .modes import profile


def sigma_schedule(settings, n_doodled_classes, recipe=None):
    """The sigmas Doodler used: ``logspace(log2 min, log2 max, num, base 2)`` with ``num`` by
    the era's rule - the settings' n_sigmas, the number of doodled classes (doodler_engine
    passed it where n_sigmas belongs) or the log2 span + 1 - and the range from the settings
    unless the era fixed it."""
    r = era_recipe(recipe if recipe is not None else settings.era)
    smin, smax = r.sigma_range if r.sigma_range is not None else (settings.sigma_min,
                                                                  settings.sigma_max)
    if r.sigma_rule == "n_classes":
        num = n_doodled_classes
    elif r.sigma_rule == "n_sigmas":
        num = settings.n_sigmas
    else:
        num = int(np.log2(smax) - np.log2(smin) + 1)
    return np.logspace(np.log2(smin), np.log2(smax), num=num, base=2, endpoint=True)


def location_mode(era):
    """How the location feature was made in ``era`` (a name or a recipe).

    "raw": radius of the integer pixel grid (random-forest eras);
    "blur-old": Gaussian of the grid as scikit-image <= 0.18 converted it, i.e. (x + 0.5)
    in units of 2**-63 (Doodler 2021 - May 2022 ran on those versions);
    "blur-new": the same with x in units of 2**-63 (scikit-image >= 0.19, doodler_engine);
    "gxgy": the raw column and row indices as two features; None: no location feature."""
    return era_recipe(era).location


def zeroes_sobel_border(era):
    """Whether the Sobel feature of ``era`` has its first and last row and column set to 0.

    scikit-image <= 0.16 did that in ``filters.sobel`` (0.17 stopped); Doodler's pinned
    environment (``dashdoodler.yml``: scikit-image 0.16.2, from 2020-10 until 2022-06) ran the
    random-forest and 2021 MLP eras on it.  The 2022-05-04 files were made on 0.17/0.18 (they
    are reproduced exactly only without the zeroing and with the old location feature), and
    doodler_engine on current versions."""
    return era_recipe(era).sobel_border


def feature_recipe(era):
    """The scikit-image behaviours the features of ``era`` follow, in words (for ``info``)."""
    r = era_recipe(era)
    loc = {"raw": "raw pixel radius", "blur-old": "blurred grid, scikit-image <= 0.18 (x + 1/2)",
           "blur-new": "blurred grid, scikit-image >= 0.19", "gxgy": "raw column and row",
           None: "none"}[r.location]
    sob = ("Sobel border zeroed (scikit-image <= 0.16)" if r.sobel_border
           else "Sobel border kept (scikit-image >= 0.17)")
    kinds = [k for k, on in (("intensity", r.intensity), ("edges", r.edges),
                             ("texture", r.texture)) if on]
    text = f"location: {loc}; {sob}"
    if len(kinds) < 3:
        text += f"; kinds: {', '.join(kinds)}"
    if r.standardize != "adjusted-std":
        text += f"; standardization: {r.standardize}"
    return text


def location_feature(shape, sigma, mode):
    """(H, W) float64 location feature (for the raw grid: integer squares, exact in float64)."""
    gx, gy = location_axes(shape, sigma, mode)
    return np.sqrt(gx[None, :] ** 2 + gy[:, None] ** 2)


def scale_features(channel, sigma, loc, sobel_border=False):
    """The five features of one float32 channel at one sigma (list of 2-D arrays).
    ``sobel_border``: zero the Sobel feature's outer rows and columns (scikit-image <= 0.16)."""
    blur = filters.gaussian(channel, sigma=sigma, mode="nearest", truncate=4.0, preserve_range=True)
    edges = filters.sobel(blur)
    if sobel_border:
        edges[[0, -1], :] = 0
        edges[:, [0, -1]] = 0
    grads = np.gradient(blur)
    h_elems = [np.gradient(grads[a0], axis=a1)
               for a0, a1 in itertools.combinations_with_replacement(range(2), 2)]
    eig = feature.hessian_matrix_eigvals(h_elems)
    return [loc, blur, edges, eig[0], eig[1]]


def feature_matrix(image_std, sigmas, loc_mode, sobel_border=False):
    """(H*W, 3 * len(sigmas) * 5) float64 feature matrix of a standardized HxWx3 image."""
    h, w = image_std.shape[:2]
    n_ch = image_std.shape[2]
    out = np.empty((h * w, n_ch * len(sigmas) * FEATURES_PER_SCALE), np.float64)
    locs = [location_feature((h, w), s, loc_mode) for s in sigmas]
    col = 0
    for c in range(n_ch):
        channel = image_std[..., c].astype(np.float32)
        for s, loc in zip(sigmas, locs):
            for f in scale_features(channel, s, loc, sobel_border):
                out[:, col] = f.ravel()
                col += 1
    return out


def _column_plan(n_channels, n_sigmas, recipe):
    """Which columns of the full (location, blur, Sobel, eig0, eig1) matrix the era kept, in
    order; -1 and -2 stand for the raw column and row grids ("gxgy", March 2021), which
    Doodler put at the start of every (channel, sigma) group."""
    keep = [recipe.location not in (None, "gxgy"), recipe.intensity, recipe.edges,
            recipe.texture, recipe.texture]
    cols = []
    for c in range(n_channels):
        for s in range(n_sigmas):
            if recipe.location == "gxgy":
                cols += [-1, -2]
            base = (c * n_sigmas + s) * FEATURES_PER_SCALE
            cols += [base + f for f in range(FEATURES_PER_SCALE) if keep[f]]
    return cols


def era_features(image_std, sigmas, recipe, mode="exact"):
    """The feature matrix of ``recipe``'s era: per channel, per sigma, the location feature
    in the era's form and the feature kinds it had on (blur, Sobel, Hessian eigenvalues).
    ``mode`` (a name or a :class:`doodle_engine.modes.ModeProfile`) "reference" computes it
    with scikit-image; otherwise the compiled twin (float32 columns in "fast" and "fastest")."""
    prof = profile(mode)
    loc = recipe.location if recipe.location not in (None, "gxgy") else "raw"
    border = recipe.sobel_border
    if not prof.compiled:
        full = feature_matrix(image_std, sigmas, loc, border)
    else:
        dtype = np.dtype(prof.dtype).type
        full = kfeatures.feature_matrix(image_std, sigmas, loc, dtype, border)
    cols = _column_plan(image_std.shape[2], len(sigmas), recipe)
    if cols == list(range(full.shape[1])):
        return full
    h, w = image_std.shape[:2]
    out = np.empty((full.shape[0], len(cols)), full.dtype)
    grids = {-1: np.tile(np.arange(w, dtype=full.dtype), h),
             -2: np.repeat(np.arange(h, dtype=full.dtype), w)}
    for j, c in enumerate(cols):
        out[:, j] = grids[c] if c < 0 else full[:, c]
    return out
