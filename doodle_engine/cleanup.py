"""Stage 4: Doodler's clean-up of the classifier label (2021 eras).

Reference implementations on NumPy/SciPy; ``doodle_engine.kernels`` holds compiled twins.
Labels here are 1-based (0 = no class), as inside Doodler."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import NothingToInpaint

# 4-connectivity
_FOUR = np.array([[False, True, False], [True, True, True], [False, True, False]])
_INPAINT_KERNEL = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]])


def fill_small_holes(mask, max_hole):
    """Fill 4-connected background regions smaller than ``max_hole`` pixels (touching the
    border or not), as scikit-image <= 0.18 ``remove_small_holes(mask, max_hole)`` did."""
    holes, n = ndimage.label(~mask, structure=_FOUR)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(holes.ravel())
    small = sizes < max_hole
    small[0] = False
    return mask | small[holes]


def filter_one_hot(label, blobsize):
    """Per class 1..max: fill small holes; then the first class set at each pixel wins.

    (Doodler also removed small objects first, but then filled holes starting again from
    the unfiltered mask, so only the hole filling counts.)"""
    kmax = int(label.max())
    out = np.zeros(label.shape, np.int64)
    taken = np.zeros(label.shape, bool)
    for k in range(1, kmax + 1):
        filled = fill_small_holes(label == k, blobsize)
        new = filled & ~taken
        out[new] = k
        taken |= filled
    out[~taken] = 1  # argmax of an all-zero row is plane 0
    return out


def filter_one_hot_spatial(label, distance):
    """Zero the pixels near class edges, with Doodler's exact rule.

    Per class plane: distance to the nearest pixel outside the class; pixels closer than
    ``distance`` leave the plane; a counter adds 1 for every plane where the pixel lies
    within ``distance`` (outside pixels included).  The label is the first plane still set
    (plane 0 when none), and pixels whose counter equals the largest label become 0."""
    kmax = int(label.max())
    count = np.zeros(label.shape, np.int64)
    out = np.zeros(label.shape, np.int64)
    taken = np.zeros(label.shape, bool)
    for k in range(1, kmax + 1):
        plane = label == k
        d = ndimage.distance_transform_edt(plane)
        keep = plane & ~(d < distance)
        out[keep & ~taken] = k
        taken |= keep
        count += d <= distance
    out[~taken] = 1
    out[count == out.max()] = 0
    return out


def inpaint_nans(im):
    """Fill NaNs by repeated 3x3 neighbour averaging (symmetric boundary), Doodler's loop."""
    im = np.array(im, dtype=np.float64)
    nans = np.isnan(im)
    if nans.all():
        raise NothingToInpaint("every pixel is NaN: nothing to in-paint from")
    from scipy.signal import convolve2d  # noqa: PLC0415  0.5 s to import; the compiled twin runs by default
    while nans.any():
        im[nans] = 0
        valid = convolve2d(~nans, _INPAINT_KERNEL, mode="same", boundary="symm")
        summed = convolve2d(im, _INPAINT_KERNEL, mode="same", boundary="symm")
        has = valid > 0
        summed[has] = summed[has] / valid[has]
        summed[~has] = np.nan
        summed[~nans] = im[~nans]
        im = summed
        nans = np.isnan(im)
    return im


def inpaint_zeros(label):
    """0 -> NaN -> in-paint -> truncate to uint8, as Doodler did."""
    f = label.astype(np.float64)
    f[f == 0] = np.nan
    return inpaint_nans(f).astype(np.uint8)


def zero_unknown(label, known):
    """Set to 0 the labels not among ``known`` (in place, returns label)."""
    for k in np.setdiff1d(np.unique(label), known):
        label[label == k] = 0
    return label


def median_disk(label, radius):
    """scikit-image's rank ``median(label, disk(radius))`` of a uint8 label (the 2020-21
    apps' median filter): each pixel gets the lower median of the label values in the disk
    around it, the disk cut at the image border."""
    from skimage.filters.rank import median  # noqa: PLC0415  reference path; slow to import
    from skimage.morphology import disk  # noqa: PLC0415
    return median(np.asarray(label).astype(np.uint8), disk(int(radius)))
