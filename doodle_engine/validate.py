"""Validation: a rebuilt label against the stored one (pixel accuracy, IoU, kappa)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DoodleError
from .record import NO_CLASS


@dataclass
class Metrics:
    n_pixels: int
    n_differ: int
    accuracy: float
    iou: dict  # class index -> IoU, for classes present in either label
    mean_iou: float
    kappa: float
    confusion: np.ndarray  # rows: stored, columns: rebuilt; last row/column = no class

    def as_row(self, classes=None):
        row = {"pixels": self.n_pixels, "differ": self.n_differ, "accuracy": self.accuracy,
               "mean_iou": self.mean_iou, "kappa": self.kappa}
        for c, v in self.iou.items():
            name = classes[c] if classes is not None and c < len(classes) else str(c)
            row[f"iou_{name}"] = v
        return row


def confusion_matrix(stored, rebuilt, n_classes):
    """(n+1)x(n+1) counts; index n collects NO_CLASS (and anything >= n)."""
    a = np.minimum(stored.ravel().astype(np.int64), n_classes)
    b = np.minimum(rebuilt.ravel().astype(np.int64), n_classes)
    return np.bincount(a * (n_classes + 1) + b, minlength=(n_classes + 1) ** 2).reshape(
        n_classes + 1, n_classes + 1)


def metrics_from_confusion(cm):
    n = cm.shape[0] - 1
    total = int(cm.sum())
    agree = int(np.trace(cm))
    acc = agree / total if total else float("nan")
    iou = {}
    for c in range(n):
        tp = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - tp
        if union > 0:
            iou[c] = float(tp / union)
    mean_iou = float(np.mean(list(iou.values()))) if iou else float("nan")
    pe = float((cm.sum(0).astype(np.float64) * cm.sum(1)).sum() / total ** 2) if total else 0.0
    kappa = (acc - pe) / (1 - pe) if pe < 1 else 1.0
    return Metrics(total, total - agree, acc, iou, mean_iou, float(kappa), cm)


def validate(stored, rebuilt, n_classes=None) -> Metrics:
    """Compare a rebuilt label with the stored one.

    Parameters
    ----------
    stored, rebuilt : array of int
        0-based label rasters of the same shape (``NO_CLASS`` = 255 for no class).
    n_classes : int, optional
        Number of classes; by default the largest class present + 1.

    Returns
    -------
    Metrics
        ``n_differ`` (pixels), ``accuracy``, ``iou`` (per class), ``mean_iou``, ``kappa``
        and ``confusion`` (rows stored, columns rebuilt, last = no class).

    Examples
    --------
    >>> import numpy as np
    >>> from doodle_engine.validate import validate
    >>> m = validate(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 0]]), n_classes=2)
    >>> m.n_differ, m.accuracy
    (1, 0.75)
    """
    stored = np.asarray(stored)
    rebuilt = np.asarray(rebuilt)
    if stored.shape != rebuilt.shape:
        raise DoodleError(None, f"label shapes differ: stored {stored.shape}, rebuilt {rebuilt.shape}")
    for name, a in (("stored", stored), ("rebuilt", rebuilt)):
        if a.dtype.kind not in "ui":
            raise DoodleError(None, f"{name} label must hold integer class indices, got {a.dtype}")
    if n_classes is None:
        vals = np.concatenate([np.unique(stored), np.unique(rebuilt)])
        vals = vals[vals != NO_CLASS]
        n_classes = int(vals.max()) + 1 if vals.size else 1
    else:
        for name, a in (("stored", stored), ("rebuilt", rebuilt)):
            bad = (a != NO_CLASS) & ((a < 0) | (a >= n_classes))
            if bad.any():  # counted as "no class" they would agree with each other
                raise DoodleError(None, f"{name} label value {int(a[bad][0])} is not one of the "
                                        f"n_classes={n_classes} classes (or {NO_CLASS}, none)")
    return metrics_from_confusion(confusion_matrix(stored, rebuilt, n_classes))
