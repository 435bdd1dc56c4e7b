"""Doodler's eras as data: one frozen :class:`Recipe` per behaviour-changing version of the app.

Every stage of ``reconstruct`` reads its behaviour from the recipe of the file's era (how the
image is standardized, which features at which sigmas, the classifier and its rows, the
clean-up, the CRF constants and rolled runs, the final rescale).  The stage functions are
shared; the eras differ only in these values.  ``docs/guide/eras.md`` tells where each value
comes from in Doodler's code.

Each era is written as the one before it with what that version of the app changed
(``dataclasses.replace``), and every field is checked against :data:`CONSTRAINTS` when a
recipe is made, so a misspelt knob is an error, not a step silently turned off.

Settings layouts (what a results file can hold, see ``settings.py``):
``"9"`` (forest, sigma range), ``"7rf"`` (forest), ``"6"`` (MLP), ``"7mlp"`` (MLP, n_sigmas),
``"7engine"`` (doodler_engine, 1.0 where gt_prob was), ``"none"`` (PNG sessions: no settings
stored, the app's slider defaults apply).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

from .errors import DoodleError

#: slider names a recipe's defaults may set (the Settings fields)
SLIDERS = ("pen_width", "crf_downsample", "classifier_downsample", "crf_theta", "crf_mu",
           "gt_prob", "n_estimators", "n_sigmas", "sigma_min", "sigma_max")
#: the settings layouts a recipe's results may carry (see the module doc)
LAYOUTS = ("9", "7rf", "6", "7mlp", "7engine", "none")


# ----------------------------------------------------------------------------- constraints
# Every Recipe field has one, checked when a recipe is made (as scikit-learn checks an
# estimator's parameters against its ``_parameter_constraints``): a text-valued knob with a
# typo would otherwise silently turn a step off.
@dataclass(frozen=True)
class OneOf:
    """One of ``values`` (None included when it is one of them)."""

    values: tuple

    def holds(self, v):
        return any(v is x or (type(v) is type(x) and v == x) for x in self.values)

    def __str__(self):
        return "one of " + ", ".join(repr(x) for x in self.values)


@dataclass(frozen=True)
class Number:
    """A number (``integer``: an int) in [low, high] (``above``: in (low, high]); None too when
    ``none``."""

    low: float
    high: float = math.inf
    integer: bool = False
    none: bool = False
    above: bool = False

    def holds(self, v):
        if v is None:
            return self.none
        kinds = (int,) if self.integer else (int, float)
        return (isinstance(v, kinds) and not isinstance(v, bool) and math.isfinite(v)
                and (self.low < v if self.above else self.low <= v) and v <= self.high)

    def __str__(self):
        kind = "an integer" if self.integer else "a number"
        text = f"{kind} in {'(' if self.above else '['}{self.low}, {self.high}]"
        return text + " or None" if self.none else text


@dataclass(frozen=True)
class Several:
    """A tuple of ``count`` values (any count >= 1 when None) each meeting ``each``; None too
    when ``none``; ``ascending``: each value at least the one before."""

    each: object
    count: int | None = None
    none: bool = False
    ascending: bool = False
    why: str = ""

    def holds(self, v):
        if v is None:
            return self.none
        if not isinstance(v, tuple) or not v or (self.count is not None and len(v) != self.count):
            return False
        ordered = not self.ascending or all(a <= b for a, b in zip(v, v[1:]))
        return ordered and all(self.each.holds(x) for x in v)

    def __str__(self):
        n = "one or more" if self.count is None else f"exactly {self.count}"
        text = f"a tuple of {n} values, each {self.each}" + (", ascending" if self.ascending else "")
        text += " or None" if self.none else ""
        return text + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class Text:
    """Text matching ``pattern`` (a regular expression, whole text)."""

    pattern: str
    what: str

    def holds(self, v):
        return isinstance(v, str) and re.fullmatch(self.pattern, v) is not None

    def __str__(self):
        return self.what


@dataclass(frozen=True)
class Pairs:
    """(slider, value) pairs: each slider one of ``SLIDERS``, at most once, a finite number."""

    def holds(self, v):
        if not isinstance(v, tuple):
            return False
        ok = all(isinstance(p, tuple) and len(p) == 2 and p[0] in SLIDERS
                 and Number(-math.inf).holds(p[1]) for p in v)
        return ok and len({p[0] for p in v}) == len(v)

    def __str__(self):
        return f"(slider, number) pairs, each slider at most once, sliders from {', '.join(SLIDERS)}"


_FLAG = OneOf((True, False))
_DATE = Text(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "a date 'YYYY-MM-DD HH:MM'")
#: the constraint of every Recipe field
CONSTRAINTS = {
    "name": Text(r"[a-z]+-\d{4}-\d{2}[a-z]?", "an era name such as 'mlp-2021-10'"),
    "commits": Several(Text(r"[0-9a-f]{7}|doodler_engine", "a 7-digit commit")),
    "start": _DATE,
    "end": _DATE,
    "description": Text(r".+", "one line of text"),
    "layouts": Several(OneOf(LAYOUTS)),
    "defaults": Pairs(),
    "standardize": OneOf(("adjusted-std", "sqrt", "none")),
    "intensity": _FLAG,
    "edges": _FLAG,
    "texture": _FLAG,
    "location": OneOf((None, "gxgy", "raw", "blur-old", "blur-new")),
    "sigma_rule": OneOf(("range", "n_sigmas", "n_classes")),
    "sigma_range": Several(Number(0.0, above=True), count=2, none=True, ascending=True, why="min, max"),
    "sobel_border": _FLAG,
    "classifier": OneOf(("rf", "mlp")),
    "trees": Text(r"settings|2x settings|[1-9]\d*", "'settings', '2x settings' or a number as text"),
    "class_weight": OneOf((None, "balanced", "balanced_subsample")),
    "min_samples_split": Number(2, integer=True),
    "mlp_hidden": Several(Number(1, integer=True), count=2,
                          why="the compiled MLP has exactly two hidden layers"),
    "mlp_alpha": Number(0.0),
    "mlp_max_iter": Number(1, integer=True),
    "row_cap": Several(Number(1, integer=True), count=2, none=True,
                       why="above this many rows, keep this many"),
    "predict": OneOf(("undoodled", "proba")),
    "fill_holes": _FLAG,
    "spatial_filter": OneOf((None, "always", "h>512")),
    "zero_unknown": _FLAG,
    "crf_flow": OneOf(("rolled", "kludge", "engine")),
    "gt_prob": Number(0.0, 1.0, none=True),
    "gauss_sxy": Number(0.0, above=True),
    "gauss_compat": Number(0.0),
    "bilateral_sdims": Number(0.0, none=True, above=True),
    "bilateral_schan": Number(0.0, none=True, above=True),
    "schan_bands": Number(1, 6, integer=True),
    "bilateral_compat": Number(0.0, none=True),
    "crf_decimate": Number(1, integer=True, none=True),
    "crf_bands": OneOf(("rgb", "rgb+indices")),
    "crf_image": OneOf(("standardized", "raw")),
    "crf_location": OneOf((None, "gxgy", "radius")),
    "upsample": OneOf(("nearest", "bilinear-aa", "none")),
    "argmax_plus_one": _FLAG,
    "label_shift": OneOf(("if-no-zero", "always", "none")),
    "final_rescale": OneOf(("orig_mn", "one")),
    "rolls": Number(1, integer=True),
    "roll_span": OneOf(("H/5", "int(H/5)", "H")),
    "roll_signs": OneOf(("+", "+-")),
    "refilter": _FLAG,
    "median_radius": Number(0, integer=True),
    "session": OneOf(("none", "first-forest", "add-trees", "accumulate-rows")),
    "label_encoding": OneOf(("onehot-kmax", "png")),
}


@dataclass(frozen=True)
class Recipe:
    """How one Doodler version turned doodles into a label (every knob the engine follows)."""

    name: str
    commits: tuple  # dash_doodler / doodler_engine commits this recipe follows (first one first)
    start: str  # first date (YYYY-MM-DD) the app of this recipe could have written a result
    end: str  # last date it could have (inclusive; "9999-12-31" for open-ended)
    description: str
    layouts: tuple  # settings layouts its results can carry (see module doc)
    defaults: tuple = ()  # (slider, value) pairs: the app's defaults, for results with no settings

    # ---- stage 1: standardization
    standardize: str = "adjusted-std"  # "adjusted-std" | "sqrt" | "none" (uint8 / 255)
    # ---- stage 2: features (per channel, per sigma: location, blur, Sobel, two Hessian eigs)
    intensity: bool = True
    edges: bool = True
    texture: bool = True
    location: str | None = "raw"  # None | "gxgy" | "raw" | "blur-old" | "blur-new"
    sigma_rule: str = "range"  # "range" (log2 span + 1) | "n_sigmas" | "n_classes"
    sigma_range: tuple | None = None  # fixed (min, max); None: the settings' range
    sobel_border: bool = True  # scikit-image <= 0.16 zeroed Sobel's outer rows and columns
    # ---- stage 3: classifier
    classifier: str = "rf"  # "rf" | "mlp"
    trees: str = "2x settings"  # "settings" | "2x settings" | a number as text ("100")
    class_weight: str | None = "balanced_subsample"
    min_samples_split: int = 5
    mlp_hidden: tuple = (100, 60)
    mlp_alpha: float = 1.0
    mlp_max_iter: int = 2000
    row_cap: tuple | None = (200_000, 500_000)  # (above this many rows, keep this many evenly)
    predict: str = "undoodled"  # "undoodled" (doodles kept) | "proba" (argmax of every pixel)
    # ---- stage 4: clean-up of the classifier label
    fill_holes: bool = True  # per-class hole filling, size 2 H
    spatial_filter: str | None = "h>512"  # None | "always" | "h>512" (distance-2 edge zeroing)
    zero_unknown: bool = False  # labels not doodled set to 0 (before in-painting and after CRF)
    # ---- stage 5: CRF
    crf_flow: str = "rolled"  # "rolled" (average of rolled runs) | "kludge" | "engine"
    gt_prob: float | None = None  # None: the settings' gt_prob
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bilateral_sdims: float | None = None  # None: the settings' crf_theta
    bilateral_schan: float | None = None  # None: 1 + 5 max(shape) / 3000
    schan_bands: int = 3  # how many leading CRF image bands the colour scale divides
    bilateral_compat: float | None = None  # None: the settings' crf_mu
    crf_decimate: int | None = None  # None: the settings' crf_downsample
    crf_bands: str = "rgb"  # "rgb" | "rgb+indices" (RGB, VARI, NEXG, NGRDI)
    crf_image: str = "standardized"  # "standardized" | "raw"
    crf_location: str | None = None  # location channels appended to the CRF image: "gxgy" | "radius"
    upsample: str = "nearest"  # "nearest" | "bilinear-aa" | "none" (no decimation, no resize)
    argmax_plus_one: bool = True  # the CRF's argmax made 1-based before the resize
    label_shift: str = "if-no-zero"  # how labels are made 1-based before the unary
    final_rescale: str = "orig_mn"  # "orig_mn" | "one": CRF label rescaled to [that, orig_mx]
    rolls: int = 10  # CRF runs averaged (1: a single run)
    roll_span: str = "H/5"  # k = linspace(0, span, rolls): "H/5" | "int(H/5)" | "H"
    roll_signs: str = "+"  # "+" | "+-" (each k rolled both ways)
    refilter: bool = True  # hole filling of each rolled run
    # ---- stage 6: after the CRF
    median_radius: int = 0  # median filter disk(r) of the final label (0: none)
    # ---- sessions (for replay; a single file is rebuilt as the first of its session)
    session: str = "none"  # "none" | "first-forest" | "add-trees" | "accumulate-rows"
    # ---- output
    label_encoding: str = "onehot-kmax"  # "onehot-kmax" | "png"

    def __post_init__(self):
        """Every field against its constraint (:data:`CONSTRAINTS`): a ValueError naming the
        recipe, the field, the value and what it must be."""
        for f in fields(self):
            value = getattr(self, f.name)
            rule = CONSTRAINTS[f.name]
            if not rule.holds(value):
                raise ValueError(f"recipe {self.name!r}: {f.name}={value!r} must be {rule}")
        if self.start > self.end:
            raise ValueError(f"recipe {self.name!r}: start {self.start} is after end {self.end}")

    # ------------------------------------------------------------------ derived
    @property
    def default_settings(self):
        return dict(self.defaults)

    def holds(self, date):
        """Whether ``date`` falls in this recipe's range [start, end): "YYYY-MM-DD HH:MM"
        compares to the minute, a bare "YYYY-MM-DD" to the day (both ends included, so a
        day on which the app changed is held by two recipes)."""
        if date is None:
            return False
        if len(date) <= 10:
            return self.start[:10] <= date <= self.end[:10]
        return self.start <= date < self.end

    def feature_key(self):
        """Recipes with equal keys compute the same feature matrix from the same settings."""
        return (self.standardize, self.intensity, self.edges, self.texture, self.location,
                self.sigma_rule, self.sigma_range, self.sobel_border)

    def fit_key(self):
        """Recipes with equal keys train the same classifier on the same rows."""
        return self.feature_key() + (self.classifier, self.trees, self.class_weight,
                                     self.min_samples_split, self.mlp_hidden, self.mlp_alpha,
                                     self.mlp_max_iter, self.row_cap)

    def knobs(self):
        """Every behaviour field that applies to this era's classifier, and its value (for
        ``info`` and the docs)."""
        skip = {"name", "commits", "start", "end", "description", "layouts", "defaults"}
        skip |= ({"trees", "class_weight", "min_samples_split"} if self.classifier == "mlp"
                 else {"mlp_hidden", "mlp_alpha", "mlp_max_iter"})
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def one_line(self):
        """A short summary of what this era did (for ``doodle-engine eras``)."""
        clf = ("MLP" if self.classifier == "mlp" else f"forest ({self.trees} trees)")
        crf = {"rolled": f"{self.rolls} rolled CRF runs" if self.rolls > 1 else "one CRF run",
               "kludge": "one CRF run (rolled runs discarded)",
               "engine": "one-hot softmax CRF"}[self.crf_flow]
        return f"{clf}; {crf}"


def _d(**kw):
    """Slider defaults as the frozen (name, value) pairs a Recipe holds."""
    return tuple(kw.items())


RECIPES = {}


def _era(recipe):
    RECIPES[recipe.name] = recipe


def _after(prev, name, commits, start, end, description, defaults=None, **changes):
    """The recipe of the app version after ``prev`` (an era name): ``prev``'s recipe with what
    that version changed (``defaults``: the slider defaults it changed, by name)."""
    base = RECIPES[prev]
    return replace(base, name=name, commits=commits, start=start, end=end,
                   description=description, defaults=_changed(base.defaults, defaults or {}),
                   **changes)


def _changed(pairs, changes):
    """Slider ``pairs`` with the values ``changes`` gives (same sliders, same order)."""
    unknown = set(changes) - {k for k, _ in pairs}
    if unknown:
        raise ValueError(f"no slider default {sorted(unknown)} to change")
    return tuple((k, changes.get(k, v)) for k, v in pairs)


# The forest years (dash_doodler, October 2020 - June 2021), read commit by commit; see
# docs/guide/eras.md.  Before 7aad21f the app saved PNGs only (layout "none").  October 2020:
# 6-band CRF image (RGB + 3 colour indices), schan 2 on all six, argmax 0-based upsampled
# bilinearly with anti-aliasing (from rf-2020-10c: Gaussian sxy 3 / compat 13).
_era(Recipe(
    "rf-2020-10a", ("d2fee31", "aa652af", "d0084ce"), "2020-10-16 21:48", "2020-10-17 21:03",
    "first app: 100 trees, full-resolution 6-band CRF, median disk(20); wrote no files",
    layouts=("none",), label_encoding="png", standardize="none", location=None, row_cap=None,
    class_weight=None, min_samples_split=2, fill_holes=False, spatial_filter=None, rolls=1,
    refilter=False, crf_image="raw", final_rescale="orig_mn", intensity=True, edges=False,
    texture=True, crf_bands="rgb+indices", bilateral_schan=2.0, schan_bands=6,
    upsample="none", argmax_plus_one=False, label_shift="none", trees="100", gt_prob=0.66,
    gauss_sxy=13.0, gauss_compat=130.0, bilateral_sdims=60.0, bilateral_compat=260.0,
    crf_decimate=1, median_radius=20,
    defaults=_d(pen_width=3.0, crf_downsample=1, classifier_downsample=10, crf_theta=60.0,
                crf_mu=260.0, gt_prob=0.66, n_estimators=100, sigma_min=2.0, sigma_max=16.0)))
_era(_after("rf-2020-10a", "rf-2020-10b", ("ba61375", "885a31f"), "2020-10-17 21:03",
            "2020-10-18 17:01", "as rf-2020-10a; the first saved PNG sessions (RGBA annotations)"))
_era(_after("rf-2020-10b", "rf-2020-10c", ("7245668", "b92e291"), "2020-10-18 17:01",
            "2020-10-18 17:57",
            "10 trees; 6-band CRF decimated x10, gt_prob 0.81, bilinear upsample; median 20",
            defaults=dict(crf_downsample=10, crf_theta=40.0, crf_mu=100.0, gt_prob=0.81,
                          n_estimators=10, sigma_min=1.0),
            trees="10", gt_prob=0.81, gauss_sxy=3.0, gauss_compat=13.0, bilateral_sdims=None,
            bilateral_compat=None, crf_decimate=10, upsample="bilinear-aa"))
_era(_after("rf-2020-10c", "rf-2020-10d", ("725a7fa",), "2020-10-18 17:57", "2020-10-20 19:59",
            "as rf-2020-10c with the CRF decimated x5",
            defaults=dict(crf_downsample=5), crf_decimate=5))
_era(_after("rf-2020-10d", "rf-2020-10e", ("247a878",), "2020-10-20 19:59", "2020-10-22 16:48",
            "CRF decimated x2, labels shifted to start at 1 inside the CRF",
            defaults=dict(crf_downsample=2), crf_decimate=2, label_shift="always"))
_era(_after("rf-2020-10e", "rf-2020-10f", ("101f9a3", "0f648f0"), "2020-10-22 16:48",
            "2020-10-30 20:16",
            "theta 60, mu 80; the saved label is the CRF's (median computed, not saved)",
            defaults=dict(crf_theta=60.0, crf_mu=80.0), median_radius=0))
_era(_after("rf-2020-10f", "rf-2020-10g", ("dc69107",), "2020-10-30 20:16", "2020-11-04 22:42",
            "as rf-2020-10f with the median disk(10) applied to the saved label again",
            median_radius=10))
_era(_after("rf-2020-10g", "rf-2020-11a", ("d008640", "03f86e5"), "2020-11-04 22:42",
            "2020-11-05 17:45", "theta 30, mu 50, median 5; RGB annotation PNGs",
            defaults=dict(crf_theta=30.0, crf_mu=50.0), median_radius=5))
_era(_after("rf-2020-11a", "rf-2020-11b", ("1ced1fe",), "2020-11-05 17:45", "2020-11-10 23:06",
            "as rf-2020-11a; later images of a session reuse the first image's forest",
            session="first-forest"))
# November 2020 - May 2021: RGB CRF image with the colour scale, gt_prob 0.9, compat 3, nearest
_era(_after("rf-2020-11b", "rf-2020-11c", ("a2996dd", "7dc34eb"), "2020-11-10 23:06",
            "2021-02-09 16:34",
            "forest on intensity only (sigma 0.5-16); RGB CRF, colour scale, gt_prob 0.9",
            defaults=dict(pen_width=3.0, crf_downsample=2, crf_theta=40.0, crf_mu=100.0,
                          gt_prob=0.9, n_estimators=10, sigma_min=0.5),
            texture=False, sigma_range=(0.5, 16.0), crf_bands="rgb", bilateral_schan=None,
            schan_bands=3, gauss_compat=3.0, gt_prob=0.9, crf_decimate=None, upsample="nearest",
            argmax_plus_one=True, median_radius=3, session="add-trees"))
_era(_after("rf-2020-11c", "rf-2021-02a", ("f972005", "1b53380"), "2021-02-09 16:34",
            "2021-02-20 11:00",
            "doodler.py: n_estimators and gt_prob sliders; forest on intensity only",
            defaults=dict(pen_width=2.0, n_estimators=5, sigma_min=1.0),
            trees="settings", sigma_range=None, gt_prob=None))
_era(_after("rf-2021-02a", "rf-2021-02b", ("b02840d",), "2021-02-20 11:00", "2021-02-23 11:54",
            "all feature kinds; a fresh forest has 2 x n_estimators trees; session rows pooled",
            trees="2x settings", edges=True, texture=True, session="accumulate-rows"))
_era(_after("rf-2021-02b", "rf-2021-02c", ("c5ac7dd", "8f5b061"), "2021-02-23 11:54",
            "2021-03-17 19:36", "forest class_weight balanced_subsample, min_samples_split 3",
            class_weight="balanced_subsample", min_samples_split=3))
_era(_after("rf-2021-02c", "rf-2021-03a", ("e4b7cf8",), "2021-03-17 19:36", "2021-03-21 19:45",
            "min_samples_split 5, rows capped at 100,000, 10 rolled CRF runs (+-k)",
            defaults=dict(n_estimators=3), min_samples_split=5, row_cap=(100_000, 100_000),
            rolls=5, roll_span="int(H/5)", roll_signs="+-"))
_era(_after("rf-2021-03a", "rf-2021-03b", ("0916994", "52dfbf7"), "2021-03-21 19:45",
            "2021-03-24 21:44", "raw column and row as features and CRF bands; rows capped at 500,000",
            defaults=dict(crf_downsample=3), row_cap=(500_000, 500_000), location="gxgy",
            crf_location="gxgy"))
_era(_after("rf-2021-03b", "rf-2021-03c", ("647a0de", "7744f2b", "423a4bf", "d13e9fc"),
            "2021-03-24 21:44", "2021-05-03 06:48",
            "raw pixel radius as the location feature and CRF band",
            location="raw", crf_location="radius"))
_era(_after("rf-2021-03c", "rf-2021-05a", ("fb5461e", "3e51228"), "2021-05-03 06:48",
            "2021-05-09 11:27",
            "element-wise sqrt 'standardization'; 5 rolled CRF runs (+k); last PNG sessions",
            defaults=dict(crf_downsample=4, crf_mu=40.0), standardize="sqrt",
            crf_image="standardized", roll_signs="+"))
# The npz years (May 2021 on): Recipe's own defaults are the May 2021 forest's.
_era(Recipe("rf-2021-05", ("7aad21f", "5b27727", "09d12a2"), "2021-05-09 11:27",
            "2021-05-09 20:28",
            "random forest, 9-value settings with sigma range (May 2021, 7aad21f)", ("9",),
            defaults=_d(sigma_min=1.0, sigma_max=16.0), spatial_filter="always", roll_span="H",
            final_rescale="one", session="accumulate-rows"))
_era(_after("rf-2021-05", "rf-2021-05c", ("27f438c", "a0a0d13"), "2021-05-09 20:28",
            "2021-06-09 18:58",
            "random forest, 7-value settings, CRF rescaled to [1, max] (May-June 2021, 27f438c)",
            layouts=("7rf",), sigma_range=(1.0, 16.0), spatial_filter="h>512", roll_span="H/5"))
_era(_after("rf-2021-05c", "rf-2021-06", ("df7fccf",), "2021-06-09 18:58", "2021-06-21 13:40",
            "random forest, 7-value settings (June 2021, dash_doodler df7fccf)",
            final_rescale="orig_mn"))
_era(_after("rf-2021-06", "mlp-2021-06a", ("2993af9", "6e0ecb0"), "2021-06-21 13:40",
            "2021-06-27 22:20",
            "first MLP: hidden layers [100, 100], 6-value settings (June 2021, 2993af9)",
            layouts=("6",), classifier="mlp", trees="settings", mlp_hidden=(100, 100),
            row_cap=(100_000, 100_000), rolls=5, refilter=False, location="blur-old",
            sigma_range=None, session="none"))
_era(_after("mlp-2021-06a", "mlp-2021-06", ("63c1408", "4fdca02"), "2021-06-27 22:20",
            "2021-10-12 00:00", "MLP, 6-value settings, 5 fixed scales (June-Oct 2021, 4fdca02)",
            mlp_hidden=(100, 60)))
_era(_after("mlp-2021-06", "mlp-2021-10", ("391b4c9", "779690c"), "2021-09-30 13:40",
            "2022-05-04 00:00", "MLP, n_sigmas, rolled-CRF average (Sept 2021 - May 2022, 779690c)",
            layouts=("7mlp",), sigma_rule="n_sigmas"))
_era(_after("mlp-2021-10", "mlp-2022-05", ("7054a6e",), "2022-05-04 00:00", "2022-06-14 00:00",
            "MLP, n_sigmas, single CRF run 'kludge' (May-June 2022, 7054a6e)",
            sobel_border=False, zero_unknown=True, crf_flow="kludge", rolls=1))
_era(_after("mlp-2022-05", "engine-2022-06", ("doodler_engine",), "2022-06-14 00:00",
            "9999-12-31 23:59",
            "doodler_engine: predict_proba, softmax CRF, classes as scales (June 2022 on)",
            layouts=("7engine", "7mlp"), sigma_rule="n_classes", location="blur-new",
            zero_unknown=False, predict="proba", crf_flow="engine", fill_holes=False,
            spatial_filter=None))

#: every recipe, oldest first (``RECIPES`` above holds them by name)
_RECIPES = list(RECIPES.values())
#: era name -> one-line description (what ``doodle_engine.ERAS`` has always been)
ERAS = {r.name: r.description for r in _RECIPES}


def recipe(name, path=None):
    """The :class:`Recipe` called ``name`` (a Recipe is returned as is)."""
    if isinstance(name, Recipe):
        return name
    try:
        return RECIPES[name]
    except KeyError:
        raise DoodleError(path, f"unknown era {name!r}; choose one of {', '.join(RECIPES)}") from None


#: the era assumed for a layout when the path carries no date (the longest-lived one)
_UNDATED = {"7mlp": "mlp-2021-10", "7rf": "rf-2021-06", "6": "mlp-2021-06"}


def recipes_for_layout(layout):
    """The recipes whose results can carry settings ``layout``, oldest first."""
    return [r for r in _RECIPES if layout in r.layouts]


def era_for_date(layout, date):
    """(era name, how it was chosen) for settings ``layout`` and a results date (or None).

    A date picks the recipe of that layout whose date range holds it (on a day when the app
    changed, the one started that day); a date outside every range, the latest one started
    by then (or the first); without a date, the layout's only recipe, else its
    longest-lived one (``"layout (no date: assumed)"``)."""
    cands = recipes_for_layout(layout)
    if not cands:
        return None, None
    if len(cands) == 1:
        return cands[0].name, "layout"
    if date is None:
        return _UNDATED.get(layout, cands[-1].name), "layout (no date: assumed)"
    day = date[:10]
    started = [r for r in cands if r.start[:10] <= day]
    holding = [r for r in cands if r.holds(date)]
    pick = (holding or started or cands[:1])[-1]
    return pick.name, "layout+date"
