"""The data model every stage shares: one Doodler result (:class:`DoodleRecord`) and its labels.

A label is a 2-D uint8 raster of 0-based class indices with :data:`NO_CLASS` where a pixel has
no class; :func:`zero_based` turns Doodler's 1-based doodles into that form and
:func:`onehot_from_label` back into the one-hot stack Doodler stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .settings import Settings

#: label value for "no class" in the 0-based label raster (a one-hot pixel with no bit set)
NO_CLASS = 255
#: default limit on pixels per image, for every reader (override with ``max_pixels=``)
DEFAULT_MAX_PIXELS = 64_000_000
#: the most classes a file may name (labels are uint8 with 255 = no class)
MAX_CLASSES = NO_CLASS - 1


@dataclass
class DoodleRecord:
    """One Doodler result (the newest in the file; earlier attempts are in ``trials``).

    ``label`` is the stored label as a 2-D uint8 raster of 0-based class indices
    (``NO_CLASS`` where a one-hot pixel has no bit set); ``label_k`` is the number of planes
    of a one-hot label (it can be smaller than ``len(classes)``), None for a 2-D label.
    """

    path: str | None
    image: np.ndarray
    doodles: np.ndarray
    label: np.ndarray | None = None
    label_layout: str | None = None  # "onehot" or "raster"
    label_k: int | None = None
    orig_image: np.ndarray | None = None
    color_doodles: np.ndarray | None = None
    color_label: np.ndarray | None = None
    classes: list | None = None
    classes_source: str | None = None  # "file", "classes.txt", "user"
    settings: Settings | None = None
    raw_settings: np.ndarray | None = None
    trials: list = field(default_factory=list)  # earlier attempts, newest first
    trial_prefix: str = ""
    #: what made the file when not Doodler (``doodle-engine remap``: from which file and
    #: classes), kept in the npz's ``remapped`` array; None for Doodler's own files
    remapped: str | None = None

    @property
    def shape(self):
        return self.image.shape[:2]

    @property
    def n_classes(self):
        if self.classes is not None:
            return len(self.classes)
        return int(max(self.doodles.max(initial=0), (self.label_k or 0)))

    def doodled_classes(self):
        """0-based indices of the classes that have doodles."""
        return [int(v) - 1 for v in np.unique(self.doodles) if v > 0]


def zero_based(values):
    """1-based classes with 0 = none (doodles, Doodler's ``seg``) -> 0-based uint8 raster with
    NO_CLASS where the value was 0."""
    values = np.asarray(values)
    out = values.astype(np.int16) - 1
    out[values == 0] = NO_CLASS
    return out.astype(np.uint8)


def onehot_from_label(label0, k=None):
    """0-based raster (NO_CLASS = none) -> one-hot HxWxK uint8 as Doodler stored it."""
    valid = label0 != NO_CLASS
    if k is None:
        k = int(label0[valid].max()) + 1 if valid.any() else 0
    out = np.zeros(label0.shape + (k,), np.uint8)
    for c in range(k):
        out[..., c] = (label0 == c)
    return out


def with_label(record: DoodleRecord, label0, layout="onehot"):
    """A copy of ``record`` whose label is ``label0`` (0-based raster)."""
    k = None if layout == "raster" else (int(label0[label0 != NO_CLASS].max()) + 1
                                         if (label0 != NO_CLASS).any() else 0)
    return replace(record, label=label0, label_layout=layout, label_k=k)
