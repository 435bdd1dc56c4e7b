"""Compiled clean-up filters: the spatial filter near class edges and the NaN in-painting.

Twins: :func:`doodle_engine.cleanup.filter_one_hot_spatial` (per-class SciPy distance
transforms) and :func:`doodle_engine.cleanup.inpaint_nans` (repeated full-image
``convolve2d``).  Both give the same result bit for bit; here each pixel only looks at the
few neighbours that can change it."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import NothingToInpaint


# ----------------------------------------------------------------------------- spatial filter
def _offsets(distance):
    """Neighbour offsets within ``distance`` (Euclidean), with whether each is strictly closer."""
    r = int(np.ceil(distance))
    rows = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            d = np.sqrt(dy * dy + dx * dx)
            if 0 < d <= distance:
                rows.append((dy, dx, d < distance))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@njit(cache=True)
def _near_edge(label, offsets, y, x):
    """(a pixel of another label lies strictly within the distance, ... within or at it)."""
    h, w = label.shape
    own = label[y, x]
    strict = False
    within = False
    for i in range(offsets.shape[0]):
        yy = y + offsets[i, 0]
        xx = x + offsets[i, 1]
        if 0 <= yy < h and 0 <= xx < w and label[yy, xx] != own:
            within = True
            if offsets[i, 2]:
                strict = True
    return strict, within


@njit(cache=True)
def _spatial(label, offsets, kmax, distance):
    h, w = label.shape
    out = np.empty((h, w), np.int64)
    count = np.empty((h, w), np.int64)
    uniform = True
    first = label[0, 0]
    for y in range(h):
        for x in range(w):
            if label[y, x] != first:
                uniform = False
    for y in range(h):
        for x in range(w):
            own = label[y, x]
            if own < 1 or own > kmax:  # in no class plane: distance 0 in every plane
                out[y, x] = 1
                count[y, x] = kmax
                continue
            if uniform:
                # SciPy's distance transform of a plane with no background measures from
                # (-1, 0); reproduced so the twins agree on one-class labels too
                d = np.sqrt((y + 1.0) ** 2 + float(x) ** 2)
                strict, within = d < distance, d <= distance
            else:
                strict, within = _near_edge(label, offsets, y, x)
            out[y, x] = 1 if strict else own
            count[y, x] = kmax - 1 + (1 if within else 0)
    top = out.max()
    for y in range(h):
        for x in range(w):
            if count[y, x] == top:
                out[y, x] = 0
    return out


def filter_one_hot_spatial(label, distance):
    """Compiled twin of :func:`doodle_engine.cleanup.filter_one_hot_spatial`."""
    label = np.ascontiguousarray(label, dtype=np.int64)
    kmax = int(label.max()) if label.size else 0
    return _spatial(label, _offsets(distance), kmax, float(distance))


# ----------------------------------------------------------------------------- in-painting
@njit(cache=True)
def _reflect(i, n):
    # convolve2d's "symm" boundary for a 3x3 kernel: -1 -> 0, n -> n - 1
    if i < 0:
        return -1 - i
    if i >= n:
        return 2 * n - 1 - i
    return i


@njit(cache=True)
def _inpaint(im, nan):
    """Fill NaN pixels pass by pass from the mean of their valid 8 neighbours (reflected at
    the border, so an edge pixel can count a neighbour twice).  The neighbours are summed in
    the order scipy's convolve2d visits them, so the sums are the same to the bit."""
    h, w = im.shape
    todo = np.flatnonzero(nan.ravel())
    values = np.empty(todo.size)
    filled = np.empty(todo.size, np.bool_)
    n_todo = todo.size
    while n_todo:
        for i in range(n_todo):
            y, x = todo[i] // w, todo[i] % w
            total = 0.0
            valid = 0
            for dy in (1, 0, -1):
                yy = _reflect(y + dy, h)
                for dx in (1, 0, -1):
                    if dy == 0 and dx == 0:
                        continue
                    xx = _reflect(x + dx, w)
                    if not nan[yy, xx]:
                        total += im[yy, xx]
                        valid += 1
            filled[i] = valid > 0
            values[i] = total / valid if valid > 0 else 0.0
        n_left = 0
        for i in range(n_todo):
            if filled[i]:
                y, x = todo[i] // w, todo[i] % w
                im[y, x] = values[i]
                nan[y, x] = False
            else:
                todo[n_left] = todo[i]
                n_left += 1
        if n_left == n_todo:  # no valid pixel anywhere (caught before the call)
            break
        n_todo = n_left
    return im


def inpaint_nans(im):
    """Compiled twin of :func:`doodle_engine.cleanup.inpaint_nans`."""
    im = np.array(im, dtype=np.float64)
    nan = np.isnan(im)
    if nan.all():
        raise NothingToInpaint("every pixel is NaN: nothing to in-paint from")
    return _inpaint(im, nan)


def inpaint_zeros(label):
    """Compiled twin of :func:`doodle_engine.cleanup.inpaint_zeros`."""
    f = np.asarray(label).astype(np.float64)
    f[f == 0] = np.nan
    return inpaint_nans(f).astype(np.uint8)
