"""Stage 1: Doodler's image standardization, era by era, and the image its CRF saw."""

import numpy as np

from .eras import CONSTRAINTS

#: standardization kinds (``Recipe.standardize``)
KINDS = CONSTRAINTS["standardize"].values


def rescale(values, lo, hi):
    """Min-max rescale to [lo, hi] with Doodler's exact float operations.

    A constant array divides by zero: the result is NaN, as in Doodler."""
    m = values.min()
    big_m = values.max()
    with np.errstate(divide="ignore", invalid="ignore"):
        return (hi - lo) * (values - m) / (big_m - m) + lo


def _three_bands(img):
    """A 1-band image as 3 identical bands; a 4-band image's first three (Doodler segmented
    the RGB bands)."""
    if img.ndim == 2:
        return np.dstack((img, img, img))
    if img.shape[2] == 1:
        return np.dstack((img[..., 0],) * 3)
    return img[..., :3]


def standardize(image, kind="adjusted-std"):
    """The image the features are computed from.

    "adjusted-std" (May 2021 on): (img - mean) / max(std, 1/sqrt(H*W)) over the whole image,
    rescaled to [0, 1], float64.  A constant image has no range and comes back all zeros
    (Doodler produced NaN there and then failed; see README).
    "sqrt" (fb5461e, May 2021): (img - mean) / max(sqrt(img), 1/sqrt(N)) element by element,
    N counting the bands too, no rescale; numpy 1.x computed it in float16 (the square root
    of uint8 is float16 and a float scalar did not widen it) - reproduced.
    "none" (2020 - April 2021): scikit-image's ``img_as_float32`` of the uint8 image, i.e.
    ``img * (1/255)`` in float32.
    A 1-band image comes back as 3 identical bands; a 4-band image uses its first three."""
    img = _three_bands(np.asarray(image))
    if kind == "none":
        if img.dtype == np.uint8:
            return np.multiply(img, 1.0 / 255, dtype=np.float32)
        return img.astype(np.float32)
    if kind == "sqrt":
        n = img.size
        f16 = img.astype(np.float16)
        s = np.maximum(np.sqrt(f16), np.float16(1.0 / np.sqrt(n)))
        m = np.float16(np.mean(img))
        return (f16 - m) / s
    if kind != "adjusted-std":
        raise ValueError(f"unknown standardization {kind!r}; choose one of {', '.join(KINDS)}")
    n = img.shape[0] * img.shape[1]
    s = np.maximum(np.std(img), 1.0 / np.sqrt(n))
    m = np.mean(img)
    out = rescale((img - m) / s, 0, 1)
    if not np.isfinite(out).all():
        out = np.where(np.isfinite(out), out, 0.0)
    return out


def colour_indices(rgb):
    """October 2020's 3 extra CRF bands from RGB (0..255), as Doodler's ``expand_img`` wrote
    them (its operator precedence included: ``1 + (G - R) / 1 + (G + R - B)`` etc.): VARI,
    NEXG, NGRDI, each log-transformed (non-finite or 0 -> 0.01 first) and rescaled to 0..255;
    the 6 bands truncated to integers."""
    rgb = np.asarray(rgb)
    r, g, b = (rgb[..., i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vari = 1 + (g - r) / 1 + (g + r - b)
        nexg = 1 + (2 * g - r - b) / 1 + (g + r + b)
        ngrdi = 1 + (g - r) / 1 + (g + r)
        out = []
        for band in (vari, nexg, ngrdi):
            band = np.array(band, dtype=np.float64)
            band[~np.isfinite(band)] = 1e-2
            band[band == 0] = 1e-2
            out.append(rescale(np.log(band), 0, 255))
    return np.dstack((r, g, b, *out)).astype(np.int64)


def crf_image(image, standardized, recipe):
    """The image the era's CRF saw: the standardized image, or the raw one (before May 2021),
    with the colour-index bands (October 2020) and / or the location channels appended
    (March 2021: raw column and row; April - May 2021: their radius)."""
    if recipe.crf_image == "standardized" and recipe.crf_bands == "rgb" and not recipe.crf_location:
        return standardized
    if recipe.crf_image == "raw":
        img = _three_bands(np.asarray(image))
        img = colour_indices(img) if recipe.crf_bands == "rgb+indices" else img
    else:
        img = standardized
    if recipe.crf_location:
        h, w = img.shape[:2]
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        extra = (gx, gy) if recipe.crf_location == "gxgy" else (np.sqrt(gx ** 2 + gy ** 2),)
        img = np.dstack((img,) + extra)
    return img
