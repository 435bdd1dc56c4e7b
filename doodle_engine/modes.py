"""The modes as data: what each mode trades of Doodler's exact labels for time.

One :class:`ModeProfile` per mode.  ``exact`` is Doodler's algorithm as it ran (same labels);
``fast`` and ``fastest`` are points of the speed / agreement curve measured on the real
MLP-era files (``benchmarks/frontier.py``, ``docs/measurements/frontier.md``); ``reference`` runs the
libraries Doodler called.  The CRF is float32 in every mode (pydensecrf's precision, which
the compiled lattice keeps), so precision is not a knob of the CRF here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import DoodleError


@dataclass(frozen=True)
class ModeProfile:
    """The knobs of one mode.

    name : the mode's name (``--mode``).
    compiled : compiled kernels (False: scikit-learn, scikit-image, SciPy themselves).
    dtype : "float64" or "float32": the feature matrix and the MLP trainer.
    max_rows : the cap on MLP training rows (evenly spaced, as Doodler's 100,000 cap).
    mf_iterations : mean-field iterations of each CRF run (Doodler: 10).
    stop_when_stable : stop a CRF run's mean field once an iteration leaves every pixel's
        label (the argmax of Q) as the iteration before left it.
    rolled_runs : how many of a late-2021 era's rolled CRF runs are made and averaged (the
        first offsets, k = 0 first); None: all of them, as Doodler did.
    batch : rows of each of the MLP trainer's minibatches (Doodler: 200).
    learning_rate : Adam's step size (Doodler: 0.001); the sweep scales it with ``batch``.
    max_epochs : a cap on the MLP's epochs; None: the era's own (Doodler: 2000).
    stop_tol, stop_patience : early stopping: training ends once the validation score has not
        risen by ``stop_tol`` for more than ``stop_patience`` epochs (Doodler: 1e-4, 10).
    predict_stride : the MLP predicts every k-th pixel of every k-th row and the class
        probabilities are interpolated (bilinear) in between; "crf": k is the settings' CRF
        downsample factor (the grid the CRF reads); 1: every pixel, as Doodler did.  Forest
        eras always predict every pixel.
    """

    name: str
    compiled: bool = True
    dtype: str = "float64"
    max_rows: int = 100_000
    mf_iterations: int = 10
    stop_when_stable: bool = False
    rolled_runs: int | None = None
    batch: int = 200
    learning_rate: float = 1e-3
    max_epochs: int | None = None
    stop_tol: float = 1e-4
    stop_patience: int = 10
    predict_stride: int | str = 1

    def __post_init__(self):
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, not {self.dtype!r}")
        if int(self.max_rows) < 2 or int(self.mf_iterations) < 1:
            raise ValueError("max_rows must be >= 2 and mf_iterations >= 1")
        if self.rolled_runs is not None and int(self.rolled_runs) < 1:
            raise ValueError("rolled_runs must be None (all) or >= 1")
        if int(self.batch) < 1 or not self.learning_rate > 0 or int(self.stop_patience) < 0:
            raise ValueError("batch must be >= 1, learning_rate > 0 and stop_patience >= 0")
        if self.max_epochs is not None and int(self.max_epochs) < 1:
            raise ValueError("max_epochs must be None (the era's) or >= 1")
        if self.predict_stride != "crf" and (isinstance(self.predict_stride, str)
                                             or int(self.predict_stride) < 1):
            raise ValueError(f"predict_stride must be 'crf' or an integer >= 1, "
                             f"not {self.predict_stride!r}")

    @property
    def feature_key(self):
        """What the feature matrix depends on (shared between profiles that agree on it)."""
        return (self.compiled, self.dtype)

    @property
    def fit_key(self):
        """What the classifier fit depends on."""
        return (self.compiled, self.dtype, int(self.max_rows), int(self.batch),
                float(self.learning_rate), self.max_epochs, float(self.stop_tol),
                int(self.stop_patience))

    def with_(self, **knobs):
        """A copy with some knobs changed (the sweep's grid points)."""
        return replace(self, **knobs)


#: Doodler's algorithm in compiled kernels: Doodler's labels
EXACT = ModeProfile("exact")
#: the libraries Doodler called (scikit-learn, scikit-image, SciPy, pydensecrf)
REFERENCE = ModeProfile("reference", compiled=False)
#: chosen on the curve: median >= 99.9 %, worst >= 99.5 % agreement (docs/measurements/frontier.md,
#: 2026-12-05, re-timed; on the 12 real MLP-era reconstructions median 99.95 %, worst 99.55 %)
FAST = ModeProfile("fast", dtype="float32", max_rows=40_000, mf_iterations=10,
                   stop_when_stable=True, rolled_runs=3, predict_stride=2)
#: chosen on the curve: worst >= 99 % agreement (docs/measurements/frontier.md; median 99.98 %,
#: worst 99.23 %): training also stops once the validation score has not risen by 0.1 % in 10
#: epochs, and the MLP predicts on the CRF's own grid
FASTEST = ModeProfile("fastest", dtype="float32", max_rows=30_000, mf_iterations=10,
                      stop_when_stable=True, rolled_runs=1, stop_tol=1e-3, predict_stride="crf")

PROFILES = {p.name: p for p in (EXACT, FAST, FASTEST, REFERENCE)}
MODES = tuple(PROFILES)


def profile(mode, path=None):
    """The :class:`ModeProfile` of ``mode`` (a name or a profile); an unknown name is a
    :class:`DoodleError` naming ``path``."""
    if isinstance(mode, ModeProfile):
        return mode
    try:
        return PROFILES[mode]
    except (KeyError, TypeError):
        raise DoodleError(path, f"unknown mode {mode!r}; choose one of {', '.join(MODES)}") from None
