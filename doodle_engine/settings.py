"""Doodler's ``settings`` array: layouts, eras and decoding.

Doodler stored its sliders as a bare float array whose layout changed over time:

=====  ===================================================================  ==================
size   layout                                                               era
=====  ===================================================================  ==================
9      pen_width, crf_downsample, classifier_downsample, crf_theta,         ``rf-2021-05``
       crf_mu, n_estimators, gt_prob, sigma_min, sigma_max
7      ..., crf_mu, n_estimators, gt_prob                                   ``rf-2021-06``
6      ..., crf_mu, gt_prob                                                 ``mlp-2021-06``
7      ..., crf_mu, gt_prob, n_sigmas                                       ``mlp-2021-10`` or
                                                                            ``mlp-2022-05``
7      ..., crf_mu, 1.0, n_sigmas                                           ``engine-2022-06``
=====  ===================================================================  ==================

Telling the two 7-value layouts apart (``decide_layout7``): position 5 holds
n_estimators (an integer >= 1) in the random-forest layout and gt_prob (a probability in
(0, 1]) in the later one; position 6 holds gt_prob (in (0, 1)) or n_sigmas (an integer >= 1).
So ``[..., 3, 0.9]`` is the forest layout and ``[..., 0.9, 2]`` the later one.  A value of
exactly 1.0 at position 5 followed by an integer is gt_prob == 1.0, which only doodler_engine
(June 2022 on) wrote.  Anything else is undecidable and raises ``DoodleError``.

The later 7-value layout was written by two app versions with different CRF code:
2021-09-30 ... 2022-05-03 (``mlp-2021-10``, rolled CRF average in use) and 2022-05-04 ...
2022-06 (``mlp-2022-05``, the "CRF bug kludge").  The arrays are identical, so the date in
Doodler's results-folder name (``results2022-05-04-14-34``) decides; without a date the
older, longer-lived ``mlp-2021-10`` is assumed and ``era_source`` says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from .eras import ERAS as _ERAS
from .eras import SLIDERS, era_for_date, recipe
from .errors import DoodleError

#: every era the engine knows, oldest first, with a one-line description (from the recipes)
ERAS = _ERAS

_DATE_RE = re.compile(r"results(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Settings:
    """Decoded Doodler settings (immutable).  Fields a layout lacks hold Doodler's value
    for that era (e.g. sigma range 1..16, n_sigmas 5 before it was stored)."""

    pen_width: float
    crf_downsample: int
    classifier_downsample: int
    crf_theta: float
    crf_mu: float
    gt_prob: float
    n_estimators: int | None
    n_sigmas: int | None
    sigma_min: float
    sigma_max: float
    era: str
    era_source: str  # "layout", "layout+date", "layout (no date: assumed)", "user"
    layout: int

    def as_dict(self):
        return asdict(self)


def _is_int(v):
    return math.isfinite(v) and float(v).is_integer()


def decide_layout7(values):
    """Return "rf" or "mlp" for a 7-value settings array, or None when undecidable."""
    a, b = float(values[5]), float(values[6])
    rf = _is_int(a) and a >= 1 and 0 < b < 1
    mlp = 0 < a <= 1 and _is_int(b) and b >= 1
    if rf and not mlp:
        return "rf"
    if mlp and not rf:
        return "mlp"
    return None


def date_from_path(path):
    """The date of Doodler's results folder named in ``path`` (YYYY-MM-DD), or None."""
    if path is None:
        return None
    m = _DATE_RE.search(str(path))
    return m.group(1) if m else None


def layout_key(values):
    """The settings layout of ``values``: "9", "6", "7rf", "7mlp", "7engine" (1.0 where
    gt_prob was, only doodler_engine wrote it), or None (an undecidable 7-value array or an
    unknown size)."""
    n = len(values)
    if n in (9, 6):
        return str(n)
    if n == 7:
        kind = decide_layout7(values)
        if kind == "rf":
            return "7rf"
        if kind == "mlp":
            return "7engine" if float(values[5]) == 1.0 else "7mlp"
    return None


def _era_for_layout(values, date):
    layout = layout_key(values)
    if layout is None:
        return None, None
    return era_for_date(layout, date)


#: accepted range of each setting: Doodler's sliders (pen width 0-6, CRF theta 1-120,
#: CRF mu 1-255, CRF downsample 1-6, classifier downsample 1-20, scales 2-6, trees 1-9,
#: sigma 0.01-30, gt_prob 0.5-0.95; 1.0 from doodler_engine) widened so no file Doodler
#: wrote is refused, yet narrow enough that no value exhausts memory or time, and that
#: pydensecrf's lattice (which crashes on non-finite features) only sees finite numbers.
BOUNDS = {
    "pen_width": (0, 50),
    "crf_downsample": (1, 20),
    "classifier_downsample": (1, 50),
    "crf_theta": (0.5, 1000),
    "crf_mu": (0, 1000),
    "gt_prob": (0.01, 1),
    "n_estimators": (1, 100),
    "n_sigmas": (1, 16),
    "sigma_min": (0.01, 64),
    "sigma_max": (0.01, 64),
}


