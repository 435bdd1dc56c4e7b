"""Stage 5: fully connected CRF refinement with pydensecrf semantics, as Doodler called it.

Both functions take the *standardized* image (floats in [0, 1]) as Doodler did, decimate
image and label by slicing ``[::crf_downsample]``, run 10 mean-field iterations with a
Gaussian pairwise term (sxy=3, compat=3) and a bilateral one (theta, colour scale
``1 + 5 * max(image.shape) / 3000``, compat=mu), and resize the argmax back with
nearest-neighbour interpolation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

try:
    import pydensecrf.densecrf as dcrf
except ImportError:  # pragma: no cover - depends on the install; the numba backend needs no C++
    dcrf = None

from .errors import DoodleError
from .kernels import crf as kcrf
from .settings import check_crf_params
from .standardize import rescale


@dataclass(frozen=True)
class Params:
    """The CRF constants of one run: the settings' sliders and the era's fixed values.

    ``schan`` None means Doodler's colour scale ``1 + 5 max(image.shape) / 3000``;
    ``upsample``: "nearest" (order-0 resize) or "bilinear-aa" (order 1 with anti-aliasing,
    then min-max rescaled, October 2020); ``label_shift``: "if-no-zero" (shift to start at 1
    unless the label holds 0, 2021 apps), "always" (shift to start at 1, 2020 - May 2021) or
    "none" (labels used as they are, October 2020); ``final_rescale``: the CRF label is
    min-max rescaled to [orig_mn, orig_mx] ("orig_mn", df7fccf on) or [1, orig_mx] ("one",
    earlier) of the decimated label.  ``iterations`` and ``stop_when_stable`` are the mode's
    mean-field knobs (Doodler: 10 iterations, no early stop; see :mod:`doodle_engine.modes`)."""

    theta: float
    mu: float
    downsample: int
    gt_prob: float
    sxy: float = 3.0
    gauss_compat: float = 3.0
    schan: float | None = None
    schan_bands: int | None = None
    upsample: str = "nearest"
    argmax_plus_one: bool = True
    label_shift: str = "if-no-zero"
    final_rescale: str = "orig_mn"
    iterations: int = 10
    stop_when_stable: bool = False


#: "pydensecrf": the C++ library Doodler called; "numba": doodle_engine's compiled
#: permutohedral lattice with the same semantics (``kernels/crf.py``), which needs no C++ build
BACKENDS = ("pydensecrf", "numba")


def pydensecrf_available():
    return dcrf is not None


def _densecrf():
    if dcrf is None:  # pragma: no cover - depends on the install
        raise RuntimeError("pydensecrf is not installed (pip install pydensecrf2); "
                           "use crf_backend='numba'")
    return dcrf


def unary_from_labels(labels, n_labels, gt_prob):
    """Energies (n_labels, N) float32 from 1-based labels, 0 = unsure (pydensecrf.utils
    semantics: ``-log(gt_prob)`` for the label, ``-log((1 - gt_prob) / (n - 1))`` for the
    others, ``-log(1 / n)`` everywhere for 0)."""
    labels = np.asarray(labels).ravel()
    n_energy = -np.log((1.0 - gt_prob) / (n_labels - 1))
    p_energy = -np.log(gt_prob)
    u = np.full((n_labels, labels.size), n_energy, dtype=np.float32)
    u[labels - 1, np.arange(labels.size)] = p_energy
    u[:, labels == 0] = -np.log(1.0 / n_labels)
    return u


def unary_from_softmax(probs, clip=1e-5):
    """Energies (n, N) float32 from probabilities (n, ...): ``-log(clip(p, 1e-5, 1))``."""
    n = probs.shape[0]
    return -np.log(np.clip(probs, clip, 1.0)).reshape([n, -1]).astype(np.float32)


def gaussian_features(h, w, sxy=3.0):
    """Positions as pydensecrf's ``DenseCRF2D(h, w).addPairwiseGaussian`` makes them.

    Doodler passed (H, W) where pydensecrf expects (W, H): pixel p of the raster gets the
    position (p mod H, p div H) / sxy, not its own (column, row).  Reproduced."""
    p = np.arange(h * w)
    sx = np.float32(sxy)
    return np.stack([(p % h).astype(np.float32) / sx, (p // h).astype(np.float32) / sx], 1)


@functools.lru_cache(maxsize=1)
def _gaussian_kernel(h, w, sxy=3.0, compat=3.0):
    """The compiled Gaussian term depends on the image size alone: the last one built is kept
    and reused (the rolled CRF runs of a file, consecutive files of one size in a batch); one
    only, so a worker holds at most one spare (about 30 bytes a CRF pixel).  Read-only."""
    # positions on a grid: few vertices, each shared by many pixels, so the hash tables stay
    # in cache and beat sorting every corner
    kernel = kcrf.Kernel(gaussian_features(h, w, sxy), compat, method="hash")
    for a in (kernel.offsets, kernel.bary, kernel.neighbours, kernel.norm):
        a.flags.writeable = False
    return kernel


def bilateral_features(image_small, theta, schan, n_scaled=None):
    """(N, 2 + C) float32 [row/theta, col/theta, channels/schan], as
    ``pydensecrf.utils.create_pairwise_bilateral(sdims=(theta, theta), schan, img, chdim=2)``.
    ``n_scaled``: only the first that many channels are divided (Doodler passed a 3-tuple of
    scales for images with location channels appended: those stayed in pixel units)."""
    h, w = image_small.shape[:2]
    # pydensecrf divides the float32 arrays in place by numpy float64 scalars: the quotient
    # is taken in float64 and rounded to float32 (numpy >= 2 promotion)
    chans = np.rollaxis(image_small, 2).astype(np.float32)
    k = chans.shape[0] if n_scaled is None else min(int(n_scaled), chans.shape[0])
    chans[:k] = (chans[:k] / np.float64(schan)).astype(np.float32)
    mesh = np.array(np.meshgrid(range(h), range(w), indexing="ij"), dtype=np.float32)
    mesh = (mesh / np.float64(theta)).astype(np.float32)
    feats = np.concatenate([mesh, chans])
    return np.ascontiguousarray(feats.reshape(feats.shape[0], -1).T)


def colour_scale(image_shape):
    return 1 + (5 * (np.array(image_shape).max() / 3000))


def mean_field_q(unary, image_small, n, theta, mu, scale, backend="pydensecrf", sxy=3.0,
                 gauss_compat=3.0, n_scaled=None, iterations=10, stop_when_stable=False):
    """The two pairwise terms Doodler used and ``iterations`` mean-field iterations (Doodler:
    10): Q (n, N).  ``stop_when_stable``: stop after the first iteration (from the second
    on) that changes no pixel's label (argmax of Q) - the same rule for both backends."""
    h, w = image_small.shape[:2]
    unary = np.ascontiguousarray(unary, dtype=np.float32)
    if backend == "numba":
        kernels = [_gaussian_kernel(h, w, float(sxy), float(gauss_compat)),
                   kcrf.Kernel(bilateral_features(image_small, theta, scale, n_scaled), mu)]
        return kcrf.mean_field(unary.T, kernels, int(iterations), stop_when_stable).T
    if backend != "pydensecrf":
        raise ValueError(f"unknown CRF backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    dcrf = _densecrf()
    d = dcrf.DenseCRF2D(h, w, n)  # Doodler passed (H, W): pydensecrf reads it as (W, H)
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=(sxy, sxy), compat=gauss_compat, kernel=dcrf.DIAG_KERNEL,
                          normalization=dcrf.NORMALIZE_SYMMETRIC)
    d.addPairwiseEnergy(bilateral_features(image_small, theta, scale, n_scaled).T.copy(), compat=mu,
                        kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_SYMMETRIC)
    if not stop_when_stable:
        return np.asarray(d.inference(int(iterations)))
    return _stepped_until_stable(d, int(iterations))


