"""Stage 5: fully connected CRF refinement with pydensecrf semantics, as Doodler called it.

Both functions take the *standardized* image (floats in [0, 1]) as Doodler did, decimate
image and label by slicing ``[::crf_downsample]``, run 10 mean-field iterations with a
Gaussian pairwise term (sxy=3, compat=3) and a bilateral one (theta, colour scale
``1 + 5 * max(image.shape) / 3000``, compat=mu), and resize the argmax back with
nearest-neighbour interpolation.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

from .standardize import rescale


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
        import pydensecrf.utils as dutils
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("pydensecrf is not installed (pip install pydensecrf2)") from exc
    return dcrf, dutils


def colour_scale(image_shape):
    return 1 + (5 * (np.array(image_shape).max() / 3000))


def _mean_field(unary, image_small, n, theta, mu, scale):
    dcrf, dutils = _densecrf()
    h, w = image_small.shape[:2]
    d = dcrf.DenseCRF2D(h, w, n)  # Doodler passed (H, W): pydensecrf reads it as (W, H)
    d.setUnaryEnergy(np.ascontiguousarray(unary))
    d.addPairwiseGaussian(sxy=(3, 3), compat=3, kernel=dcrf.DIAG_KERNEL,
                          normalization=dcrf.NORMALIZE_SYMMETRIC)
    feats = dutils.create_pairwise_bilateral(sdims=(theta, theta), schan=(scale, scale, scale),
                                             img=image_small, chdim=2)
    d.addPairwiseEnergy(feats, compat=mu, kernel=dcrf.DIAG_KERNEL,
                        normalization=dcrf.NORMALIZE_SYMMETRIC)
    q = d.inference(10)
    return np.argmax(q, axis=0).reshape((h, w)).astype(np.uint8) + 1


def resize_nearest(label_small, shape):
    """scikit-image's order-0 resize as Doodler called it: float in [0, 1] (uint8 / 255)."""
    return resize(label_small, shape, order=0, anti_aliasing=False)


def crf_from_labels(label, image, theta, mu, downsample, gt_prob):
    """Doodler's ``crf_refine`` (2021 - May 2022).  Returns (uint8 label, n).

    ``n`` counts labels as Doodler did: when the full label contains 0, ``max - min`` of the
    decimated label, else the labels are shifted to start at 1 and ``n = max - min + 1``.
    The CRF result is min-max rescaled back to the decimated label's range and truncated."""
    _, dutils = _densecrf()
    h0, w0 = label.shape
    has_zero = np.unique(label)[0] == 0
    scale = colour_scale(image.shape)
    img = image[::downsample, ::downsample, :]
    lab = label[::downsample, ::downsample]
    orig_mn, orig_mx = lab.min(), lab.max()
    if has_zero:
        n = orig_mx - orig_mn
    else:
        lab = (lab - orig_mn) + 1
        n = (lab.max() - lab.min()) + 1
    n = int(n)
    if n < 2:
        # one label left after decimation: Doodler divided by n - 1 = 0 here, its CRF gave a
        # constant that rescaled to NaN -> 0, and its in-painting loop never ended.  The CRF
        # cannot change a one-label field, so the label is returned unchanged.
        return label.astype(np.uint8).copy(), max(n, 1)
    unary = dutils.unary_from_labels(lab.astype("int"), n, gt_prob=gt_prob)
    result = _mean_field(unary, img, n, theta, mu, scale)
    result = resize_nearest(result, (h0, w0))
    with np.errstate(invalid="ignore"):
        return _to_uint8(rescale(result, orig_mn, orig_mx)), n


def _to_uint8(values):
    """float -> uint8 by truncation, NaN (a constant CRF result rescaled) -> 0."""
    values = np.where(np.isfinite(values), values, 0)
    return values.astype(np.uint8)


def crf_from_onehot(onehot, image, theta, mu, downsample):
    """doodler_engine's ``crf_refine``: unary from a (H, W, n) one-hot 'softmax'.
    Returns labels 1..n (rescaled to that range, as the engine did)."""
    _, dutils = _densecrf()
    h0, w0, n = onehot.shape
    scale = colour_scale(image.shape)
    img = image[::downsample, ::downsample, :]
    lab = onehot[::downsample, ::downsample]
    unary = dutils.unary_from_softmax(np.ascontiguousarray(np.rollaxis(lab, -1, 0)))
    result = _mean_field(unary, img, n, theta, mu, scale)
    result = resize_nearest(result, (h0, w0))
    return _to_uint8(rescale(result, 1, n))


def crf_from_doodles(doodles, image, n, theta, mu, downsample):
    """doodler_engine's fall-back: unary from the doodles with gt_prob 0.51.
    Returns labels rescaled to 1..(number of distinct doodle values, 0 included)."""
    _, dutils = _densecrf()
    h0, w0 = doodles.shape
    l_unique = len(np.unique(doodles))
    scale = colour_scale(image.shape)
    img = image[::downsample, ::downsample, :]
    lab = doodles[::downsample, ::downsample]
    unary = dutils.unary_from_labels(lab.astype("int"), n, gt_prob=0.51)
    result = _mean_field(unary, img, n, theta, mu, scale)
    result = resize_nearest(result, (h0, w0))
    return _to_uint8(rescale(result, 1, l_unique))
