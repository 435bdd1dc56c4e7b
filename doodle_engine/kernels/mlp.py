"""Compiled MLP: scikit-learn's StandardScaler + MLPClassifier(adam) algorithm in Numba.

``fit_mlp`` follows scikit-learn's trainer step by step - the same Glorot initialisation
from ``RandomState(1)``, the same stratified 10 % validation split and per-epoch shuffles
drawn from that generator, minibatches of 200, the same back-propagation, L2 term and Adam
updates, and the same early stopping (tol 1e-4, 10 epochs, best weights restored) - but runs
each epoch in one compiled call instead of thousands of small Python steps.  It is not
bit-identical to scikit-learn (different BLAS call shapes and ``exp``), so it serves the
``mode="fast"`` path; the tests and benchmarks measure how often its labels differ.

Two trainers run the same algorithm: ``trainer="blas"`` (the default; its products call
one-thread BLAS) and ``trainer="fused"`` (each epoch one kernel without BLAS: the epoch's rows
gathered once in shuffled order, then forward, back-propagation and Adam per minibatch over
resident, vector-padded weights and buffers made once; ``threads=2`` splits every step over
two threads with bit-identical results).  The fused one is opt-in: on one thread it is
slower than BLAS here, and its two threads stall on a busy machine (docs/speed-trainer.md).
``fused_epoch_numpy`` is its twin.

``CompiledMLP.predict_proba`` (compiled) and ``forward_numpy`` (its twin, written as
scikit-learn computes) give class probabilities for many pixels in bounded chunks.
"""

from __future__ import annotations

import contextlib
from math import ceil

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba's np.dot calls: loaded first,
from numba import njit, prange
from threadpoolctl import threadpool_limits

#: BLAS threads for the trainer's products (numba's ``np.dot`` calls SciPy's OpenBLAS): one.
#: A minibatch product (200 rows x 30-100 columns) is too small to share: OpenBLAS splits it
#: anyway, and waking and joining its threads hundreds of times an epoch cost 1.2-19x the fit
#: (docs/speed.md).  None leaves BLAS as it is.  Threads do not change the results (OpenBLAS
#: splits the output, not the sums).
FIT_BLAS_THREADS = 1
TOL = 1e-4
N_ITER_NO_CHANGE = 10
BATCH = 200
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
TRAINERS = ("blas", "fused")


# ----------------------------------------------------------------------------- split, shuffle
# scikit-learn's ``train_test_split`` (``test_size=0.1``, stratified on the one output column
# of a binary network) and ``utils.shuffle``, drawn from the same RandomState in the same order,
# in NumPy: the compiled trainer needs no scikit-learn import (about 1 s per process).  The
# tests compare both with scikit-learn's.
def _approximate_mode(class_counts, n_draws, rs):
    """scikit-learn's ``_approximate_mode``: rows per class, ties broken by ``rs.choice``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            inds = rs.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)


def split_indices(y1h, rs, stratify, test_size=0.1):
    """(train, test) row indices as ``train_test_split(..., random_state=rs,
    test_size=test_size, stratify=y1h if stratify else None)`` draws them."""
    n = y1h.shape[0]
    n_test = ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"with {n} samples and test_size={test_size} the train set is empty")
    if not stratify:
        perm = rs.permutation(n)
        return perm[n_test:n_test + n_train], perm[:n_test]
    rows = y1h[:, 0] if y1h.ndim == 2 else y1h
    classes, y_idx, counts = np.unique(rows, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise ValueError("the least populated class in y has only 1 member")
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError("the train or test split is smaller than the number of classes")
    per_class = np.split(np.argsort(y_idx, kind="stable"), np.cumsum(counts)[:-1])
    n_i = _approximate_mode(counts, n_train, rs)
    t_i = _approximate_mode(counts - n_i, n_test, rs)
    train, test = [], []
    for i in range(len(classes)):
        idx = per_class[i].take(rs.permutation(counts[i]), mode="clip")
        train.extend(idx[:n_i[i]])
        test.extend(idx[n_i[i]:n_i[i] + t_i[i]])
    return rs.permutation(train), rs.permutation(test)


def shuffled(order, rs):
    """``sklearn.utils.shuffle(order, random_state=rs)``."""
    idx = np.arange(order.shape[0])
    rs.shuffle(idx)
    return order[idx]


# ----------------------------------------------------------------------------- compiled parts
@njit(cache=True)
def _add_bias_relu(a, b):
    """``a = max(a + b, 0)`` in place: the values of ``a + b`` then the ReLU, in one pass."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[i, j] + b[j]
            a[i, j] = v if v > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _output_inplace(a, binary):
    n, k = a.shape
    if binary:
        for i in range(n):
            a[i, 0] = 1.0 / (1.0 + np.exp(-a[i, 0]))
        return
    for i in range(n):
        m = a[i, 0]
        for j in range(1, k):
            if a[i, j] > m:
                m = a[i, j]
        s = 0.0
        for j in range(k):
            a[i, j] = np.exp(a[i, j] - m)
            s += a[i, j]
        for j in range(k):
            a[i, j] /= s