def _stepped_until_stable(d, iterations):
    """pydensecrf's inference one step at a time (the same numbers as ``inference``), stopped
    after the first step that changes no label: the twin of the compiled early stop."""
    q, tmp1, tmp2 = d.startInference()
    labels = None  # the first step is not compared with the unary's labels
    for _ in range(iterations):
        d.stepInference(q, tmp1, tmp2)
        now = np.asarray(q).argmax(0)
        if labels is not None and np.array_equal(now, labels):
            break
        labels = now
    return np.asarray(q)


def _refine(unary, image, n, p, shape, backend):
    """Mean field on the image decimated by ``[::downsample]`` (colour scale from the full
    image unless the era fixed it), argmax + 1, resized back to ``shape`` (floats)."""
    img = image[::p.downsample, ::p.downsample, :]
    h, w = img.shape[:2]
    scale = colour_scale(image.shape) if p.schan is None else p.schan
    q = mean_field_q(unary, img, n, p.theta, p.mu, scale, backend, p.sxy, p.gauss_compat,
                     p.schan_bands, p.iterations, p.stop_when_stable)
    small = np.argmax(q, axis=0).reshape((h, w)).astype(np.uint8) + (1 if p.argmax_plus_one else 0)
    if p.upsample == "none":
        return small.astype(np.float64)  # full resolution: the integers are rescaled as they are
    if p.upsample == "bilinear-aa":
        return resize_bilinear(small, shape)
    return resize_nearest(small, shape)


