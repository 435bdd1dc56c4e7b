"""Compiled MLP: scikit-learn's StandardScaler + MLPClassifier(adam) algorithm in Numba.

``fit_mlp`` follows scikit-learn's trainer step by step - the same Glorot initialisation
from ``RandomState(1)``, the same stratified 10 % validation split and per-epoch shuffles
drawn from that generator, minibatches of 200, the same back-propagation, L2 term and Adam
updates, and the same early stopping (tol 1e-4, 10 epochs, best weights restored) - but runs
each epoch in one compiled call instead of thousands of small Python steps.  It is not
bit-identical to scikit-learn (different BLAS call shapes and ``exp``), so it serves the
``mode="fast"`` path; the tests and benchmarks measure how often its labels differ.

Each epoch's minibatch products call one-thread BLAS.  A fused one-kernel trainer (no BLAS,
vector-padded resident weights, one or two threads) was measured against it and left the
package: on one thread it was slower here, and its two threads stall on a busy machine
(docs/measurements/speed-trainer.md; its copy lives in ``benchmarks/fused_trainer.py``).

The network has exactly two hidden layers (Doodler's MLP eras: [100, 60] and [100, 100]);
``fit_mlp`` refuses any other count.

``CompiledMLP.predict_proba`` (compiled) and ``forward_numpy`` (its twin, written as
scikit-learn computes) give class probabilities for many pixels in bounded chunks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from math import ceil

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba's np.dot calls: loaded first,
from numba import njit
from threadpoolctl import threadpool_limits

#: BLAS threads for the trainer's products (numba's ``np.dot`` calls SciPy's OpenBLAS): one.
#: A minibatch product (200 rows x 30-100 columns) is too small to share: OpenBLAS splits it
#: anyway, and waking and joining its threads hundreds of times an epoch cost 1.2-19x the fit
#: (docs/measurements/speed.md).  None leaves BLAS as it is.  Threads do not change the results (OpenBLAS
#: splits the output, not the sums).
FIT_BLAS_THREADS = 1
TOL = 1e-4
N_ITER_NO_CHANGE = 10
BATCH = 200
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


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
def _epoch(x, y1h, order, params, ms, vs, t, alpha, binary, batch, lr0):
    """One pass over the shuffled minibatches of ``batch`` rows with Adam updates (step size
    ``lr0``); returns the new step t."""
    w0, b0, w1, b1, w2, b2 = params
    n = order.size
    for start in range(0, n, batch):
        stop = min(start + batch, n)
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
        lr = lr0 * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
        _adam(w0, g0w, ms[0], vs[0], lr)
        _adam(w1, g1w, ms[1], vs[1], lr)
        _adam(w2, g2w, ms[2], vs[2], lr)
        _adam(b0, g0b, ms[3], vs[3], lr)
        _adam(b1, g1b, ms[4], vs[4], lr)
        _adam(b2, g2b, ms[5], vs[5], lr)
    return t


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


def _glorot(rs, fan_in, fan_out):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rs.uniform(-bound, bound, (fan_in, fan_out)), rs.uniform(-bound, bound, fan_out)


@dataclass
class Problem:
    """A fit made ready as scikit-learn's ``MLPClassifier.fit`` makes it: the scaled rows
    split into training and validation rows, the Glorot weights (w0, b0, w1, b1, w2, b2),
    Adam's moments, the generator the shuffles draw from, and the model the weights belong
    to (``unit``: the same weights without the scaler, for the validation score)."""

    model: CompiledMLP
    unit: CompiledMLP
    x_tr: np.ndarray
    y_tr: np.ndarray
    x_val: np.ndarray
    y_val_idx: np.ndarray
    params: tuple
    ms: tuple
    vs: tuple
    rs: np.random.RandomState
    binary: bool


def prepare(x, y, hidden=(100, 60), seed=1, dtype=np.float64):
    """The :class:`Problem` of fitting ``x``, ``y`` with two hidden layers ``hidden``."""
    if len(hidden) != 2:
        raise ValueError(f"hidden={tuple(hidden)!r}: the compiled MLP has exactly two hidden layers")
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
    coefs = [w.astype(dtype) for w, _ in layers]
    inter = [b.astype(dtype) for _, b in layers]
    params = (coefs[0], inter[0], coefs[1], inter[1], coefs[2], inter[2])
    return Problem(model=CompiledMLP(classes, mean, scale, coefs, inter),
                   unit=CompiledMLP(classes, np.zeros(x.shape[1]), np.ones(x.shape[1]), coefs, inter),
                   x_tr=np.ascontiguousarray(x_tr, dtype=dtype),
                   y_tr=np.ascontiguousarray(y_tr, dtype=dtype),
                   # in the weights' type: the validation forward pass stores its input in that
                   # type anyway (unit scaler), so the scores are the same, and it shares the
                   # prediction's compiled specialisation (one cached kernel load fewer)
                   x_val=np.ascontiguousarray(x_val, dtype=dtype), y_val_idx=y_val_idx,
                   params=params, ms=tuple(np.zeros_like(p) for p in (coefs + inter)),
                   vs=tuple(np.zeros_like(p) for p in (coefs + inter)), rs=rs, binary=binary)


@dataclass(frozen=True)
class Schedule:
    """How the trainer walks: ``batch`` rows a minibatch, Adam's step size ``learning_rate``,
    at most ``max_iter`` epochs, and early stopping once the validation score has not risen
    by ``tol`` for more than ``patience`` epochs.  The defaults are scikit-learn's (Doodler's);
    fast mode turns them (:mod:`doodle_engine.modes`)."""

    batch: int = BATCH
    learning_rate: float = LR
    max_iter: int = 2000
    tol: float = TOL
    patience: int = N_ITER_NO_CHANGE


def fit_mlp(x, y, hidden=(100, 60), alpha=1.0, max_iter=2000, seed=1, dtype=np.float64,
            schedule=None):
    """Scaler + MLP trained with scikit-learn's algorithm, compiled (see module doc).
    ``dtype=np.float32`` halves the arithmetic (fast mode); weights stay in that type.
    ``schedule``: a :class:`Schedule` (its ``max_iter`` replaces ``max_iter``); by default
    scikit-learn's.  Measurements: docs/measurements/speed-trainer.md."""
    plan = schedule if schedule is not None else Schedule(max_iter=max_iter)
    prob = prepare(x, y, hidden, seed, dtype)
    batch, lr0 = int(plan.batch), float(plan.learning_rate)

    def run(order, t):
        return _epoch(prob.x_tr, prob.y_tr, order, prob.params, prob.ms, prob.vs, t, alpha,
                      prob.binary, batch, lr0)

    with _blas_threads(FIT_BLAS_THREADS):
        best_params = _train(prob, run, int(plan.max_iter), plan.tol, int(plan.patience))
    return finish(prob, best_params)


def finish(prob, best_params):
    """The problem's model holding the best weights."""
    w0, b0, w1, b1, w2, b2 = best_params
    prob.model.coefs, prob.model.intercepts = [w0, w1, w2], [b0, b1, b2]
    return prob.model


def _blas_threads(n):
    """A context limiting BLAS to ``n`` threads (threadpoolctl), or doing nothing for None."""
    if n is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _train(prob, run, max_iter, tol=TOL, patience=N_ITER_NO_CHANGE):
    """The epochs (``run(order, t) -> t``) with early stopping; returns the best weights."""
    best, best_params, stall, t = -np.inf, None, 0, 0
    order = np.arange(prob.x_tr.shape[0])
    for _ in range(max_iter):
        order = shuffled(order, prob.rs)
        t = run(order, t)
        prob.model.n_iter_ += 1
        score = float((prob.unit.predict_proba(prob.x_val).argmax(1) == prob.y_val_idx).mean())
        prob.model.validation_scores_.append(score)
        stall = stall + 1 if score < best + tol else 0
        if score > best:
            best = score
            best_params = [p.copy() for p in prob.params]
        if stall > patience:
            break
    return best_params
