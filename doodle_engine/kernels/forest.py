"""Compiled random-forest inference from the fitted scikit-learn trees.

Each pixel walks every tree (features compared in float32 against float64 thresholds, as
scikit-learn does), adds the leaf's class fractions in tree order, and takes the argmax of the
mean - scikit-learn's ``predict`` with ``n_jobs=1``.  Its twin is ``RandomForestClassifier.predict``."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


class PackedForest:
    """The trees of a fitted RandomForestClassifier as flat arrays."""

    def __init__(self, forest):
        trees = [est.tree_ for est in forest.estimators_]
        sizes = np.array([t.node_count for t in trees])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.left = np.concatenate([t.children_left for t in trees]).astype(np.int64)
        self.right = np.concatenate([t.children_right for t in trees]).astype(np.int64)
        self.feature = np.concatenate([t.feature for t in trees]).astype(np.int64)
        self.threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        values = np.concatenate([t.value[:, 0, :] for t in trees]).astype(np.float64)
        norm = values.sum(axis=1, keepdims=True)
        norm[norm == 0] = 1.0
        self.leaf_proba = values / norm
        self.classes_ = forest.classes_

    def predict(self, x):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        idx = _predict(x32, self.offsets, self.left, self.right, self.feature, self.threshold,
                       self.leaf_proba)
        return self.classes_[idx]


@njit(cache=True, parallel=True)
def _predict(x, offsets, left, right, feature, threshold, leaf_proba):
    n = x.shape[0]
    k = leaf_proba.shape[1]
    out = np.empty(n, np.int64)
    for i in prange(n):
        acc = np.zeros(k)
        for t in range(offsets.size):
            node = offsets[t]
            while left[node] != -1:
                if x[i, feature[node]] <= threshold[node]:
                    node = offsets[t] + left[node]
                else:
                    node = offsets[t] + right[node]
            for c in range(k):
                acc[c] += leaf_proba[node, c]
        best = 0
        for c in range(1, k):
            if acc[c] > acc[best]:
                best = c
        out[i] = best
    return out
