"""Compiled fully connected CRF: permutohedral-lattice Gaussian filtering and mean-field
inference with the semantics of pydensecrf (Krähenbühl's densecrf, as ``pydensecrf2`` builds it).

What is reproduced, step by step, in float32 as the C++ does it:

* lattice construction (Adams et al. 2010): elevate each feature vector onto the hyperplane,
  find the enclosing simplex by rounding to the nearest 0-coloured point (ties to even, as the
  SSE path rounds), rank the remainders, barycentric weights, the ``d + 1`` vertex keys;
  vertices are numbered in order of first use, as densecrf's hash table numbers them (by
  per-thread tables claimed in parallel, then a running count), and every vertex adds its
  splatted values in point order, as densecrf's loop over the points does;
* filtering: splat, one blur pass per lattice axis ``new = old + 0.5 * (n1 + n2)``, slice
  scaled by ``alpha = 1 / (1 + 2**-d)`` (the two slicing orders of densecrf's scalar path,
  used for <= 2 values per pixel, and of its SSE path are both kept);
* symmetric normalisation ``1 / sqrt(filter(1) + 1e-20)`` before and after filtering, Potts
  compatibility ``-w * filtered``, and ``expAndNormalize`` per pixel.

Eigen evaluates ``exp`` with its own vectorised polynomial, so probabilities agree with
pydensecrf to float rounding (about 1e-7 relative), not bit for bit; the labels agree except
where two classes tie to that precision (tests report the agreement).

The twin is pydensecrf itself (``doodle_engine.crf`` with ``backend="pydensecrf"``): the tests
compare the probabilities and the labels of both on the same inputs.
"""

from __future__ import annotations

import numpy as np
import numba
from numba import njit, prange

_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


# ----------------------------------------------------------------------------- hash tables
# The vertices live in ``parts`` open-addressing tables (one per thread): a key's hash picks
# its table by its top bits and its first slot by its low bits, so threads can fill their
# own tables at the same time without locks.
_PART_SHIFT = np.int64(48)


@njit(cache=True, inline="always")
def _hash(key, d):
    h = np.uint64(0)
    for i in range(d):
        h = (h + np.uint64(np.int64(key[i]) & 0xFFFF)) * _HASH_MULT
    return np.int64(h >> np.uint64(1))


@njit(cache=True, inline="always")
def _part(h, parts):
    return (h >> _PART_SHIFT) & (parts - 1)


@njit(cache=True, inline="always")
def _probe(table, keys, key, d, slot, mask):
    """The slot of ``key`` in ``table`` (indices of rows of ``keys``), starting at ``slot``:
    the slot holding it, or the empty slot (-1) where it would go."""
    while True:
        e = table[slot]
        if e < 0:
            return slot
        same = True
        for i in range(d):
            if keys[e, i] != key[i]:
                same = False
                break
        if same:
            return slot
        slot = (slot + 1) & mask


@njit(cache=True, inline="always")
def _find(tables, keys, key, d, mask):
    """Index of ``key`` among the lattice vertices, or -1."""
    h = _hash(key, d)
    table = tables[_part(h, tables.shape[0])]
    return table[_probe(table, keys, key, d, h & mask, mask)]


# ----------------------------------------------------------------------------- lattice
@njit(cache=True)
def _simplex_constants(d):
    d1 = d + 1
    inv_std = np.float32(np.sqrt(2.0 / 3.0) * d1)
    scale = np.empty(d, np.float32)
    for i in range(d):
        scale[i] = np.float32(1.0 / np.sqrt(float((i + 2) * (i + 1))) * np.float64(inv_std))
    canonical = np.empty((d1, d1), np.int16)
    for i in range(d1):
        for j in range(d1 - i):
            canonical[i, j] = i
        for j in range(d1 - i, d1):
            canonical[i, j] = i - d1
    return scale, canonical