@njit(cache=True)
def _forward_batch(x, w0, b0, w1, b1, w2, b2, binary):
    a1 = np.dot(x, w0)
    _add_bias_relu(a1, b0)
    a2 = np.dot(a1, w1)
    _add_bias_relu(a2, b1)
    out = np.dot(a2, w2) + b2
    _output_inplace(out, binary)
    return a1, a2, out


@njit(cache=True, error_model="numpy")
def _adam(param, grad, m, v, lr):
    # error_model="numpy": no division-by-zero branch (the divisors are > 0), so the loop
    # vectorizes; the same IEEE operations, bit-identical weights, the fit 7-15 % faster
    flat_p = param.ravel()
    flat_g = grad.ravel()
    flat_m = m.ravel()
    flat_v = v.ravel()
    for i in range(flat_p.size):
        flat_m[i] = BETA1 * flat_m[i] + (1 - BETA1) * flat_g[i]
        flat_v[i] = BETA2 * flat_v[i] + (1 - BETA2) * (flat_g[i] ** 2)
        flat_p[i] += -lr * flat_m[i] / (np.sqrt(flat_v[i]) + EPS)


@njit(cache=True, error_model="numpy")
def _layer_grads(a_in, delta, w, alpha, n):
    gw = np.dot(a_in.T, delta)
    gw += alpha * w
    gw /= n
    gb = np.zeros(delta.shape[1])
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            gb[j] += delta[i, j]
    gb /= n
    return gw, gb


@njit(cache=True)
def _relu_backward(delta, activation):
    """Zero the error where the ReLU output was 0 (scikit-learn's relu derivative)."""
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            if activation[i, j] == 0.0:
                delta[i, j] = 0.0
    return delta


@njit(cache=True, error_model="numpy")
def _epoch(x, y1h, order, params, ms, vs, t, alpha, binary):
    """One pass over the shuffled minibatches with Adam updates; returns the new step t."""
    w0, b0, w1, b1, w2, b2 = params
    n = order.size
    for start in range(0, n, BATCH):
        stop = min(start + BATCH, n)
        idx = order[start:stop]
        xb = x[idx]
        yb = y1h[idx]
        nb = stop - start
        a1, a2, out = _forward_batch(xb, w0, b0, w1, b1, w2, b2, binary)
        d2 = out - yb
        g2w, g2b = _layer_grads(a2, d2, w2, alpha, nb)
        d1 = _relu_backward(np.dot(d2, w2.T), a2)
        g1w, g1b = _layer_grads(a1, d1, w1, alpha, nb)
        d0 = _relu_backward(np.dot(d1, w1.T), a1)
        g0w, g0b = _layer_grads(xb, d0, w0, alpha, nb)
        t += 1
        lr = LR * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
        _adam(w0, g0w, ms[0], vs[0], lr)
        _adam(w1, g1w, ms[1], vs[1], lr)
        _adam(w2, g2w, ms[2], vs[2], lr)
        _adam(b0, g0b, ms[3], vs[3], lr)
        _adam(b1, g1b, ms[4], vs[4], lr)
        _adam(b2, g2b, ms[5], vs[5], lr)
    return t


