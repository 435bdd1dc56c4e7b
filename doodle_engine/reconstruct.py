"""The whole reconstruction: doodles + settings -> label, the way each Doodler era did it.

Labels inside the pipeline are 1-based (0 = no class), as in Doodler; the returned
:class:`Reconstruction` also gives the 0-based raster that :class:`DoodleRecord` uses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import classifier, cleanup, crf
from .cores import free_core_threads
from .eras import recipe as era_recipe
from .errors import DoodleError, NothingToInpaint, renamed
from .features import era_features, sigma_schedule
from .kernels import cleanup as compiled
from .modes import profile as mode_profile
from .record import DoodleRecord, zero_based
from .settings import Settings, decode_settings, encode_settings
from .standardize import crf_image, standardize


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
    threads: int = 1
    mode: object = "exact"  # the mode's ModeProfile
    path: str | None = None
    crf_backend: str = "numba"
    fitted: tuple | None = None  # (classifier, classes seen) given by a session replay


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
        # the compiled lattice gives pydensecrf's labels on every real file and era (tests);
        # the reference mode keeps the library Doodler called
        if not mode_profile(mode, where).compiled and crf.pydensecrf_available():
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
                crf_backend=None, threads=1, path=None, mode="exact", shared=None,
                fitted=None, workers=None, n_jobs=None) -> Reconstruction:
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
        semantics (same labels); by default the lattice, and pydensecrf in reference mode
        when installed.
    threads : int
        Threads for the random forest's fit (``workers`` and ``n_jobs`` are its old names,
        deprecated: they go in version 0.2.0; ``workers`` means processes everywhere else).
    path : str, optional
        Named in error messages when an image is given.
    mode : {"exact", "fast", "fastest", "reference"} or ModeProfile
        ``exact``: compiled kernels that give Doodler's labels; ``fast`` and ``fastest``:
        points of the measured speed / agreement curve (float32 trainer on fewer rows,
        shorter CRF; close, not identical: ``docs/measurements/frontier.md``); ``reference``:
        scikit-learn's own trainer and predict (the straightforward path).  A
        :class:`doodle_engine.modes.ModeProfile` sets the knobs one by one.
    shared : dict, optional
        Kept between calls on the same image and doodles (e.g. the candidate eras of one
        file): features and fits that eras share are computed once.
    fitted : (classifier, classes seen), optional
        A classifier trained elsewhere (a session replay, :mod:`doodle_engine.session`)
        used instead of fitting one on this image's doodles.

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
    threads = renamed("reconstruct", "workers", "threads", workers, threads)
    threads = renamed("reconstruct", "n_jobs", "threads", n_jobs, threads)
    if isinstance(record_or_image, DoodleRecord):
        rec = record_or_image
        image, doodles, where = rec.image, rec.doodles, rec.path
        settings = settings if settings is not None else rec.settings
    elif isinstance(record_or_image, (str, os.PathLike)):
        raise DoodleError(record_or_image, "reconstruct takes a record (doodle_engine.load(path)) "
                                           "or an image array, not a path")
    else:
        image, where = np.asarray(record_or_image), path
    if settings is None:
        raise DoodleError(where, ("the record holds" if where is None else "holds")
                          + " no 'settings' array: Doodler's sliders for it are unknown, so its "
                          "label cannot be rebuilt (reconstruct(record, settings=[...]) takes "
                          "them from Python)"
                          if isinstance(record_or_image, DoodleRecord)
                          else "no settings: pass settings= (the sliders, as Doodler stored them)")
    if not isinstance(settings, Settings):
        settings = decode_settings(settings, era=era, path=where)
    elif era is not None and era != settings.era:
        if settings.layout == 0:  # no stored settings (PNG session): the same sliders
            era_recipe(era, where)
            settings = dataclasses.replace(settings, era=era, era_source="user")
        else:
            settings = decode_settings(encode_settings(settings), era=era, path=where)
    mode = mode_profile(mode, where)
    crf_backend = _choose_crf_backend(crf_backend, mode, where)
    recipe = era_recipe(settings.era, where)
    if recipe.sigma_rule == "n_sigmas" and settings.n_sigmas is None:
        raise DoodleError(where, f"era {settings.era} needs n_sigmas, which these settings "
                                 f"({settings.layout} values) do not hold")
    if recipe.classifier == "rf" and recipe.trees.endswith("settings") and settings.n_estimators is None:
        raise DoodleError(where, f"era {settings.era} needs n_estimators, which these settings "
                                 f"({settings.layout} values) do not hold")
    doodles = np.asarray(doodles)
    _check_inputs(image, doodles, settings, where)
    run = _Run(recipe, settings, doodles, _Timer(), [],
               _Options(seed, threads, mode, where, crf_backend, fitted),
               {} if shared is None else shared)
    with run.timer.stage("standardize"):
        run.img = _cached(run, _standardize_key(recipe),
                          lambda: standardize(image, recipe.standardize))
        run.crf_img = crf_image(image, run.img, recipe)
    present = np.unique(doodles)
    if len(present[1:]) == 1:
        # Doodler's shortcut (it drops the first unique value, assumed to be 0)
        label = np.full(doodles.shape, present[1], np.uint8)
        run.notes.append("one class doodled: every pixel gets it, no classifier, no CRF")
        return Reconstruction(label, None, settings.era, settings, run.timer.timings, run.notes)
    with _kernel_threads(mode):
        label, clf_label = _FLOWS[recipe.crf_flow](run)
    label = _median(run, label)
    return Reconstruction(label.astype(np.uint8), clf_label, settings.era, settings,
                          run.timer.timings, run.notes)


def _kernel_threads(mode):
    """The compiled modes (``mode``: a ModeProfile) run their kernels on the cores other
    processes leave free (see :mod:`doodle_engine.cores`); reference mode runs none."""
    if not mode.compiled:
        return contextlib.nullcontext()
    return free_core_threads()


@dataclass
class _Run:
    """One reconstruction: the era's recipe, its inputs and what the stages have made."""
    recipe: object
    settings: Settings
    doodles: np.ndarray
    timer: _Timer
    notes: list
    opts: _Options
    shared: dict
    img: np.ndarray | None = None  # standardized image (features)
    crf_img: np.ndarray | None = None  # the image the CRF sees


