"""Predicted cost of rebuilding a file, read cheaply from its headers and settings, to order a
batch so that the long jobs start first (issue 18, item 4).

The time of a reconstruction is mostly its CRF runs and its classifier fit:

    cost = pixels x CRF runs x iterations / 10 / crf_downsample**2   (the mean-field pixels)
         + (PIXEL_WEIGHT + CRF runs x per-run weight) x pixels  (features, predict, clean-up,
                                                            the full-resolution part of a run)
         + ROW_WEIGHT x training rows                       (the fit)

in units of one CRF pixel.  Only the image's ``.npy`` header, the settings (a few numbers) and
the doodles (one byte a pixel, to count the training rows) are read; the image, the label and
the earlier trials are not decompressed.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

from .classifier import row_cap
from .eras import recipe as era_recipe
from .errors import DoodleError
from .inputs import open_npz
from .modes import profile
from .npz import READ_ERRORS, TOTAL_BYTES_PER_PIXEL, parse_header, read_member
from .record import DEFAULT_MAX_PIXELS
from .settings import decode_settings

#: about 0.6 s per Mpx against about 1.2 us per CRF pixel and mean-field run)
PIXEL_WEIGHT = 0.5
#: each CRF run's full-resolution work (rolling the inputs, resizing back, rescaling) ...
RUN_PIXEL_WEIGHT = 0.1
#: ... and the hole filling after each run in the eras that re-filtered (random forest 2021)
REFILTER_WEIGHT = 0.3
#: one MLP training row (about 70-90 us at ~40-50 epochs in exact mode), in CRF-pixel units;
#: a forest row is far cheaper
ROW_WEIGHT = {"mlp": 60.0, "rf": 5.0}


def crf_runs(recipe, used=None):
    """How many CRF runs the era's flow makes (rolled runs, or one); ``used``: a mode's
    ``rolled_runs`` (None: all)."""
    if recipe.crf_flow != "rolled":
        return 1
    rolls = recipe.rolls if used is None else min(recipe.rolls, int(used))
    return rolls * (2 if recipe.roll_signs == "+-" else 1)


def _member(zf, key, path):
    name = key + ".npy"
    if name not in zf.namelist():
        return None
    return read_member(zf, name, path, False, DEFAULT_MAX_PIXELS,
                        [TOTAL_BYTES_PER_PIXEL * DEFAULT_MAX_PIXELS])


def _image_shape(zf, path):
    with zf.open("image.npy") as fh:
        shape, _, _ = parse_header(fh, "image", path)
    return shape


def predicted_cost(path, mode="exact"):
    """The predicted cost of rebuilding ``path`` in ``mode`` (CRF-pixel units, see the module
    doc), or the image's pixels when the settings cannot be decoded; raises DoodleError when
    the file cannot be read at all.  The mode's row cap, rolled runs and mean-field
    iterations enter it (an early stop is not foreseen: its iterations count in full)."""
    try:
        with open_npz(path) as fh, zipfile.ZipFile(fh) as zf:
            shape = _image_shape(zf, path)
            pixels = shape[0] * shape[1] if len(shape) >= 2 else 0
            raw = _member(zf, "settings", path)
            doodles = _member(zf, "doodles", path) if raw is not None else None
    except READ_ERRORS + (KeyError,) as exc:
        raise DoodleError(path, f"cannot be read: {exc}") from None
    if raw is None or doodles is None:
        return float(pixels)
    try:
        s = decode_settings(raw, path=path)
        r = era_recipe(s.era, path)
    except DoodleError:
        return float(pixels)
    counts = np.bincount(np.asarray(doodles, np.uint8).ravel(), minlength=2)
    if np.count_nonzero(counts[1:]) < 2:
        return float(pixels)  # one class doodled: no classifier, no CRF
    ds = r.crf_decimate if r.crf_decimate is not None else s.crf_downsample
    ds = max(int(ds), 1)
    doodled = int(counts[1:].sum())
    prof = profile(mode, path)
    runs = crf_runs(r, prof.rolled_runs)
    rows = math.ceil(doodled / max(int(s.classifier_downsample), 1))
    cap = row_cap(r, int(prof.max_rows))
    if cap is not None and rows > cap[0]:
        rows = cap[1]
    per_run = RUN_PIXEL_WEIGHT + (REFILTER_WEIGHT if r.refilter else 0.0)
    return (pixels * runs * prof.mf_iterations / 10 / ds ** 2
            + (PIXEL_WEIGHT + runs * per_run) * pixels
            + ROW_WEIGHT.get(r.classifier, ROW_WEIGHT["mlp"]) * rows)


def costliest_first(files, mode="exact"):
    """Files by predicted cost, costliest first: with several workers the long jobs start
    early and the short ones fill the gaps at the end (files that cannot be read come last,
    in their order)."""
    def cost(f):
        try:
            return predicted_cost(f, mode)
        except DoodleError:
            return -1.0
    return sorted(files, key=cost, reverse=True)