# ----------------------------------------------------------------------------- fused trainer
# One epoch in one compiled call with no BLAS and no allocation per minibatch (issue 18): the
# epoch's rows are gathered once in shuffled order, and each minibatch step runs forward,
# back-propagation and the Adam update over buffers made once per fit.  The products are
# loops LLVM vectorizes over contiguous output columns; every output element is still summed
# over k in order (FMA contraction only: no reassociation), as a plain loop would.
@njit(cache=True, fastmath={"contract"})
def _rows4_into(a, b, c, i, r1, r2, r3):
    """Rows i, r1, r2, r3 of ``c = a @ b``: four rows and four k at a time, so each output
    element is loaded and stored once per four k (the products are FMA-bound, not store-bound)."""
    n_k, h = b.shape
    c0, c1, c2, c3 = c[i], c[r1], c[r2], c[r3]
    for j in range(h):
        c0[j] = 0.0
        c1[j] = 0.0
        c2[j] = 0.0
        c3[j] = 0.0
    k = 0
    while k + 4 <= n_k:
        ba, bb, bc, bd = b[k], b[k + 1], b[k + 2], b[k + 3]
        a00, a01, a02, a03 = a[i, k], a[i, k + 1], a[i, k + 2], a[i, k + 3]
        a10, a11, a12, a13 = a[r1, k], a[r1, k + 1], a[r1, k + 2], a[r1, k + 3]
        a20, a21, a22, a23 = a[r2, k], a[r2, k + 1], a[r2, k + 2], a[r2, k + 3]
        a30, a31, a32, a33 = a[r3, k], a[r3, k + 1], a[r3, k + 2], a[r3, k + 3]
        for j in range(h):
            x0, x1, x2, x3 = ba[j], bb[j], bc[j], bd[j]
            c0[j] = (((c0[j] + a00 * x0) + a01 * x1) + a02 * x2) + a03 * x3
            c1[j] = (((c1[j] + a10 * x0) + a11 * x1) + a12 * x2) + a13 * x3
            c2[j] = (((c2[j] + a20 * x0) + a21 * x1) + a22 * x2) + a23 * x3
            c3[j] = (((c3[j] + a30 * x0) + a31 * x1) + a32 * x2) + a33 * x3
        k += 4
    while k < n_k:
        bk = b[k]
        a00, a10, a20, a30 = a[i, k], a[r1, k], a[r2, k], a[r3, k]
        for j in range(h):
            c0[j] += a00 * bk[j]
            c1[j] += a10 * bk[j]
            c2[j] += a20 * bk[j]
            c3[j] += a30 * bk[j]
        k += 1


@njit(cache=True, fastmath={"contract"})
def _row_into(a, b, c, i):
    """Row i of ``c = a @ b`` (the rows left over after the blocks of four)."""
    ci = c[i]
    for j in range(b.shape[1]):
        ci[j] = 0.0
    for k in range(b.shape[0]):
        aik = a[i, k]
        bk = b[k]
        for j in range(b.shape[1]):
            ci[j] += aik * bk[j]


@njit(cache=True)
def _matmul_into(a, b, c):
    """``c[:] = a @ b`` for a C-contiguous ``b`` and ``c`` (``a`` may be a transposed view)."""
    n = a.shape[0]
    i = 0
    while i + 4 <= n:
        _rows4_into(a, b, c, i, i + 1, i + 2, i + 3)
        i += 4
    while i < n:
        _row_into(a, b, c, i)
        i += 1


@njit(cache=True)
def _add_bias(a, b):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] += b[j]


@njit(cache=True)
def _transpose_into(w, wt):
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            wt[j, i] = w[i, j]


@njit(cache=True)
def _gather_rows(x, order, out):
    for i in range(order.size):
        r = order[i]
        for j in range(x.shape[1]):
            out[i, j] = x[r, j]