def resize_nearest(label_small, shape):
    """scikit-image's order-0 resize as Doodler called it (``resize(label_small, shape,
    order=0, anti_aliasing=False)``), made by the SciPy call that resize makes: no float
    conversion, no smoothing, ``zoom`` with the default mode ("reflect", SciPy's "mirror") on
    the pixel grid, whose zoom comes from the two shapes alone; the clip to the input's range
    that follows cannot change an order-0 result.  The same array (tests compare the two),
    without importing ``skimage.transform`` (0.05 s of CPU a process)."""
    return ndimage.zoom(label_small, [1 / f for f in np.divide(label_small.shape, shape)],
                        order=0, mode="mirror", cval=0.0, grid_mode=True)


def resize_bilinear(label_small, shape):
    """scikit-image's default resize (order 1, anti-aliasing when shrinking) as the October
    2020 app called it: float in [0, 1] (uint8 / 255)."""
    from skimage.transform import resize  # noqa: PLC0415  October 2020 eras only; 0.05 s to import

    return resize(label_small, shape, order=1, anti_aliasing=True)


def _as_params(params, mu, downsample, gt_prob):
    if isinstance(params, Params):
        return params
    return Params(theta=params, mu=mu, downsample=downsample, gt_prob=gt_prob)


def crf_from_labels(label, image, params, mu=None, downsample=None, gt_prob=None,
                    backend="pydensecrf"):
    """Doodler's ``crf_refine`` (2020 - May 2022).  Returns (uint8 label, n).

    ``params``: a :class:`Params` (or, as before, theta followed by mu, downsample and
    gt_prob).  ``n`` counts labels as Doodler did: with ``label_shift`` "if-no-zero", when
    the full label contains 0, ``max - min`` of the decimated label, else the labels are
    shifted to start at 1 and ``n = max - min + 1``.  The CRF result is min-max rescaled back
    to the decimated label's range (or [1, max]) and truncated."""
    p = _as_params(params, mu, downsample, gt_prob)
    check_crf_params(p.theta, p.mu, p.downsample, p.gt_prob)
    has_zero = np.unique(label)[0] == 0
    lab = label[::p.downsample, ::p.downsample]
    orig_mn, orig_mx = lab.min(), lab.max()
    if p.label_shift == "none":
        n = 1 + (orig_mx - orig_mn)
    elif p.label_shift == "if-no-zero" and has_zero:
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
    if lab.max() > n:
        # labels not starting at 1 with no shift (October 2020): pydensecrf's unary indexing
        # failed there; the labels are shifted so the run can go on
        lab = (lab - lab.min()) + 1
    unary = unary_from_labels(lab.astype("int"), n, gt_prob=p.gt_prob)
    result = _refine(unary, image, n, p, label.shape, backend)
    low = orig_mn if p.final_rescale == "orig_mn" else 1
    with np.errstate(invalid="ignore"):
        return _to_uint8(rescale(result, low, orig_mx)), n


def _to_uint8(values):
    """float -> uint8 by truncation, NaN (a constant CRF result rescaled) -> 0."""
    values = np.where(np.isfinite(values), values, 0)
    return values.astype(np.uint8)


def crf_from_onehot(onehot, image, p, backend="pydensecrf"):
    """doodler_engine's ``crf_refine``: unary from a (H, W, n) one-hot 'softmax'.
    Returns labels 1..n (rescaled to that range, as the engine did)."""
    check_crf_params(p.theta, p.mu, p.downsample, n=onehot.shape[-1])
    h0, w0, n = onehot.shape
    lab = onehot[::p.downsample, ::p.downsample]
    unary = unary_from_softmax(np.ascontiguousarray(np.rollaxis(lab, -1, 0)))
    result = _refine(unary, image, n, p, (h0, w0), backend)
    return _to_uint8(rescale(result, 1, n))


def crf_from_doodles(doodles, image, n, p, backend="pydensecrf"):
    """doodler_engine's fall-back: unary from the doodles with gt_prob 0.51.
    Returns labels rescaled to 1..(number of distinct doodle values, 0 included)."""
    check_crf_params(p.theta, p.mu, p.downsample, n=n)
    top = int(doodles.max())
    if top > n:  # doodles of classes 1, 7 with n = 2 (a file remapped onto sparse classes)
        raise DoodleError(None, f"doodle value {top} is above the {n} classes doodled: the "
                                "June 2022 engine's CRF from the doodles cannot take it (its "
                                "own code raises IndexError), so that era did not make this file")
    l_unique = len(np.unique(doodles))
    lab = doodles[::p.downsample, ::p.downsample]
    unary = unary_from_labels(lab.astype("int"), n, gt_prob=0.51)
    result = _refine(unary, image, n, p, doodles.shape, backend)
    return _to_uint8(rescale(result, 1, l_unique))
