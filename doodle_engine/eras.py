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
    bilateral_compat: float | None = None  # None: the settings' crf_mu
    crf_decimate: int | None = None  # None: the settings' crf_downsample
    crf_bands: str = "rgb"  # "rgb" | "rgb+indices" (RGB, VARI, NEXG, NGRDI)
    crf_image: str = "standardized"  # "standardized" | "raw"
    crf_location: str | None = None  # location channels appended to the CRF image: "gxgy" | "radius"
    upsample: str = "nearest"  # "nearest" | "bilinear-aa"
    label_shift: str = "if-no-zero"  # how labels are made 1-based before the unary
    final_rescale: str = "orig_mn"  # "orig_mn" | "one": CRF label rescaled to [that, orig_mx]
    rolls: int = 10  # CRF runs averaged (1: a single run)
    roll_span: str = "H/5"  # k = linspace(0, span, rolls): "H/5" | "int(H/5)" | "H"
    roll_signs: str = "+"  # "+" | "+-" (each k rolled both ways)
    refilter: bool = True  # hole filling of each rolled run
    # ---- stage 6: after the CRF
    median_radius: int = 0  # median filter disk(r) of the final label (0: none)
    # ---- output
    label_encoding: str = "onehot-kmax"  # "onehot-kmax" | "png"

    # ------------------------------------------------------------------ derived
    @property
    def default_settings(self):
        return dict(self.defaults)

    def holds(self, date):
        """Whether ``date`` (YYYY-MM-DD) falls in this recipe's date range."""
        return date is not None and self.start <= date <= self.end

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
        """Every behaviour field and its value (for ``info`` and the docs)."""
        skip = {"name", "commits", "start", "end", "description", "layouts", "defaults"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def one_line(self):
        """A short summary of what this era did (for ``doodle-engine eras``)."""
        clf = ("MLP" if self.classifier == "mlp" else f"forest ({self.trees} trees)")
        crf = {"rolled": f"{self.rolls} rolled CRF runs" if self.rolls > 1 else "one CRF run",
               "kludge": "one CRF run (rolled runs discarded)",
               "engine": "one-hot softmax CRF"}[self.crf_flow]
        return f"{clf}; {crf}"


_MLP = dict(classifier="mlp", row_cap=(100_000, 100_000), refilter=False, rolls=5,
            spatial_filter="h>512", location="blur-old")

_RECIPES = [
    Recipe("rf-2021-05", ("7aad21f",), "2021-05-09", "2021-05-09",
           "random forest, 9-value settings with sigma range (May 2021)", ("9",),
           defaults=(("sigma_min", 1.0), ("sigma_max", 16.0))),
    Recipe("rf-2021-06", ("df7fccf",), "2021-05-09", "2021-06-21",
           "random forest, 7-value settings (May-June 2021, dash_doodler df7fccf)", ("7rf",),
           defaults=(("sigma_min", 1.0), ("sigma_max", 16.0))),
    Recipe("mlp-2021-06", ("2993af9", "4fdca02"), "2021-06-21", "2021-10-11",
           "MLP, 6-value settings, 5 fixed scales (June-Oct 2021, 4fdca02)", ("6",),
           defaults=(("sigma_min", 1.0), ("sigma_max", 16.0)), **_MLP),
    Recipe("mlp-2021-10", ("779690c",), "2021-09-30", "2022-05-03",
           "MLP, n_sigmas, rolled-CRF average (Sept 2021 - May 2022, 779690c)", ("7mlp",),
           defaults=(("sigma_min", 1.0), ("sigma_max", 16.0)),
           sigma_rule="n_sigmas", **_MLP),
    Recipe("mlp-2022-05", ("7054a6e",), "2022-05-04", "2022-06-13",
           "MLP, n_sigmas, single CRF run 'kludge' (May-June 2022, 7054a6e)", ("7mlp",),
           defaults=(("sigma_min", 1.0), ("sigma_max", 16.0)),
           **{**_MLP, "sigma_rule": "n_sigmas", "sobel_border": False, "zero_unknown": True,
              "crf_flow": "kludge", "rolls": 1}),
    Recipe("engine-2022-06", ("doodler_engine",), "2022-06-14", "9999-12-31",
           "doodler_engine: predict_proba, softmax CRF, classes as scales (June 2022 on)",
           ("7engine", "7mlp"),
           defaults=(("sigma_min", 1.0), ("sigma_max", 16.0)),
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
_UNDATED = {"7mlp": "mlp-2021-10"}


def recipes_for_layout(layout):
    """The recipes whose results can carry settings ``layout``, oldest first."""
    return [r for r in _RECIPES if layout in r.layouts]


def era_for_date(layout, date):
    """(era name, how it was chosen) for settings ``layout`` and a results date (or None).

    A date picks the recipe of that layout whose date range holds it (the latest one started
    by then when several do, the first one for a date before them all); without a date, the
    layout's only recipe, else its longest-lived one (``"layout (no date: assumed)"``)."""
    cands = recipes_for_layout(layout)
    if not cands:
        return None, None
    if len(cands) == 1:
        return cands[0].name, "layout"
    if date is None:
        return _UNDATED.get(layout, cands[-1].name), "layout (no date: assumed)"
    started = [r for r in cands if r.start <= date]
    holding = [r for r in started if r.holds(date)]
    pick = (holding or started or cands[:1])[-1]
    return pick.name, "layout+date"
