"""Compiled fully connected CRF: permutohedral-lattice Gaussian filtering and mean-field
inference with the semantics of pydensecrf (Krähenbühl's densecrf, as ``pydensecrf2`` builds it).

What is reproduced, step by step, in float32 as the C++ does it:

* lattice construction (Adams et al. 2010): elevate each feature vector onto the hyperplane,
  find the enclosing simplex by rounding to the nearest 0-coloured point (ties to even, as the
  SSE path rounds), rank the remainders, barycentric weights, the ``d + 1`` vertex keys;
  vertices are numbered in order of first use, as densecrf's hash table numbers them, and
  every vertex adds its splatted values in point order, as densecrf's loop over the points
  does.  The vertices and their neighbours along each axis are found by radix-sorting the keys
  packed into 64-bit integers and merging (per-thread hash tables when a key needs more bits);
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

import numba
import numpy as np
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


# ----------------------------------------------------------------------------- sorted keys
# When every key fits in 64 bits, the vertices are found by sorting instead of hashing: the
# keys are packed into integers with a digit per coordinate, radix-sorted with their corner
# positions, and each run of equal keys is one vertex.  The packing is linear (a coordinate
# step is a constant step of the packed value, and the margins keep every digit in range), so
# the keys one lattice step away along an axis are the sorted keys plus a constant: one merge
# per axis finds every neighbour with sequential reads, where the hash table needs a random
# probe per vertex and axis.  The numbers are the same as the hash tables give (first use).
_RADIX_BITS = 11


def _packing(point_keys):
    """(lows, shifts, bits) packing the (N, d+1, d) keys into uint64 digits, the first
    coordinate most significant, with a margin of d + 1 below and above every coordinate so a
    lattice step never leaves its digit; None when the keys need more than 64 bits."""
    d = point_keys.shape[2]
    lows, highs = _key_ranges(point_keys.reshape(-1, d), 4 * numba.get_num_threads())
    lows = lows.min(axis=0) - (d + 1)
    highs = highs.max(axis=0)
    spans = highs - lows + (d + 2)
    widths = [int(span).bit_length() for span in spans]
    if sum(widths) > 64:
        return None
    shifts = np.zeros(d, np.int64)
    for c in range(d - 2, -1, -1):
        shifts[c] = shifts[c + 1] + widths[c + 1]
    return lows, shifts, sum(widths)


@njit(cache=True, parallel=True)
def _key_ranges(keys, chunks):
    """Per chunk and coordinate: the smallest and largest key value (int64)."""
    n, d = keys.shape
    step = (n + chunks - 1) // chunks
    lows = np.full((chunks, d), np.iinfo(np.int64).max, np.int64)
    highs = np.full((chunks, d), np.iinfo(np.int64).min, np.int64)
    for c in prange(chunks):
        for s in range(c * step, min(n, (c + 1) * step)):
            for j in range(d):
                v = np.int64(keys[s, j])
                lows[c, j] = min(lows[c, j], v)
                highs[c, j] = max(highs[c, j], v)
    return lows, highs


@njit(cache=True, parallel=True)
def _pack(point_keys, lows, shifts):
    n, d1, d = point_keys.shape
    packed = np.empty(n * d1, np.uint64)
    for i in prange(n):
        for r in range(d1):
            v = np.uint64(0)
            for c in range(d):
                v |= np.uint64(np.int64(point_keys[i, r, c]) - lows[c]) << np.uint64(shifts[c])
            packed[i * d1 + r] = v
    return packed


@njit(cache=True, parallel=True)
def _radix_argsort(keys, bits, chunks):
    """(sorted keys, their positions in ``keys``): a stable LSD radix sort, ``_RADIX_BITS``
    per pass; each pass counts and scatters ``chunks`` contiguous chunks in parallel.
    ``keys`` serves as one of the two buffers: its contents are overwritten."""
    n = keys.size
    buckets = 1 << _RADIX_BITS
    digit_mask = np.uint64(buckets - 1)
    src_k = keys
    src_i = np.arange(n, dtype=np.int32)
    dst_k = np.empty_like(keys)
    dst_i = np.empty_like(src_i)
    step = (n + chunks - 1) // chunks
    for shift in range(0, bits, _RADIX_BITS):
        sh = np.uint64(shift)
        count = np.zeros((chunks, buckets), np.int64)
        for c in prange(chunks):
            for s in range(c * step, min(n, (c + 1) * step)):
                count[c, (src_k[s] >> sh) & digit_mask] += 1
        start = np.empty((chunks, buckets), np.int64)
        total = 0
        for b in range(buckets):
            for c in range(chunks):
                start[c, b] = total
                total += count[c, b]
        for c in prange(chunks):
            at = start[c]
            for s in range(c * step, min(n, (c + 1) * step)):
                b = (src_k[s] >> sh) & digit_mask
                dst_k[at[b]] = src_k[s]
                dst_i[at[b]] = src_i[s]
                at[b] += 1
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
    return src_k, src_i


@njit(cache=True, parallel=True)
def _first_uses(sorted_keys, corner):
    """Run starts among the sorted keys, and which corners are a key's first use (the sort is
    stable, so a run starts with its key's earliest corner)."""
    n = sorted_keys.size
    starts = np.empty(n, np.bool_)
    first = np.zeros(n, np.bool_)
    for s in prange(n):
        starts[s] = s == 0 or sorted_keys[s] != sorted_keys[s - 1]
        if starts[s]:
            first[corner[s]] = True
    return starts, first