@njit(cache=True, parallel=True)
def _enclosing_simplices(features):
    """Per point: the keys of its d+1 simplex vertices (N, d+1, d) and barycentric weights."""
    n, d = features.shape
    d1 = d + 1
    scale, canonical = _simplex_constants(d)
    inv_d1 = np.float32(1.0) / np.float32(d1)
    f_d1 = np.float32(d1)
    keys = np.empty((n, d1, d), np.int16)
    bary_out = np.empty((n, d1), np.float32)
    for k in prange(n):
        elevated = np.empty(d1, np.float32)
        rem0 = np.empty(d1, np.float32)
        rank = np.zeros(d1, np.float32)
        bary = np.zeros(d + 2, np.float32)
        sm = np.float32(0.0)
        for j in range(d, 0, -1):
            cf = np.float32(features[k, j - 1] * scale[j - 1])
            elevated[j] = np.float32(sm - np.float32(j) * cf)
            sm = np.float32(sm + cf)
        elevated[0] = sm
        total = np.float32(0.0)
        for i in range(d1):
            v = np.float32(np.rint(np.float32(inv_d1 * elevated[i])))  # ties to even (SSE)
            rem0[i] = np.float32(v * f_d1)
            total = np.float32(total + v)
        for i in range(d):
            di = np.float32(elevated[i] - rem0[i])
            for j in range(i + 1, d1):
                dj = np.float32(elevated[j] - rem0[j])
                if di < dj:
                    rank[i] += 1.0
                else:
                    rank[j] += 1.0
        for i in range(d1):
            rank[i] = np.float32(rank[i] + total)
            if rank[i] < 0.0:
                rank[i] += f_d1
                rem0[i] += f_d1
            elif rank[i] >= f_d1:
                rank[i] -= f_d1
                rem0[i] -= f_d1
        for i in range(d1):
            v = np.float32(np.float32(elevated[i] - rem0[i]) * inv_d1)
            p = d - int(rank[i])
            bary[p] = np.float32(bary[p] + v)
            bary[p + 1] = np.float32(bary[p + 1] - v)
        bary[0] = np.float32(bary[0] + np.float32(np.float32(1.0) + bary[d1]))
        for r in range(d1):
            for i in range(d):
                keys[k, r, i] = np.int16(int(rem0[i]) + canonical[r, int(rank[i])])
            bary_out[k, r] = bary[r]
    return keys, bary_out


def _number_vertices(point_keys, parts=None):
    """Vertex index of every (point, corner), numbered in order of first use (as densecrf's
    hash table numbers them); returns (offsets (N, d+1), the tables, vertex keys (M, d), mask).

    Each of ``parts`` threads (default: Numba's thread count, rounded down to a power of two)
    walks all the corners in order and claims the keys that hash to its table, noting where
    each key was first used; the numbers then follow from a running count of first uses.
    The tables are allocated by NumPy, which asks Linux for huge pages on large arrays."""
    n, d1, d = point_keys.shape
    if parts is None:
        parts = 1
        while parts * 2 <= min(numba.get_num_threads(), 64):
            parts *= 2
    capacity = 16
    while capacity * parts < 2 * n * d1:
        capacity *= 2
    mask = np.int64(capacity - 1)
    flat = point_keys.reshape(n * d1, d)
    tables = np.full((parts, capacity), -1, np.int32)
    where = np.empty(n * d1, np.int32)
    first = np.zeros(n * d1, np.bool_)
    _claim(flat, tables, where, first, mask)
    number = np.cumsum(first, dtype=np.int32) - 1
    offsets = _to_vertices(tables, where, number).reshape(n, d1)
    return offsets, tables, flat[first], mask


@njit(cache=True, parallel=True)
def _claim(flat, tables, where, first, mask):
    """Per table (one thread each): put in the first use of every key that hashes to it;
    ``where[q]`` = the slot (table * capacity + slot) of corner ``q``'s key."""
    parts, capacity = tables.shape
    total, d = flat.shape
    for p in prange(parts):
        table = tables[p]
        for q in range(total):
            key = flat[q]
            h = _hash(key, d)
            if _part(h, parts) != p:
                continue
            slot = _probe(table, flat, key, d, h & mask, mask)
            if table[slot] < 0:
                table[slot] = q
                first[q] = True
            where[q] = p * capacity + slot