def check_bounds(path, **values):
    """DoodleError unless every named setting is finite and within :data:`BOUNDS`."""
    for name, value in values.items():
        if value is None:
            continue
        lo, hi = BOUNDS[name]
        if not (isinstance(value, (int, float, np.integer, np.floating))
                and math.isfinite(value) and lo <= value <= hi):
            raise DoodleError(path, f"settings: {name} must be within {lo}..{hi}, got {value!r}")


#: settings that Doodler held as whole numbers
WHOLE = ("crf_downsample", "classifier_downsample", "n_estimators", "n_sigmas")


def check_sliders(path, sliders):
    """User sliders (``--settings``, ``settings=``; PNG sessions) -> a dict of numbers, each
    known, finite, within :data:`BOUNDS` (the ranges an npz's stored settings must fall in)
    and whole where Doodler's slider was, sigma_min no more than sigma_max; else one
    DoodleError line."""
    unknown = set(sliders) - set(SLIDERS)
    if unknown:
        raise DoodleError(path, f"unknown setting(s) {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(SLIDERS)}")
    out = {}
    for name, value in sliders.items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise DoodleError(path, f"settings: {name} must be a number, got {value!r}")
        check_bounds(path, **{name: value})
        if name in WHOLE and not float(value).is_integer():
            raise DoodleError(path, f"settings: {name} must be a whole number, got {value!r}")
        out[name] = int(value) if name in WHOLE else float(value)
    lo, hi = out.get("sigma_min"), out.get("sigma_max")
    if lo is not None and hi is not None and lo > hi:
        raise DoodleError(path, f"settings: sigma_min {lo} is above sigma_max {hi}")
    return out


def check_crf_params(theta, mu, downsample, gt_prob=None, n=None):
    """Checked before any CRF call (pydensecrf crashes the process on e.g. theta 1e-300):
    DoodleError unless theta, mu, downsample (and gt_prob) are within :data:`BOUNDS` and the
    label count ``n`` within 1..254."""
    check_bounds(None, crf_theta=theta, crf_mu=mu, crf_downsample=downsample, gt_prob=gt_prob)
    if float(downsample) != int(downsample):
        raise DoodleError(None, f"settings: crf_downsample must be a whole number, got {downsample!r}")
    if n is not None and not 1 <= int(n) <= 254:
        raise DoodleError(None, f"the CRF takes 1..254 labels, got {n}")


def _positive_int(path, name, value):
    if not math.isfinite(value) or value < 1 or not float(value).is_integer():
        raise DoodleError(path, f"settings: {name} must be a whole number >= 1, got {value!r}")
    return int(value)


def decode_settings(values, era=None, path=None, date=None):
    """Decode a settings array into :class:`Settings`.

    ``era`` overrides detection (any key of :data:`ERAS`); ``date`` (YYYY-MM-DD) or a
    results-folder date in ``path`` separates the two eras that share a layout.
    """
    if np.asarray(values).dtype.kind not in "biuf":  # complex, text, objects: not cast
        raise DoodleError(path, f"settings must hold real numbers, got {np.asarray(values).dtype}")
    try:
        values = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DoodleError(path, "settings is not a numeric array") from None
    if values.size not in (6, 7, 9):
        raise DoodleError(path, f"settings has {values.size} values; known layouts have 6, 7 or 9")
    if not np.all(np.isfinite(values)):
        raise DoodleError(path, f"settings holds NaN or infinite values: {values.tolist()}")
    if date is None:
        date = date_from_path(path)
    detected, source = _era_for_layout(values, date)
    if era is not None:
        if era not in ERAS:
            raise DoodleError(path, f"unknown era {era!r}; choose one of {', '.join(ERAS)}")
        _check_era_layout(values, era, path)
        detected, source = era, "user"
    if detected is None:
        raise DoodleError(path, f"cannot tell which 7-value settings layout {values.tolist()} is "
                                "(positions 5-6 fit neither [n_estimators, gt_prob] nor "
                                "[gt_prob, n_sigmas]); pass era= / --era")
    return _build(values, detected, source, path)


def _check_era_layout(values, era, path):
    """A DoodleError when ``values`` are one 7-value layout and ``era`` wrote the other (an
    MLP-era array read as a forest era's would take gt_prob for n_estimators).  Other
    mismatches say what the era lacks when it runs (``needs n_sigmas``)."""
    layout = layout_key(values)
    layouts = [lay for lay in recipe(era).layouts if lay.startswith("7")]
    if layout is not None and layout.startswith("7") and layouts and layout not in layouts \
            and not (layout == "7engine" and "7mlp" in layouts):
        raise DoodleError(path, f"era {era} wrote its settings in the {'/'.join(layouts)} layout; "
                                f"these {len(values)} values are the {layout} layout, which it "
                                "cannot read (without --era the engine reads the era from the "
                                "file)")