@njit(cache=True)
def _subtract_into(a, b):
    """``a -= b``: the output layer's error (probabilities minus the one-hot targets)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] -= b[i, j]


@njit(cache=True, error_model="numpy")
def _adam_update(w, gw, m, v, lr, alpha, n):
    """``gw`` becomes scikit-learn's gradient ``(gw + alpha * w) / n``, then Adam moves ``w``
    (rows of a 2-D weight, or a bias as one row).  ``error_model="numpy"``: no
    division-by-zero branch, so the loop vectorizes (the same IEEE operations)."""
    for p in range(w.shape[0]):
        wp, gp, mp, vp = w[p], gw[p], m[p], v[p]
        for q in range(w.shape[1]):
            g = (gp[q] + alpha * wp[q]) / n
            mq = BETA1 * mp[q] + (1 - BETA1) * g
            vq = BETA2 * vp[q] + (1 - BETA2) * (g * g)
            mp[q] = mq
            vp[q] = vq
            wp[q] += -lr * mq / (np.sqrt(vq) + EPS)


@njit(cache=True, error_model="numpy")
def _weight_adam(a_in, delta, w, mw, vw, gw, alpha, lr, lo, hi):
    """Rows ``lo:hi`` of the layer's weight gradient as scikit-learn computes it
    (``(a_in.T @ delta + alpha * w) / n``), then their Adam update.  Rows are independent, so
    two threads can take one half each with the same arithmetic."""
    _matmul_into(a_in.T[lo:hi], delta, gw[lo:hi])
    _adam_update(w[lo:hi], gw[lo:hi], mw[lo:hi], vw[lo:hi], lr, alpha, delta.shape[0])


@njit(cache=True, error_model="numpy")
def _bias_adam(delta, b, mb, vb, gb, lr):
    """The bias gradient (the mean error over the minibatch rows) and its Adam update."""
    gb[:] = 0.0
    for i in range(delta.shape[0]):
        for q in range(delta.shape[1]):
            gb[q] += delta[i, q]
    _adam_update(b.reshape((1, -1)), gb.reshape((1, -1)), mb.reshape((1, -1)),
                 vb.reshape((1, -1)), lr, 0.0, delta.shape[0])


@njit(cache=True)
def _narrow_output(a2, w2t, out, a2t, outt):
    """``out = a2 @ w2`` for an output layer of few units (1-4 classes), computed as
    ``(w2.T @ a2.T).T`` so the vectorized loop runs over the rows: each output element
    is still summed over the hidden units in order."""
    _transpose_into(a2, a2t)
    _matmul_into(w2t, a2t, outt)
    _transpose_into(outt, out)


@njit(cache=True, error_model="numpy")
def _forward_backward(xb, yb, params, binary, bufs, lo, hi):
    """Rows ``lo:hi`` of the minibatch: activations, output, and the errors of every layer
    (row by row independent; the weights are not changed)."""
    w0, b0, w1, b1, w2, b2 = params
    a1, a2, out, d1, d0, w1t, w2t = bufs[:7]
    x, y, a1, a2, out, d1, d0 = xb[lo:hi], yb[lo:hi], a1[lo:hi], a2[lo:hi], out[lo:hi], \
        d1[lo:hi], d0[lo:hi]
    _matmul_into(x, w0, a1)
    _add_bias_relu(a1, b0)
    _matmul_into(a1, w1, a2)
    _add_bias_relu(a2, b1)
    _narrow_output(a2, w2t, out, bufs[13][:, lo:hi], bufs[14][:, lo:hi])
    _add_bias(out, b2)
    _output_inplace(out, binary)
    _subtract_into(out, y)
    _matmul_into(out, w2t, d1)
    _relu_backward(d1, a2)
    _matmul_into(d1, w1t, d0)
    _relu_backward(d0, a1)


@njit(cache=True, error_model="numpy")
def _update(xb, params, ms, vs, lr, alpha, bufs, part, parts):
    """Adam on the ``part``-th of ``parts`` slices of every weight's rows (part 0 also takes
    the biases), from the errors :func:`_forward_backward` left in ``bufs``."""
    w0, b0, w1, b1, w2, b2 = params
    nb = xb.shape[0]
    a1, a2, out, d1, d0 = bufs[0][:nb], bufs[1][:nb], bufs[2][:nb], bufs[3][:nb], bufs[4][:nb]
    g0, g1, g2, gb0, gb1, gb2 = bufs[7:13]
    for a_in, delta, w, m, v, g in ((a1, d1, w1, ms[1], vs[1], g1),
                                    (xb, d0, w0, ms[0], vs[0], g0)):
        lo, hi = _part(w.shape[0], part, parts)
        _weight_adam(a_in, delta, w, m, v, g, alpha, lr, lo, hi)
    if part == 0:  # the narrow output layer and the biases: small, on one thread
        g2t = bufs[15]
        _matmul_into(out.T, a2, g2t)  # (a2.T @ out).T: rows of 4 and a wide inner loop
        _transpose_into(g2t, g2)
        _adam_update(w2, g2, ms[2], vs[2], lr, alpha, nb)
        _bias_adam(out, b2, ms[5], vs[5], gb2, lr)
        _bias_adam(d1, b1, ms[4], vs[4], gb1, lr)
        _bias_adam(d0, b0, ms[3], vs[3], gb0, lr)


@njit(cache=True)
def _part(n, part, parts):
    """Rows ``lo:hi`` of the ``part``-th of ``parts`` slices of ``n`` rows (multiples of 4)."""
    step = -(-n // (4 * parts)) * 4
    return min(n, part * step), min(n, (part + 1) * step)


@njit(cache=True, error_model="numpy")
def _fused_step(xb, yb, params, ms, vs, lr, alpha, binary, bufs):
    """One minibatch on one thread: forward, back-propagation and Adam, in ``bufs``."""
    _transpose_into(params[4], bufs[6])  # the errors go back through the weights before
    _transpose_into(params[2], bufs[5])  # the update
    _forward_backward(xb, yb, params, binary, bufs, 0, xb.shape[0])
    _update(xb, params, ms, vs, lr, alpha, bufs, 0, 1)


@njit(cache=True, error_model="numpy", parallel=True)
def _fused_step_2(xb, yb, params, ms, vs, lr, alpha, binary, bufs):
    """:func:`_fused_step` on two threads: the minibatch rows split in two for the forward and
    backward passes, then every weight's rows split in two for the gradients and Adam.  The
    same arithmetic for every element, so the same result as one thread."""
    _transpose_into(params[4], bufs[6])
    _transpose_into(params[2], bufs[5])
    for part in prange(2):
        lo, hi = _part(xb.shape[0], part, 2)
        _forward_backward(xb, yb, params, binary, bufs, lo, hi)
    for part in prange(2):
        _update(xb, params, ms, vs, lr, alpha, bufs, part, 2)


@njit(cache=True, error_model="numpy")
def _fused_epoch(x, y1h, order, params, ms, vs, t, alpha, binary, xe, ye, bufs, threads):
    """One epoch: the rows gathered in ``order`` into ``xe`` / ``ye``, then every minibatch
    step in place (on ``threads`` threads: 1 or 2); returns the new Adam step t."""
    _gather_rows(x, order, xe)
    _gather_rows(y1h, order, ye)
    n = order.size
    for start in range(0, n, BATCH):
        stop = min(start + BATCH, n)
        t += 1
        lr = LR * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
        if threads == 2:
            _fused_step_2(xe[start:stop], ye[start:stop], params, ms, vs, lr, alpha, binary,
                          bufs)
        else:
            _fused_step(xe[start:stop], ye[start:stop], params, ms, vs, lr, alpha, binary,
                        bufs)
    return t


def _padded(a, shape):
    """``a`` in the top-left corner of zeros of ``shape`` (same type)."""
    out = np.zeros(shape, a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def _pad_params(params, lanes):
    """The weights with every hidden width padded with zeros to a multiple of ``lanes`` (one
    vector register) and the inputs to a multiple of 4, so the products' inner loops have no
    scalar remainder.  The padded units stay exactly 0 through training: their inputs,
    activations, errors and gradients are 0, so Adam moves them by 0."""
    w0, b0, w1, b1, w2, b2 = params
    f = -(-w0.shape[0] // 4) * 4
    h0, h1 = (-(-w.shape[1] // lanes) * lanes for w in (w0, w1))
    return (_padded(w0, (f, h0)), _padded(b0, (h0,)), _padded(w1, (h0, h1)),
            _padded(b1, (h1,)), _padded(w2, (h1, w2.shape[1])), b2.copy())


def _fused_runner(params, x_tr, y_tr, alpha, binary, threads=1):
    """A function ``(order, t) -> t`` running one fused epoch on padded resident weights and
    Adam moments, then copying the weights back into ``params`` (for the validation score)."""
    lanes = 64 // x_tr.dtype.itemsize  # one AVX-512 register
    padded = _pad_params(params, lanes)
    ms = tuple(np.zeros_like(p) for p in padded[0::2] + padded[1::2])
    vs = tuple(np.zeros_like(p) for p in padded[0::2] + padded[1::2])
    xe = np.zeros((x_tr.shape[0], padded[0].shape[0]), x_tr.dtype)
    ye = np.empty_like(y_tr)
    bufs = _fused_buffers(padded, x_tr.shape[0], x_tr.dtype)

    def run(order, t):
        t = _fused_epoch(x_tr, y_tr, order, padded, ms, vs, t, alpha, binary, xe, ye, bufs,
                         threads)
        for p, pp in zip(params, padded):
            p[...] = pp[tuple(slice(0, n) for n in p.shape)]
        return t
    return run


def _fused_buffers(params, n_rows, dtype):
    """The work buffers of :func:`_fused_step`, made once per fit."""
    w0, _, w1, _, w2, _ = params
    b = min(BATCH, n_rows)
    h0, h1, k = w0.shape[1], w1.shape[1], w2.shape[1]
    return (np.empty((b, h0), dtype), np.empty((b, h1), dtype), np.empty((b, k), dtype),
            np.empty((b, h1), dtype), np.empty((b, h0), dtype),
            np.empty(w1.T.shape, dtype), np.empty(w2.T.shape, dtype),
            np.empty_like(w0), np.empty_like(w1), np.empty_like(w2),
            np.empty(h0, dtype), np.empty(h1, dtype), np.empty(k, dtype),
            np.empty((h1, b), dtype), np.empty((k, b), dtype), np.empty((k, h1), dtype))


@njit(cache=True)
def _gather_scaled(x, rows, start, mean, scale, out):
    """``out[i] = (x[rows[start + i]] - mean) / scale`` (rows ``start + i`` when ``rows`` is
    empty), computed in float64 and stored in ``out``'s type, one pass, no temporaries."""
    for i in range(out.shape[0]):
        r = rows[start + i] if rows.size else start + i
        for j in range(x.shape[1]):
            out[i, j] = (x[r, j] - mean[j]) / scale[j]


