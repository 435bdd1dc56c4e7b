"""Doodler's eras as data: one frozen :class:`Recipe` per behaviour-changing version of the app.

Every stage of ``reconstruct`` reads its behaviour from the recipe of the file's era (how the
image is standardized, which features at which sigmas, the classifier and its rows, the
clean-up, the CRF constants and rolled runs, the final rescale).  The stage functions are
shared; the eras differ only in these values.  ``docs/eras.md`` tells where each value comes
from in Doodler's code.

Settings layouts (what a results file can hold, see ``settings.py``):
``"9"`` (forest, sigma range), ``"7rf"`` (forest), ``"6"`` (MLP), ``"7mlp"`` (MLP, n_sigmas),
``"7engine"`` (doodler_engine, 1.0 where gt_prob was), ``"none"`` (PNG sessions: no settings
stored, the app's slider defaults apply).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import DoodleError

#: slider names a recipe's defaults may set (the Settings fields)
SLIDERS = ("pen_width", "crf_downsample", "classifier_downsample", "crf_theta", "crf_mu",
           "gt_prob", "n_estimators", "n_sigmas", "sigma_min", "sigma_max")


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


# The forest years (dash_doodler, October 2020 - June 2021), read commit by commit; see
# docs/eras.md.  Before 7aad21f the app saved PNGs only (layout "none").
_PNG = dict(layouts=("none",), label_encoding="png", standardize="none", location=None,
            row_cap=None, class_weight=None, min_samples_split=2, fill_holes=False,
            spatial_filter=None, rolls=1, refilter=False, crf_image="raw", trees="10",
            label_shift="always", final_rescale="orig_mn")
# October 2020: 6-band CRF image (RGB + 3 colour indices), schan 2 on all six, Gaussian sxy 3 /
# compat 13, argmax 0-based upsampled bilinearly with anti-aliasing
_OCT = dict(_PNG, intensity=True, edges=False, texture=True, crf_bands="rgb+indices",
            bilateral_schan=2.0, schan_bands=6, gauss_compat=13.0, gt_prob=0.81,
            upsample="bilinear-aa", argmax_plus_one=False, label_shift="none")
_OCT_DEF = dict(pen_width=3.0, crf_downsample=10, classifier_downsample=10, crf_theta=40.0,
                crf_mu=100.0, gt_prob=0.81, n_estimators=10, sigma_min=1.0, sigma_max=16.0)
# November 2020 - May 2021: RGB CRF image with the colour scale, gt_prob 0.9, compat 3, nearest
_WIN = dict(_PNG, crf_decimate=None, gt_prob=None, upsample="nearest", median_radius=3)
_WIN_DEF = dict(pen_width=2.0, crf_downsample=2, classifier_downsample=10, crf_theta=40.0,
                crf_mu=100.0, gt_prob=0.9, n_estimators=5, sigma_min=1.0, sigma_max=16.0)
# npz forest years (May - June 2021)
_NPZ_DEF = dict(sigma_min=1.0, sigma_max=16.0)

_MLP = dict(classifier="mlp", row_cap=(100_000, 100_000), refilter=False, rolls=5,
            spatial_filter="h>512", location="blur-old", trees="settings")

_RECIPES = [
    Recipe("rf-2020-10a", ("d2fee31", "aa652af", "d0084ce"), "2020-10-16 21:48", "2020-10-17 21:03",
           "first app: 100 trees, full-resolution 6-band CRF, median disk(20); wrote no files",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=1, crf_theta=60.0, crf_mu=260.0,
                              gt_prob=0.66, n_estimators=100, sigma_min=2.0)),
           **dict(_OCT, trees="100", gt_prob=0.66, gauss_sxy=13.0, gauss_compat=130.0,
                  bilateral_sdims=60.0, bilateral_compat=260.0, crf_decimate=1,
                  upsample="none", median_radius=20)),
    Recipe("rf-2020-10b", ("ba61375", "885a31f"), "2020-10-17 21:03", "2020-10-18 17:01",
           "as rf-2020-10a; the first saved PNG sessions (RGBA annotations)",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=1, crf_theta=60.0, crf_mu=260.0,
                              gt_prob=0.66, n_estimators=100, sigma_min=2.0)),
           **dict(_OCT, trees="100", gt_prob=0.66, gauss_sxy=13.0, gauss_compat=130.0,
                  bilateral_sdims=60.0, bilateral_compat=260.0, crf_decimate=1,
                  upsample="none", median_radius=20)),
    Recipe("rf-2020-10c", ("7245668", "b92e291"), "2020-10-18 17:01", "2020-10-18 17:57",
           "10 trees; 6-band CRF decimated x10, gt_prob 0.81, bilinear upsample; median 20",
           defaults=_d(**_OCT_DEF), **dict(_OCT, crf_decimate=10, median_radius=20)),
    Recipe("rf-2020-10d", ("725a7fa",), "2020-10-18 17:57", "2020-10-20 19:59",
           "as rf-2020-10c with the CRF decimated x5",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=5)),
           **dict(_OCT, crf_decimate=5, median_radius=20)),
    Recipe("rf-2020-10e", ("247a878",), "2020-10-20 19:59", "2020-10-22 16:48",
           "CRF decimated x2, labels shifted to start at 1 inside the CRF",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=2)),
           **dict(_OCT, crf_decimate=2, label_shift="always", median_radius=20)),
    Recipe("rf-2020-10f", ("101f9a3", "0f648f0"), "2020-10-22 16:48", "2020-10-30 20:16",
           "theta 60, mu 80; the saved label is the CRF's (median computed, not saved)",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=2, crf_theta=60.0, crf_mu=80.0)),
           **dict(_OCT, crf_decimate=2, label_shift="always", median_radius=0)),
    Recipe("rf-2020-10g", ("dc69107",), "2020-10-30 20:16", "2020-11-04 22:42",
           "as rf-2020-10f with the median disk(10) applied to the saved label again",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=2, crf_theta=60.0, crf_mu=80.0)),
           **dict(_OCT, crf_decimate=2, label_shift="always", median_radius=10)),
    Recipe("rf-2020-11a", ("d008640", "03f86e5"), "2020-11-04 22:42", "2020-11-05 17:45",
           "theta 30, mu 50, median 5; RGB annotation PNGs",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=2, crf_theta=30.0, crf_mu=50.0)),
           **dict(_OCT, crf_decimate=2, label_shift="always", median_radius=5)),
    Recipe("rf-2020-11b", ("1ced1fe",), "2020-11-05 17:45", "2020-11-10 23:06",
           "as rf-2020-11a; later images of a session reuse the first image's forest",
           defaults=_d(**dict(_OCT_DEF, crf_downsample=2, crf_theta=30.0, crf_mu=50.0)),
           **dict(_OCT, crf_decimate=2, label_shift="always", median_radius=5,
                  session="first-forest")),
    Recipe("rf-2020-11c", ("a2996dd", "7dc34eb"), "2020-11-10 23:06", "2021-02-09 16:34",
           "forest on intensity only (sigma 0.5-16); RGB CRF, colour scale, gt_prob 0.9",
           defaults=_d(**dict(_WIN_DEF, pen_width=3.0, gt_prob=0.9, n_estimators=10,
                              sigma_min=0.5)),
           **dict(_WIN, gt_prob=0.9, edges=False, texture=False, sigma_range=(0.5, 16.0),
                  session="add-trees")),
    Recipe("rf-2021-02a", ("f972005", "1b53380"), "2021-02-09 16:34", "2021-02-20 11:00",
           "doodler.py: n_estimators and gt_prob sliders; forest on intensity only",
           defaults=_d(**_WIN_DEF),
           **dict(_WIN, trees="settings", edges=False, texture=False, session="add-trees")),
    Recipe("rf-2021-02b", ("b02840d",), "2021-02-20 11:00", "2021-02-23 11:54",
           "all feature kinds; a fresh forest has 2 x n_estimators trees; session rows pooled",
           defaults=_d(**_WIN_DEF),
           **dict(_WIN, trees="2x settings", session="accumulate-rows")),
    Recipe("rf-2021-02c", ("c5ac7dd", "8f5b061"), "2021-02-23 11:54", "2021-03-17 19:36",
           "forest class_weight balanced_subsample, min_samples_split 3",
           defaults=_d(**_WIN_DEF),
           **dict(_WIN, trees="2x settings", session="accumulate-rows",
                  class_weight="balanced_subsample", min_samples_split=3)),
    Recipe("rf-2021-03a", ("e4b7cf8",), "2021-03-17 19:36", "2021-03-21 19:45",
           "min_samples_split 5, rows capped at 100,000, 10 rolled CRF runs (+-k)",
           defaults=_d(**dict(_WIN_DEF, n_estimators=3)),
           **dict(_WIN, trees="2x settings", session="accumulate-rows",
                  class_weight="balanced_subsample", min_samples_split=5, row_cap=(100_000, 100_000),
                  rolls=5, roll_span="int(H/5)", roll_signs="+-")),
    Recipe("rf-2021-03b", ("0916994", "52dfbf7"), "2021-03-21 19:45", "2021-03-24 21:44",
           "raw column and row as features and CRF bands; rows capped at 500,000",
           defaults=_d(**dict(_WIN_DEF, crf_downsample=3, n_estimators=3)),
           **dict(_WIN, trees="2x settings", session="accumulate-rows",
                  class_weight="balanced_subsample", min_samples_split=5, row_cap=(500_000, 500_000),
                  rolls=5, roll_span="int(H/5)", roll_signs="+-", location="gxgy",
                  crf_location="gxgy")),
    Recipe("rf-2021-03c", ("647a0de", "7744f2b", "423a4bf", "d13e9fc"), "2021-03-24 21:44",
           "2021-05-03 06:48", "raw pixel radius as the location feature and CRF band",
           defaults=_d(**dict(_WIN_DEF, crf_downsample=3, n_estimators=3)),
           **dict(_WIN, trees="2x settings", session="accumulate-rows",
                  class_weight="balanced_subsample", min_samples_split=5, row_cap=(500_000, 500_000),
                  rolls=5, roll_span="int(H/5)", roll_signs="+-", location="raw",
                  crf_location="radius")),
    Recipe("rf-2021-05a", ("fb5461e", "3e51228"), "2021-05-03 06:48", "2021-05-09 11:27",
           "element-wise sqrt 'standardization'; 5 rolled CRF runs (+k); last PNG sessions",
           defaults=_d(**dict(_WIN_DEF, crf_downsample=4, crf_mu=40.0, n_estimators=3)),
           **dict(_WIN, trees="2x settings", session="accumulate-rows",
                  class_weight="balanced_subsample", min_samples_split=5, row_cap=(500_000, 500_000),
                  rolls=5, roll_span="int(H/5)", location="raw", standardize="sqrt",
                  crf_image="standardized", crf_location="radius")),
    Recipe("rf-2021-05", ("7aad21f", "5b27727", "09d12a2"), "2021-05-09 11:27", "2021-05-09 20:28",
           "random forest, 9-value settings with sigma range (May 2021, 7aad21f)", ("9",),
           defaults=_d(**_NPZ_DEF), spatial_filter="always", roll_span="H",
           final_rescale="one", session="accumulate-rows"),
    Recipe("rf-2021-05c", ("27f438c", "a0a0d13"), "2021-05-09 20:28", "2021-06-09 18:58",
           "random forest, 7-value settings, CRF rescaled to [1, max] (May-June 2021, 27f438c)",
           ("7rf",), defaults=_d(**_NPZ_DEF), sigma_range=(1.0, 16.0), final_rescale="one",
           session="accumulate-rows"),
    Recipe("rf-2021-06", ("df7fccf",), "2021-06-09 18:58", "2021-06-21 13:40",
           "random forest, 7-value settings (June 2021, dash_doodler df7fccf)", ("7rf",),
           defaults=_d(**_NPZ_DEF), sigma_range=(1.0, 16.0), session="accumulate-rows"),
    Recipe("mlp-2021-06a", ("2993af9", "6e0ecb0"), "2021-06-21 13:40", "2021-06-27 22:20",
           "first MLP: hidden layers [100, 100], 6-value settings (June 2021, 2993af9)", ("6",),
           defaults=_d(**_NPZ_DEF), **dict(_MLP, mlp_hidden=(100, 100))),
    Recipe("mlp-2021-06", ("63c1408", "4fdca02"), "2021-06-27 22:20", "2021-10-12 00:00",
           "MLP, 6-value settings, 5 fixed scales (June-Oct 2021, 4fdca02)", ("6",),
           defaults=_d(**_NPZ_DEF), **_MLP),
    Recipe("mlp-2021-10", ("391b4c9", "779690c"), "2021-09-30 13:40", "2022-05-04 00:00",
           "MLP, n_sigmas, rolled-CRF average (Sept 2021 - May 2022, 779690c)", ("7mlp",),
           defaults=_d(**_NPZ_DEF), sigma_rule="n_sigmas", **_MLP),
    Recipe("mlp-2022-05", ("7054a6e",), "2022-05-04 00:00", "2022-06-14 00:00",
           "MLP, n_sigmas, single CRF run 'kludge' (May-June 2022, 7054a6e)", ("7mlp",),
           defaults=_d(**_NPZ_DEF),
           **{**_MLP, "sigma_rule": "n_sigmas", "sobel_border": False, "zero_unknown": True,
              "crf_flow": "kludge", "rolls": 1}),
    Recipe("engine-2022-06", ("doodler_engine",), "2022-06-14 00:00", "9999-12-31 23:59",
           "doodler_engine: predict_proba, softmax CRF, classes as scales (June 2022 on)",
           ("7engine", "7mlp"), defaults=_d(**_NPZ_DEF),
           **{**_MLP, "sigma_rule": "n_classes", "location": "blur-new", "sobel_border": False,
              "predict": "proba", "crf_flow": "engine", "rolls": 1, "fill_holes": False,
              "spatial_filter": None}),
]

#: every recipe, oldest first, by name
RECIPES = {r.name: r for r in _RECIPES}
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
