"""The whole reconstruction: doodles + settings -> label, the way each Doodler era did it.

Labels inside the pipeline are 1-based (0 = no class), as in Doodler; the returned
:class:`Reconstruction` also gives the 0-based raster that :class:`DoodleRecord` uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import classifier, cleanup, crf
from .errors import DoodleError
from .features import feature_matrix, location_mode, sigma_schedule, zeroes_sobel_border
from .io import DoodleRecord, zero_based
from .settings import Settings, decode_settings, encode_settings
from .standardize import standardize


@dataclass
class Reconstruction:
    label: np.ndarray  # final label, 1-based, 0 = no class (Doodler's ``seg``)
    classifier_label: np.ndarray | None  # the classifier's label before clean-up / CRF
    era: str
    settings: Settings
    timings: dict = field(default_factory=dict)  # seconds per stage
    notes: list = field(default_factory=list)  # what happened (fall-backs, shortcuts)

    @property
    def label0(self):
        """0-based raster with NO_CLASS where Doodler left 0."""
        return zero_based(self.label)


@dataclass
class _Options:
    seed: int = 0
    n_jobs: int = 1
    mode: str = "exact"
    path: str | None = None
    crf_backend: str = "pydensecrf"


class _Timer:
    def __init__(self):
        self.timings = {}

    def stage(self, name):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.timings[name] = timer.timings.get(name, 0.0) + time.perf_counter() - self.t

        return _Ctx()


def _choose_crf_backend(backend, mode, where):
    if backend is None:
        if mode != "fast" and crf.pydensecrf_available():
            return "pydensecrf"
        return "numba"
    if backend not in crf.BACKENDS:
        raise DoodleError(where, f"unknown crf_backend {backend!r}; choose one of "
                                 f"{', '.join(crf.BACKENDS)}")
    if backend == "pydensecrf" and not crf.pydensecrf_available():
        raise DoodleError(where, "crf_backend 'pydensecrf' asked for but pydensecrf is not "
                                 "installed (pip install pydensecrf2, or use 'numba')")
    return backend


def _check_inputs(image, doodles, settings, where):
    if image.ndim not in (2, 3) or image.shape[:2] != doodles.shape:
        raise DoodleError(where, f"image {image.shape} and doodles {doodles.shape} do not match")
    if not np.isfinite(np.asarray(image, dtype=np.float64)).all():
        raise DoodleError(where, "image holds NaN or infinite values")
    if not (doodles > 0).any():
        raise DoodleError(where, "no doodles: there is nothing to train the classifier on")
    h, w = doodles.shape
    if h < 2 or w < 2:
        raise DoodleError(where, f"image of {h}x{w} pixels is too small to segment")


def reconstruct(record_or_image, doodles=None, settings=None, era=None, seed=0,
                crf_backend=None, workers=1, path=None, mode="exact",
                n_jobs=None) -> Reconstruction:
    """Rebuild the label from doodles as the Doodler era of ``settings`` did.

    Parameters
    ----------
    record_or_image : DoodleRecord or array
        A record from :func:`doodle_engine.load`, or an image (H x W x bands) given with
        ``doodles`` and ``settings``.
    doodles : array, optional
        0 = not doodled, v = class v-1 (only with an image).
    settings : Settings or array, optional
        Doodler's settings (a :class:`Settings` or the raw settings array); by default the
        record's.
    era : str, optional
        Overrides the detected era (:data:`doodle_engine.ERAS`).
    seed : int
        Seeds the random forest (Doodler's was unseeded; MLP eras are deterministic).
    crf_backend : {"pydensecrf", "numba"}, optional
        The library Doodler called, or the compiled permutohedral lattice with the same
        semantics; by default pydensecrf in exact and reference mode when installed.
    workers : int
        Threads for the random forest's fit (``n_jobs`` is its old name, deprecated).
    path : str, optional
        Named in error messages when an image is given.
    mode : {"exact", "fast", "reference"}
        ``exact``: compiled kernels that give Doodler's labels; ``fast``: compiled float32
        trainer on at most 40,000 rows (close, not identical); ``reference``:
        scikit-learn's own trainer and predict (the straightforward path).

    Returns
    -------
    Reconstruction
        ``label`` (1-based, 0 = no class, as Doodler's ``seg``), ``label0`` (0-based,
        ``NO_CLASS`` = 255), ``era``, ``timings`` (seconds per stage) and ``notes``.

    Examples
    --------
    >>> import doodle_engine as de
    >>> from doodle_engine.example import make_example
    >>> rec = de.load(make_example("example.npz", 48, 64, overwrite=True))
    >>> res = de.reconstruct(rec, mode="fast")
    >>> res.label0.shape, res.era
    ((48, 64), 'mlp-2021-10')
    """
    if n_jobs is not None:
        import warnings
        warnings.warn("reconstruct(n_jobs=...) is deprecated: use workers=...",
                      DeprecationWarning, stacklevel=2)
        workers = n_jobs
    if isinstance(record_or_image, DoodleRecord):
        rec = record_or_image
        image, doodles, where = rec.image, rec.doodles, rec.path
        settings = settings if settings is not None else rec.settings
    else:
        image, where = np.asarray(record_or_image), path
    if settings is None:
        raise DoodleError(where, "no settings: pass settings= (the file has none)")
    if not isinstance(settings, Settings):
        settings = decode_settings(settings, era=era, path=where)
    elif era is not None and era != settings.era:
        settings = decode_settings(encode_settings(settings), era=era, path=where)
    crf_backend = _choose_crf_backend(crf_backend, mode, where)
    if settings.era in ("mlp-2021-10", "mlp-2022-05") and settings.n_sigmas is None:
        raise DoodleError(where, f"era {settings.era} needs n_sigmas, which these settings "
                                 f"({settings.layout} values) do not hold")
    doodles = np.asarray(doodles)
    _check_inputs(image, doodles, settings, where)
    run = _ERA_PIPELINES[settings.era]
    timer = _Timer()
    notes = []
    with timer.stage("standardize"):
        img = standardize(image)
    present = np.unique(doodles)
    if len(present[1:]) == 1:
        # Doodler's shortcut (it drops the first unique value, assumed to be 0)
        label = np.full(doodles.shape, present[1], np.uint8)
        notes.append("one class doodled: every pixel gets it, no classifier, no CRF")
        return Reconstruction(label, None, settings.era, settings, timer.timings, notes)
    label, clf_label = run(img, doodles, settings, timer, notes,
                           _Options(seed, workers, mode, where, crf_backend))
    return Reconstruction(label.astype(np.uint8), clf_label, settings.era, settings,
                          timer.timings, notes)


# ----------------------------------------------------------------------------- shared steps
def _features(img, doodles, settings, timer, opts):
    n_classes = len(np.unique(doodles)) - 1
    with timer.stage("features"):
        sigmas = sigma_schedule(settings, n_classes)
        loc, border = location_mode(settings.era), zeroes_sobel_border(settings.era)
        if opts.mode == "reference":
            return feature_matrix(img, sigmas, loc, border)
        from .kernels.features import feature_matrix as compiled_features
        dtype = np.float32 if opts.mode == "fast" else np.float64
        return compiled_features(img, sigmas, loc, dtype, border)


def _fit(feats, doodles, settings, timer, opts):
    with timer.stage("fit"):
        return classifier.fit(feats, doodles, settings, seed=opts.seed, n_jobs=opts.n_jobs,
                              path=opts.path, mode=opts.mode)


def _classify_undoodled(img, doodles, settings, timer, opts):
    feats = _features(img, doodles, settings, timer, opts)
    clf, seen = _fit(feats, doodles, settings, timer, opts)
    with timer.stage("predict"):
        label = classifier.predict_undoodled(clf, feats, doodles)
    return label, seen


def _cleaner(opts):
    """The clean-up filters: SciPy's in reference mode, the compiled twins otherwise."""
    if opts.mode == "reference":
        return cleanup
    from .kernels import cleanup as compiled
    return compiled


def _cleanup_2021(label, timer, opts):
    with timer.stage("cleanup"):
        h = label.shape[0]
        label = cleanup.filter_one_hot(label, 2 * h)
        if h > 512:
            label = _cleaner(opts).filter_one_hot_spatial(label, 2)
        return label


def _rolled_crf(img, label, settings, k, refilter, backend):
    k = int(k)
    # np.roll without an axis rolls the flattened array: k pixels of the label, k values
    # (not pixels) of the HxWx3 image - reproduced as Doodler ran it
    out, n = crf.crf_from_labels(np.roll(label, k), np.roll(img, k), settings.crf_theta,
                                 settings.crf_mu, settings.crf_downsample, settings.gt_prob,
                                 backend)
    out = np.roll(out, -k)
    if refilter:
        out = cleanup.filter_one_hot(out, 2 * out.shape[0])
    weight = 0.1 if k == 0 else 1 / np.sqrt(k)
    return out, weight


def _tta_average(img, label, settings, n_runs, refilter, backend):
    runs = [_rolled_crf(img, label, settings, k, refilter, backend)
            for k in np.linspace(0, int(img.shape[0]) / 5, n_runs)]
    stack = np.dstack([r for r, _ in runs])
    return np.round(np.average(stack, axis=-1, weights=[w for _, w in runs])).astype("uint8")


def _inpaint_or(out, fallback, notes, what, opts):
    """In-paint the zeros of ``out``; when it has no class left at all (e.g. a constant CRF
    output rescales to NaN -> 0), Doodler's in-painting loop never ended: keep ``fallback``."""
    try:
        return _cleaner(opts).inpaint_zeros(out)
    except cleanup.NothingToInpaint:
        notes.append(f"{what} had no class left: kept the label from the step before")
        return fallback.astype(np.uint8).copy()


# ----------------------------------------------------------------------------- eras
def _era_tta(n_runs, refilter):
    """2021 eras: classifier, clean-up, in-paint, rolled CRF average, in-paint."""

    def run(img, doodles, settings, timer, notes, opts):
        label, _ = _classify_undoodled(img, doodles, settings, timer, opts)
        clf_label = label.astype(np.uint8)
        label = _cleanup_2021(label, timer, opts)
        with timer.stage("cleanup"):
            label = _inpaint_or(label, clf_label, notes, "clean-up", opts)
        with timer.stage("crf"):
            out = _tta_average(img, label, settings, n_runs, refilter, opts.crf_backend)
        with timer.stage("cleanup"):
            out = _inpaint_or(out, label, notes, "CRF result", opts)
        return out, clf_label

    return run


def _era_kludge(img, doodles, settings, timer, notes, opts):
    """7054a6e (2022-05-04): as 2021 but unknown labels zeroed, one plain CRF run decides
    (the rolled runs were computed and discarded: skipped here), class-set check."""
    label, seen = _classify_undoodled(img, doodles, settings, timer, opts)
    clf_label = label.astype(np.uint8)
    label = _cleanup_2021(label, timer, opts)
    with timer.stage("cleanup"):
        cleanup.zero_unknown(label, seen)
        label = _inpaint_or(label, clf_label, notes, "clean-up", opts)
        cleanup.zero_unknown(label, seen)
        match = np.unique(label)
    with timer.stage("crf"):
        out, n = crf.crf_from_labels(label, img, settings.crf_theta, settings.crf_mu,
                                     settings.crf_downsample, settings.gt_prob,
                                     opts.crf_backend)
    with timer.stage("cleanup"):
        cleanup.zero_unknown(out, seen)  # Doodler tested the pre-CRF label's values here
        if n == 1:
            out[label > 0] = np.unique(label)
        out = _inpaint_or(out, label, notes, "CRF result", opts)
        cleanup.zero_unknown(out, seen)
    if not np.array_equal(match, np.unique(out)):
        # Doodler meant to fall back here; under numpy >= 1.25 its comparison raised instead
        notes.append("CRF changed the set of classes: reverted to the classifier result")
        out = label.copy()
    return out, clf_label


def _recode(values, targets, present):
    """Map the i-th present value to the i-th target (doodler_engine's zip re-coding)."""
    out = np.zeros_like(values)
    for o, e in zip(targets, present):
        out[values == e] = o
    return out


def _era_engine(img, doodles, settings, timer, notes, opts):
    """doodler_engine (June 2022 on): probabilities for every pixel, argmax, one-hot
    'softmax' CRF; retry from the doodles when a class is lost; else keep the MLP label."""
    n = len(np.unique(doodles)[1:])
    feats = _features(img, doodles, settings, timer, opts)
    clf, _ = _fit(feats, doodles, settings, timer, opts)
    with timer.stage("predict"):
        proba = classifier.predict_proba_all(clf, feats)
    h, w = doodles.shape
    mlp = np.argmax(proba.reshape(h, w, -1), -1) + 1
    doodled = np.unique(doodles)[1:]
    mlp = _recode(mlp, doodled, np.unique(mlp)) - 1
    clf_label = (mlp + 1).astype(np.uint8)
    onehot = (np.arange(n) == mlp[..., None]).astype(int).astype(np.float64)
    th, mu, ds = settings.crf_theta, settings.crf_mu, settings.crf_downsample
    with timer.stage("crf"):
        if n != len(np.unique(np.argmax(onehot, -1))):
            out = crf.crf_from_doodles(doodles, img, n, th, mu, ds, opts.crf_backend)
            notes.append("classifier lost a class: CRF run from the doodles (gt_prob 0.51)")
        else:
            out = crf.crf_from_onehot(onehot, img, th, mu, ds, opts.crf_backend)
            out = _recode(out, doodled, np.unique(out)) - 1
            if len(doodled) != len(np.unique(out)):
                notes.append("CRF lost a class: CRF run again from the doodles (gt_prob 0.51)")
                out = crf.crf_from_doodles(doodles, img, n, th, mu, ds, opts.crf_backend)
            else:
                return (out + 1).astype(np.uint8), clf_label
        out = _recode(out, doodled, np.unique(out)) - 1
    return (out + 1).astype(np.uint8), clf_label


_ERA_PIPELINES = {
    "rf-2021-05": _era_tta(10, refilter=True),
    "rf-2021-06": _era_tta(10, refilter=True),
    "mlp-2021-06": _era_tta(5, refilter=False),
    "mlp-2021-10": _era_tta(5, refilter=False),
    "mlp-2022-05": _era_kludge,
    "engine-2022-06": _era_engine,
}