@njit(cache=True)
def _forward_chunks(x, rows, mean, scale, w0, b0, w1, b1, w2, b2, binary, chunk):
    """Probabilities of ``x[rows]`` (all rows when ``rows`` is empty), chunk by chunk: the
    rows are gathered a chunk at a time, never copied all at once."""
    n = rows.size if rows.size else x.shape[0]
    k = 2 if binary else w2.shape[1]
    proba = np.empty((n, k))
    n_chunks = (n + chunk - 1) // chunk
    scaled = np.empty((min(chunk, n), x.shape[1]), w0.dtype)
    # chunks in sequence: BLAS already runs each product on every core, and BLAS threads
    # nested inside a Numba thread pool oversubscribe the machine
    for c in range(n_chunks):
        s = c * chunk
        e = min(s + chunk, n)
        xs = scaled[:e - s]
        _gather_scaled(x, rows, s, mean, scale, xs)
        _, _, out = _forward_batch(xs, w0, b0, w1, b1, w2, b2, binary)
        if binary:
            for i in range(e - s):
                proba[s + i, 1] = out[i, 0]
                proba[s + i, 0] = 1.0 - out[i, 0]
        else:
            proba[s:e] = out
    return proba


# ----------------------------------------------------------------------------- the model
_NO_ROWS = np.empty(0, np.int64)