def _cached(run, key, make):
    """``make()`` once per key among the reconstructions sharing ``run.shared``."""
    if key not in run.shared:
        run.shared[key] = make()
    return run.shared[key]


# ----------------------------------------------------------------------------- shared steps
def _sigmas(run):
    n_classes = len(np.unique(run.doodles)) - 1
    return sigma_schedule(run.settings, n_classes, run.recipe)


def _standardize_key(recipe):
    return ("standardize", recipe.standardize)


def _features_key(recipe, sigmas, mode):
    return ("features", recipe.feature_key(), tuple(sigmas), mode_profile(mode).feature_key)


def share_features(shared, recipe, sigmas, mode, img, feats):
    """Put a standardized image and its feature matrix, made elsewhere, into ``shared`` under
    the keys a reconstruction sharing ``shared`` looks them up by (so it does not make them
    again)."""
    shared[_standardize_key(recipe)] = img
    shared[_features_key(recipe, sigmas, mode)] = feats


def _features(run):
    r, opts = run.recipe, run.opts
    sigmas = _sigmas(run)
    key = _features_key(r, sigmas, opts.mode)

    def make():
        with run.timer.stage("features"):
            return era_features(run.img, sigmas, r, opts.mode)

    return _cached(run, key, make)


def _fit(run, feats):
    r, s, opts = run.recipe, run.settings, run.opts
    key = ("fit", r.fit_key(), tuple(_sigmas(run)), s.classifier_downsample,
           s.n_estimators if r.classifier == "rf" else None,
           opts.seed if r.classifier == "rf" else None, opts.mode.fit_key)

    if opts.fitted is not None:
        return opts.fitted, key + ("given",)

    def make():
        with run.timer.stage("fit"):
            return classifier.fit(feats, run.doodles, s, seed=opts.seed, threads=opts.threads,
                                  path=opts.path, mode=opts.mode, recipe=r)

    return _cached(run, key, make), key