@njit(cache=True, parallel=True)
def _vertices_of_runs(sorted_keys, corner, starts, number):
    """Per run: its packed key and vertex number; per corner: the number of its vertex."""
    run = np.cumsum(starts.astype(np.int32)) - 1
    m = run[-1] + 1
    keys = np.empty(m, np.uint64)
    numbers = np.empty(m, np.int32)
    offsets = np.empty(sorted_keys.size, np.int32)
    for s in prange(sorted_keys.size):
        if starts[s]:
            keys[run[s]] = sorted_keys[s]
            numbers[run[s]] = number[corner[s]]
    for s in prange(sorted_keys.size):
        offsets[corner[s]] = numbers[run[s]]
    return keys, numbers, offsets


@njit(cache=True, parallel=True)
def _merged_neighbours(keys, numbers, steps):
    """Neighbour table from the sorted vertex keys: along axis j the step before is the key
    plus ``steps[j]`` (uint64 arithmetic wraps exactly, the margins keep it in range), found
    by walking the sorted keys once; the step after is its inverse."""
    m = keys.size
    d1 = steps.size
    neighbours = np.full((d1, m, 2), -1, np.int32)
    for j in prange(d1):
        step = np.uint64(steps[j])
        q = 0
        for i in range(m):
            target = keys[i] + step
            while q < m and keys[q] < target:
                q += 1
            if q == m:
                break
            if keys[q] == target:
                neighbours[j, numbers[i], 0] = numbers[q]
                neighbours[j, numbers[q], 1] = numbers[i]
    return neighbours


def _lattice_by_sorting(point_keys, lows, shifts, bits):
    """(offsets (N, d+1), neighbours) numbered by first use, found by sorting packed keys."""
    n, d1, d = point_keys.shape
    packed = _pack(point_keys, lows, shifts)
    sorted_keys, corner = _radix_argsort(packed, bits, 4 * numba.get_num_threads())
    del packed
    starts, first = _first_uses(sorted_keys, corner)
    number = np.cumsum(first, dtype=np.int32) - 1
    del first
    keys, numbers, offsets = _vertices_of_runs(sorted_keys, corner, starts, number)
    del sorted_keys, corner, starts, number
    # the step before along axis j: every coordinate -1, coordinate j + d (j = d: none)
    place = np.int64(1) << shifts
    steps = np.full(d1, -place.sum(), np.int64)
    steps[:d] += (d + 1) * place
    return offsets.reshape(n, d1), _merged_neighbours(keys, numbers, steps.view(np.uint64))


def build_lattice(features, method=None):
    """Permutohedral lattice of ``features`` (N, d) float32.

    Returns (offsets (N, d+1) int32, barycentric (N, d+1) float32, neighbours (d+1, M, 2)
    int32 with -1 where a neighbour vertex does not exist).  ``method``: "sort" (packed keys
    radix-sorted, the default when the keys fit in 64 bits) or "hash" (per-thread hash
    tables, used for wider keys); both give the same arrays."""
    point_keys, bary = _enclosing_simplices(np.ascontiguousarray(features, dtype=np.float32))
    packing = _packing(point_keys) if method != "hash" else None
    if method == "sort" and packing is None:
        raise ValueError("lattice keys too wide to pack in 64 bits")
    if packing is not None:
        offsets, neighbours = _lattice_by_sorting(point_keys, *packing)
        return offsets, bary, neighbours
    offsets, tables, keys, mask = _number_vertices(point_keys)
    del point_keys
    return offsets, bary, _blur_neighbours(tables, keys, mask)


@njit(cache=True)
def _splat(offsets, bary, values_in, values):
    """Accumulate every pixel's weighted values into its simplex's vertices, in pixel order
    (each vertex sums its contributions in the order densecrf's loop adds them).  One pass
    over the pixels with the classes innermost: a vertex's classes share a cache line (the
    class-parallel loop this replaced read the offsets once per class: 3x slower at 7
    classes, no faster at 3 on two threads)."""
    n, v = values_in.shape
    d1 = offsets.shape[1]
    for i in range(n):
        for j in range(d1):
            o = offsets[i, j] + 1
            b = bary[i, j]
            for c in range(v):
                values[o, c] = np.float32(values[o, c] + np.float32(b * values_in[i, c]))