class CompiledMLP:
    """A fitted scaler + MLP (classes_, predict, predict_proba) usable like the pipeline."""

    gathers_rows = True  # predict(x, rows=...) takes row indices instead of a copy of x[rows]

    def __init__(self, classes, mean, scale, coefs, intercepts):
        self.classes_ = classes
        self.mean, self.scale = mean, scale
        self.coefs, self.intercepts = coefs, intercepts
        self.binary = len(classes) == 2
        self.n_iter_ = 0
        self.validation_scores_ = []

    def _params(self):
        w0, w1, w2 = self.coefs
        b0, b1, b2 = self.intercepts
        return w0, b0, w1, b1, w2, b2

    def predict_proba(self, x, chunk=4096, rows=None):
        """Class probabilities of ``x`` (or of the rows ``rows`` of ``x``)."""
        x = np.ascontiguousarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        rows = _NO_ROWS if rows is None else np.asarray(rows, dtype=np.int64)
        return _forward_chunks(x, rows, self.mean, self.scale, *self._params(), self.binary,
                               chunk)

    def predict(self, x, rows=None):
        """Labels of ``x`` (or of the rows ``rows`` of ``x``, gathered chunk by chunk)."""
        return self.classes_[np.argmax(self.predict_proba(x, rows=rows), axis=1)]