def _stride(run):
    """The mode's prediction stride in pixels ("crf": the CRF's own decimation); forest eras
    predict every pixel (the stride was measured on the MLP eras only)."""
    if run.recipe.classifier != "mlp":
        return 1
    k = run.opts.mode.predict_stride
    return int(_crf_params(run).downsample) if k == "crf" else int(k)


def _classify_undoodled(run):
    feats = _features(run)
    (clf, seen), key = _fit(run, feats)
    stride = _stride(run)

    def make():
        with run.timer.stage("predict"):
            return classifier.predict_undoodled(clf, feats, run.doodles, stride=stride)

    return _cached(run, ("predict", stride) + key, make).copy(), seen


def _cleaner(opts):
    """The clean-up filters: SciPy's in reference mode, the compiled twins otherwise."""
    if not opts.mode.compiled:
        return cleanup
    return compiled


def _clean(run, label):
    """The era's clean-up of the classifier label: hole filling per class (size 2 H), then
    the distance-2 edge zeroing (always, or when H > 512)."""
    r = run.recipe
    with run.timer.stage("cleanup"):
        h = label.shape[0]
        if r.fill_holes:
            label = cleanup.filter_one_hot(label, 2 * h)
        if r.spatial_filter == "always" or (r.spatial_filter == "h>512" and h > 512):
            label = _cleaner(run.opts).filter_one_hot_spatial(label, 2)
        return label


def _crf_params(run):
    """The CRF constants of the era, with the settings filling what the era left to them, and
    the mode's mean-field knobs."""
    r, s, m = run.recipe, run.settings, run.opts.mode
    return crf.Params(
        theta=s.crf_theta if r.bilateral_sdims is None else r.bilateral_sdims,
        mu=s.crf_mu if r.bilateral_compat is None else r.bilateral_compat,
        downsample=s.crf_downsample if r.crf_decimate is None else r.crf_decimate,
        gt_prob=s.gt_prob if r.gt_prob is None else r.gt_prob,
        sxy=r.gauss_sxy, gauss_compat=r.gauss_compat, schan=r.bilateral_schan,
        schan_bands=r.schan_bands, upsample=r.upsample, argmax_plus_one=r.argmax_plus_one,
        label_shift=r.label_shift, final_rescale=r.final_rescale,
        iterations=int(m.mf_iterations), stop_when_stable=bool(m.stop_when_stable))


def _rolled_crf(run, label, k, sign, params):
    k = int(k)
    shift = sign * k
    # np.roll without an axis rolls the flattened array: k pixels of the label, k values
    # (not pixels) of the HxWx3 image - reproduced as Doodler ran it
    out, n = crf.crf_from_labels(np.roll(label, shift), np.roll(run.crf_img, shift), params,
                                 backend=run.opts.crf_backend)
    out = np.roll(out, -shift)
    if run.recipe.refilter:
        out = cleanup.filter_one_hot(out, 2 * out.shape[0])
    weight = 0.1 if k == 0 else 1 / np.sqrt(k)
    return out, weight


def roll_offsets(recipe, h, used=None):
    """The k of the era's rolled CRF runs: ``linspace(0, span, rolls)``, where span is H/5,
    int(H/5) or H; ``used``: only the first that many (a mode's ``rolled_runs``)."""
    span = {"H/5": int(h) / 5, "int(H/5)": int(int(h) / 5), "H": int(h)}[recipe.roll_span]
    offsets = np.linspace(0, span, recipe.rolls)
    return offsets if used is None else offsets[:int(used)]


def _rolled_average(run, label):
    r, params = run.recipe, _crf_params(run)
    signs = (1, -1) if r.roll_signs == "+-" else (1,)
    offsets = roll_offsets(r, run.img.shape[0], run.opts.mode.rolled_runs)
    runs = [_rolled_crf(run, label, k, sign, params) for sign in signs for k in offsets]
    stack = np.dstack([o for o, _ in runs])
    return np.round(np.average(stack, axis=-1, weights=[w for _, w in runs])).astype("uint8")


