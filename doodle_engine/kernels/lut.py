"""Compiled lookup-table remap: ``out[i] = table[labels[i]]`` over any shape, in parallel.
Its twin is ``numpy.take(table, labels)``."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCK = 1 << 16


@njit(cache=True, parallel=True)
def _apply(flat, table, out):
    n = flat.size
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in prange(n_blocks):
        start = b * _BLOCK
        stop = min(start + _BLOCK, n)
        for i in range(start, stop):
            out[i] = table[flat[i]]


def apply_lut(labels, table, out=None):
    """``table[labels]`` for integer labels of any shape (values must index ``table``)."""
    labels = np.ascontiguousarray(labels)
    if out is None:
        out = np.empty(labels.shape, table.dtype)
    _apply(labels.reshape(-1), table, out.reshape(-1))
    return out
