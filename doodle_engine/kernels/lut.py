"""Compiled lookup-table remap: ``out[i] = table[labels[i]]`` over any shape, in parallel.

:func:`apply_lut_checked` counts, in the same pass, the pixels whose value is flagged (a
class the mapping has no rule for) or lies outside the table, so a remap needs no separate
scan of the labels to validate them.  Its twin is :func:`apply_lut_checked_numpy`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCK = 1 << 16


@njit(cache=True, parallel=True)
def _apply_checked_u8(flat, packed, out):
    # uint8 labels on a 256-entry table: every value indexes it, no bounds test.
    # packed[v]: the output value in the low byte, 1 in the high byte when v is flagged.
    # Returns whether any pixel was flagged (the caller counts and names them on that rare
    # path); OR-ing the entries costs less than counting them.
    n = flat.size
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    bad = 0
    for b in prange(n_blocks):
        start = b * _BLOCK
        stop = min(start + _BLOCK, n)
        acc = 0
        for i in range(start, stop):
            t = packed[flat[i]]
            out[i] = t
            acc |= t
        bad += acc >> 8
    return bad


@njit(cache=True, parallel=True)
def _apply_checked_any(flat, packed, out):
    # any integer labels: values outside the table are flagged and become 255
    n = flat.size
    nt = packed.size
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    bad = 0
    for b in prange(n_blocks):
        start = b * _BLOCK
        stop = min(start + _BLOCK, n)
        acc = 0
        for i in range(start, stop):
            v = flat[i]
            if v < 0 or v >= nt:
                out[i] = 255
                acc |= 256
            else:
                t = packed[v]
                out[i] = t
                acc |= t
        bad += acc >> 8
    return bad


def pack_table(table, flags):
    """One uint16 entry per value: the uint8 output, plus 256 where ``flags`` is set."""
    return (np.asarray(table, np.uint16) & 0xFF) | (np.asarray(flags, np.uint16) << 8)


def apply_lut_checked(labels, table, flags, out=None):
    """``(table[labels], found)`` in one pass, where ``found`` is True when some pixel's
    value is flagged or lies outside ``table`` (such pixels get 255).

    ``table``: uint8 lookup table; ``flags``: same length, non-zero for values that must
    not occur.  ``labels``: any integer dtype, any shape."""
    labels = np.ascontiguousarray(labels)
    if out is None:
        out = np.empty(labels.shape, np.uint8)
    packed = pack_table(table, np.asarray(flags) != 0)
    kernel = _apply_checked_u8 if labels.dtype == np.uint8 and len(packed) >= 256 \
        else _apply_checked_any
    found = kernel(labels.reshape(-1), packed, out.reshape(-1))
    return out, bool(found)


def apply_lut_checked_numpy(labels, table, flags):
    """The straightforward twin of :func:`apply_lut_checked`."""
    labels = np.asarray(labels).astype(np.int64)
    inside = (labels >= 0) & (labels < len(table))
    safe = np.where(inside, labels, 0)
    out = np.where(inside, np.asarray(table, np.uint8)[safe], 255).astype(np.uint8)
    found = bool((~inside).any() or (np.asarray(flags)[safe] != 0)[inside].any())
    return out, found
