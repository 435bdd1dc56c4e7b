"""The layout of the feature matrix both feature paths build: columns per scale and the
location feature's axes (shared by ``features`` and its compiled twin ``kernels.features``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: per channel, per sigma: location, blur, sobel(blur), two Hessian eigenvalues
FEATURES_PER_SCALE = 5
#: Doodler's location coordinate unit: scikit-image mapped int64 to float by 2**-63
_INT64_UNIT = 2.0 ** -63


def location_axes(shape, sigma, mode):
    """The location feature is ``sqrt(gx[col]**2 + gy[row]**2)``: returns (gx (W,), gy (H,))
    float64."""
    h, w = shape
    if mode == "raw":
        return np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    offset = 0.5 if mode == "blur-old" else 0.0
    # scipy filters axis 0 then axis 1; along an axis where the grid is constant every line
    # gives the same numbers, so a 1xW (resp. Hx1) grid gives the full grid's values bit for bit
    row = ((np.arange(w, dtype=np.float64) + offset) * _INT64_UNIT)[None, :]
    col = ((np.arange(h, dtype=np.float64) + offset) * _INT64_UNIT)[:, None]
    gx = ndimage.gaussian_filter(row, sigma, mode="nearest", truncate=4.0)
    gy = ndimage.gaussian_filter(col, sigma, mode="nearest", truncate=4.0)
    return gx[0], gy[:, 0]
