"""The fused MLP trainer, kept here for its benchmark (docs/measurements/speed-trainer.md).

Each epoch is one compiled kernel without BLAS: the epoch's rows gathered once in shuffled
order, then forward, back-propagation and Adam per minibatch over resident, vector-padded
weights and buffers made once; ``threads=2`` splits every step over two threads with
bit-identical results.  It follows the same algorithm as ``doodle_engine.kernels.mlp`` (whose
``prepare`` / ``finish`` it shares) and its weights stay within 1e-12 of that trainer's, but on
one thread it was slower than the one-thread BLAS trainer and its two threads stall on a busy
machine, so no mode uses it and it left the package (issue 26).  ``fused_epoch_numpy`` is its
NumPy twin; ``test_bench_trainer.py`` checks both.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from doodle_engine.kernels.mlp import (
    BATCH,
    BETA1,
    BETA2,
    EPS,
    FIT_BLAS_THREADS,
    LR,
    _add_bias_relu,
    _blas_threads,
    _output_inplace,
    _relu_backward,
    _train,
    finish,
    prepare,
)


def fit_fused(x, y, hidden=(100, 60), alpha=1.0, max_iter=2000, seed=1, dtype=np.float64,
              threads=1):
    """``doodle_engine.kernels.mlp.fit_mlp`` with the fused epoch on ``threads`` (1 or 2)."""
    if threads not in (1, 2):
        raise ValueError(f"threads={threads!r}: the fused trainer runs on 1 or 2 threads")
    prob = prepare(x, y, hidden, seed, dtype)
    run = fused_runner(prob.params, prob.x_tr, prob.y_tr, alpha, prob.binary, threads)
    with _blas_threads(FIT_BLAS_THREADS):
        best_params = _train(prob, run, max_iter)
    return finish(prob, best_params)


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


def fused_runner(params, x_tr, y_tr, alpha, binary, threads=1):
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
