"""Stage 1: Doodler's image standardization."""

import numpy as np


def rescale(values, lo, hi):
    """Min-max rescale to [lo, hi] with Doodler's exact float operations.

    A constant array divides by zero: the result is NaN, as in Doodler."""
    m = values.min()
    big_m = values.max()
    with np.errstate(divide="ignore", invalid="ignore"):
        return (hi - lo) * (values - m) / (big_m - m) + lo


def standardize(image):
    """(img - mean) / max(std, 1/sqrt(H*W)) over the whole image, rescaled to [0, 1], float64.

    A 1-band image comes back as 3 identical bands; a 4-band image uses its first three.
    A constant image has no range and comes back all zeros (Doodler produced NaN there and
    then failed; see README)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] > 3:
        img = img[..., :3]  # Doodler segmented the RGB bands of a 4-band image
    n = img.shape[0] * img.shape[1]
    s = np.maximum(np.std(img), 1.0 / np.sqrt(n))
    m = np.mean(img)
    out = rescale((img - m) / s, 0, 1)
    if not np.isfinite(out).all():
        out = np.where(np.isfinite(out), out, 0.0)
    if out.ndim == 2:
        out = np.dstack((out, out, out))
    elif out.shape[2] == 1:
        out = np.dstack((out[..., 0],) * 3)
    return out