def _inpaint_or(out, fallback, notes, what, opts):
    """In-paint the zeros of ``out``; when it has no class left at all (e.g. a constant CRF
    output rescales to NaN -> 0), Doodler's in-painting loop never ended: keep ``fallback``."""
    try:
        return _cleaner(opts).inpaint_zeros(out)
    except NothingToInpaint:
        notes.append(f"{what} had no class left: kept the label from the step before")
        return fallback.astype(np.uint8).copy()


def _median(run, label):
    """The era's median filter ``disk(r)`` of the final label (2020-21 apps), if any."""
    r = run.recipe.median_radius
    if not r:
        return label
    with run.timer.stage("cleanup"):
        return cleanup.median_disk(label, r)


# ----------------------------------------------------------------------------- CRF flows
def _flow_rolled(run):
    """Classifier (doodled pixels keep their doodle), clean-up, in-paint, the weighted
    average of the rolled CRF runs, in-paint (2020 - May 2022)."""
    label, _ = _classify_undoodled(run)
    clf_label = label.astype(np.uint8)
    label = _clean(run, label)
    with run.timer.stage("cleanup"):
        label = _inpaint_or(label, clf_label, run.notes, "clean-up", run.opts)
    with run.timer.stage("crf"):
        out = _rolled_average(run, label)
    with run.timer.stage("cleanup"):
        out = _inpaint_or(out, label, run.notes, "CRF result", run.opts)
    return out, clf_label


def _flow_kludge(run):
    """7054a6e (2022-05-04): as 2021 but unknown labels zeroed, one plain CRF run decides
    (the rolled runs were computed and discarded: skipped here), class-set check."""
    label, seen = _classify_undoodled(run)
    clf_label = label.astype(np.uint8)
    label = _clean(run, label)
    opts, notes = run.opts, run.notes
    with run.timer.stage("cleanup"):
        cleanup.zero_unknown(label, seen)
        label = _inpaint_or(label, clf_label, notes, "clean-up", opts)
        cleanup.zero_unknown(label, seen)
        match = np.unique(label)
    with run.timer.stage("crf"):
        out, n = crf.crf_from_labels(label, run.crf_img, _crf_params(run),
                                     backend=opts.crf_backend)
    with run.timer.stage("cleanup"):
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


def _flow_engine(run):
    """doodler_engine (June 2022 on): probabilities for every pixel, argmax, one-hot
    'softmax' CRF; retry from the doodles when a class is lost; else keep the MLP label."""
    doodles, img, opts = run.doodles, run.crf_img, run.opts
    n = len(np.unique(doodles)[1:])
    feats = _features(run)
    (clf, _), _ = _fit(run, feats)
    with run.timer.stage("predict"):
        proba = classifier.predict_proba_all(clf, feats, shape=doodles.shape, stride=_stride(run))
    h, w = doodles.shape
    mlp = np.argmax(proba.reshape(h, w, -1), -1) + 1
    doodled = np.unique(doodles)[1:]
    mlp = _recode(mlp, doodled, np.unique(mlp)) - 1
    clf_label = (mlp + 1).astype(np.uint8)
    onehot = (np.arange(n) == mlp[..., None]).astype(int).astype(np.float64)
    p = _crf_params(run)
    with run.timer.stage("crf"):
        if n != len(np.unique(np.argmax(onehot, -1))):
            out = crf.crf_from_doodles(doodles, img, n, p, opts.crf_backend)
            run.notes.append("classifier lost a class: CRF run from the doodles (gt_prob 0.51)")
        else:
            out = crf.crf_from_onehot(onehot, img, p, opts.crf_backend)
            out = _recode(out, doodled, np.unique(out)) - 1
            if len(doodled) != len(np.unique(out)):
                run.notes.append("CRF lost a class: CRF run again from the doodles (gt_prob 0.51)")
                out = crf.crf_from_doodles(doodles, img, n, p, opts.crf_backend)
            else:
                return (out + 1).astype(np.uint8), clf_label
        out = _recode(out, doodled, np.unique(out)) - 1
    return (out + 1).astype(np.uint8), clf_label


_FLOWS = {"rolled": _flow_rolled, "kludge": _flow_kludge, "engine": _flow_engine}
