"""Compiled feature stack: the twin of ``doodle_engine.features.feature_matrix``.

Per channel and sigma it computes, in float32 like scikit-image, the Gaussian blur (SciPy's
separable filter: 'nearest' edges, truncate 4, float64 accumulation in SciPy's order, float32
between the two axis passes), the Sobel magnitude (SciPy's 'reflect' 3x3 correlation in
scikit-image's order) and the two Hessian eigenvalues (``np.gradient`` twice, closed form),
and writes them straight into one preallocated (pixels x features) float64 matrix, rows in
parallel.  The operations and their order follow those libraries, so the result is
bit-identical to the reference path (the tests check it); the location feature is the
reference's own (it is 1-D work).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..feature_layout import FEATURES_PER_SCALE, location_axes

F32 = np.float32


def gaussian_weights(sigma, truncate=4.0):
    """SciPy's Gaussian kernel (order 0), float64, centre at index radius."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    return phi / phi.sum()


@njit(cache=True, inline="always")
def _clamp(i, n):
    if i < 0:
        return 0
    if i >= n:
        return n - 1
    return i


@njit(cache=True, parallel=True)
def _blur_axis0(src, w, dst):
    """SciPy's symmetric correlate1d along axis 0 ('nearest' edges): the centre term first,
    then the pairs from the outermost in, summed in float64, rounded to float32.  The pairs
    are added a whole row at a time (each pixel keeps SciPy's order; the row vectorizes)."""
    h, wd = src.shape
    r = (w.size - 1) // 2
    for i in prange(h):
        acc = np.empty(wd)
        for j in range(wd):
            acc[j] = np.float64(src[i, j]) * w[r]
        for k in range(-r, 0):
            up = src[_clamp(i + k, h)]
            down = src[_clamp(i - k, h)]
            wk = w[r + k]
            for j in range(wd):
                acc[j] += (np.float64(up[j]) + np.float64(down[j])) * wk
        for j in range(wd):
            dst[i, j] = F32(acc[j])


@njit(cache=True, parallel=True)
def _blur_axis1(src, w, dst):
    """The same filter along axis 1: each row is padded with its edge values once, then the
    pairs are added for the whole row at a time, in SciPy's order per pixel."""
    h, wd = src.shape
    r = (w.size - 1) // 2
    for i in prange(h):
        padded = np.empty(wd + 2 * r)
        for j in range(wd + 2 * r):
            padded[j] = np.float64(src[i, _clamp(j - r, wd)])
        acc = np.empty(wd)
        for j in range(wd):
            acc[j] = padded[j + r] * w[r]
        for k in range(-r, 0):
            wk = w[r + k]
            for j in range(wd):
                acc[j] += (padded[j + r + k] + padded[j + r - k]) * wk
        for j in range(wd):
            dst[i, j] = F32(acc[j])


@njit(cache=True, inline="always")
def _grad(a, i, j, axis):
    """np.gradient (edge_order 1, unit spacing) of a float32 array at (i, j) along axis."""
    n = a.shape[axis]
    k = i if axis == 0 else j
    if n < 2:
        return F32(0.0)
    if k == 0:
        return (a[1, j] - a[0, j]) if axis == 0 else (a[i, 1] - a[i, 0])
    if k == n - 1:
        return (a[n - 1, j] - a[n - 2, j]) if axis == 0 else (a[i, n - 1] - a[i, n - 2])
    if axis == 0:
        return (a[i + 1, j] - a[i - 1, j]) / F32(2.0)
    return (a[i, j + 1] - a[i, j - 1]) / F32(2.0)


@njit(cache=True, parallel=True)
def _gradients(blur, g0, g1):
    h, w = blur.shape
    for i in prange(h):
        for j in range(w):
            g0[i, j] = _grad(blur, i, j, 0)
            g1[i, j] = _grad(blur, i, j, 1)


@njit(cache=True, inline="always")
def _reflect(i, n):
    if i < 0:
        return -i - 1
    if i >= n:
        return 2 * n - i - 1
    return i