def forward_numpy(model, x):
    """NumPy twin of the compiled forward pass, written as scikit-learn computes it."""
    a = (np.asarray(x, np.float64) - model.mean) / model.scale
    for i, (w, b) in enumerate(zip(model.coefs, model.intercepts)):
        a = a @ w + b
        if i < 2:
            np.maximum(a, 0, out=a)
    if model.binary:
        p = 1.0 / (1.0 + np.exp(-a[:, 0]))
        return np.column_stack([1 - p, p])
    a = np.exp(a - a.max(axis=1, keepdims=True))
    return a / a.sum(axis=1, keepdims=True)


def fused_epoch_numpy(x, y1h, order, params, ms, vs, t, alpha, binary):
    """NumPy twin of one fused epoch (:func:`_fused_epoch`), written with scikit-learn's
    formulas and ``@`` products on unpadded weights; updates ``params``, ``ms``, ``vs`` (in
    the order w0, w1, w2, b0, b1, b2) in place and returns the new Adam step t."""
    ws, bs = list(params[0::2]), list(params[1::2])
    xe, ye = x[order], y1h[order]
    for start in range(0, order.size, BATCH):
        xb, yb = xe[start:start + BATCH], ye[start:start + BATCH]
        acts = [xb]
        for i, (w, b) in enumerate(zip(ws, bs)):
            a = acts[-1] @ w
            a += b
            acts.append(np.maximum(a, 0) if i < len(ws) - 1 else a)
        out = acts[-1]
        if binary:
            out = 1.0 / (1.0 + np.exp(-out))
        else:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        delta = out - yb
        gws, gbs = [None] * len(ws), [None] * len(ws)
        for i in range(len(ws) - 1, -1, -1):
            gws[i] = (acts[i].T @ delta + alpha * ws[i]) / len(xb)
            gbs[i] = delta.mean(axis=0)
            if i:
                delta = delta @ ws[i].T
                delta[acts[i] == 0] = 0
        t += 1
        lr = LR * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
        for p, g, m, v in zip(ws + bs, gws + gbs, ms, vs):
            m[...] = BETA1 * m + (1 - BETA1) * g
            v[...] = BETA2 * v + (1 - BETA2) * g ** 2
            p += -lr * m / (np.sqrt(v) + EPS)
    return t


def _glorot(rs, fan_in, fan_out):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rs.uniform(-bound, bound, (fan_in, fan_out)), rs.uniform(-bound, bound, fan_out)