def _build(values, era, source, path):
    v = [float(x) for x in values]
    n = len(v)
    common = dict(pen_width=v[0],
                  crf_downsample=_positive_int(path, "crf_downsample", v[1]),
                  classifier_downsample=_positive_int(path, "classifier_downsample", v[2]),
                  crf_theta=v[3], crf_mu=v[4], era=era, era_source=source, layout=n)
    if n == 9:
        fields = dict(n_estimators=v[5], gt_prob=v[6], sigma_min=v[7], sigma_max=v[8], n_sigmas=None)
    elif n == 6:
        fields = dict(n_estimators=None, gt_prob=v[5], sigma_min=1.0, sigma_max=16.0, n_sigmas=None)
    elif decide_layout7(v) == "rf" or (era.startswith("rf") and source == "user"):
        fields = dict(n_estimators=v[5], gt_prob=v[6], sigma_min=1.0, sigma_max=16.0, n_sigmas=None)
    else:
        fields = dict(n_estimators=None, gt_prob=v[5], sigma_min=1.0, sigma_max=16.0, n_sigmas=v[6])
    if fields["n_estimators"] is not None:
        fields["n_estimators"] = _positive_int(path, "n_estimators", fields["n_estimators"])
    if fields["n_sigmas"] is not None:
        fields["n_sigmas"] = _positive_int(path, "n_sigmas", fields["n_sigmas"])
    gt = fields["gt_prob"]
    if not 0 < gt <= 1:
        raise DoodleError(path, f"settings: gt_prob must be in (0, 1], got {gt!r}")
    if not (v[3] > 0):
        raise DoodleError(path, f"settings: crf_theta must be > 0, got {v[3]!r}")
    if not (v[4] >= 0):
        raise DoodleError(path, f"settings: crf_mu must be >= 0, got {v[4]!r}")
    if not (0 < fields["sigma_min"] <= fields["sigma_max"]):
        raise DoodleError(path, f"settings: sigma range {fields['sigma_min']}..{fields['sigma_max']} "
                                f"is invalid")
    check_bounds(path, pen_width=v[0], crf_theta=v[3], crf_mu=v[4],
                 **{k: common[k] for k in ("crf_downsample", "classifier_downsample")},
                 **{k: fields[k] for k in ("gt_prob", "n_estimators", "n_sigmas", "sigma_min",
                                           "sigma_max")})
    return Settings(**common, **fields)


def encode_settings(s: Settings):
    """The settings array in the layout ``s`` was read from (inverse of decode)."""
    head = [s.pen_width, s.crf_downsample, s.classifier_downsample, s.crf_theta, s.crf_mu]
    if s.layout == 9:
        tail = [s.n_estimators, s.gt_prob, s.sigma_min, s.sigma_max]
    elif s.layout == 6:
        tail = [s.gt_prob]
    elif s.n_estimators is not None:
        tail = [s.n_estimators, s.gt_prob]
    else:
        tail = [s.gt_prob, s.n_sigmas]
    return np.array(head + tail, dtype=np.float64)


def settings_for_era(era, path=None, source="era defaults", **sliders):
    """Settings for a result that stored none (PNG-era sessions): the app's slider defaults
    of ``era`` (:attr:`Recipe.defaults`), with ``sliders`` (e.g. ``crf_theta=60``) replacing
    any of them.  ``layout`` is 0 (no settings array)."""
    r = recipe(era, path)
    sliders = check_sliders(path, sliders)
    values = dict(pen_width=3.0, crf_downsample=1, classifier_downsample=1, crf_theta=1.0,
                  crf_mu=1.0, gt_prob=0.9, n_estimators=None, n_sigmas=None, sigma_min=1.0,
                  sigma_max=16.0)
    values.update(r.default_settings)
    values.update({k: v for k, v in sliders.items() if v is not None})
    for name in ("crf_downsample", "classifier_downsample"):
        values[name] = _positive_int(path, name, float(values[name]))
    if r.classifier == "rf" and values["n_estimators"] is None:
        raise DoodleError(path, f"era {r.name} needs n_estimators (no default known)")
    if values["n_estimators"] is not None:
        values["n_estimators"] = _positive_int(path, "n_estimators", float(values["n_estimators"]))
    if not 0 < values["gt_prob"] <= 1:
        raise DoodleError(path, f"settings: gt_prob must be in (0, 1], got {values['gt_prob']!r}")
    check_bounds(path, **values)
    if values["sigma_min"] > values["sigma_max"]:
        raise DoodleError(path, f"settings: sigma range {values['sigma_min']}.."
                                f"{values['sigma_max']} is invalid")
    return Settings(**values, era=r.name, era_source=source, layout=0)