@njit(cache=True, parallel=True)
def _write_scale(blur, g0, g1, out, col):
    """Columns col..col+3: blur, sobel, Hessian eigenvalues (largest first)."""
    h, w = blur.shape
    q, hlf = 0.25, 0.5
    sqrt2 = np.sqrt(F32(2.0))
    for i in prange(h):
        im, ip = _reflect(i - 1, h), _reflect(i + 1, h)
        for j in range(w):
            jm, jp = _reflect(j - 1, w), _reflect(j + 1, w)
            # scikit-image's sobel: ndi.convolve with the flipped 3x3 kernels, non-zero
            # weights in raster order, float64 sums, float32 results
            a = 0.0
            a += np.float64(blur[im, jm]) * -q
            a += np.float64(blur[im, j]) * -hlf
            a += np.float64(blur[im, jp]) * -q
            a += np.float64(blur[ip, jm]) * q
            a += np.float64(blur[ip, j]) * hlf
            a += np.float64(blur[ip, jp]) * q
            b = 0.0
            b += np.float64(blur[im, jm]) * -q
            b += np.float64(blur[im, jp]) * q
            b += np.float64(blur[i, jm]) * -hlf
            b += np.float64(blur[i, jp]) * hlf
            b += np.float64(blur[ip, jm]) * -q
            b += np.float64(blur[ip, jp]) * q
            a32 = F32(a)
            b32 = F32(b)
            mag = F32(F32(a32 * a32) + F32(b32 * b32))
            sob = F32(np.sqrt(mag)) / sqrt2
            m00 = _grad(g0, i, j, 0)
            m01 = _grad(g0, i, j, 1)
            m11 = _grad(g1, i, j, 1)
            mean = (m00 + m11) / F32(2.0)
            half = (m00 - m11) / F32(2.0)
            hs = F32(np.sqrt(F32(m01 * m01) + F32(half * half)))
            p = i * w + j
            out[p, col] = blur[i, j]
            out[p, col + 1] = sob
            out[p, col + 2] = mean + hs
            out[p, col + 3] = mean - hs


@njit(cache=True, parallel=True)
def _zero_border(out, col, h, w):
    """Zero column ``col`` on the image's first and last row and column (old Sobel)."""
    for j in prange(w):
        out[j, col] = 0.0
        out[(h - 1) * w + j, col] = 0.0
    for i in prange(h):
        out[i * w, col] = 0.0
        out[i * w + w - 1, col] = 0.0


@njit(cache=True, parallel=True)
def _write_location(gx, gy, out, col):
    """``sqrt(gx[j]**2 + gy[i]**2)`` straight into the column (no H x W temporary)."""
    h, w = gy.size, gx.size
    for i in prange(h):
        for j in range(w):
            out[i * w + j, col] = np.sqrt(gx[j] * gx[j] + gy[i] * gy[i])


def feature_matrix(image_std, sigmas, loc_mode, dtype=np.float64, sobel_border=False):
    """Same result as :func:`doodle_engine.features.feature_matrix`, compiled.

    ``dtype=np.float32`` (fast mode) halves the matrix: every feature but the location is
    float32 already, the location is rounded to float32."""
    h, w = image_std.shape[:2]
    n_ch = image_std.shape[2]
    out = np.empty((h * w, n_ch * len(sigmas) * FEATURES_PER_SCALE), dtype)
    locs = [location_axes((h, w), s, loc_mode) for s in sigmas]
    tmp = np.empty((h, w), np.float32)
    blur = np.empty((h, w), np.float32)
    g0 = np.empty((h, w), np.float32)
    g1 = np.empty((h, w), np.float32)
    col = 0
    for c in range(n_ch):
        channel = np.ascontiguousarray(image_std[..., c], dtype=np.float32)
        for s, loc in zip(sigmas, locs):
            wts = gaussian_weights(s)
            _write_location(loc[0], loc[1], out, col)
            _blur_axis0(channel, wts, tmp)  # axis 0 first, as SciPy does
            _blur_axis1(tmp, wts, blur)
            _gradients(blur, g0, g1)
            _write_scale(blur, g0, g1, out, col + 1)
            if sobel_border:
                _zero_border(out, col + 2, h, w)
            col += FEATURES_PER_SCALE
    return out