def fit_mlp(x, y, hidden=(100, 60), alpha=1.0, max_iter=2000, seed=1, dtype=np.float64,
            trainer="blas", threads=1):
    """Scaler + MLP trained with scikit-learn's algorithm, compiled (see module doc).
    ``dtype=np.float32`` halves the arithmetic (fast mode); weights stay in that type.
    ``trainer``: "blas" (the epoch loop calling one-thread BLAS for each product: the
    fastest on one core) or "fused" (one compiled kernel per epoch, no BLAS, weights within
    1e-12 of "blas"); ``threads``: the fused trainer's threads, 1 or 2 (bit-identical
    weights; 2 is faster only on an idle machine).  Measurements: docs/speed-trainer.md."""
    if trainer not in TRAINERS:
        raise ValueError(f"unknown trainer {trainer!r}; choose one of {', '.join(TRAINERS)}")
    if threads not in (1, 2) or (threads == 2 and trainer != "fused"):
        raise ValueError(f"threads={threads!r}: only the fused trainer runs on 1 or 2 threads")
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    scale = np.where(var == 0, 1.0, np.sqrt(var))
    xs = (x - mean) / scale
    classes, y_idx = np.unique(y, return_inverse=True)
    binary = len(classes) == 2
    y1h = (y_idx[:, None] == np.arange(len(classes))[None, :]).astype(np.float64)
    if binary:
        y1h = y1h[:, 1:2].copy()
    rs = np.random.RandomState(seed)
    sizes = [x.shape[1], *hidden, y1h.shape[1]]
    layers = [_glorot(rs, a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    # scikit-learn stratifies only when the network has one output (two classes)
    tr, val = split_indices(y1h, rs, stratify=binary)
    x_tr, x_val, y_tr, y_val = xs[tr], xs[val], y1h[tr], y1h[val]
    if x_val.shape[0] < 2:
        raise ValueError("the validation set is too small")
    y_val_idx = (y_val[:, 0] > 0.5).astype(int) if binary else y_val.argmax(1)
    x_tr = np.ascontiguousarray(x_tr, dtype=dtype)
    y_tr = np.ascontiguousarray(y_tr, dtype=dtype)
    coefs = [w.astype(dtype) for w, _ in layers]
    inter = [b.astype(dtype) for _, b in layers]
    params = (coefs[0], inter[0], coefs[1], inter[1], coefs[2], inter[2])
    ms = tuple(np.zeros_like(p) for p in (coefs + inter))
    vs = tuple(np.zeros_like(p) for p in (coefs + inter))
    model = CompiledMLP(classes, mean, scale, coefs, inter)
    unit = CompiledMLP(classes, np.zeros(x.shape[1]), np.ones(x.shape[1]), coefs, inter)
    with _blas_threads(FIT_BLAS_THREADS):
        best_params = _train(model, unit, x_tr, y_tr, x_val, y_val_idx, params, ms, vs, rs,
                             alpha, binary, max_iter, trainer, threads)
    w0, b0, w1, b1, w2, b2 = best_params
    model.coefs, model.intercepts = [w0, w1, w2], [b0, b1, b2]
    return model


def _blas_threads(n):
    """A context limiting BLAS to ``n`` threads (threadpoolctl), or doing nothing for None."""
    if n is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _train(model, unit, x_tr, y_tr, x_val, y_val_idx, params, ms, vs, rs, alpha, binary,
           max_iter, trainer="blas", threads=1):
    """The epochs with early stopping; returns the best weights."""
    best, best_params, stall, t = -np.inf, None, 0, 0
    order = np.arange(x_tr.shape[0])
    if trainer == "fused":
        run = _fused_runner(params, x_tr, y_tr, alpha, binary, threads)
    else:
        def run(order, t):
            return _epoch(x_tr, y_tr, order, params, ms, vs, t, alpha, binary)
    for _ in range(max_iter):
        order = shuffled(order, rs)
        t = run(order, t)
        model.n_iter_ += 1
        score = float((unit.predict_proba(x_val).argmax(1) == y_val_idx).mean())
        model.validation_scores_.append(score)
        stall = stall + 1 if score < best + TOL else 0
        if score > best:
            best = score
            best_params = [p.copy() for p in params]
        if stall > N_ITER_NO_CHANGE:
            break
    return best_params