@njit(cache=True, parallel=True)
def _to_vertices(tables, where, number):
    """First-use positions in the tables -> vertex numbers; offsets of every corner."""
    parts, capacity = tables.shape
    for p in prange(parts):
        for slot in range(capacity):
            q = tables[p, slot]
            if q >= 0:
                tables[p, slot] = number[q]
    offsets = np.empty(where.size, np.int32)
    for q in prange(where.size):
        offsets[q] = tables[where[q] // capacity, where[q] % capacity]
    return offsets


@njit(cache=True, parallel=True)
def _blur_neighbours(tables, keys, mask):
    """For each lattice axis j and vertex: the vertices one step before/after along j.

    Only the step before is looked up in the hash table: the step after is its inverse (if
    ``a`` is one step before ``b`` along j, ``b`` is one step after ``a``), so it is filled
    in by scattering, which halves the look-ups."""
    m, d = keys.shape
    d1 = d + 1
    neighbours = np.full((d1, m, 2), -1, np.int32)
    for i in prange(m):
        n1 = np.empty(d, np.int16)
        for j in range(d1):
            for c in range(d):
                n1[c] = keys[i, c] - 1
            if j < d:
                n1[j] = keys[i, j] + d
            neighbours[j, i, 0] = _find(tables, keys, n1, d, mask)
    for j in range(d1):
        for i in prange(m):
            before = neighbours[j, i, 0]
            if before >= 0:
                neighbours[j, before, 1] = i
    return neighbours


def build_lattice(features):
    """Permutohedral lattice of ``features`` (N, d) float32.

    Returns (offsets (N, d+1) int32, barycentric (N, d+1) float32, neighbours (d+1, M, 2)
    int32 with -1 where a neighbour vertex does not exist)."""
    point_keys, bary = _enclosing_simplices(np.ascontiguousarray(features, dtype=np.float32))
    offsets, tables, keys, mask = _number_vertices(point_keys)
    del point_keys
    return offsets, bary, _blur_neighbours(tables, keys, mask)


@njit(cache=True, parallel=True)
def lattice_filter(offsets, bary, neighbours, values_in):
    """Gaussian filtering of ``values_in`` (N, V) float32 through the lattice (densecrf's
    ``Permutohedral::compute``, forward direction)."""
    n, v = values_in.shape
    d1 = offsets.shape[1]
    d = d1 - 1
    m = neighbours.shape[1]
    values = np.zeros((m + 1, v), np.float32)  # row 0 stands for "no vertex"
    new_values = np.zeros((m + 1, v), np.float32)
    # splat: accumulate in pixel order (one class per thread keeps that order)
    for c in prange(v):
        for i in range(n):
            x = values_in[i, c]
            for j in range(d1):
                o = offsets[i, j] + 1
                values[o, c] = np.float32(values[o, c] + np.float32(bary[i, j] * x))
    half = np.float32(0.5)
    for j in range(d1):
        for i in prange(m):
            a = neighbours[j, i, 0] + 1
            b = neighbours[j, i, 1] + 1
            for c in range(v):
                new_values[i + 1, c] = np.float32(
                    values[i + 1, c] + np.float32(half * np.float32(values[a, c] + values[b, c])))
        values, new_values = new_values, values
    alpha = np.float32(np.float32(1.0) / np.float32(1.0 + np.float32(2.0) ** np.float32(-d)))
    out = np.empty((n, v), np.float32)
    scalar_path = v <= 2
    for i in prange(n):
        for c in range(v):
            out[i, c] = 0.0
        for j in range(d1):
            o = offsets[i, j] + 1
            w = bary[i, j]
            if scalar_path:
                for c in range(v):
                    out[i, c] = np.float32(out[i, c] + np.float32(np.float32(w * values[o, c]) * alpha))
            else:
                wa = np.float32(w * alpha)
                for c in range(v):
                    out[i, c] = np.float32(out[i, c] + np.float32(wa * values[o, c]))
    return out


@njit(cache=True, parallel=True)
def _symmetric_norm(filtered_ones):
    n = filtered_ones.shape[0]
    norm = np.empty(n, np.float32)
    for i in prange(n):
        norm[i] = np.float32(1.0 / np.sqrt(np.float64(filtered_ones[i, 0]) + 1e-20))
    return norm


class Kernel:
    """One pairwise term: a lattice over its features, its normalisation and Potts weight."""

    def __init__(self, features, weight):
        features = np.ascontiguousarray(features, dtype=np.float32)
        self.offsets, self.bary, self.neighbours = build_lattice(features)
        ones = np.ones((features.shape[0], 1), np.float32)
        self.norm = _symmetric_norm(lattice_filter(self.offsets, self.bary, self.neighbours, ones))
        self.weight = np.float32(weight)


@njit(cache=True, parallel=True)
def _scale_rows(q, norm):
    n, v = q.shape
    out = np.empty((n, v), np.float32)
    for i in prange(n):
        for c in range(v):
            out[i, c] = np.float32(q[i, c] * norm[i])
    return out


@njit(cache=True, parallel=True)
def _subtract_message(acc, filtered, norm, weight):
    """``acc -= -w * (filtered * norm)`` (densecrf: tmp1 -= compatibility(filter(Q)))."""
    n, v = acc.shape
    neg_w = np.float32(-weight)
    for i in prange(n):
        for c in range(v):
            msg = np.float32(neg_w * np.float32(filtered[i, c] * norm[i]))
            acc[i, c] = np.float32(acc[i, c] - msg)


@njit(cache=True, parallel=True)
def exp_and_normalize(energy):
    """Per pixel: ``exp(e - max(e)) / sum`` in float32 (densecrf's expAndNormalize)."""
    n, v = energy.shape
    out = np.empty((n, v), np.float32)
    for i in prange(n):
        mx = energy[i, 0]
        for c in range(1, v):
            if energy[i, c] > mx:
                mx = energy[i, c]
        s = np.float32(0.0)
        for c in range(v):
            e = np.float32(np.exp(np.float32(energy[i, c] - mx)))
            out[i, c] = e
            s = np.float32(s + e)
        for c in range(v):
            out[i, c] = np.float32(out[i, c] / s)
    return out


def mean_field(unary, kernels, n_iterations):
    """Mean-field inference.  ``unary`` (N, n_labels) float32 energies; returns Q (N, n)."""
    neg_unary = -np.ascontiguousarray(unary, dtype=np.float32)
    q = exp_and_normalize(neg_unary)
    for _ in range(n_iterations):
        acc = neg_unary.copy()
        for k in kernels:
            filtered = lattice_filter(k.offsets, k.bary, k.neighbours, _scale_rows(q, k.norm))
            _subtract_message(acc, filtered, k.norm, k.weight)
        q = exp_and_normalize(acc)
    return q