@njit(cache=True, parallel=True)
def lattice_filter(offsets, bary, neighbours, values_in):
    """Gaussian filtering of ``values_in`` (N, V) float32 through the lattice (densecrf's
    ``Permutohedral::compute``, forward direction)."""
    n, v = values_in.shape
    d1 = offsets.shape[1]
    d = d1 - 1
    m = neighbours.shape[1]
    values = np.zeros((m + 1, v), np.float32)  # row 0 stands for "no vertex"
    new_values = np.empty((m + 1, v), np.float32)  # every row but 0 is written by the blur
    new_values[0] = 0.0
    _splat(offsets, bary, values_in, values)
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

    def __init__(self, features, weight, method=None):
        features = np.ascontiguousarray(features, dtype=np.float32)
        self.offsets, self.bary, self.neighbours = _frozen(*build_lattice(features, method))
        ones = np.ones((features.shape[0], 1), np.float32)
        (self.norm,) = _frozen(
            _symmetric_norm(lattice_filter(self.offsets, self.bary, self.neighbours, ones)))
        self.weight = np.float32(weight)


def _frozen(*arrays):
    """The arrays made read-only.  A kernel's arrays are never written after it is built, and
    one flag for all of them means one compiled specialisation of ``lattice_filter``,
    ``_scale_rows`` and ``_subtract_message`` where a cached read-only Gaussian kernel beside a
    writable bilateral one needed two of each (three fewer cache loads a process)."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


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


@njit(cache=True, parallel=True)
def relabel(q, labels):
    """Per pixel the label (argmax of Q, the first of equal maxima, as ``np.argmax``) written
    into ``labels``; returns how many pixels changed label."""
    n, v = q.shape
    changed = 0
    for i in prange(n):
        best = 0
        for c in range(1, v):
            if q[i, c] > q[i, best]:
                best = c
        if labels[i] != best:
            labels[i] = best
            changed += 1
    return changed


def mean_field(unary, kernels, n_iterations, stop_when_stable=False, return_iterations=False):
    """Mean-field inference.  ``unary`` (N, n_labels) float32 energies; returns Q (N, n)
    (and the number of iterations run, with ``return_iterations``).

    ``stop_when_stable``: stop after the first iteration that changes no pixel's label (the
    argmax of Q) from the iteration before.  The first iteration is not compared with the
    unary's labels: from a confident unary (gt_prob 0.9) it often changes none while the
    next ones do.  Without it every iteration runs, as densecrf's ``inference(n)``."""
    neg_unary = -np.ascontiguousarray(unary, dtype=np.float32)
    q = exp_and_normalize(neg_unary)
    labels = np.full(q.shape[0], -1, np.int64) if stop_when_stable else None
    done = 0
    for _ in range(n_iterations):
        acc = neg_unary.copy()
        for k in kernels:
            filtered = lattice_filter(k.offsets, k.bary, k.neighbours, _scale_rows(q, k.norm))
            _subtract_message(acc, filtered, k.norm, k.weight)
        q = exp_and_normalize(acc)
        done += 1
        if labels is not None and relabel(q, labels) == 0:
            break
    return (q, done) if return_iterations else q


def mean_field_numpy(unary, kernels, n_iterations, stop_when_stable=False):
    """Pure-NumPy twin of :func:`mean_field`'s iteration and stopping rule (the filtering is
    :func:`lattice_filter`, the Gaussian filtering both share): float32 messages, ``np.exp``
    normalisation, ``np.argmax`` labels; returns (Q, iterations run).  Tests compare the two."""
    neg_unary = -np.ascontiguousarray(unary, dtype=np.float32)

    def normalise(e):
        x = np.exp(e - e.max(axis=1, keepdims=True))
        return (x / x.sum(axis=1, keepdims=True)).astype(np.float32)

    q = normalise(neg_unary)
    labels = None
    done = 0
    for _ in range(n_iterations):
        acc = neg_unary.copy()
        for k in kernels:
            scaled = (q * k.norm[:, None]).astype(np.float32)
            filtered = lattice_filter(k.offsets, k.bary, k.neighbours, scaled)
            acc -= (-k.weight * (filtered * k.norm[:, None])).astype(np.float32)
        q = normalise(acc)
        done += 1
        now = q.argmax(1)
        if stop_when_stable and labels is not None and np.array_equal(now, labels):
            break
        labels = now
    return q, done
